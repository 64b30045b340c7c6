//! A string that must never be printed: access key secrets, STS tokens and
//! metadata tokens. `Debug` and `Display` print a fixed placeholder, so a
//! secret cannot leak through `{:?}` in a log line or an error message; the
//! value is reachable only through [`Secret::expose`], which call sites use to
//! sign or send it.
//!
//! Text that comes from outside (an API error message may echo the string to
//! sign, the canonical request or the query string, each with the security
//! token and the signature in it) goes through [`scrub`] before it reaches a
//! log, an error, a state file or `status`: known secret values and the
//! values of secret-named parameters are replaced, control characters
//! dropped and the length bounded.

use std::fmt;

use serde::Deserialize;

/// A secret value. Compare, clone and expose it; never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for signing or sending. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

/// The longest piece of outside text (an API message, a response snippet)
/// kept in an error, a log line or a state file.
pub const MAX_MESSAGE_CHARS: usize = 512;

/// Parameter and header names whose values are secret or identify a key,
/// lower-case (they are matched without regard to case).
const SECRET_NAMES: &[&str] = &[
    "x-acs-security-token",
    "securitytoken",
    "security_token",
    "accesskeysecret",
    "access_key_secret",
    "accesskeyid",
    "access_key_id",
    "signature",
    "credential",
    "token",
];

/// What a name and its value may be separated by, in any encoding the text
/// may carry (a string to sign encodes the query twice); lower-case.
const SEPARATORS: &[&str] = &[
    "%25253d",
    "%253d",
    "%3d",
    "=",
    "\\\":\\\"",
    "\":\"",
    "\": \"",
    ": ",
    ":",
];

/// Where a value ends.
const TERMINATORS: &[&str] = &["%252526", "%2526", "%26", "&", "\\n", "\\\""];

/// `text` with secrets removed: every occurrence of a value in `known`
/// (raw, percent-encoded once or twice), and the value after any
/// secret-named parameter (`SecurityToken=`, `SecurityToken%3D`,
/// `x-acs-security-token:`, `Signature=`, `AccessKeyId%253D`, …) become
/// `***`; control characters become spaces; the result is cut to
/// [`MAX_MESSAGE_CHARS`] characters.
pub fn scrub(text: &str, known: &[&str]) -> String {
    // Bound the work first: nothing past a few times the kept length matters.
    let mut out: String = text.chars().take(MAX_MESSAGE_CHARS * 8).collect();
    for value in known.iter().filter(|v| v.len() >= 6) {
        let once = percent_encode(value);
        let twice = percent_encode(&once);
        for form in [twice.as_str(), once.as_str(), value] {
            if out.contains(form) {
                out = out.replace(form, "***");
            }
        }
    }
    let out = scrub_named(&out);
    bound_message(&out, MAX_MESSAGE_CHARS)
}

/// `text` without control characters (each becomes a space), cut to at
/// most `max` characters (with `…` when cut).
pub fn bound_message(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 4));
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Replaces the value after each secret-named parameter.
fn scrub_named(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < text.len() {
        for name in SECRET_NAMES {
            if !lower[i..].starts_with(name) {
                continue;
            }
            let after_name = i + name.len();
            // `token` only as a whole word (not `x-acs-security-token`'s
            // tail, handled above, nor `NextToken`).
            if *name == "token" && i > 0 && lower.as_bytes()[i - 1].is_ascii_alphanumeric() {
                continue;
            }
            for sep in SEPARATORS {
                if lower[after_name..].starts_with(sep) {
                    let start = after_name + sep.len();
                    let end = value_end(&lower, start);
                    out.push_str(&text[i..start]);
                    if end > start {
                        out.push_str("***");
                    }
                    i = end;
                    continue 'outer;
                }
            }
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// The end of a value starting at `start` (in the lower-cased text, whose
/// byte offsets are the original's).
fn value_end(text: &str, start: usize) -> usize {
    let mut j = start;
    while j < text.len() {
        let rest = &text[j..];
        if TERMINATORS.iter().any(|t| rest.starts_with(t)) {
            break;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c.is_whitespace() || c.is_control() || ",;\"'<>()[]{}".contains(c) {
            break;
        }
        j += c.len_utf8();
    }
    j
}

/// RFC 3986 percent-encoding of everything but unreserved characters (the
/// encoding both signature versions use).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_secrets_in_every_echoed_form() {
        let token = "CAIS+sts/TOKEN==value";
        let v2 = format!(
            "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3DSTS.keyid123%26Action%3DDescribe%26SecurityToken%3D{}%26SignatureMethod%3DHMAC-SHA1",
            percent_encode(&percent_encode(token))
        );
        let v3 = format!(
            "server string to sign is:ACS3-HMAC-SHA256\nabc canonical request is:POST\n/\nRegionId=cn\nhost:h\nx-acs-security-token:{token}\nx-acs-signature-nonce:n\n\nhost;x-acs-security-token\n"
        );
        let url = format!(
            "error sending request for url (http://h/?AccessKeyId=STS.keyid123&SecurityToken={}&Signature=abcdefSIG%3D&SignatureMethod=HMAC-SHA1)",
            percent_encode(token)
        );
        let auth = "Authorization: ACS3-HMAC-SHA256 Credential=STS.keyid123,SignedHeaders=host,Signature=0123456789abcdef";
        let json =
            format!("{{\"SecurityToken\": \"{token}\", \"AccessKeySecret\":\"s3cr3t-value\"}}");
        for text in [v2, v3, url, auth.to_owned(), json] {
            for known in [&[token, "STS.keyid123", "s3cr3t-value"][..], &[][..]] {
                let clean = scrub(&text, known);
                for leak in [
                    "CAIS",
                    "TOKEN",
                    "STS.keyid123",
                    "s3cr3t",
                    "abcdefSIG",
                    "0123456789abcdef",
                ] {
                    assert!(!clean.contains(leak), "{leak} in {clean} (known {known:?})");
                }
                assert!(!clean.contains('\n'), "{clean}");
                assert!(clean.contains("***"), "{clean}");
            }
        }
        // Names that only start like a secret one are left alone.
        let kept = scrub(
            "SignatureMethod=HMAC-SHA1&SignatureNonce=abc&NextToken=x",
            &[],
        );
        assert_eq!(
            kept,
            "SignatureMethod=HMAC-SHA1&SignatureNonce=abc&NextToken=x"
        );
    }

    #[test]
    fn messages_are_bounded_and_lose_control_characters() {
        let long = "a\u{1b}[31m".repeat(1000);
        let clean = scrub(&long, &[]);
        assert!(
            clean.chars().count() <= MAX_MESSAGE_CHARS + 1,
            "{}",
            clean.len()
        );
        assert!(!clean.contains('\u{1b}'));
        assert_eq!(bound_message("x\ny", 10), "x y");
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
