//! ENI life cycle: CreateNetworkInterface, DeleteNetworkInterface and
//! ModifyNetworkInterfaceAttribute, plus the address validation shared with
//! the IP actions.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::render::{View, eni_json};
use super::{ApiError, Ctx, find_eni};
use crate::engine::Emulator;
use crate::model::net::{Net4, Net6};
use crate::model::{Eni, EniStatus, State};
use crate::util;

/// DeleteNetworkInterface.
pub fn delete(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let eni_id = ctx.params.require("NetworkInterfaceId")?;
    let mut st = emu.state();
    let eni = find_eni(&st, ctx, eni_id)?;
    if eni.status == EniStatus::Deleting {
        return Ok(json!({}));
    }
    if eni.status != EniStatus::Available || eni.eni_type == "Primary" {
        return Err(ApiError::eni_state(
            eni_id,
            eni.status.as_str(),
            "Available",
        ));
    }
    let generation = super::enter(&mut st, eni_id, EniStatus::Deleting)?;
    drop(st);
    emu.start_delete(eni_id, generation);
    Ok(json!({}))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    let starts_ok = name.chars().next().is_some_and(char::is_alphabetic);
    if !(2..=128).contains(&n)
        || !starts_ok
        || name.starts_with("http://")
        || name.starts_with("https://")
    {
        return Err(ApiError::invalid(
            "NetworkInterfaceName",
            "2 to 128 characters, starting with a letter, not with http:// or https://",
        ));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<(), ApiError> {
    if d.chars().count() > 256 || d.starts_with("http://") || d.starts_with("https://") {
        return Err(ApiError::invalid(
            "Description",
            "at most 256 characters, not starting with http:// or https://",
        ));
    }
    Ok(())
}

fn check_groups(
    st: &State,
    groups: &[String],
    vpc: &str,
    mismatch_code: &str,
) -> Result<(), ApiError> {
    for g in groups {
        match st.security_groups.get(g) {
            None => {
                return Err(ApiError::new(
                    404,
                    "InvalidSecurityGroupId.NotFound",
                    format!("The specified security group {g:?} does not exist."),
                ));
            }
            Some(v) if v != vpc => {
                return Err(ApiError::forbidden(
                    mismatch_code,
                    format!("The security group {g:?} is in VPC {v}, not {vpc}."),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn ip_not_enough() -> ApiError {
    ApiError::forbidden(
        "InvalidVSwitchId.IpNotEnough",
        "The specified vSwitch does not have enough IP addresses.",
    )
}

/// CreateNetworkInterface.
pub fn create(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    let vsw_id = p.require("VSwitchId")?;
    let mut groups = p.list("SecurityGroupIds", 10)?;
    if let Some(g) = p.opt("SecurityGroupId") {
        groups.insert(0, g.to_string());
    }
    if groups.is_empty() {
        return Err(ApiError::missing("SecurityGroupId"));
    }
    match p.opt("InstanceType") {
        None | Some("Secondary") => {}
        Some("Trunk") => {
            return Err(ApiError::new(
                400,
                "UnsupportedParameter",
                "Trunk ENIs are not emulated.",
            ));
        }
        Some(o) => return Err(ApiError::invalid("InstanceType", &format!("{o:?}"))),
    }
    let traffic_mode = match p.opt("NetworkInterfaceTrafficMode") {
        None => "Standard",
        Some(m @ ("Standard" | "HighPerformance")) => m,
        Some(o) => {
            return Err(ApiError::invalid(
                "NetworkInterfaceTrafficMode",
                &format!("{o:?}"),
            ));
        }
    };
    let queue_number = p.u32_in("QueueNumber", 1, 2048)?;
    let secondary_count = p.u32_in("SecondaryPrivateIpAddressCount", 1, 49)?;
    let explicit_ips = p.list("PrivateIpAddress", 49)?;
    if secondary_count.is_some() && !explicit_ips.is_empty() {
        return Err(ApiError::invalid(
            "SecondaryPrivateIpAddressCount",
            "cannot be combined with PrivateIpAddress.N",
        ));
    }
    let ipv6_count = p.u32_in("Ipv6AddressCount", 1, 10)?;
    let explicit_v6 = p.list("Ipv6Address", 10)?;
    let p4_count = p.u32_in("Ipv4PrefixCount", 1, 10)?;
    let explicit_p4 = p.list("Ipv4Prefix", 10)?;
    let p6_count = p.u32_in("Ipv6PrefixCount", 1, 10)?;
    let explicit_p6 = p.list("Ipv6Prefix", 10)?;
    if let Some(n) = p.opt("NetworkInterfaceName") {
        check_name(n)?;
    }
    if let Some(d) = p.opt("Description") {
        check_description(d)?;
    }
    let tags = p.tags(20)?;
    let delete_on_release = p.bool_opt("DeleteOnRelease")?.unwrap_or(true);

    let mut st = emu.state();
    let vsw = st
        .vswitches
        .get(vsw_id)
        .filter(|v| v.region_id == ctx.region)
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                404,
                "InvalidVSwitchId.NotFound",
                format!("The specified vSwitch {vsw_id:?} does not exist."),
            )
        })?;
    check_groups(&st, &groups, &vsw.vpc_id, "InvalidOperation.VpcMismatch")?;
    if st.enis.len() >= st.max_enis {
        return Err(ApiError::forbidden(
            "MaxEniCountExceeded",
            format!("The account may hold at most {} ENIs.", st.max_enis),
        ));
    }
    let mut v4: Vec<Ipv4Addr> = Vec::new();
    let primary = match p.opt("PrimaryIpAddress") {
        Some(s) => explicit_v4(&st, &vsw.cidr, &vsw.id, "PrimaryIpAddress", s, &v4)?,
        None => st.alloc_ipv4(&vsw, &v4).ok_or_else(ip_not_enough)?,
    };
    v4.push(primary);
    for s in &explicit_ips {
        let ip = explicit_v4(&st, &vsw.cidr, &vsw.id, "PrivateIpAddress", s, &v4)?;
        v4.push(ip);
    }
    for _ in 0..secondary_count.unwrap_or(0) {
        let ip = st.alloc_ipv4(&vsw, &v4).ok_or_else(ip_not_enough)?;
        v4.push(ip);
    }
    let mut p4: Vec<Net4> = Vec::new();
    for s in &explicit_p4 {
        let net = Net4::parse(s)
            .filter(|n| n.len == 28 && vsw.cidr.contains(n.addr))
            .ok_or_else(|| ApiError::invalid("Ipv4Prefix", "a /28 inside the vSwitch"))?;
        p4.push(net);
    }
    for _ in 0..p4_count.unwrap_or(0) {
        let net = st.alloc_ipv4_prefix(&vsw, &p4).ok_or_else(ip_not_enough)?;
        p4.push(net);
    }
    let wants_v6 = ipv6_count.is_some()
        || !explicit_v6.is_empty()
        || p6_count.is_some()
        || !explicit_p6.is_empty();
    if wants_v6 && vsw.ipv6_cidr.is_none() {
        return Err(ipv6_not_enabled(vsw_id));
    }
    let mut v6: Vec<Ipv6Addr> = Vec::new();
    for s in &explicit_v6 {
        let ip = explicit_ipv6(&st, &vsw, s, &v6)?;
        v6.push(ip);
    }
    for _ in 0..ipv6_count.unwrap_or(0) {
        let ip = st.alloc_ipv6(&vsw, &v6).ok_or_else(ip_not_enough)?;
        v6.push(ip);
    }
    let mut p6: Vec<Net6> = Vec::new();
    for s in &explicit_p6 {
        let net = Net6::parse(s)
            .filter(|n| vsw.ipv6_cidr.is_some_and(|c| c.contains(n.addr)))
            .ok_or_else(|| ApiError::invalid("Ipv6Prefix", "a prefix inside the vSwitch"))?;
        p6.push(net);
    }
    for _ in 0..p6_count.unwrap_or(0) {
        let net = st.alloc_ipv6_prefix(&vsw, &p6).ok_or_else(ip_not_enough)?;
        p6.push(net);
    }
    let id = format!("eni-{}", &util::random_hex::<10>()[..20]);
    let creating = emu.settings().timing.create_delay_ms > 0;
    let seq = st.take_seq();
    let eni = Eni {
        id: id.clone(),
        seq,
        region_id: vsw.region_id.clone(),
        vswitch_id: vsw.id.clone(),
        vpc_id: vsw.vpc_id.clone(),
        zone_id: vsw.zone_id.clone(),
        mac: st.alloc_mac(),
        primary_ip: primary,
        secondary_ips: v4[1..].to_vec(),
        ipv6s: v6,
        ipv4_prefixes: p4,
        ipv6_prefixes: p6,
        queue_number,
        eni_type: "Secondary".into(),
        status: if creating {
            EniStatus::Creating
        } else {
            EniStatus::Available
        },
        instance_id: None,
        device_index: None,
        network_card_index: None,
        name: p
            .opt("NetworkInterfaceName")
            .unwrap_or_default()
            .to_string(),
        description: p.opt("Description").unwrap_or_default().to_string(),
        tags: tags
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
        security_group_ids: groups,
        service_managed: false,
        traffic_mode: traffic_mode.to_string(),
        enable_rss: false,
        resource_group_id: p.opt("ResourceGroupId").unwrap_or_default().to_string(),
        creation_time: util::format_time(SystemTime::now()),
        delete_on_release,
        generation: 1,
        metadata: None,
        link_present: false,
    };
    let body = eni_json(&st, &eni, View::ListItem);
    st.enis.insert(id.clone(), eni);
    drop(st);
    if creating {
        emu.start_create(&id, 1);
    }
    Ok(body)
}

/// `InvalidVSwitch.Ipv6NotTurnOn` (403).
pub fn ipv6_not_enabled(vsw: &str) -> ApiError {
    ApiError::forbidden(
        "InvalidVSwitch.Ipv6NotTurnOn",
        format!("IPv6 is not enabled on vSwitch {vsw:?}."),
    )
}

/// Validates an explicitly requested IPv4 address of `vsw`.
pub fn explicit_v4(
    st: &State,
    cidr: &Net4,
    vsw: &str,
    name: &str,
    s: &str,
    pending: &[Ipv4Addr],
) -> Result<Ipv4Addr, ApiError> {
    let ip: Ipv4Addr = s
        .parse()
        .map_err(|_| ApiError::invalid(name, &format!("{s:?} is not an IPv4 address")))?;
    if !cidr.usable(ip) {
        return Err(ApiError::invalid(
            name,
            &format!("{ip} is not usable in {cidr}"),
        ));
    }
    if pending.contains(&ip) || st.ipv4_used(vsw, ip) {
        return Err(ApiError::forbidden(
            "InvalidIp.IpAssigned",
            format!("The IP address {ip} is already assigned."),
        ));
    }
    Ok(ip)
}

/// Validates an explicitly requested IPv6 address of `vsw`.
pub fn explicit_ipv6(
    st: &State,
    vsw: &crate::model::VSwitch,
    s: &str,
    pending: &[Ipv6Addr],
) -> Result<Ipv6Addr, ApiError> {
    let ip: Ipv6Addr = s
        .parse()
        .map_err(|_| ApiError::invalid("Ipv6Address", &format!("{s:?} is not an IPv6 address")))?;
    if !vsw.ipv6_cidr.is_some_and(|c| c.contains(ip)) {
        return Err(ApiError::invalid(
            "Ipv6Address",
            &format!("{ip} is outside the vSwitch"),
        ));
    }
    if pending.contains(&ip) || st.ipv6_used(&vsw.id, ip) {
        return Err(ApiError::forbidden(
            "InvalidIp.IpAssigned",
            format!("The IPv6 address {ip} is already assigned."),
        ));
    }
    Ok(ip)
}

/// ModifyNetworkInterfaceAttribute.
pub fn modify(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    let eni_id = p.require("NetworkInterfaceId")?;
    let groups = p.list("SecurityGroupId", 5)?;
    let name = p.opt("NetworkInterfaceName");
    let description = p.get("Description");
    let queues = p.u32_in("QueueNumber", 1, 2048)?;
    if let Some(n) = name {
        check_name(n)?;
    }
    if let Some(d) = description {
        check_description(d)?;
    }
    let mut st = emu.state();
    let eni = find_eni(&st, ctx, eni_id)?;
    check_groups(&st, &groups, &eni.vpc_id, "InvalidEni.NotSameVpc")?;
    if let Some(q) = queues {
        if eni.eni_type == "Primary" {
            return Err(ApiError::invalid(
                "QueueNumber",
                "only secondary ENIs can change their queue count",
            ));
        }
        match eni.status {
            EniStatus::Available => {}
            EniStatus::InUse => {
                let inst_id = eni.instance_id.clone().unwrap_or_default();
                let inst = st
                    .instances
                    .get(&inst_id)
                    .cloned()
                    .ok_or_else(ApiError::internal)?;
                if inst.status != "Stopped" {
                    return Err(ApiError::new(
                        400,
                        "InvalidOperation.InvalidEcsState",
                        "QueueNumber of an attached ENI can only change while its instance is Stopped.",
                    ));
                }
                let ty = st
                    .instance_type_of(&inst)
                    .cloned()
                    .ok_or_else(ApiError::internal)?;
                let others: u32 = st
                    .enis
                    .values()
                    .filter(|e| e.occupies(&inst_id) && e.id != eni_id)
                    .map(|e| st.effective_queue_number(e).unwrap_or(1))
                    .sum();
                if q > ty.max_queues_per_eni || others + q > ty.total_queues {
                    return Err(ApiError::forbidden(
                        "InvalidOperation.ExceedInstanceTypeQueueNumber",
                        format!("{q} queues exceed the limits of {}.", ty.name),
                    ));
                }
            }
            other => {
                return Err(ApiError::eni_state(
                    eni_id,
                    other.as_str(),
                    "Available or InUse",
                ));
            }
        }
    }
    let eni = st.enis.get_mut(eni_id).ok_or_else(ApiError::internal)?;
    if !groups.is_empty() {
        eni.security_group_ids = groups;
    }
    if let Some(n) = name {
        eni.name = n.to_string();
    }
    if let Some(d) = description {
        eni.description = d.to_string();
    }
    if let Some(q) = queues {
        eni.queue_number = Some(q);
    }
    Ok(json!({}))
}
