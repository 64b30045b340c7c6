//! Deserializers that accept a number or a numeric string (and a bool or
//! "true"/"false"): the API has been seen to quote some numbers, and a quoted
//! number in a field the agent does not act on must not fail a whole response.

use serde::{Deserialize, Deserializer, de};

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Num(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrText {
    Bool(bool),
    Text(String),
}

/// `Option<u64>` from a number, a numeric string, an empty string or null.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<NumOrText>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrText::Num(n)) => Ok(Some(n)),
        Some(NumOrText::Text(t)) if t.trim().is_empty() || t == "null" => Ok(None),
        Some(NumOrText::Text(t)) => t.trim().parse().map(Some).map_err(|_| {
            de::Error::custom(format!(
                "expected a non-negative integer, got {:?}",
                truncate(&t)
            ))
        }),
    }
}

/// `Option<u32>`, likewise; values above u32::MAX are errors.
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    opt_u64(d)?
        .map(|n| u32::try_from(n).map_err(|_| de::Error::custom(format!("{n} is out of range"))))
        .transpose()
}

/// `Option<bool>` from a bool or "true"/"false".
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<BoolOrText>::deserialize(d)? {
        None => Ok(None),
        Some(BoolOrText::Bool(b)) => Ok(Some(b)),
        Some(BoolOrText::Text(t)) => match t.trim() {
            "true" | "True" => Ok(Some(true)),
            "false" | "False" => Ok(Some(false)),
            "" | "null" => Ok(None),
            other => Err(de::Error::custom(format!(
                "expected true or false, got {:?}",
                truncate(other)
            ))),
        },
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}
