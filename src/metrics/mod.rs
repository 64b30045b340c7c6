//! Prometheus metrics: the process-wide registry of every family the agent
//! exports, recorded through plain values (ids, labels, durations) so any
//! layer can record without this module knowing its types. [`expose`] serves
//! them over HTTP (the daemon) and [`textfile`] writes them for
//! node_exporter (the one-shot).
//!
//! Labels come from bounded sets only: configured ENI ids and their MACs,
//! API action names, ECS error codes the client knows (others are `Other`),
//! repair kinds, resync reasons and manager names. Times are in seconds.

mod expose;
mod families;
mod textfile;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use expose::{MetricsServer, ServeError, encode, serve};
pub use families::EniState;
use families::{Families, Labels};
pub use textfile::{TextfileError, write_textfile};

/// How long after a fight's last sign `eni_agent_tug_of_war` stays 1.
const FIGHT_WINDOW: Duration = Duration::from_secs(60);

/// The agent's metrics. One per process: [`global`].
#[derive(Debug)]
pub struct Metrics {
    f: Families,
    /// Per ENI: until when a tug-of-war counts as ongoing.
    fights: Mutex<HashMap<String, Instant>>,
    /// Per ENI: its info labels (to replace them when they change) and its
    /// desired address counts (IPv4, IPv6).
    enis: Mutex<HashMap<String, EniEntry>>,
}

#[derive(Debug, Default, Clone)]
struct EniEntry {
    info: Option<Labels>,
    desired: (i64, i64),
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// The version in `eni_agent_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Metrics {
    /// A registry with every family (and `eni_agent_build_info`) registered.
    pub fn new() -> Self {
        let f = Families::new();
        f.build_info
            .get_or_create(&l(&[("version", VERSION)]))
            .set(1);
        Self {
            f,
            fights: Mutex::default(),
            enis: Mutex::default(),
        }
    }

    /// The ENI is in `state` now (the other states of it go to 0).
    pub fn eni_state(&self, eni: &str, state: EniState) {
        for s in EniState::ALL {
            self.f
                .eni_state
                .get_or_create(&l(&[("eni", eni), ("state", s.label())]))
                .set(i64::from(s == state));
        }
    }

    /// The ENI's current state, if it has one.
    pub fn state_of(&self, eni: &str) -> Option<EniState> {
        EniState::ALL.into_iter().find(|s| {
            self.f
                .eni_state
                .get(&l(&[("eni", eni), ("state", s.label())]))
                .is_some_and(|g| g.get() == 1)
        })
    }

    /// The ENI is configured as `ifname` with routing table `table`.
    pub fn eni_configured(&self, eni: &str, mac: &str, ifname: &str, table: u32) {
        let info = l(&[
            ("eni", eni),
            ("mac", mac),
            ("ifname", ifname),
            ("table", &table.to_string()),
        ]);
        if let Ok(mut enis) = self.enis.lock() {
            let entry = enis.entry(eni.to_owned()).or_default();
            if let Some(old) = entry.info.replace(info.clone()) {
                if old != info {
                    self.f.eni_info.remove(&old);
                }
            }
        }
        self.f.eni_info.get_or_create(&info).set(1);
        self.eni_state(eni, EniState::Configured);
    }

    /// The addresses the ENI's plan wants on its NIC.
    pub fn eni_desired_addresses(&self, eni: &str, addrs: impl IntoIterator<Item = IpAddr>) {
        let (v4, v6) = count_families(addrs);
        if let Ok(mut enis) = self.enis.lock() {
            enis.entry(eni.to_owned()).or_default().desired = (v4, v6);
        }
        self.set_family_pair(&self.f.addresses_desired, eni, (v4, v6));
    }

    /// An apply of the ENI's plan succeeded: every desired address is in
    /// place, and this is its last convergence.
    pub fn eni_converged(&self, eni: &str) {
        let desired = self
            .enis
            .lock()
            .ok()
            .and_then(|e| e.get(eni).map(|e| e.desired))
            .unwrap_or_default();
        self.set_family_pair(&self.f.addresses_configured, eni, desired);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.f
            .last_converge
            .get_or_create(&l(&[("eni", eni)]))
            .set(now);
        if self.state_of(eni) == Some(EniState::Degraded) {
            self.eni_state(eni, EniState::Configured);
        }
    }

    /// An apply failed (retried) or the NIC vanished: a configured ENI is
    /// degraded until the next successful apply; `nic_gone` also zeroes the
    /// configured addresses.
    pub fn eni_degraded(&self, eni: &str, nic_gone: bool) {
        if nic_gone {
            self.set_family_pair(&self.f.addresses_configured, eni, (0, 0));
        }
        if self.state_of(eni) == Some(EniState::Configured) {
            self.eni_state(eni, EniState::Degraded);
        }
    }

    /// The ENI is no longer managed: every series of it goes.
    pub fn eni_forget(&self, eni: &str) {
        let entry = self
            .enis
            .lock()
            .ok()
            .and_then(|mut e| e.remove(eni))
            .unwrap_or_default();
        if let Some(info) = entry.info {
            self.f.eni_info.remove(&info);
        }
        for s in EniState::ALL {
            self.f
                .eni_state
                .remove(&l(&[("eni", eni), ("state", s.label())]));
        }
        for family in ["ipv4", "ipv6"] {
            let key = l(&[("eni", eni), ("family", family)]);
            self.f.addresses_desired.remove(&key);
            self.f.addresses_configured.remove(&key);
        }
        let key = l(&[("eni", eni)]);
        self.f.tug_of_war.remove(&key);
        self.f.last_converge.remove(&key);
        if let Ok(mut fights) = self.fights.lock() {
            fights.remove(eni);
        }
    }

    /// An attach reached `phase` (a snake_case name) `at` after its start.
    pub fn phase_reached(&self, phase: &str, at: Duration) {
        self.f
            .phase
            .get_or_create(&l(&[("phase", phase)]))
            .observe(at.as_secs_f64());
    }

    /// One ECS API request (one attempt) of `action` answered `code`
    /// (`Success`, an ECS error code, or a transport failure's class).
    pub fn api_request(&self, action: &str, code: &str, took: Duration, throttled: bool) {
        self.f
            .api_requests
            .get_or_create(&l(&[("action", action), ("code", code)]))
            .inc();
        let a = l(&[("action", action)]);
        self.f
            .api_duration
            .get_or_create(&a)
            .observe(took.as_secs_f64());
        if throttled {
            self.f.api_throttled.get_or_create(&a).inc();
        }
    }

    /// The client tries `action` again after a retryable failure.
    pub fn api_retry(&self, action: &str) {
        self.f
            .api_retries
            .get_or_create(&l(&[("action", action)]))
            .inc();
    }

    /// One metadata service request ended with `result` (`ok`, `not_found`,
    /// `busy`, `unreachable`, `unauthorized`, `error`).
    pub fn metadata_request(&self, result: &str) {
        self.f
            .metadata_requests
            .get_or_create(&l(&[("result", result)]))
            .inc();
    }

    /// The converger put the ENI's objects back: `ops` are the operations
    /// it sent (printed as `ip`/`ethtool`/`sysctl` commands); `fighting`
    /// when the repairs come so often that something fights the agent.
    pub fn drift_repaired(&self, eni: &str, ops: &[String], fighting: bool) {
        let mut kinds: Vec<&str> = ops.iter().map(|op| repair_kind(op)).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for kind in kinds {
            self.f
                .drift_repairs
                .get_or_create(&l(&[("eni", eni), ("kind", kind)]))
                .inc();
        }
        if let Ok(mut fights) = self.fights.lock() {
            if fighting {
                fights.insert(eni.to_owned(), Instant::now() + FIGHT_WINDOW);
            } else {
                fights.entry(eni.to_owned()).or_insert_with(Instant::now);
            }
        }
        self.refresh_fights();
    }

    /// The converger re-read everything (`start`, `overrun`, `periodic`).
    pub fn netlink_resync(&self, reason: &str) {
        self.f
            .netlink_resyncs
            .get_or_create(&l(&[("reason", reason)]))
            .inc();
    }

    /// `count` hand-off files of `manager` are installed.
    pub fn handoff_files(&self, manager: &str, count: usize) {
        self.f
            .handoff_files
            .get_or_create(&l(&[("manager", manager)]))
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Sets `eni_agent_tug_of_war` from the fights' windows, as of now.
    fn refresh_fights(&self) {
        let now = Instant::now();
        if let Ok(fights) = self.fights.lock() {
            for (eni, until) in fights.iter() {
                self.f
                    .tug_of_war
                    .get_or_create(&l(&[("eni", eni)]))
                    .set(i64::from(now < *until));
            }
        }
    }

    fn set_family_pair(&self, fam: &families::GaugeFamily, eni: &str, (v4, v6): (i64, i64)) {
        fam.get_or_create(&l(&[("eni", eni), ("family", "ipv4")]))
            .set(v4);
        fam.get_or_create(&l(&[("eni", eni), ("family", "ipv6")]))
            .set(v6);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn count_families(addrs: impl IntoIterator<Item = IpAddr>) -> (i64, i64) {
    addrs.into_iter().fold((0, 0), |(v4, v6), a| match a {
        IpAddr::V4(_) => (v4 + 1, v6),
        IpAddr::V6(_) => (v4, v6 + 1),
    })
}

/// Writes the node_exporter textfile at the end of a one-shot when `path`
/// is set; a failure is a warning (the one-shot's own outcome stands).
pub fn after_one_shot(path: Option<&std::path::Path>) {
    if let Some(path) = path {
        if let Err(e) = write_textfile(global(), path) {
            tracing::warn!(error = %e, "the metrics textfile was not written");
        }
    }
}

/// The kind of a repair operation, from the command it prints as.
pub fn repair_kind(op: &str) -> &'static str {
    let mut words = op.split_whitespace();
    let first = words.next().unwrap_or("");
    // `ip -6 rule ...`: skip options.
    let object = words.find(|w| !w.starts_with('-')).unwrap_or("");
    match (first, object) {
        ("ethtool", _) => "channels",
        ("sysctl", _) => "sysctl",
        ("ip", "address" | "addr" | "a") => "address",
        ("ip", "route" | "r") => "route",
        ("ip", "rule") => "rule",
        ("ip", "link" | "l") => "link",
        _ => "other",
    }
}

#[cfg(test)]
mod tests;
