//! Typed Alibaba Cloud resource ids: ENI, instance, VPC, vSwitch and
//! security-group ids (`<prefix>-<letters and digits>`), region and zone ids
//! (`cn-hangzhou`, `cn-hangzhou-i`). Every id from outside the process — the
//! configuration, the command line, the metadata service, an API answer — is
//! parsed into one of these before it is put into a URL, a file, a log line
//! or a systemd status, so none of them can carry `/`, `@`, `#`, whitespace
//! or a newline.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// No documented id comes near this length.
const MAX_LEN: usize = 64;

/// An id that does not have its documented shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}: expected {shape}, e.g. {example}")]
pub struct IdError {
    /// What was expected ("ENI id", "region id", …).
    pub kind: &'static str,
    /// The value, cut to a short prefix.
    pub value: String,
    pub shape: &'static str,
    pub example: &'static str,
}

impl IdError {
    fn new(kind: &'static str, value: &str, shape: &'static str, example: &'static str) -> Self {
        Self {
            kind,
            value: value.chars().take(MAX_LEN + 8).collect(),
            shape,
            example,
        }
    }
}

/// `<prefix>-` followed by 1..=64 ASCII letters and digits.
fn is_prefixed(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| {
            !rest.is_empty()
                && rest.len() <= MAX_LEN
                && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Lower-case words of letters and digits joined by single `-`, starting
/// with a letter, with at least `min_parts` words (`cn-hangzhou`,
/// `us-east-1`, `cn-hangzhou-finance`, `cn-hangzhou-i`).
fn is_dashed(value: &str, min_parts: usize) -> bool {
    value.len() <= MAX_LEN
        && value.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && value.split('-').count() >= min_parts
        && value.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $shape:literal, $example:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// What this id is called in messages.
            pub const KIND: &'static str = $kind;
            /// Its documented shape, for messages.
            pub const SHAPE: &'static str = $shape;

            /// Parses `value`, which must have the documented shape exactly
            /// (no surrounding whitespace).
            pub fn parse(value: &str) -> Result<Self, IdError> {
                let check: fn(&str) -> bool = $check;
                if check(value) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(IdError::new($kind, value, $shape, $example))
                }
            }

            /// True when `value` has the documented shape.
            pub fn is_valid(value: &str) -> bool {
                let check: fn(&str) -> bool = $check;
                check(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// An elastic network interface, `eni-bp1b2c0jvnj0g17b0001`.
    EniId,
    "ENI id",
    "eni- followed by 1 to 64 letters and digits",
    "eni-bp1b2c0jvnj0g17b0001",
    |v| is_prefixed(v, "eni")
);
id_type!(
    /// An ECS instance, `i-bp13znx0m0me8cquu001`.
    InstanceId,
    "instance id",
    "i- followed by 1 to 64 letters and digits",
    "i-bp13znx0m0me8cquu001",
    |v| is_prefixed(v, "i")
);
id_type!(
    /// A VPC, `vpc-bp1opxu1zkhn00gzv0001`.
    VpcId,
    "VPC id",
    "vpc- followed by 1 to 64 letters and digits",
    "vpc-bp1opxu1zkhn00gzv0001",
    |v| is_prefixed(v, "vpc")
);
id_type!(
    /// A vSwitch, `vsw-bp1s5fnvk4gn2tws0001`.
    VSwitchId,
    "vSwitch id",
    "vsw- followed by 1 to 64 letters and digits",
    "vsw-bp1s5fnvk4gn2tws0001",
    |v| is_prefixed(v, "vsw")
);
id_type!(
    /// A security group, `sg-bp67acfmxazb4p0001`.
    SecurityGroupId,
    "security group id",
    "sg- followed by 1 to 64 letters and digits",
    "sg-bp67acfmxazb4p0001",
    |v| is_prefixed(v, "sg")
);
id_type!(
    /// A region, `cn-hangzhou`, `us-east-1`.
    RegionId,
    "region id",
    "lower-case letters and digits in dash-separated words, at most 64 characters",
    "cn-hangzhou",
    |v| is_dashed(v, 2)
);
id_type!(
    /// A zone, `cn-hangzhou-i`.
    ZoneId,
    "zone id",
    "lower-case letters and digits in dash-separated words, at most 64 characters",
    "cn-hangzhou-i",
    |v| is_dashed(v, 2)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples_parse() {
        for ok in ["eni-bp1b2c0jvnj0g17b0001", "eni-1", "eni-ABC9"] {
            assert!(EniId::is_valid(ok), "{ok}");
        }
        for ok in [
            "cn-hangzhou",
            "us-east-1",
            "cn-hangzhou-finance",
            "me-east-1",
        ] {
            assert!(RegionId::is_valid(ok), "{ok}");
        }
        assert!(ZoneId::is_valid("cn-hangzhou-i"));
        assert!(InstanceId::is_valid("i-emu0instance0001"));
        assert!(VSwitchId::is_valid("vsw-emu0zonei"));
        assert!(VpcId::is_valid("vpc-1"));
        assert!(SecurityGroupId::is_valid("sg-emu0main"));
    }

    #[test]
    fn hostile_shapes_are_refused_with_the_shape() {
        for bad in [
            "",
            "eni-",
            "eni-a\nb",
            "eni-a b",
            " eni-a",
            "eni-a/../b",
            "i-1",
            "eni-a#",
            &format!("eni-{}", "a".repeat(65)),
        ] {
            let e = EniId::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("ENI id"), "{e}");
        }
        for bad in [
            "x@127.0.0.1:18443#",
            "cn-hangzhou.evil.com",
            "cn_hangzhou",
            "CN-HANGZHOU",
            "hangzhou",
            "cn--hangzhou",
            "cn-hangzhou-",
            "-cn",
            "1cn-x",
        ] {
            assert!(RegionId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_refuses_a_bad_id() {
        let id: EniId = serde_json::from_str("\"eni-abc\"").expect("valid");
        assert_eq!(id, "eni-abc");
        assert_eq!(serde_json::to_string(&id).expect("ser"), "\"eni-abc\"");
        let err = serde_json::from_str::<EniId>("\"eni-a\\nb\"").expect_err("newline");
        assert!(err.to_string().contains("ENI id"), "{err}");
    }
}
