//! Durations in the configuration file are human strings: "200ms", "3s", "2m".

use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?}: {e} (write it like \"200ms\", \"3s\" or \"2m\")"
        ))
    })
}
