//! Planner errors: every problem names the input field it was found in.

use std::fmt;
use std::net::IpAddr;

use super::net::{IpNet, MacAddr};

/// The facts or options for an ENI cannot be turned into a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// One or more fields are invalid; nothing has been applied.
    #[error("invalid input for {eni_id}: {}", FieldErrors(.errors))]
    Invalid {
        /// The ENI id.
        eni_id: String,
        /// Every problem found, in field order.
        errors: Vec<FieldError>,
    },
    /// The ENI is the instance's primary NIC, which the OS configures.
    #[error(
        "{eni_id} is the instance's primary ENI (eni.eni_type = Primary); eni-agent only \
         configures secondary ENIs and adds no rules for the primary NIC"
    )]
    PrimaryEni {
        /// The ENI id.
        eni_id: String,
    },
}

impl PlanError {
    /// The field errors, empty for the other variants.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Invalid { errors, .. } => errors,
            Self::PrimaryEni { .. } => &[],
        }
    }
}

struct FieldErrors<'a>(&'a [FieldError]);

impl fmt::Display for FieldErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The field, like `eni.secondary_ipv4[2]` or `subnet.gateway`.
    pub field: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// An ENI address is not inside the vSwitch CIDR.
    #[error("{addr} is outside the vSwitch CIDR {cidr}")]
    OutsideSubnet {
        /// The address or prefix.
        addr: String,
        /// The vSwitch CIDR.
        cidr: IpNet,
    },
    /// A gateway is not inside the vSwitch CIDR.
    #[error("gateway {gateway} is outside the vSwitch CIDR {cidr}")]
    GatewayOutsideSubnet {
        /// The gateway.
        gateway: IpAddr,
        /// The vSwitch CIDR.
        cidr: IpNet,
    },
    /// A prefix length is not in the allowed range.
    #[error("{value}: prefix length {len} is out of range (allowed {min}..={max})")]
    PrefixLength {
        /// The prefix or netmask as given.
        value: String,
        /// The length found.
        len: u8,
        /// Smallest allowed.
        min: u8,
        /// Largest allowed.
        max: u8,
    },
    /// The same address appears twice.
    #[error("{addr} duplicates {other_field}")]
    Duplicate {
        /// The address.
        addr: String,
        /// The field it was first seen in.
        other_field: String,
    },
    /// A queue count of 0 or above 2048.
    #[error("queue count {0} is out of range (allowed 1..=2048)")]
    QueueNumber(u32),
    /// A multicast or all-zero MAC.
    #[error("{mac} is a {kind} MAC address; an ENI has a unicast one")]
    BadMac {
        /// The MAC.
        mac: MacAddr,
        /// `multicast` or `zero`.
        kind: &'static str,
    },
    /// IPv6 addresses or prefixes need an IPv6 gateway for their default route.
    #[error(
        "missing: the ENI has IPv6 addresses or prefixes, which need a default route via the IPv6 gateway"
    )]
    MissingIpv6Gateway,
    /// IPv6 addresses need the vSwitch IPv6 CIDR for their subnet route.
    #[error(
        "missing: the ENI has IPv6 addresses, which need the vSwitch IPv6 CIDR for their subnet route"
    )]
    MissingIpv6Cidr,
    /// Neither the vSwitch CIDR nor a netmask is known.
    #[error("missing: neither subnet.vswitch_cidr nor subnet.netmask is set")]
    MissingSubnet,
    /// A netmask whose one bits are not contiguous.
    #[error("netmask {0} is not contiguous")]
    BadNetmask(std::net::Ipv4Addr),
    /// An address or prefix of the wrong family.
    #[error("{0} is not {1}")]
    WrongFamily(String, &'static str),
    /// An MTU the kernel would refuse.
    #[error("MTU {mtu} is out of range (allowed {min}..=65535)")]
    Mtu {
        /// The MTU.
        mtu: u32,
        /// Smallest allowed (1280 with IPv6, else 68).
        min: u32,
    },
    /// An address or prefix that is not a usable unicast one.
    #[error("{value} is a {kind} address; an ENI, its prefixes and its gateway are unicast")]
    NotUnicast {
        /// The address or prefix.
        value: String,
        /// `loopback`, `multicast`, `link-local`, ...
        kind: &'static str,
    },
    /// The vSwitch CIDR is not inside the VPC CIDR.
    #[error("{cidr} is not inside the VPC CIDR {vpc} (subnet.vpc_cidr)")]
    OutsideVpc {
        /// The vSwitch CIDR.
        cidr: IpNet,
        /// The VPC CIDR.
        vpc: IpNet,
    },
    /// The subnet's network or broadcast address used as a host address.
    #[error("{addr} is the network or broadcast address of the vSwitch CIDR {cidr}")]
    SubnetEdge {
        /// The address.
        addr: IpAddr,
        /// The vSwitch CIDR.
        cidr: IpNet,
    },
    /// A reserved routing table number.
    #[error("table {0} is reserved (0, 253, 254 and 255 are unspec, default, main and local)")]
    ReservedTable(u32),
}
