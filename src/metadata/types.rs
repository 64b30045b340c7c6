//! What the agent reads from the metadata service, typed.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::ids::{InstanceId, RegionId, ZoneId};
use crate::mac::MacAddr;

/// Who and where this instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIdentity {
    pub instance_id: InstanceId,
    pub region_id: RegionId,
    pub zone_id: ZoneId,
}

/// The per-MAC facts under `network/interfaces/macs/<mac>/`. Every key is
/// optional: the entries of a freshly attached ENI appear with a lag, and
/// `ipv6s` is absent (404) without IPv6.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceFacts {
    pub network_interface_id: Option<String>,
    pub vswitch_id: Option<String>,
    pub primary_ip_address: Option<Ipv4Addr>,
    pub private_ipv4s: Vec<Ipv4Addr>,
    /// `netmask` as a prefix length.
    pub netmask_len: Option<u8>,
    pub gateway: Option<Ipv4Addr>,
    pub vswitch_cidr_block: Option<Ipv4Net>,
    pub vpc_cidr_block: Option<Ipv4Net>,
    pub ipv6s: Vec<Ipv6Addr>,
    pub ipv6_gateway: Option<Ipv6Addr>,
    pub vswitch_ipv6_cidr_block: Option<Ipv6Net>,
    pub ipv4_prefixes: Vec<Ipv4Net>,
    pub ipv6_prefixes: Vec<Ipv6Net>,
    pub mac: Option<MacAddr>,
}
