//! DescribeNetworkInterfaceAttribute and DescribeNetworkInterfaces
//! (filters, NextToken/MaxResults and PageNumber/PageSize pagination).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use super::render::{View, eni_json};
use super::{ApiError, Ctx, find_eni};
use crate::engine::Emulator;
use crate::model::Eni;

/// DescribeNetworkInterfaceAttribute.
pub fn describe_attribute(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let id = ctx.params.require("NetworkInterfaceId")?;
    let conntrack = match ctx.params.opt("Attribute") {
        None | Some("attachment") | Some("basic") => false,
        Some("connectionTrackingConfiguration") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "Attribute",
                &format!("{other:?} is not one of attachment, connectionTrackingConfiguration"),
            ));
        }
    };
    let st = emu.state();
    let eni = find_eni(&st, ctx, id)?;
    Ok(eni_json(&st, eni, View::Attribute { conntrack }))
}

fn parse_all<T: std::str::FromStr>(name: &str, values: Vec<String>) -> Result<Vec<T>, ApiError> {
    values
        .into_iter()
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| ApiError::invalid(name, &format!("{v:?} is not an IP address")))
        })
        .collect()
}

/// DescribeNetworkInterfaces.
pub fn describe_interfaces(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    let ids = p.list("NetworkInterfaceId", 100)?;
    let private_ips: Vec<Ipv4Addr> =
        parse_all("PrivateIpAddress", p.list("PrivateIpAddress", 100)?)?;
    let ipv6s: Vec<Ipv6Addr> = parse_all("Ipv6Address", p.list("Ipv6Address", 100)?)?;
    let tags = p.tags(20)?;
    let service_managed = p.bool_opt("ServiceManaged")?;
    let primary_ip: Option<Ipv4Addr> = match p.opt("PrimaryIpAddress") {
        Some(v) => Some(
            v.parse()
                .map_err(|_| ApiError::invalid("PrimaryIpAddress", "not an IPv4 address"))?,
        ),
        None => None,
    };
    if let Some(s) = p.opt("Status") {
        if ![
            "Creating",
            "Available",
            "Attaching",
            "InUse",
            "Detaching",
            "Deleting",
            "CreateFailed",
        ]
        .contains(&s)
        {
            return Err(ApiError::invalid(
                "Status",
                &format!("unknown status {s:?}"),
            ));
        }
    }
    if let Some(t) = p.opt("Type") {
        if !["Primary", "Secondary", "Trunk", "Member"].contains(&t) {
            return Err(ApiError::invalid("Type", &format!("unknown type {t:?}")));
        }
    }
    let eq = |name: &str, value: &str| p.opt(name).is_none_or(|want| want == value);
    let matches = |e: &Eni| -> bool {
        e.region_id == ctx.region
            && (ids.is_empty() || ids.contains(&e.id))
            && eq("VpcId", &e.vpc_id)
            && eq("VSwitchId", &e.vswitch_id)
            && eq("Type", &e.eni_type)
            && eq("Status", e.status.as_str())
            && eq("NetworkInterfaceName", &e.name)
            && eq("ResourceGroupId", &e.resource_group_id)
            && p.opt("InstanceId")
                .is_none_or(|i| e.instance_id.as_deref() == Some(i))
            && p.opt("SecurityGroupId")
                .is_none_or(|g| e.security_group_ids.iter().any(|s| s == g))
            && primary_ip.is_none_or(|ip| e.primary_ip == ip)
            && private_ips
                .iter()
                .all(|ip| e.primary_ip == *ip || e.secondary_ips.contains(ip))
            && ipv6s.iter().all(|ip| e.ipv6s.contains(ip))
            && service_managed.is_none_or(|m| e.service_managed == m)
            && tags.iter().all(|(k, v)| {
                e.tags
                    .iter()
                    .any(|(ek, ev)| ek == k && v.as_ref().is_none_or(|v| v == ev))
            })
    };
    let st = emu.state();
    let mut all: Vec<&Eni> = st.enis.values().filter(|e| matches(e)).collect();
    all.sort_by_key(|e| e.seq);
    let total = all.len();
    let token_mode = p.opt("NextToken").is_some() || p.opt("MaxResults").is_some();
    let mut out = serde_json::Map::new();
    let (start, size) = if token_mode {
        let size = p.u32_in("MaxResults", 1, 500)?.unwrap_or(10);
        let start = match p.opt("NextToken") {
            None => 0,
            Some(t) => decode_token(t)?,
        };
        (start, size as usize)
    } else {
        let number = p.u32_in("PageNumber", 1, u32::MAX)?.unwrap_or(1);
        let size = p.u32_in("PageSize", 1, 100)?.unwrap_or(10);
        out.insert("PageNumber".into(), json!(number));
        out.insert("PageSize".into(), json!(size));
        (
            (number as usize - 1).saturating_mul(size as usize),
            size as usize,
        )
    };
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(size)
        .map(|e| eni_json(&st, e, View::ListItem))
        .collect();
    let end = start.saturating_add(size);
    let next = if token_mode && end < total {
        encode_token(end)
    } else {
        String::new()
    };
    out.insert("NextToken".into(), json!(next));
    out.insert("TotalCount".into(), json!(total));
    out.insert(
        "NetworkInterfaceSets".into(),
        json!({"NetworkInterfaceSet": page}),
    );
    Ok(Value::Object(out))
}

fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("emu-offset:{offset}"))
}

fn decode_token(t: &str) -> Result<usize, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("emu-offset:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::invalid("NextToken", "not a token this service issued"))
}
