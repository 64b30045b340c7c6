//! The planner's inputs about one ENI, in plain types.
//!
//! The agent fills these from the ECS API (`DescribeNetworkInterfaceAttribute`)
//! and the instance metadata (`macs/<mac>/...`); the planner never sees cloud
//! client types.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::net::{IpNet, MacAddr};

/// What the cloud says about the ENI itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniFacts {
    /// The ENI id, `eni-...`; the routing table is allocated per id.
    pub eni_id: String,
    /// `MacAddress`.
    pub mac: MacAddr,
    /// `PrivateIpAddress`: the primary private IPv4.
    pub primary_ipv4: Ipv4Addr,
    /// The other `PrivateIpSets` entries.
    pub secondary_ipv4: Vec<Ipv4Addr>,
    /// `Ipv6Sets`.
    pub ipv6: Vec<Ipv6Addr>,
    /// `Ipv4PrefixSets`: delegated IPv4 prefixes (routed, not assigned).
    pub ipv4_prefixes: Vec<IpNet>,
    /// `Ipv6PrefixSets`: delegated IPv6 prefixes (routed, not assigned).
    pub ipv6_prefixes: Vec<IpNet>,
    /// `QueueNumber`, if the API reported one.
    pub queue_number: Option<u32>,
    /// `NetworkCardIndex`, if the API reported one.
    pub network_card_index: Option<u32>,
    /// `Type`.
    pub eni_type: EniType,
}

/// The ENI's `Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EniType {
    /// `Primary`: the instance's own NIC, configured by the OS, never by us.
    Primary,
    /// `Secondary`: an elastic NIC we attach and configure.
    Secondary,
    /// Anything else the API may report (`Trunk`, ...), kept verbatim.
    Other(String),
}

/// What the metadata service says about the ENI's vSwitch (per MAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetFacts {
    /// `vswitch-cidr-block`, if known.
    pub vswitch_cidr: Option<IpNet>,
    /// `netmask`, used when the CIDR is not known.
    pub netmask: Option<Ipv4Addr>,
    /// `gateway`: the vSwitch IPv4 gateway.
    pub gateway: Ipv4Addr,
    /// `ipv6-gateway`, if the vSwitch has IPv6.
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// `vswitch-ipv6-cidr-block`, if the vSwitch has IPv6.
    pub vswitch_ipv6_cidr: Option<IpNet>,
    /// `vpc-cidr-block`, if known: the vSwitch CIDR must lie inside it.
    pub vpc_cidr: Option<IpNet>,
}

impl EniFacts {
    /// Every address assigned to the ENI (primary first), with the field it came from.
    pub fn addresses(&self) -> Vec<(String, IpAddr)> {
        let mut out = vec![("eni.primary_ipv4".to_owned(), IpAddr::V4(self.primary_ipv4))];
        out.extend(
            self.secondary_ipv4
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("eni.secondary_ipv4[{i}]"), IpAddr::V4(*a))),
        );
        out.extend(
            self.ipv6
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("eni.ipv6[{i}]"), IpAddr::V6(*a))),
        );
        out
    }
}
