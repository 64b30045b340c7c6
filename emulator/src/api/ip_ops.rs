//! Secondary addresses: AssignPrivateIpAddresses, UnassignPrivateIpAddresses,
//! AssignIpv6Addresses and UnassignIpv6Addresses. Changes on an attached ENI
//! reach the metadata service after the configured lag. One generic path
//! serves both families; `family` says what differs.

use std::sync::Arc;

use serde_json::{Value, json};

use super::family::{Family, V4, V6};
use super::{ApiError, Ctx, find_eni};
use crate::engine::Emulator;
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
    /// Reads `{addr}.N`, `{count}`, `{prefix}.N` and `{prefix}Count` of `F`.
    fn parse<F: Family>(p: &'a super::params::Params) -> Result<Self, ApiError> {
        let (addr, count, prefix) = (F::ADDR, F::COUNT, F::PREFIX);
        let (max_addresses, max_prefixes) = (F::MAX_ADDRESSES, F::MAX_PREFIXES);
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
    assign::<V4>(emu, ctx)
}

/// UnassignPrivateIpAddresses.
pub fn unassign_private(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    unassign::<V4>(emu, ctx)
}

/// AssignIpv6Addresses.
pub fn assign_ipv6(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    assign::<V6>(emu, ctx)
}

/// UnassignIpv6Addresses.
pub fn unassign_ipv6(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    unassign::<V6>(emu, ctx)
}

/// Adds explicit or allocated addresses and prefixes of family `F`.
fn assign<F: Family>(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let req = AssignRequest::parse::<F>(ctx.params)?;
    let eni_id = req.eni_id;
    let mut st = emu.state();
    let eni = find_eni(&st, ctx, eni_id)?;
    conflict_check(eni)?;
    let vsw = st
        .vswitches
        .get(&eni.vswitch_id)
        .cloned()
        .ok_or_else(ApiError::internal)?;
    F::vswitch_ready(&vsw)?;
    let want = req.wanted();
    let (addrs, nets) = F::held(eni);
    let have = F::FIXED + addrs.len() + nets.len();
    let limit = F::limit(limits(&st, eni));
    if have + want > limit {
        return Err(ApiError::new(
            403,
            F::COUNT_EXCEEDED,
            format!(
                "The ENI would hold {} {} addresses; at most {limit}.",
                have + want,
                F::NAME
            ),
        ));
    }
    let mut new: Vec<F::Addr> = Vec::new();
    for s in &req.addresses {
        let ip = F::explicit_addr(&st, &vsw, s, &new)?;
        new.push(ip);
    }
    for _ in 0..req.address_count {
        let ip = F::alloc_addr(&st, &vsw, &new).ok_or_else(not_enough)?;
        new.push(ip);
    }
    let mut new_nets: Vec<F::Net> = Vec::new();
    for s in &req.prefixes {
        let net = F::parse_net(s)
            .filter(|n| F::net_fits(&vsw, n))
            .ok_or_else(|| ApiError::invalid(F::PREFIX, F::PREFIX_SHAPE))?;
        if F::net_used(&st, &vsw, &net) {
            return Err(ApiError::new(
                403,
                "InvalidIp.IpAssigned",
                format!("{net} overlaps assigned addresses."),
            ));
        }
        new_nets.push(net);
    }
    for _ in 0..req.prefix_count {
        let net = F::alloc_net(&st, &vsw, &new_nets)
            .filter(|n| !new.iter().any(|ip| F::net_contains(n, *ip)))
            .ok_or_else(not_enough)?;
        new_nets.push(net);
    }
    let eni = st.enis.get_mut(eni_id).ok_or_else(ApiError::internal)?;
    let (addrs, nets) = F::held_mut(eni);
    addrs.extend(new.iter().copied());
    nets.extend(new_nets.iter().copied());
    drop(st);
    after_change(emu, eni_id);
    Ok(F::assigned(eni_id, strings(&new), strings(&new_nets)))
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
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

/// Removes addresses and prefixes of family `F` the ENI holds; all or none.
fn unassign<F: Family>(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    let eni_id = p.require("NetworkInterfaceId")?;
    let ips = p.list(F::ADDR, F::MAX_ADDRESSES as usize)?;
    let prefixes = p.list(F::PREFIX, F::MAX_PREFIXES as usize)?;
    if ips.is_empty() && prefixes.is_empty() {
        return Err(ApiError::missing(&format!("{}.1", F::ADDR)));
    }
    let mut st = emu.state();
    let eni = find_eni(&st, ctx, eni_id)?;
    conflict_check(eni)?;
    let (held_ips, held_nets) = F::held(eni);
    let mut drop_ips = Vec::new();
    for s in &ips {
        let ip: F::Addr = s.parse().map_err(|_| {
            ApiError::invalid(F::ADDR, &format!("{s:?} is not an {} address", F::NAME))
        })?;
        F::removable(eni, ip)?;
        if !held_ips.contains(&ip) {
            return Err(unassigned(s));
        }
        drop_ips.push(ip);
    }
    let mut drop_nets = Vec::new();
    for s in &prefixes {
        let net = F::parse_net(s).ok_or_else(|| ApiError::invalid(F::PREFIX, "not a prefix"))?;
        if !held_nets.contains(&net) {
            return Err(unassigned(s));
        }
        drop_nets.push(net);
    }
    let eni = st.enis.get_mut(eni_id).ok_or_else(ApiError::internal)?;
    let (addrs, nets) = F::held_mut(eni);
    addrs.retain(|ip| !drop_ips.contains(ip));
    nets.retain(|n| !drop_nets.contains(n));
    drop(st);
    after_change(emu, eni_id);
    Ok(json!({}))
}
