//! Secondary addresses: AssignPrivateIpAddresses, UnassignPrivateIpAddresses,
//! AssignIpv6Addresses and UnassignIpv6Addresses. Changes on an attached ENI
//! reach the metadata service after the configured lag.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use serde_json::{Value, json};

use super::lifecycle::{explicit_ipv6, explicit_v4, ipv6_not_enabled};
use super::{ApiError, Ctx, find_eni};
use crate::engine::Emulator;
use crate::model::net::{Net4, Net6};
use crate::model::{Eni, EniStatus, State};

/// Addresses an `Available` ENI may hold beyond the primary.
const AVAILABLE_LIMIT: usize = 10;

fn conflict_check(eni: &Eni) -> Result<(), ApiError> {
    match eni.status {
        EniStatus::Available | EniStatus::InUse => Ok(()),
        other => Err(ApiError::new(
            403,
            "Operation.Conflict",
            format!("ecs task is conflicted. (the ENI is {})", other.as_str()),
        )),
    }
}

/// Per-ENI limits `(ipv4, ipv6)` for the ENI in its current state.
fn limits(st: &State, eni: &Eni) -> (usize, usize) {
    let ty = eni
        .instance_id
        .as_ref()
        .and_then(|i| st.instances.get(i))
        .and_then(|i| st.instance_type_of(i));
    match ty {
        Some(t) if eni.status == EniStatus::InUse => {
            (t.ipv4_per_eni as usize, t.ipv6_per_eni as usize)
        }
        _ => (AVAILABLE_LIMIT + 1, AVAILABLE_LIMIT),
    }
}

fn after_change(emu: &Arc<Emulator>, eni_id: &str) {
    emu.refresh_metadata(eni_id);
}

/// The parameters both Assign actions share: explicit addresses or a count
/// (not both), and explicit prefixes or a count; at least one of them.
struct AssignRequest<'a> {
    eni_id: &'a str,
    addresses: Vec<String>,
    address_count: u32,
    prefixes: Vec<String>,
    prefix_count: u32,
}

impl<'a> AssignRequest<'a> {
    /// Reads `{addr}.N`, `{count}`, `{prefix}.N` and `{prefix}Count`.
    fn parse(
        p: &'a super::params::Params,
        (addr, count, prefix): (&str, &str, &str),
        max_addresses: u32,
        max_prefixes: u32,
    ) -> Result<Self, ApiError> {
        let eni_id = p.require("NetworkInterfaceId")?;
        let addresses = p.list(addr, max_addresses as usize)?;
        let address_count = p.u32_in(count, 1, max_addresses)?;
        let prefixes = p.list(prefix, max_prefixes as usize)?;
        let prefix_count = p.u32_in(&format!("{prefix}Count"), 1, max_prefixes)?;
        if address_count.is_some() && !addresses.is_empty() {
            return Err(ApiError::invalid(
                count,
                &format!("cannot be combined with {addr}.N"),
            ));
        }
        if address_count.is_none()
            && addresses.is_empty()
            && prefix_count.is_none()
            && prefixes.is_empty()
        {
            return Err(ApiError::missing(count));
        }
        Ok(Self {
            eni_id,
            addresses,
            address_count: address_count.unwrap_or(0),
            prefixes,
            prefix_count: prefix_count.unwrap_or(0),
        })
    }

    /// Addresses and prefixes the request adds.
    fn wanted(&self) -> usize {
        self.addresses.len()
            + self.address_count as usize
            + self.prefixes.len()
            + self.prefix_count as usize
    }
}

/// AssignPrivateIpAddresses.
pub fn assign_private(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let req = AssignRequest::parse(
        ctx.params,
        (
            "PrivateIpAddress",
            "SecondaryPrivateIpAddressCount",
            "Ipv4Prefix",
        ),
        50,
        10,
    )?;
    let AssignRequest {
        eni_id,
        addresses: explicit,
        address_count: count,
        prefixes: explicit_p4,
        prefix_count: p4_count,
    } = &req;
    let (eni_id, count, p4_count) = (*eni_id, *count, *p4_count);
    let mut st = emu.state();
    let eni = find_eni(&st, ctx, eni_id)?;
    conflict_check(eni)?;
    let vsw = st
        .vswitches
        .get(&eni.vswitch_id)
        .cloned()
        .ok_or_else(ApiError::internal)?;
    let want = req.wanted();
    let have = 1 + eni.secondary_ips.len() + eni.ipv4_prefixes.len();
    let (limit, _) = limits(&st, eni);
    if have + want > limit {
        return Err(ApiError::new(
            403,
            "InvalidOperation.Ipv4CountExceeded",
            format!(
                "The ENI would hold {} IPv4 addresses; at most {limit}.",
                have + want
            ),
        ));
    }
    let mut new: Vec<Ipv4Addr> = Vec::new();
    for s in explicit {
        let ip = explicit_v4(&st, &vsw.cidr, &vsw.id, "PrivateIpAddress", s, &new)?;
        new.push(ip);
    }
    for _ in 0..count {
        let ip = st.alloc_ipv4(&vsw, &new).ok_or_else(not_enough)?;
        new.push(ip);
    }
    let mut new_p4: Vec<Net4> = Vec::new();
    for s in explicit_p4 {
        let net = Net4::parse(s)
            .filter(|n| n.len == 28 && vsw.cidr.contains(n.addr))
            .ok_or_else(|| ApiError::invalid("Ipv4Prefix", "a /28 inside the vSwitch"))?;
        if (net.first()..=net.last()).any(|v| st.ipv4_used(&vsw.id, Ipv4Addr::from(v))) {
            return Err(ApiError::new(
                403,
                "InvalidIp.IpAssigned",
                format!("{net} overlaps assigned addresses."),
            ));
        }
        new_p4.push(net);
    }
    for _ in 0..p4_count {
        let net = st
            .alloc_ipv4_prefix(&vsw, &new_p4)
            .filter(|n| !new.iter().any(|ip| n.contains(*ip)))
            .ok_or_else(not_enough)?;
        new_p4.push(net);
    }
    let eni = st.enis.get_mut(eni_id).ok_or_else(ApiError::internal)?;
    eni.secondary_ips.extend(new.iter().copied());
    eni.ipv4_prefixes.extend(new_p4.iter().copied());
    drop(st);
    after_change(emu, eni_id);
    Ok(json!({
        "AssignedPrivateIpAddressesSet": {
            "NetworkInterfaceId": eni_id,
            "PrivateIpSet": {"PrivateIpAddress": new.iter().map(ToString::to_string).collect::<Vec<_>>()},
            "Ipv4PrefixSet": {"Ipv4Prefixes": new_p4.iter().map(ToString::to_string).collect::<Vec<_>>()},
        }
    }))
}

fn not_enough() -> ApiError {
    ApiError::new(
        403,
        "InvalidVSwitchId.IpNotEnough",
        "The specified vSwitch does not have enough IP addresses.",
    )
}

fn unassigned(what: &str) -> ApiError {
    ApiError::new(
        403,
        "InvalidIp.IpUnassigned",
        format!("The address {what} is not assigned to the ENI."),
    )
}

/// UnassignPrivateIpAddresses.
pub fn unassign_private(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    let eni_id = p.require("NetworkInterfaceId")?;
    let ips = p.list("PrivateIpAddress", 50)?;
    let prefixes = p.list("Ipv4Prefix", 10)?;
    if ips.is_empty() && prefixes.is_empty() {
        return Err(ApiError::missing("PrivateIpAddress.1"));
    }
    let mut st = emu.state();
    let eni = find_eni(&st, ctx, eni_id)?;
    conflict_check(eni)?;
    let mut drop_ips = Vec::new();
    for s in &ips {
        let ip: Ipv4Addr = s.parse().map_err(|_| {
            ApiError::invalid("PrivateIpAddress", &format!("{s:?} is not an IPv4 address"))
        })?;
        if ip == eni.primary_ip {
            return Err(ApiError::invalid(
                "PrivateIpAddress",
                "the primary private IP cannot be unassigned",
            ));
        }
        if !eni.secondary_ips.contains(&ip) {
            return Err(unassigned(s));
        }
        drop_ips.push(ip);
    }
    let mut drop_p4 = Vec::new();
    for s in &prefixes {
        let net = Net4::parse(s).ok_or_else(|| ApiError::invalid("Ipv4Prefix", "not a prefix"))?;
        if !eni.ipv4_prefixes.contains(&net) {
            return Err(unassigned(s));
        }
        drop_p4.push(net);
    }
    let eni = st.enis.get_mut(eni_id).ok_or_else(ApiError::internal)?;
    eni.secondary_ips.retain(|ip| !drop_ips.contains(ip));
    eni.ipv4_prefixes.retain(|n| !drop_p4.contains(n));
    drop(st);
    after_change(emu, eni_id);
    Ok(json!({}))
}

/// AssignIpv6Addresses.
pub fn assign_ipv6(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let req = AssignRequest::parse(
        ctx.params,
        ("Ipv6Address", "Ipv6AddressCount", "Ipv6Prefix"),
        10,
        10,
    )?;
    let AssignRequest {
        eni_id,
        addresses: explicit,
        address_count: count,
        prefixes: explicit_p6,
        prefix_count: p6_count,
    } = &req;
    let (eni_id, count, p6_count) = (*eni_id, *count, *p6_count);
    let mut st = emu.state();
    let eni = find_eni(&st, ctx, eni_id)?;
    conflict_check(eni)?;
    let vsw = st
        .vswitches
        .get(&eni.vswitch_id)
        .cloned()
        .ok_or_else(ApiError::internal)?;
    if vsw.ipv6_cidr.is_none() {
        return Err(ipv6_not_enabled(&vsw.id));
    }
    let want = req.wanted();
    let have = eni.ipv6s.len() + eni.ipv6_prefixes.len();
    let (_, limit) = limits(&st, eni);
    if have + want > limit {
        return Err(ApiError::new(
            403,
            "InvalidOperation.Ipv6CountExceeded",
            format!(
                "The ENI would hold {} IPv6 addresses; at most {limit}.",
                have + want
            ),
        ));
    }
    let mut new: Vec<Ipv6Addr> = Vec::new();
    for s in explicit {
        let ip = explicit_ipv6(&st, &vsw, s, &new)?;
        new.push(ip);
    }
    for _ in 0..count {
        let ip = st.alloc_ipv6(&vsw, &new).ok_or_else(not_enough)?;
        new.push(ip);
    }
    let mut new_p6: Vec<Net6> = Vec::new();
    for s in explicit_p6 {
        let net = Net6::parse(s)
            .filter(|n| vsw.ipv6_cidr.is_some_and(|c| c.contains(n.addr)))
            .ok_or_else(|| ApiError::invalid("Ipv6Prefix", "a prefix inside the vSwitch"))?;
        if st.ipv6_prefix_used(&vsw.id, &net) {
            return Err(ApiError::new(
                403,
                "InvalidIp.IpAssigned",
                format!("{net} overlaps assigned addresses."),
            ));
        }
        new_p6.push(net);
    }
    for _ in 0..p6_count {
        let net = st
            .alloc_ipv6_prefix(&vsw, &new_p6)
            .filter(|n| !new.iter().any(|ip| n.contains(*ip)))
            .ok_or_else(not_enough)?;
        new_p6.push(net);
    }
    let eni = st.enis.get_mut(eni_id).ok_or_else(ApiError::internal)?;
    eni.ipv6s.extend(new.iter().copied());
    eni.ipv6_prefixes.extend(new_p6.iter().copied());
    drop(st);
    after_change(emu, eni_id);
    Ok(json!({
        "NetworkInterfaceId": eni_id,
        "Ipv6Sets": {"Ipv6Address": new.iter().map(ToString::to_string).collect::<Vec<_>>()},
        "Ipv6PrefixSets": {"Ipv6Prefix": new_p6.iter().map(ToString::to_string).collect::<Vec<_>>()},
    }))
}

/// UnassignIpv6Addresses.
pub fn unassign_ipv6(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    let eni_id = p.require("NetworkInterfaceId")?;
    let ips = p.list("Ipv6Address", 10)?;
    let prefixes = p.list("Ipv6Prefix", 10)?;
    if ips.is_empty() && prefixes.is_empty() {
        return Err(ApiError::missing("Ipv6Address.1"));
    }
    let mut st = emu.state();
    let eni = find_eni(&st, ctx, eni_id)?;
    conflict_check(eni)?;
    let mut drop_ips = Vec::new();
    for s in &ips {
        let ip: Ipv6Addr = s.parse().map_err(|_| {
            ApiError::invalid("Ipv6Address", &format!("{s:?} is not an IPv6 address"))
        })?;
        if !eni.ipv6s.contains(&ip) {
            return Err(unassigned(s));
        }
        drop_ips.push(ip);
    }
    let mut drop_p6 = Vec::new();
    for s in &prefixes {
        let net = Net6::parse(s).ok_or_else(|| ApiError::invalid("Ipv6Prefix", "not a prefix"))?;
        if !eni.ipv6_prefixes.contains(&net) {
            return Err(unassigned(s));
        }
        drop_p6.push(net);
    }
    let eni = st.enis.get_mut(eni_id).ok_or_else(ApiError::internal)?;
    eni.ipv6s.retain(|ip| !drop_ips.contains(ip));
    eni.ipv6_prefixes.retain(|n| !drop_p6.contains(n));
    drop(st);
    after_change(emu, eni_id);
    Ok(json!({}))
}
