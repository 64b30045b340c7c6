//! The metric families, their names, help texts and histogram buckets, and
//! the registry that holds them.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A label set: (name, value) pairs.
pub(super) type Labels = Vec<(String, String)>;
pub(super) type GaugeFamily = Family<Labels, Gauge>;
type CounterFamily = Family<Labels, Counter>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Phase timings: 1 ms to 5 min.
const PHASE_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];
/// API request times: 1 ms to 30 s (a request's timeout is seconds).
const API_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn phase_histogram() -> Histogram {
    Histogram::new(PHASE_BUCKETS)
}

fn api_histogram() -> Histogram {
    Histogram::new(API_BUCKETS)
}

/// Where an ENI stands, as `eni_agent_eni_state{state}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EniState {
    /// Described, attaching or being configured (also while retrying).
    Attaching,
    /// Every object in place.
    Configured,
    /// Was configured; an apply failed or the NIC vanished, being repaired.
    Degraded,
    /// Being unconfigured and detached.
    Detaching,
    /// Failed for a reason a person must fix.
    Failed,
}

impl EniState {
    pub const ALL: [EniState; 5] = [
        Self::Attaching,
        Self::Configured,
        Self::Degraded,
        Self::Detaching,
        Self::Failed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Attaching => "attaching",
            Self::Configured => "configured",
            Self::Degraded => "degraded",
            Self::Detaching => "detaching",
            Self::Failed => "failed",
        }
    }
}

/// Every family, registered in `registry`.
#[derive(Debug)]
pub(super) struct Families {
    pub registry: Registry,
    pub build_info: GaugeFamily,
    pub eni_info: GaugeFamily,
    pub eni_state: GaugeFamily,
    pub addresses_desired: GaugeFamily,
    pub addresses_configured: GaugeFamily,
    pub phase: HistogramFamily,
    pub api_requests: CounterFamily,
    pub api_duration: HistogramFamily,
    pub api_throttled: CounterFamily,
    pub api_retries: CounterFamily,
    pub metadata_requests: CounterFamily,
    pub drift_repairs: CounterFamily,
    pub tug_of_war: GaugeFamily,
    pub netlink_resyncs: CounterFamily,
    pub last_converge: Family<Labels, Gauge<f64, AtomicU64>>,
    pub handoff_files: GaugeFamily,
    // Failover counters and durations (claims, takeovers) join here once
    // the agent claims ENIs for HA pairs.
}

impl Families {
    pub fn new() -> Self {
        let mut r = Registry::default();
        let f = Self {
            registry: Registry::default(),
            build_info: Family::default(),
            eni_info: Family::default(),
            eni_state: Family::default(),
            addresses_desired: Family::default(),
            addresses_configured: Family::default(),
            phase: Family::new_with_constructor(phase_histogram),
            api_requests: Family::default(),
            api_duration: Family::new_with_constructor(api_histogram),
            api_throttled: Family::default(),
            api_retries: Family::default(),
            metadata_requests: Family::default(),
            drift_repairs: Family::default(),
            tug_of_war: Family::default(),
            netlink_resyncs: Family::default(),
            last_converge: Family::default(),
            handoff_files: Family::default(),
        };
        // Counters are registered without `_total`: the encoder adds it.
        r.register(
            "eni_agent_build_info",
            "The running eni-agent's version (always 1)",
            f.build_info.clone(),
        );
        r.register(
            "eni_agent_eni_info",
            "A configured ENI's MAC, interface name and routing table (always 1)",
            f.eni_info.clone(),
        );
        r.register(
            "eni_agent_eni_state",
            "1 for the state each ENI is in (attaching, configured, degraded, detaching, failed), 0 for the others",
            f.eni_state.clone(),
        );
        r.register(
            "eni_agent_eni_addresses_desired",
            "Addresses the ENI's plan puts on its NIC, by family",
            f.addresses_desired.clone(),
        );
        r.register(
            "eni_agent_eni_addresses_configured",
            "Addresses on the ENI's NIC as of its last successful apply, by family",
            f.addresses_configured.clone(),
        );
        r.register(
            "eni_agent_phase_duration_seconds",
            "Time from the start of an attach to each phase (described, attach_accepted, link_seen, in_use_confirmed, configured)",
            f.phase.clone(),
        );
        r.register(
            "eni_agent_api_requests",
            "ECS API requests (each attempt) by action and answer code (Success, an ECS error code, Transport, Http, InvalidResponse, Credentials, Other)",
            f.api_requests.clone(),
        );
        r.register(
            "eni_agent_api_request_duration_seconds",
            "Time of one ECS API request (one attempt), by action",
            f.api_duration.clone(),
        );
        r.register(
            "eni_agent_api_throttled",
            "ECS API requests refused by throttling, by action",
            f.api_throttled.clone(),
        );
        r.register(
            "eni_agent_api_retries",
            "ECS API requests sent again after a retryable failure, by action",
            f.api_retries.clone(),
        );
        r.register(
            "eni_agent_metadata_requests",
            "Metadata service requests by result (ok, not_found, busy, unreachable, unauthorized, error)",
            f.metadata_requests.clone(),
        );
        r.register(
            "eni_agent_drift_repairs",
            "Repairs of a configured ENI by kind of object put back (address, route, rule, link, sysctl, channels)",
            f.drift_repairs.clone(),
        );
        r.register(
            "eni_agent_tug_of_war",
            "1 while something keeps removing the ENI's configuration (3 or more repairs within a minute)",
            f.tug_of_war.clone(),
        );
        r.register(
            "eni_agent_netlink_resyncs",
            "Full re-reads of the kernel's state by reason (start, overrun, periodic)",
            f.netlink_resyncs.clone(),
        );
        r.register(
            "eni_agent_last_converge_timestamp_seconds",
            "Unix time of the ENI's last successful apply",
            f.last_converge.clone(),
        );
        r.register(
            "eni_agent_handoff_files",
            "Hand-off files installed so that a network manager leaves the agent's NICs alone, by manager",
            f.handoff_files.clone(),
        );
        Self { registry: r, ..f }
    }
}
