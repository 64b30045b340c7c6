//! ENI → JSON, in the shape of DescribeNetworkInterfaceAttribute (every
//! documented field) and of a DescribeNetworkInterfaces list item. Field
//! names are spelled from the API documents, not shared with the agent.

use serde_json::{Value, json};

use crate::model::{Eni, EniStatus, State};

/// What to include.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// DescribeNetworkInterfaceAttribute.
    Attribute {
        /// `Attribute=connectionTrackingConfiguration`.
        conntrack: bool,
    },
    /// A DescribeNetworkInterfaces item.
    ListItem,
}

/// Renders `eni`.
pub fn eni_json(state: &State, eni: &Eni, view: View) -> Value {
    let attached = matches!(
        eni.status,
        EniStatus::Attaching | EniStatus::InUse | EniStatus::Detaching
    );
    let mut private_ips = vec![json!({
        "PrivateIpAddress": eni.primary_ip.to_string(),
        "Primary": true,
        "AssociatedPublicIp": {},
    })];
    private_ips.extend(eni.secondary_ips.iter().map(|ip| {
        json!({"PrivateIpAddress": ip.to_string(), "Primary": false, "AssociatedPublicIp": {}})
    }));
    let ipv6: Vec<Value> = eni
        .ipv6s
        .iter()
        .map(|ip| json!({"Ipv6Address": ip.to_string()}))
        .collect();
    let p4: Vec<Value> = eni
        .ipv4_prefixes
        .iter()
        .map(|p| json!({"Ipv4Prefix": p.to_string()}))
        .collect();
    let p6: Vec<Value> = eni
        .ipv6_prefixes
        .iter()
        .map(|p| json!({"Ipv6Prefix": p.to_string()}))
        .collect();
    let tags: Vec<Value> = eni
        .tags
        .iter()
        .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
        .collect();
    let queue_number = if attached || eni.queue_number.is_some() {
        state.effective_queue_number(eni)
    } else {
        None
    };
    let high_perf = eni.traffic_mode == "HighPerformance";
    let mut v = json!({
        "NetworkInterfaceId": eni.id,
        "Status": eni.status.as_str(),
        "Type": eni.eni_type,
        "VpcId": eni.vpc_id,
        "VSwitchId": eni.vswitch_id,
        "ZoneId": eni.zone_id,
        "PrivateIpAddress": eni.primary_ip.to_string(),
        "MacAddress": eni.mac,
        "NetworkInterfaceName": eni.name,
        "Description": eni.description,
        "InstanceId": if attached { eni.instance_id.clone().unwrap_or_default() } else { String::new() },
        "CreationTime": eni.creation_time,
        "ResourceGroupId": eni.resource_group_id,
        "OwnerId": state.account_id,
        "ServiceManaged": eni.service_managed,
        "NetworkInterfaceTrafficMode": eni.traffic_mode,
        "DeleteOnRelease": eni.delete_on_release,
        "SourceDestCheck": false,
        "TcpOptionAddressEnabled": "",
        "SecurityGroupIds": {"SecurityGroupId": eni.security_group_ids},
        "PrivateIpSets": {"PrivateIpSet": private_ips},
        "Ipv6Sets": {"Ipv6Set": ipv6},
        "Ipv4PrefixSets": {"Ipv4PrefixSet": p4},
        "Ipv6PrefixSets": {"Ipv6PrefixSet": p6},
        "Tags": {"Tag": tags},
        "AssociatedPublicIp": {},
        "BondInterfaceSpecification": {},
        "SlaveInterfaceSpecification": {},
        "EnhancedNetwork": {
            "EnableSriov": false,
            "EnableRss": eni.enable_rss,
            "VirtualFunctionTotalQueueNumber": 0,
            "VirtualFunctionQuantity": 0,
        },
        "QoSConfig": {"EnableQoS": false},
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(q) = queue_number {
            obj.insert("QueueNumber".into(), json!(q));
        }
        let mut traffic = json!({"NetworkInterfaceTrafficMode": eni.traffic_mode});
        if let (Some(q), Some(t)) = (queue_number, traffic.as_object_mut()) {
            t.insert("QueueNumber".into(), json!(q));
            if high_perf {
                t.insert("QueuePairNumber".into(), json!(q));
            }
        }
        obj.insert("NetworkInterfaceTrafficConfig".into(), traffic);
        if high_perf {
            if let Some(q) = queue_number {
                obj.insert("QueuePairNumber".into(), json!(q));
            }
        }
        if attached {
            let mut att = json!({
                "InstanceId": eni.instance_id.clone().unwrap_or_default(),
                "DeviceIndex": eni.device_index.unwrap_or(0),
                "TrunkNetworkInterfaceId": "",
                "MemberNetworkInterfaceIds": {"MemberNetworkInterfaceId": []},
            });
            if let (Some(n), Some(a)) = (eni.network_card_index, att.as_object_mut()) {
                a.insert("NetworkCardIndex".into(), json!(n));
            }
            obj.insert("Attachment".into(), att);
            if let Some(n) = eni.network_card_index {
                obj.insert("NetworkCardIndex".into(), json!(n));
            }
        }
        if view == (View::Attribute { conntrack: true }) {
            obj.insert(
                "ConnectionTrackingConfiguration".into(),
                json!({
                    "TcpEstablishedTimeout": 910,
                    "TcpClosedAndTimeWaitTimeout": 3,
                    "UdpTimeout": 30,
                }),
            );
        }
        if view == View::ListItem {
            obj.remove("BondInterfaceSpecification");
            obj.remove("SlaveInterfaceSpecification");
            obj.remove("QoSConfig");
            obj.remove("EnhancedNetwork");
        }
    }
    v
}
