//! Read-only commands for operators: what ECS and the metadata service say.

use super::{Cli, ecs_client, load_config, metadata_client};
use crate::cloud::ecs::NetworkInterface;

/// `eni-agent describe ENI_ID`.
pub async fn describe(cli: &Cli, eni_id: &str, json: bool) -> Result<(), String> {
    let config = load_config(cli)?;
    let metadata = metadata_client(&config)?;
    let client = ecs_client(&config, metadata).await?;
    let (ni, request_id) = crate::agent::cloud_flow::describe(&client, eni_id)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!("{}", facts_json(&ni, &request_id));
    } else {
        print!("{}", facts_text(&ni, &request_id));
    }
    Ok(())
}

fn facts_json(ni: &NetworkInterface, request_id: &str) -> serde_json::Value {
    serde_json::json!({
        "request_id": request_id,
        "network_interface_id": ni.network_interface_id,
        "status": ni.status.as_str(),
        "type": ni.kind,
        "mac_address": ni.mac_address,
        "instance_id": ni.attached_instance(),
        "zone_id": ni.zone_id,
        "vpc_id": ni.vpc_id,
        "vswitch_id": ni.vswitch_id,
        "primary_ip": ni.primary_ip(),
        "secondary_ips": ni.secondary_ips().collect::<Vec<_>>(),
        "ipv6_addresses": ni.ipv6_addresses().collect::<Vec<_>>(),
        "ipv4_prefixes": ni.ipv4_prefixes().collect::<Vec<_>>(),
        "ipv6_prefixes": ni.ipv6_prefixes().collect::<Vec<_>>(),
        "queue_number": ni.queue_number,
        "network_card_index": ni.attachment.as_ref().and_then(|a| a.network_card_index),
    })
}

fn facts_text(ni: &NetworkInterface, request_id: &str) -> String {
    let list = |items: Vec<&str>| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    let opt = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let rows = [
        ("ENI", ni.network_interface_id.clone()),
        ("status", ni.status.to_string()),
        ("type", ni.kind.clone()),
        ("MAC", ni.mac_address.clone()),
        ("instance", opt(ni.attached_instance())),
        (
            "zone / VPC / vSwitch",
            format!("{} / {} / {}", ni.zone_id, ni.vpc_id, ni.vswitch_id),
        ),
        ("primary IPv4", opt(ni.primary_ip())),
        ("secondary IPv4", list(ni.secondary_ips().collect())),
        ("IPv6", list(ni.ipv6_addresses().collect())),
        ("IPv4 prefixes", list(ni.ipv4_prefixes().collect())),
        ("IPv6 prefixes", list(ni.ipv6_prefixes().collect())),
        (
            "queues",
            ni.queue_number.map_or("-".into(), |q| q.to_string()),
        ),
        ("RequestId", request_id.to_owned()),
    ];
    rows.iter().map(|(k, v)| format!("{k:<22}{v}\n")).collect()
}

/// `eni-agent metadata`.
pub async fn metadata(cli: &Cli) -> Result<(), String> {
    let config = load_config(cli)?;
    let md = metadata_client(&config)?;
    let identity = md.identity().await.map_err(|e| e.to_string())?;
    println!(
        "instance {}  region {}  zone {}",
        identity.instance_id, identity.region_id, identity.zone_id
    );
    for mac in md.macs().await.map_err(|e| e.to_string())? {
        let f = md.interface(mac).await.map_err(|e| e.to_string())?;
        let v4: Vec<String> = f.private_ipv4s.iter().map(ToString::to_string).collect();
        let v6: Vec<String> = f.ipv6s.iter().map(ToString::to_string).collect();
        println!(
            "{mac}  {}  primary {}  ipv4 [{}]  vswitch {}  gateway {}  ipv6 [{}]  ipv6-gateway {}",
            f.network_interface_id.as_deref().unwrap_or("-"),
            f.primary_ip_address.map_or("-".into(), |a| a.to_string()),
            v4.join(","),
            f.vswitch_cidr_block.map_or("-".into(), |n| n.to_string()),
            f.gateway.map_or("-".into(), |g| g.to_string()),
            v6.join(","),
            f.ipv6_gateway.map_or("-".into(), |g| g.to_string()),
        );
    }
    Ok(())
}
