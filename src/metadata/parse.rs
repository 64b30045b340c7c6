//! Parsers for the value formats of the metadata service: directory listings
//! (one entry a line, directories end with `/`), `private-ipv4s` as a JSON
//! array of strings, `ipv6s` as a bracketed, unquoted, comma-separated list,
//! CIDR blocks and dotted netmasks.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// A value that does not have the expected format. It quotes at most a short
/// prefix of the value (metadata values are not secret; credentials are never
/// parsed here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {value:?}")]
pub struct ParseError {
    pub what: String,
    pub value: String,
}

fn err(what: impl Into<String>, value: &str) -> ParseError {
    ParseError {
        what: what.into(),
        value: value.chars().take(80).collect(),
    }
}

/// Entries of a directory listing, without the trailing `/`.
pub fn listing(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim().trim_end_matches('/'))
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A single IPv4 address.
pub fn ipv4(text: &str) -> Result<Ipv4Addr, ParseError> {
    text.trim()
        .parse()
        .map_err(|_| err("not an IPv4 address", text))
}

/// A single IPv6 address.
pub fn ipv6(text: &str) -> Result<Ipv6Addr, ParseError> {
    text.trim()
        .parse()
        .map_err(|_| err("not an IPv6 address", text))
}

/// An IPv4 CIDR block such as `192.168.1.0/24`.
pub fn ipv4_net(text: &str) -> Result<Ipv4Net, ParseError> {
    text.trim()
        .parse()
        .map_err(|_| err("not an IPv4 CIDR block", text))
}

/// An IPv6 CIDR block such as `2408:4000:325:a204::/64`.
pub fn ipv6_net(text: &str) -> Result<Ipv6Net, ParseError> {
    text.trim()
        .parse()
        .map_err(|_| err("not an IPv6 CIDR block", text))
}

/// `["192.168.1.10","192.168.1.11"]`.
pub fn ipv4_json_array(text: &str) -> Result<Vec<Ipv4Addr>, ParseError> {
    let items: Vec<String> =
        serde_json::from_str(text.trim()).map_err(|_| err("not a JSON array of strings", text))?;
    items.iter().map(|s| ipv4(s)).collect()
}

/// Splits `[a,b]` (brackets optional, commas or newlines between items).
fn bracket_items(text: &str) -> impl Iterator<Item = &str> {
    let t = text.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(t);
    t.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `[2408:4000::1,2408:4000::2]`.
pub fn ipv6_bracket_list(text: &str) -> Result<Vec<Ipv6Addr>, ParseError> {
    bracket_items(text).map(ipv6).collect()
}

/// One or more IPv4 CIDR blocks, bracketed or one a line.
pub fn ipv4_net_list(text: &str) -> Result<Vec<Ipv4Net>, ParseError> {
    bracket_items(text).map(ipv4_net).collect()
}

/// One or more IPv6 CIDR blocks, bracketed or one a line.
pub fn ipv6_net_list(text: &str) -> Result<Vec<Ipv6Net>, ParseError> {
    bracket_items(text).map(ipv6_net).collect()
}

/// A dotted netmask (`255.255.240.0`) as a prefix length; non-contiguous masks
/// are rejected.
pub fn netmask(text: &str) -> Result<u8, ParseError> {
    let mask = u32::from(ipv4(text)?);
    let len = mask.leading_ones();
    if mask.checked_shl(len).unwrap_or(0) != 0 {
        return Err(err("not a contiguous netmask", text));
    }
    u8::try_from(len).map_err(|_| err("not a netmask", text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_formats() {
        assert_eq!(
            listing("00:16:3e:00:00:01/\n00:16:3e:00:00:02/\n"),
            ["00:16:3e:00:00:01", "00:16:3e:00:00:02"]
        );
        assert_eq!(
            ipv4_json_array(r#"["192.168.1.10","192.168.1.11"]"#).expect("valid"),
            [
                Ipv4Addr::new(192, 168, 1, 10),
                Ipv4Addr::new(192, 168, 1, 11)
            ]
        );
        assert_eq!(
            ipv6_bracket_list("[fd00:4004:400::1,fd00:4004:400::2]").expect("valid"),
            [
                "fd00:4004:400::1".parse::<Ipv6Addr>().expect("v6"),
                "fd00:4004:400::2".parse().expect("v6")
            ]
        );
        assert_eq!(
            ipv6_bracket_list("[]").expect("empty"),
            Vec::<Ipv6Addr>::new()
        );
        assert_eq!(netmask("255.255.240.0").expect("valid"), 20);
        assert_eq!(netmask("0.0.0.0").expect("valid"), 0);
        assert_eq!(netmask("255.255.255.255").expect("valid"), 32);
        assert_eq!(ipv4_net_list("192.168.5.16/28").expect("valid").len(), 1);
    }

    #[test]
    fn malformed_values_are_rejected_with_the_value() {
        assert!(ipv4_json_array("192.168.1.10").is_err());
        assert!(ipv4_json_array(r#"["192.168.1.300"]"#).is_err());
        assert!(ipv6_bracket_list("[not-an-address]").is_err());
        let e = netmask("255.0.255.0").expect_err("non-contiguous");
        assert!(e.to_string().contains("255.0.255.0"));
        assert!(ipv4_net("10.0.0.0/33").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in any::<String>()) {
            let _ = ipv4_json_array(&s);
            let _ = ipv6_bracket_list(&s);
            let _ = ipv4_net_list(&s);
            let _ = netmask(&s);
            let _ = listing(&s);
        }

        #[test]
        fn netmask_round_trips(len in 0u8..=32) {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            prop_assert_eq!(netmask(&Ipv4Addr::from(mask).to_string()).expect("valid"), len);
        }
    }
}
