//! Run-time knobs: timing of the asynchronous state machine, fault injection
//! and metadata-service options. They come from the scenario's `[settings]`
//! table and can be replaced or merge-patched through the control API while
//! the emulator runs, so every field has a default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything a test may change at run time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Delays of the ENI state machine, metadata and hot-plug.
    pub timing: Timing,
    /// Fault injection on the API and metadata sides.
    pub faults: Faults,
    /// Metadata-service behaviour.
    pub metadata: MetadataSettings,
}

/// Delays of the asynchronous state machine (milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// `Attaching` → `InUse`.
    pub attach_delay_ms: u64,
    /// `Detaching` → `Available`.
    pub detach_delay_ms: u64,
    /// `Deleting` → gone.
    pub delete_delay_ms: u64,
    /// `Creating` → `Available` (0: created `Available`).
    pub create_delay_ms: u64,
    /// `InUse` → the per-MAC metadata entries appear; also the delay before
    /// IP changes on an attached ENI show in metadata.
    pub metadata_lag_ms: u64,
    /// Link appearance relative to `InUse`; negative: the NIC appears first.
    pub link_offset_ms: i64,
    /// Link removal relative to `Available` after a detach; negative: earlier
    /// (never before the detach call).
    pub unplug_offset_ms: i64,
    /// Allowed clock difference for signed requests (seconds).
    pub timestamp_tolerance_secs: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            attach_delay_ms: 1500,
            detach_delay_ms: 1000,
            delete_delay_ms: 500,
            create_delay_ms: 0,
            metadata_lag_ms: 300,
            link_offset_ms: 0,
            unplug_offset_ms: 0,
            timestamp_tolerance_secs: 900,
        }
    }
}

/// Fault injection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Account-wide budget of API requests per second; beyond it requests get
    /// `Throttling.User`. `None`: unlimited.
    pub requests_per_second: Option<u32>,
    /// Faults for every action without its own entry in `actions`.
    pub default: ActionFaults,
    /// Per-action faults (key: the action name), replacing `default`.
    pub actions: BTreeMap<String, ActionFaults>,
    /// ENI ids whose attach never completes (stays `Attaching`); `"*"`: all.
    pub stuck_attaching: Vec<String>,
    /// ENI ids whose attach fails (back to `Available`); `"*"`: all.
    pub fail_attach: Vec<String>,
    /// Probability that any attach fails.
    pub fail_attach_rate: f64,
    /// Metadata-service faults.
    pub metadata: MetadataFaults,
}

impl Faults {
    /// The faults that apply to `action`.
    pub fn for_action(&self, action: &str) -> &ActionFaults {
        self.actions.get(action).unwrap_or(&self.default)
    }
}

/// Faults of one API action. Rates are probabilities in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionFaults {
    /// Random `Throttling` (400).
    pub throttling_rate: f64,
    /// Random `InternalError` (500), before the action runs.
    pub internal_error_rate: f64,
    /// Random `ServiceUnavailable` (503), before the action runs.
    pub service_unavailable_rate: f64,
    /// Added latency before the answer (milliseconds).
    pub latency_ms: u64,
    /// Probability that the connection is closed without an answer, before
    /// the action runs.
    pub drop_rate: f64,
    /// Probability that the connection is closed without an answer *after*
    /// the action ran (the client cannot know it succeeded).
    pub drop_after_rate: f64,
}

/// Metadata-service faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataFaults {
    /// Probability of `429 Too Many Requests`.
    pub too_many_requests_rate: f64,
    /// Probability of `500 Internal Server Error`.
    pub server_error_rate: f64,
    /// Probability of `503 Service Unavailable`.
    pub unavailable_rate: f64,
    /// Added latency (milliseconds).
    pub latency_ms: u64,
}

/// Metadata-service behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataSettings {
    /// "Security hardening only": requests without a token get 403.
    pub hardened_only: bool,
    /// Lifetime of RAM-role credentials (seconds).
    pub credential_ttl_secs: u64,
    /// New credentials are issued once the current ones have less than this
    /// left (seconds); the old ones stay valid until they expire.
    pub credential_refresh_secs: u64,
}

impl Default for MetadataSettings {
    fn default() -> Self {
        MetadataSettings {
            hardened_only: false,
            credential_ttl_secs: 21600,
            credential_refresh_secs: 1800,
        }
    }
}

/// Applies an RFC 7396 JSON merge patch to `target`.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match patch {
        serde_json::Value::Object(p) => {
            if !target.is_object() {
                *target = serde_json::Value::Object(serde_json::Map::new());
            }
            if let serde_json::Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_changes_only_named_fields() {
        let mut v = serde_json::to_value(Settings::default()).expect("serializable");
        merge_patch(
            &mut v,
            &serde_json::json!({"timing": {"attach_delay_ms": 5}, "faults": {"requests_per_second": 3}}),
        );
        let s: Settings = serde_json::from_value(v).expect("still valid");
        assert_eq!(s.timing.attach_delay_ms, 5);
        assert_eq!(s.timing.detach_delay_ms, Timing::default().detach_delay_ms);
        assert_eq!(s.faults.requests_per_second, Some(3));
    }
}
