//! RFC 3986 percent-encoding as both Alibaba Cloud signature algorithms use it:
//! `A-Z a-z 0-9 - _ . ~` stay, every other byte of the UTF-8 encoding becomes
//! `%XY` with upper-case hex (so a space is `%20`, never `+`; `*` is `%2A`).

use std::fmt::Write;

/// True for the bytes RFC 3986 calls unreserved.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes `input` for a signature or a query string.
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for &b in input.as_bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The canonical query string both signatures use: parameters sorted by name
/// (byte order), name and value percent-encoded, `name=value` joined by `&`.
/// An empty value still yields `name=`.
pub fn canonical_query<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut pairs: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Lower-case hex of `bytes`.
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_examples() {
        assert_eq!(percent_encode("a b"), "a%20b");
        assert_eq!(percent_encode("*"), "%2A");
        assert_eq!(percent_encode("~"), "~");
        assert_eq!(percent_encode("+"), "%2B");
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("派"), "%E6%B4%BE");
        assert_eq!(percent_encode("a!b'c(d)e"), "a%21b%27c%28d%29e");
        assert_eq!(
            percent_encode("2016-02-23T12:46:24Z"),
            "2016-02-23T12%3A46%3A24Z"
        );
    }

    #[test]
    fn canonical_query_sorts_and_keeps_empty_values() {
        let q = canonical_query([("test", "ok"), ("empty", ""), ("A b", "c*d")]);
        assert_eq!(q, "A%20b=c%2Ad&empty=&test=ok");
    }

    /// Decodes what `percent_encode` produced; used only by the property test.
    fn percent_decode(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii hex");
                out.push(u8::from_str_radix(hex, 16).expect("valid hex"));
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    proptest! {
        #[test]
        fn encoding_is_reversible_and_uses_only_safe_characters(s in any::<String>()) {
            let enc = percent_encode(&s);
            prop_assert!(enc.bytes().all(|b| is_unreserved(b) || b == b'%'
                || b.is_ascii_hexdigit()));
            prop_assert!(!enc.contains('+') && !enc.contains(' ') && !enc.contains('*'));
            // Every escape is upper-case hex.
            for (i, _) in enc.match_indices('%') {
                let esc = &enc[i + 1..i + 3];
                prop_assert!(esc.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
            }
            prop_assert_eq!(percent_decode(&enc), s.as_bytes().to_vec());
        }

        #[test]
        fn unreserved_strings_are_unchanged(s in "[A-Za-z0-9._~-]*") {
            prop_assert_eq!(percent_encode(&s), s);
        }
    }
}
