//! Per-ENI knobs from the configuration file.
//!
//! `EniOptions` derives `Deserialize` with `deny_unknown_fields` so the config
//! file can embed it (for example as `[eni.options]`) and a typo is an error.

use serde::{Deserialize, Serialize};

/// Per-ENI configuration; every field has a safe default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EniOptions {
    /// Routing table number to use instead of the allocated one.
    pub table: Option<u32>,
    /// MTU to set on the NIC; `None` leaves it unchanged.
    pub mtu: Option<u32>,
    /// Channel count to set instead of the API's `QueueNumber`.
    pub queues: Option<u32>,
    /// Also add a default route through this NIC to the main table, with
    /// `default_route_metric` (keep it worse than the primary NIC's).
    pub default_route: bool,
    /// Metric of that main-table default route; default `2000 + table`
    /// (unique per ENI).
    pub default_route_metric: Option<u32>,
    /// Which sysctls the agent manages on this NIC.
    pub sysctl: SysctlSwitches,
}

/// Each switch makes the agent set the recommended value on the NIC.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SysctlSwitches {
    /// `net.ipv4.conf.<nic>.rp_filter = 2` (loose): replies leave via the ENI.
    pub rp_filter: bool,
    /// `arp_ignore = 1` and `arp_announce = 2`: no ARP flux between NICs in one vSwitch.
    pub arp: bool,
    /// `net.ipv6.conf.<nic>.accept_ra = 0`: addresses and routes are static.
    pub accept_ra: bool,
}

impl Default for SysctlSwitches {
    fn default() -> Self {
        Self {
            rp_filter: true,
            arp: true,
            accept_ra: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_defaults_and_unknown_fields() {
        let o: EniOptions = toml::from_str("").expect("empty is valid");
        assert_eq!(o, EniOptions::default());
        let o: EniOptions =
            toml::from_str("mtu = 9000\ndefault_route = true\n[sysctl]\narp = false\n")
                .expect("valid");
        assert_eq!(o.mtu, Some(9000));
        assert!(o.default_route && !o.sysctl.arp && o.sysctl.rp_filter);
        let err = toml::from_str::<EniOptions>("mtuu = 1").expect_err("typo");
        assert!(err.to_string().contains("mtuu"), "{err}");
    }
}
