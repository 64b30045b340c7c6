//! Phase timings of one ENI's attach: when each phase was reached, relative
//! to the start, with the RequestId of the call that reached it. Logged once
//! at info when the ENI is configured, and kept for `eni-agent status`.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The phases, in the order they are usually reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// DescribeNetworkInterfaceAttribute answered.
    Described,
    /// AttachNetworkInterface accepted the request.
    AttachAccepted,
    /// The NIC with the ENI's MAC appeared on netlink.
    LinkSeen,
    /// Describe reported InUse on this instance.
    InUseConfirmed,
    /// Every address, route, rule, sysctl and queue count is in place.
    Configured,
}

impl Phase {
    /// The phase as a metric label (its serialized name).
    pub fn label(self) -> &'static str {
        match self {
            Self::Described => "described",
            Self::AttachAccepted => "attach_accepted",
            Self::LinkSeen => "link_seen",
            Self::InUseConfirmed => "in_use_confirmed",
            Self::Configured => "configured",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Described => "described",
            Self::AttachAccepted => "attach accepted",
            Self::LinkSeen => "link seen",
            Self::InUseConfirmed => "InUse confirmed",
            Self::Configured => "configured",
        }
    }
}

/// One reached phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub phase: Phase,
    /// Since the start of the attach.
    #[serde(with = "millis")]
    pub at: Duration,
    pub request_id: Option<String>,
}

/// The phases reached so far.
#[derive(Debug, Clone)]
pub struct Timeline {
    start: Instant,
    marks: Vec<Mark>,
}

impl Timeline {
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
            marks: Vec::new(),
        }
    }

    /// Records `phase` now, once: a phase already reached keeps its first time.
    pub fn mark(&mut self, phase: Phase, request_id: Option<&str>) {
        if !self.reached(phase) {
            self.marks.push(Mark {
                phase,
                at: self.start.elapsed(),
                request_id: request_id.map(str::to_owned),
            });
        }
    }

    pub fn reached(&self, phase: Phase) -> bool {
        self.marks.iter().any(|m| m.phase == phase)
    }

    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl fmt::Display for Timeline {
    /// `described +12ms (RequestId A), attach accepted +30ms (B), ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.marks.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} +{}ms", m.phase.name(), m.at.as_millis())?;
            if let Some(id) = &m.request_id {
                write!(f, " ({id})")?;
            }
        }
        Ok(())
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_marked_once_and_printed_in_order() {
        let mut t = Timeline::start();
        t.mark(Phase::Described, Some("R1"));
        t.mark(Phase::AttachAccepted, Some("R2"));
        t.mark(Phase::Described, Some("R3"));
        assert_eq!(t.marks().len(), 2);
        let text = t.to_string();
        assert!(
            text.starts_with("described +")
                && text.contains("(R1)")
                && text.contains("attach accepted"),
            "{text}"
        );
        assert!(!text.contains("R3"));
    }
}
