//! Small helpers shared by the emulator's modules: RFC 3986 percent-encoding
//! (the one both ECS signature versions use), hex, randomness, request ids and
//! UTC timestamps in the `YYYY-MM-DDThh:mm:ssZ` form ECS uses everywhere.

use std::time::{Duration, SystemTime};

use ring::rand::{SecureRandom, SystemRandom};

/// Percent-encodes `s` the way Alibaba Cloud signatures require: RFC 3986
/// unreserved characters stay, every other UTF-8 byte becomes `%XY`
/// (upper-case hex), so a space is `%20`, `*` is `%2A` and `~` stays `~`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0xf));
        }
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(n & 0xf)])
}

/// Lower-case hex of `bytes`.
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Fills a buffer with random bytes from the system generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG only fails if the kernel has no entropy source at all;
    // fall back to a time-derived value rather than aborting the service.
    if SystemRandom::new().fill(&mut buf).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = nanos[i % nanos.len()] ^ u8::try_from(i % 251).unwrap_or(0);
        }
    }
    buf
}

/// A uniformly distributed float in `[0, 1)`.
pub fn random_unit() -> f64 {
    let v = u64::from_le_bytes(random_bytes::<8>()) >> 11;
    // 53 random bits divided by 2^53: exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    let f = v as f64 / (1u64 << 53) as f64;
    f
}

/// True with probability `rate` (values outside `[0, 1]` are clamped).
pub fn chance(rate: f64) -> bool {
    if rate <= 0.0 {
        false
    } else if rate >= 1.0 {
        true
    } else {
        random_unit() < rate
    }
}

/// Lower-case random hex string of `2 * N` characters.
pub fn random_hex<const N: usize>() -> String {
    hex_lower(&random_bytes::<N>())
}

/// A request id in the form ECS uses: an upper-case UUID.
pub fn request_id() -> String {
    let b = random_bytes::<16>();
    let h = hex_lower(&b).to_uppercase();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Formats a time as `YYYY-MM-DDThh:mm:ssZ`.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Formats a time as RFC 3339 with milliseconds (for the call log).
pub fn format_time_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses an ECS timestamp (`YYYY-MM-DDThh:mm:ssZ`, fractional seconds allowed).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

/// The absolute difference between two times.
pub fn abs_diff(a: SystemTime, b: SystemTime) -> Duration {
    match a.duration_since(b) {
        Ok(d) => d,
        Err(e) => e.duration(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_matches_the_documented_examples() {
        assert_eq!(percent_encode("a b"), "a%20b");
        assert_eq!(percent_encode("*"), "%2A");
        assert_eq!(percent_encode("+"), "%2B");
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("~"), "~");
        assert_eq!(percent_encode("派"), "%E6%B4%BE");
        assert_eq!(percent_encode("a!b'c(d)e"), "a%21b%27c%28d%29e");
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(id, id.to_uppercase());
    }

    #[test]
    fn time_round_trips() {
        let t = parse_time("2016-02-23T12:46:24Z").expect("valid timestamp");
        assert_eq!(format_time(t), "2016-02-23T12:46:24Z");
        assert!(parse_time("yesterday").is_none());
    }
}
