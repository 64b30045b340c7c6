//! Checks of the configuration's values that serde cannot make: ranges,
//! durations, table numbers and endpoint URLs.

use std::time::Duration;

use super::{Config, MAX_DURATION};

impl Config {
    /// Durations: none zero where zero gives up at once, none absurdly long.
    fn validate_durations(&self) -> Result<(), String> {
        let (a, api, r) = (&self.agent, &self.api, &self.api.retry);
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        for (key, value, min, max) in [
            ("agent.attach_timeout", a.attach_timeout, s(1), MAX_DURATION),
            (
                "agent.describe_interval",
                a.describe_interval,
                s(5),
                MAX_DURATION,
            ),
            ("api.connect_timeout", api.connect_timeout, ms(1), s(600)),
            ("api.request_timeout", api.request_timeout, ms(1), s(3600)),
            ("api.retry.deadline", r.deadline, ms(1), MAX_DURATION),
            ("api.retry.max_delay", r.max_delay, ms(0), s(3600)),
            (
                "api.retry.throttle_max_delay",
                r.throttle_max_delay,
                ms(0),
                s(3600),
            ),
            ("metadata.timeout", self.metadata.timeout, ms(1), s(600)),
        ] {
            if value < min || value > max {
                return Err(format!(
                    "{key} = {:?} is out of range: give between {} and {}{}",
                    humantime::format_duration(value).to_string(),
                    humantime::format_duration(min),
                    humantime::format_duration(max),
                    if key == "agent.describe_interval" {
                        " (the ECS API is rate limited)"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(())
    }

    pub(super) fn validate_values(&self) -> Result<(), String> {
        self.validate_durations()?;
        let r = &self.api.retry;
        if r.max_attempts == 0 {
            return Err("api.retry.max_attempts must be at least 1 (1 = no retries)".into());
        }
        if r.base_delay > r.max_delay {
            return Err(format!(
                "api.retry.base_delay ({}) is larger than api.retry.max_delay ({})",
                humantime::format_duration(r.base_delay),
                humantime::format_duration(r.max_delay)
            ));
        }
        if r.throttle_base_delay > r.throttle_max_delay {
            return Err(format!(
                "api.retry.throttle_base_delay ({}) is larger than api.retry.throttle_max_delay ({})",
                humantime::format_duration(r.throttle_base_delay),
                humantime::format_duration(r.throttle_max_delay)
            ));
        }
        let ttl = self.metadata.token_ttl.as_secs();
        if !(1..=21600).contains(&ttl) {
            return Err(format!(
                "metadata.token_ttl must be between 1s and 6h (the service accepts 1..21600 seconds), got {}",
                humantime::format_duration(self.metadata.token_ttl)
            ));
        }
        let a = &self.agent;
        if a.table_min == 0 || a.table_min > a.table_max || a.table_max >= 0xFFFF_FF00 {
            return Err(format!(
                "agent.table_min ({}) .. agent.table_max ({}) is not a usable range of routing table numbers",
                a.table_min, a.table_max
            ));
        }
        if [253, 254, 255]
            .iter()
            .any(|t| (a.table_min..=a.table_max).contains(t))
        {
            return Err("agent.table_min .. agent.table_max includes a reserved table (253 default, 254 main, 255 local)".into());
        }
        if !(1..=1000).contains(&a.max_tag_enis) {
            return Err(format!(
                "agent.max_tag_enis must be between 1 and 1000, got {}",
                a.max_tag_enis
            ));
        }
        if self.eni.len() > super::MAX_ENI_ENTRIES {
            return Err(format!(
                "{} [[eni]] entries; at most {} are allowed (use tag = \"key=value\" entries to select many ENIs)",
                self.eni.len(),
                super::MAX_ENI_ENTRIES
            ));
        }
        for (key, value) in [
            ("api.endpoint", &self.api.endpoint),
            ("metadata.endpoint", &self.metadata.endpoint),
        ] {
            if let Some(url) = value {
                check_url(url).map_err(|e| format!("{key} = {url:?} is not a usable URL: {e}"))?;
            }
        }
        Ok(())
    }
}

/// An endpoint must be an absolute http(s) URL with a host and nothing else:
/// no user name or password, no path beyond `/`, no query, no fragment
/// (each of them could send signed requests somewhere else than the host
/// a reader of the URL sees).
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    if url.len() > 512 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(
            "it is longer than 512 characters or contains whitespace or control characters".into(),
        );
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{e} (write it like https://host[:port])"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || url.contains('@') {
        return Err(
            "it must not carry a user name or password (write it like https://host[:port])".into(),
        );
    }
    if parsed.fragment().is_some() || url.contains('#') {
        return Err("it must not carry a fragment (#...)".into());
    }
    if parsed.path() != "/" || parsed.query().is_some() || url.contains('?') {
        return Err("it must not carry a path or query (the API path is always /)".into());
    }
    Ok(parsed)
}
