//! The address family of the secondary-address actions: what differs between
//! the IPv4 pair (AssignPrivateIpAddresses, UnassignPrivateIpAddresses) and
//! the IPv6 pair (AssignIpv6Addresses, UnassignIpv6Addresses), so that
//! `ip_ops` holds one generic path for both.

use std::fmt::Display;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde_json::{Value, json};

use super::ApiError;
use super::lifecycle::{explicit_ipv6, explicit_v4, ipv6_not_enabled};
use crate::model::net::{Net4, Net6};
use crate::model::{Eni, State, VSwitch};

/// One address family's parameter names, limits, storage and allocation.
pub trait Family {
    type Addr: Copy + PartialEq + Display + FromStr;
    type Net: Copy + PartialEq + Display;
    /// "IPv4" or "IPv6", as the messages spell it.
    const NAME: &'static str;
    /// The code of an Assign that would pass the ENI's limit.
    const COUNT_EXCEEDED: &'static str;
    /// The explicit-address list parameter (`{ADDR}.N`).
    const ADDR: &'static str;
    /// The address-count parameter.
    const COUNT: &'static str;
    /// The prefix list parameter (`{PREFIX}.N`, `{PREFIX}Count`).
    const PREFIX: &'static str;
    /// What an explicit prefix must be, for the InvalidParameter message.
    const PREFIX_SHAPE: &'static str;
    const MAX_ADDRESSES: u32;
    const MAX_PREFIXES: u32;
    /// Addresses of this family the ENI always holds (the IPv4 primary).
    const FIXED: usize;

    /// The ENI's limit for this family out of the `(ipv4, ipv6)` pair.
    fn limit(limits: (usize, usize)) -> usize;
    /// Refuses a vSwitch that cannot give out this family.
    fn vswitch_ready(vsw: &VSwitch) -> Result<(), ApiError>;
    fn explicit_addr(
        st: &State,
        vsw: &VSwitch,
        s: &str,
        pending: &[Self::Addr],
    ) -> Result<Self::Addr, ApiError>;
    fn alloc_addr(st: &State, vsw: &VSwitch, pending: &[Self::Addr]) -> Option<Self::Addr>;
    fn parse_net(s: &str) -> Option<Self::Net>;
    /// Whether `net` is a prefix the vSwitch may give out.
    fn net_fits(vsw: &VSwitch, net: &Self::Net) -> bool;
    fn net_used(st: &State, vsw: &VSwitch, net: &Self::Net) -> bool;
    fn alloc_net(st: &State, vsw: &VSwitch, pending: &[Self::Net]) -> Option<Self::Net>;
    fn net_contains(net: &Self::Net, ip: Self::Addr) -> bool;
    /// The ENI's secondary addresses and prefixes of this family.
    fn held(eni: &Eni) -> (&[Self::Addr], &[Self::Net]);
    fn held_mut(eni: &mut Eni) -> (&mut Vec<Self::Addr>, &mut Vec<Self::Net>);
    /// Refuses an address that may never be unassigned (the IPv4 primary).
    fn removable(eni: &Eni, ip: Self::Addr) -> Result<(), ApiError>;
    /// The Assign answer, as the real API shapes it for this family.
    fn assigned(eni_id: &str, addrs: Vec<String>, nets: Vec<String>) -> Value;
}

/// IPv4: secondary private IPs and /28 prefixes.
pub struct V4;

/// IPv6: addresses and prefixes of the vSwitch's IPv6 CIDR.
pub struct V6;

impl Family for V4 {
    type Addr = Ipv4Addr;
    type Net = Net4;
    const NAME: &'static str = "IPv4";
    const COUNT_EXCEEDED: &'static str = "InvalidOperation.Ipv4CountExceeded";
    const ADDR: &'static str = "PrivateIpAddress";
    const COUNT: &'static str = "SecondaryPrivateIpAddressCount";
    const PREFIX: &'static str = "Ipv4Prefix";
    const PREFIX_SHAPE: &'static str = "a /28 inside the vSwitch";
    const MAX_ADDRESSES: u32 = 50;
    const MAX_PREFIXES: u32 = 10;
    const FIXED: usize = 1;

    fn limit((v4, _): (usize, usize)) -> usize {
        v4
    }
    fn vswitch_ready(_: &VSwitch) -> Result<(), ApiError> {
        Ok(())
    }
    fn explicit_addr(
        st: &State,
        vsw: &VSwitch,
        s: &str,
        pending: &[Ipv4Addr],
    ) -> Result<Ipv4Addr, ApiError> {
        explicit_v4(st, &vsw.cidr, &vsw.id, Self::ADDR, s, pending)
    }
    fn alloc_addr(st: &State, vsw: &VSwitch, pending: &[Ipv4Addr]) -> Option<Ipv4Addr> {
        st.alloc_ipv4(vsw, pending)
    }
    fn parse_net(s: &str) -> Option<Net4> {
        Net4::parse(s)
    }
    fn net_fits(vsw: &VSwitch, net: &Net4) -> bool {
        net.len == 28 && vsw.cidr.contains(net.addr)
    }
    fn net_used(st: &State, vsw: &VSwitch, net: &Net4) -> bool {
        (net.first()..=net.last()).any(|v| st.ipv4_used(&vsw.id, Ipv4Addr::from(v)))
    }
    fn alloc_net(st: &State, vsw: &VSwitch, pending: &[Net4]) -> Option<Net4> {
        st.alloc_ipv4_prefix(vsw, pending)
    }
    fn net_contains(net: &Net4, ip: Ipv4Addr) -> bool {
        net.contains(ip)
    }
    fn held(eni: &Eni) -> (&[Ipv4Addr], &[Net4]) {
        (&eni.secondary_ips, &eni.ipv4_prefixes)
    }
    fn held_mut(eni: &mut Eni) -> (&mut Vec<Ipv4Addr>, &mut Vec<Net4>) {
        (&mut eni.secondary_ips, &mut eni.ipv4_prefixes)
    }
    fn removable(eni: &Eni, ip: Ipv4Addr) -> Result<(), ApiError> {
        if ip == eni.primary_ip {
            return Err(ApiError::invalid(
                Self::ADDR,
                "the primary private IP cannot be unassigned",
            ));
        }
        Ok(())
    }
    fn assigned(eni_id: &str, addrs: Vec<String>, nets: Vec<String>) -> Value {
        json!({
            "AssignedPrivateIpAddressesSet": {
                "NetworkInterfaceId": eni_id,
                "PrivateIpSet": {"PrivateIpAddress": addrs},
                "Ipv4PrefixSet": {"Ipv4Prefixes": nets},
            }
        })
    }
}

impl Family for V6 {
    type Addr = Ipv6Addr;
    type Net = Net6;
    const NAME: &'static str = "IPv6";
    const COUNT_EXCEEDED: &'static str = "InvalidOperation.Ipv6CountExceeded";
    const ADDR: &'static str = "Ipv6Address";
    const COUNT: &'static str = "Ipv6AddressCount";
    const PREFIX: &'static str = "Ipv6Prefix";
    const PREFIX_SHAPE: &'static str = "a prefix inside the vSwitch";
    const MAX_ADDRESSES: u32 = 10;
    const MAX_PREFIXES: u32 = 10;
    const FIXED: usize = 0;

    fn limit((_, v6): (usize, usize)) -> usize {
        v6
    }
    fn vswitch_ready(vsw: &VSwitch) -> Result<(), ApiError> {
        match vsw.ipv6_cidr {
            Some(_) => Ok(()),
            None => Err(ipv6_not_enabled(&vsw.id)),
        }
    }
    fn explicit_addr(
        st: &State,
        vsw: &VSwitch,
        s: &str,
        pending: &[Ipv6Addr],
    ) -> Result<Ipv6Addr, ApiError> {
        explicit_ipv6(st, vsw, s, pending)
    }
    fn alloc_addr(st: &State, vsw: &VSwitch, pending: &[Ipv6Addr]) -> Option<Ipv6Addr> {
        st.alloc_ipv6(vsw, pending)
    }
    fn parse_net(s: &str) -> Option<Net6> {
        Net6::parse(s)
    }
    fn net_fits(vsw: &VSwitch, net: &Net6) -> bool {
        vsw.ipv6_cidr.is_some_and(|c| c.contains(net.addr))
    }
    fn net_used(st: &State, vsw: &VSwitch, net: &Net6) -> bool {
        st.ipv6_prefix_used(&vsw.id, net)
    }
    fn alloc_net(st: &State, vsw: &VSwitch, pending: &[Net6]) -> Option<Net6> {
        st.alloc_ipv6_prefix(vsw, pending)
    }
    fn net_contains(net: &Net6, ip: Ipv6Addr) -> bool {
        net.contains(ip)
    }
    fn held(eni: &Eni) -> (&[Ipv6Addr], &[Net6]) {
        (&eni.ipv6s, &eni.ipv6_prefixes)
    }
    fn held_mut(eni: &mut Eni) -> (&mut Vec<Ipv6Addr>, &mut Vec<Net6>) {
        (&mut eni.ipv6s, &mut eni.ipv6_prefixes)
    }
    fn removable(_: &Eni, _: Ipv6Addr) -> Result<(), ApiError> {
        Ok(())
    }
    fn assigned(eni_id: &str, addrs: Vec<String>, nets: Vec<String>) -> Value {
        json!({
            "NetworkInterfaceId": eni_id,
            "Ipv6Sets": {"Ipv6Address": addrs},
            "Ipv6PrefixSets": {"Ipv6Prefix": nets},
        })
    }
}
