//! `[[eni]]` entries: which ENIs the agent attaches, by id or by tag, and
//! each one's overrides.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use serde::Deserialize;

use crate::plan::{EniOptions, SysctlSwitches};

/// One `[[eni]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EniConfig {
    /// The ENI id, `eni-...`.
    pub id: Option<String>,
    /// `key=value`: every Available ENI with this tag in the instance's zone.
    pub tag: Option<String>,
    /// NetworkCardIndex for AttachNetworkInterface (multi-card instance families).
    pub network_card_index: Option<u32>,
    /// When the ENI is InUse on another instance, detach it there and attach
    /// it here (HA failover).
    pub takeover: bool,
    /// Routing table to use instead of an allocated one.
    pub table: Option<u32>,
    /// MTU for the NIC (default: unchanged).
    pub mtu: Option<u32>,
    /// Channel count instead of the API's QueueNumber.
    pub queues: Option<u32>,
    /// Also a default route in the main table, with a metric worse than the
    /// primary NIC's.
    pub default_route: bool,
    pub default_route_metric: Option<u32>,
    /// Which per-NIC sysctls the agent sets.
    pub sysctl: SysctlSwitches,
}

/// How an entry picks its ENIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EniSelector {
    Id(String),
    Tag { key: String, value: String },
}

impl EniConfig {
    /// The selector; [`validate`] has checked there is exactly one.
    pub fn selector(&self) -> EniSelector {
        match (&self.id, &self.tag) {
            (Some(id), _) => EniSelector::Id(id.clone()),
            (None, Some(tag)) => {
                let (k, v) = tag.split_once('=').unwrap_or((tag, ""));
                EniSelector::Tag {
                    key: k.trim().to_owned(),
                    value: v.trim().to_owned(),
                }
            }
            (None, None) => EniSelector::Id(String::new()),
        }
    }

    /// The planner's options for this entry.
    pub fn options(&self) -> EniOptions {
        EniOptions {
            table: self.table,
            mtu: self.mtu,
            queues: self.queues,
            default_route: self.default_route,
            default_route_metric: self.default_route_metric,
            sysctl: self.sysctl.clone(),
        }
    }

    /// An entry for one ENI with defaults (the one-shot without a config file).
    pub fn for_id(id: &str) -> Self {
        Self {
            id: Some(id.to_owned()),
            ..Self::default()
        }
    }
}

/// True for ids that look like ECS ENI ids.
pub fn is_eni_id(id: &str) -> bool {
    crate::ids::EniId::is_valid(id)
}

/// An `[[eni]]` entry that cannot be used: which entry (1-based), the key
/// at fault (`None`: the entry as a whole) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniError {
    pub entry: usize,
    pub key: Option<&'static str>,
    pub message: String,
}

impl EniError {
    fn new(entry: usize, key: Option<&'static str>, message: String) -> Self {
        Self {
            entry,
            key,
            message,
        }
    }

    /// The message with the line of the key (else of the entry's header) in
    /// `text`: "eni entry #2 (line 7): ...".
    pub fn with_line(&self, text: &str) -> String {
        let n = self.entry;
        let lines: Vec<&str> = text.lines().collect();
        let Some(header) = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("[[eni]]"))
            .nth(n.saturating_sub(1))
            .map(|(i, _)| i)
        else {
            return self.message.clone();
        };
        let key_line = self.key.and_then(|key| {
            lines[header + 1..]
                .iter()
                .take_while(|l| {
                    let l = l.trim_start();
                    !l.starts_with('[') || l.starts_with("[eni.")
                })
                .position(|l| {
                    l.trim_start()
                        .strip_prefix(key)
                        .is_some_and(|rest| rest.trim_start().starts_with('='))
                })
                .map(|i| header + 1 + i)
        });
        let line = key_line.unwrap_or(header) + 1;
        self.message.replacen(
            &format!("eni entry #{n}"),
            &format!("eni entry #{n} (line {line})"),
            1,
        )
    }
}

/// Checks the entries together.
pub fn validate(entries: &[EniConfig], tables: RangeInclusive<u32>) -> Result<(), EniError> {
    let mut ids = BTreeSet::new();
    let mut explicit_tables = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        let n = i + 1;
        let err = |key, message| Err(EniError::new(n, key, message));
        match (&e.id, &e.tag) {
            (Some(_), Some(_)) => {
                return err(
                    Some("tag"),
                    format!("eni entry #{n} has both id and tag; give one"),
                );
            }
            (None, None) => {
                return err(
                    None,
                    format!("eni entry #{n} has neither id nor tag; add id = \"eni-...\""),
                );
            }
            (Some(id), None) => {
                if !is_eni_id(id) {
                    return err(
                        Some("id"),
                        format!(
                            "eni entry #{n}: id {id:?} is not an ENI id (it looks like eni-bp1abc...)"
                        ),
                    );
                }
                if !ids.insert(id.clone()) {
                    return err(Some("id"), format!("eni entry #{n}: {id} is listed twice"));
                }
            }
            (None, Some(tag)) => match tag.split_once('=') {
                Some((k, _)) if !k.trim().is_empty() => {}
                _ => {
                    return err(
                        Some("tag"),
                        format!("eni entry #{n}: tag {tag:?} must look like key=value"),
                    );
                }
            },
        }
        if let Some(t) = e.table {
            if tables.contains(&t) {
                return err(
                    Some("table"),
                    format!(
                        "eni entry #{n}: table {t} is inside the range the agent allocates from ({}..{}); pick one outside it",
                        tables.start(),
                        tables.end()
                    ),
                );
            }
            if matches!(t, 0 | 253..=255) {
                return err(
                    Some("table"),
                    format!(
                        "eni entry #{n}: table {t} is reserved (0 unspec, 253 default, 254 main, 255 local)"
                    ),
                );
            }
            if !explicit_tables.insert(t) {
                return err(
                    Some("table"),
                    format!("eni entry #{n}: table {t} is already used by another entry"),
                );
            }
        }
        if let Some(m) = e.mtu {
            if !(576..=65535).contains(&m) {
                return err(
                    Some("mtu"),
                    format!("eni entry #{n}: mtu {m} is outside 576..65535"),
                );
            }
        }
        if let Some(q) = e.queues {
            if !(1..=2048).contains(&q) {
                return err(
                    Some("queues"),
                    format!("eni entry #{n}: queues {q} is outside 1..2048"),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn entries_parse_with_overrides() {
        let c = Config::from_toml(
            "[[eni]]\nid = \"eni-bp1abc\"\nmtu = 9000\ntakeover = true\n[eni.sysctl]\narp = false\n\n[[eni]]\ntag = \"role=db\"\n",
            "t",
        )
        .expect("valid");
        assert_eq!(c.eni.len(), 2);
        assert_eq!(c.eni[0].selector(), EniSelector::Id("eni-bp1abc".into()));
        assert_eq!(c.eni[0].options().mtu, Some(9000));
        assert!(!c.eni[0].options().sysctl.arp);
        assert_eq!(
            c.eni[1].selector(),
            EniSelector::Tag {
                key: "role".into(),
                value: "db".into()
            }
        );
    }

    #[test]
    fn bad_entries_are_named() {
        for (text, needle) in [
            (
                "[[eni]]\nid = \"eni-a\"\ntag = \"k=v\"\n",
                "both id and tag",
            ),
            ("[[eni]]\nmtu = 1500\n", "neither id nor tag"),
            ("[[eni]]\nid = \"i-123\"\n", "not an ENI id"),
            (
                "[[eni]]\nid = \"eni-a\"\n[[eni]]\nid = \"eni-a\"\n",
                "listed twice",
            ),
            ("[[eni]]\ntag = \"novalue\"\n", "key=value"),
            (
                "[[eni]]\nid = \"eni-a\"\ntable = 10005\n",
                "inside the range",
            ),
            ("[[eni]]\nid = \"eni-a\"\ntable = 254\n", "reserved"),
            ("[[eni]]\nid = \"eni-a\"\nmtu = 100\n", "mtu 100"),
            ("[[eni]]\nid = \"eni-a\"\nqueues = 0\n", "queues 0"),
            ("[[eni]]\nid = \"eni-a\"\nmtus = 9000\n", "mtus"),
            (
                "[agent]\ntable_min = 200\ntable_max = 300\n",
                "reserved table",
            ),
        ] {
            let err = Config::from_toml(text, "t").expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn entry_errors_point_at_the_keys_line() {
        for (text, line) in [
            ("[[eni]]\nid = \"eni-a\"\n\nmtu = 100\n", "line 4"),
            (
                "[agent]\n[[eni]]\nid = \"eni-a\"\n[[eni]]\nid = \"eni-b\"\n  queues = 0\n[eni.sysctl]\narp = false\n",
                "eni entry #2 (line 6)",
            ),
            (
                "[[eni]]\nid = \"eni-a\"\n[[eni]]\nqueues = 4\nid = \"x\"\n",
                "(line 5)",
            ),
            ("[[eni]]\nmtu = 1500\n", "(line 1)"),
        ] {
            let err = Config::from_toml(text, "t").expect_err(text).to_string();
            assert!(err.contains(line), "{text}: {err}");
        }
    }
}
