//! The planner's output: the kernel state one ENI's NIC should have.
//!
//! Everything here is data. The NIC is named by MAC only: its ifindex and name
//! are found later by the watcher, so routes carry no interface.

use std::net::IpAddr;

use super::net::{IpNet, MacAddr};

/// The rtnetlink protocol number stamped on every route and rule eni-agent
/// creates (`proto 237` in `ip route`/`ip rule` output).
///
/// Cleanup and drift repair only ever touch routes and rules with this
/// protocol. 237 is not listed in iproute2's `rt_protos`, in the kernel's
/// `RTPROT_*` constants, or in the range FRR uses (186–198). To give it a name
/// in `ip` output: `echo "237 eni-agent" > /etc/iproute2/rt_protos.d/eni-agent.conf`.
pub const ROUTE_PROTOCOL: u8 = 237;

/// Priority of the `from <ENI address> lookup <table> suppress_prefixlength 0`
/// rules: the vSwitch subnet (and any other non-default route of the ENI's
/// table) wins over everything in main.
pub const RULE_PRIORITY_SUBNET: u32 = 20100;
/// Priority of the single `lookup main suppress_prefixlength 0` rule per
/// family: specific routes in main (connected networks, VPNs, container
/// bridges) win over the ENI's default route.
pub const RULE_PRIORITY_MAIN: u32 = 20200;
/// Priority of the `from <ENI address> lookup <table>` rules: everything else
/// from an ENI address leaves through the ENI's gateway.
pub const RULE_PRIORITY_DEFAULT: u32 = 20300;

/// The main routing table.
pub const TABLE_MAIN: u32 = 254;

/// The metric the kernel gives IPv6 routes added without one.
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

/// The desired state of one ENI's NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The ENI id.
    pub eni_id: String,
    /// The MAC the NIC is found by.
    pub mac: MacAddr,
    /// `NetworkCardIndex`, for information.
    pub network_card_index: Option<u32>,
    /// The ENI's routing table.
    pub table: u32,
    /// MTU to set; `None` leaves it as it is.
    pub mtu: Option<u32>,
    /// Sysctls on the NIC, applied before the link goes up.
    pub sysctls: Vec<SysctlSpec>,
    /// Channel count (`ethtool -L`), clamped to the driver's maximum.
    pub queues: Option<u32>,
    /// Addresses, all with `noprefixroute` (and `nodad` for IPv6).
    pub addresses: Vec<AddressSpec>,
    /// Routes, in the order they must be added (a gateway after its subnet).
    pub routes: Vec<RouteSpec>,
    /// Rules, in the order they must be added.
    pub rules: Vec<RuleSpec>,
}

/// An address on the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressSpec {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
}

/// Scope of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `scope global`: reached through a gateway.
    Universe,
    /// `scope link`: directly connected.
    Link,
}

/// A route through the NIC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteSpec {
    /// Routing table.
    pub table: u32,
    /// Destination prefix (`0.0.0.0/0` is the default route).
    pub dst: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Preferred source address.
    pub pref_src: Option<IpAddr>,
    /// Metric (`RTA_PRIORITY`).
    pub metric: u32,
    /// Scope.
    pub scope: Scope,
    /// `onlink`: the gateway is on the link even without a route to it.
    pub onlink: bool,
}

/// A policy routing rule (always `action to_tbl`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleSpec {
    /// Rule priority (`pref`).
    pub priority: u32,
    /// True for an IPv6 rule.
    pub ipv6: bool,
    /// Source selector; `None` matches every source.
    pub src: Option<IpNet>,
    /// Table to look up.
    pub table: u32,
    /// `suppress_prefixlength`, if set.
    pub suppress_prefixlen: Option<u32>,
}

/// A per-interface sysctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SysctlSpec {
    /// Which one.
    pub key: SysctlKey,
    /// Its value.
    pub value: u32,
}

/// The per-interface sysctls the agent manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SysctlKey {
    /// `net.ipv4.conf.<nic>.rp_filter`
    RpFilter,
    /// `net.ipv4.conf.<nic>.arp_ignore`
    ArpIgnore,
    /// `net.ipv4.conf.<nic>.arp_announce`
    ArpAnnounce,
    /// `net.ipv6.conf.<nic>.accept_ra`
    AcceptRa,
    /// `net.ipv6.conf.<nic>.disable_ipv6` (set to 0 when the ENI has IPv6
    /// addresses: a host-wide `default.disable_ipv6 = 1` would refuse them).
    DisableIpv6,
}

impl SysctlKey {
    /// The dotted name for interface `ifname`, like `net.ipv4.conf.eth1.rp_filter`.
    pub fn name(&self, ifname: &str) -> String {
        let (family, leaf) = match self {
            Self::RpFilter => ("ipv4", "rp_filter"),
            Self::ArpIgnore => ("ipv4", "arp_ignore"),
            Self::ArpAnnounce => ("ipv4", "arp_announce"),
            Self::AcceptRa => ("ipv6", "accept_ra"),
            Self::DisableIpv6 => ("ipv6", "disable_ipv6"),
        };
        format!("net.{family}.conf.{ifname}.{leaf}")
    }

    /// The path below `/proc/sys`, like `net/ipv4/conf/eth1/rp_filter`.
    ///
    /// A dot in the interface name (`eth1.100`) becomes a slash in the
    /// dotted name but stays a dot in the path, as `sysctl(8)` does.
    pub fn path(&self, ifname: &str) -> String {
        let dotted = self.name("IFNAME");
        dotted.replace('.', "/").replace("IFNAME", ifname)
    }
}

impl Plan {
    /// Whether the plan assigns any IPv6 address.
    pub fn uses_ipv6(&self) -> bool {
        self.addresses.iter().any(|a| a.addr.is_ipv6())
    }
}
