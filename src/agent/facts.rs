//! From what ECS and the metadata service say to the planner's inputs. Every
//! value is parsed and checked here; a bad one is an error that names the
//! field, the value and its source, and nothing is applied.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::cloud::ecs::NetworkInterface;
use crate::mac::MacAddr;
use crate::metadata::InterfaceFacts;
use crate::plan::{EniFacts, EniType, IpNet, SubnetFacts};

/// A value from ECS that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "DescribeNetworkInterfaceAttribute for {eni_id} returned {field} = {value:?}, {reason}; nothing was applied \
     (if the ENI is being modified, try again once it settles)"
)]
pub struct FactsError {
    pub eni_id: String,
    pub field: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// No ENI carries more addresses or prefixes of one kind than this (ECS
/// allows a few dozen); a longer list is a broken or hostile answer, refused
/// before it costs anything.
pub const MAX_LIST: usize = 1024;

/// The ENI facts from a Describe answer for `asked`, the id that was asked
/// for: an answer about another ENI is refused (the facts always carry the
/// id asked for, never the one in the answer).
pub fn eni_facts(ni: &NetworkInterface, asked: &str) -> Result<EniFacts, FactsError> {
    let err = |field: &'static str, value: &str, reason: &'static str| FactsError {
        eni_id: asked.to_owned(),
        field,
        value: value.chars().take(64).collect(),
        reason,
    };
    if ni.network_interface_id != asked {
        return Err(err(
            "NetworkInterfaceId",
            &ni.network_interface_id,
            "which is not the ENI asked for",
        ));
    }
    for (field, len) in [
        ("PrivateIpSets", ni.private_ip_sets.items.len()),
        ("Ipv6Sets", ni.ipv6_sets.items.len()),
        ("Ipv4PrefixSets", ni.ipv4_prefix_sets.items.len()),
        ("Ipv6PrefixSets", ni.ipv6_prefix_sets.items.len()),
    ] {
        if len > MAX_LIST {
            return Err(err(
                field,
                &format!("{len} entries"),
                "more than any ENI can have (1024)",
            ));
        }
    }
    let mac: MacAddr = ni
        .mac_address
        .parse()
        .map_err(|_| err("MacAddress", &ni.mac_address, "which is not a MAC address"))?;
    let primary = ni.primary_ip().unwrap_or_default();
    let primary_ipv4: Ipv4Addr = primary
        .parse()
        .map_err(|_| err("PrivateIpAddress", primary, "which is not an IPv4 address"))?;
    let secondary_ipv4 = ni
        .secondary_ips()
        .map(|s| {
            s.parse().map_err(|_| {
                err(
                    "PrivateIpSets.PrivateIpAddress",
                    s,
                    "which is not an IPv4 address",
                )
            })
        })
        .collect::<Result<Vec<Ipv4Addr>, _>>()?;
    let ipv6 = ni
        .ipv6_addresses()
        .map(|s| {
            s.parse()
                .map_err(|_| err("Ipv6Sets.Ipv6Address", s, "which is not an IPv6 address"))
        })
        .collect::<Result<Vec<Ipv6Addr>, _>>()?;
    let ipv4_prefixes = ni
        .ipv4_prefixes()
        .map(|s| {
            s.parse::<IpNet>().map_err(|_| {
                err(
                    "Ipv4PrefixSets.Ipv4Prefix",
                    s,
                    "which is not an IPv4 prefix",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ipv6_prefixes = ni
        .ipv6_prefixes()
        .map(|s| {
            s.parse::<IpNet>().map_err(|_| {
                err(
                    "Ipv6PrefixSets.Ipv6Prefix",
                    s,
                    "which is not an IPv6 prefix",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let eni_type = match ni.kind.as_str() {
        "Primary" => EniType::Primary,
        "Secondary" | "" => EniType::Secondary,
        other => EniType::Other(other.to_owned()),
    };
    Ok(EniFacts {
        eni_id: asked.to_owned(),
        mac: crate::plan::MacAddr(mac.octets()),
        primary_ipv4,
        secondary_ipv4,
        ipv6,
        ipv4_prefixes,
        ipv6_prefixes,
        queue_number: ni.queue_number,
        network_card_index: ni.attachment.as_ref().and_then(|a| a.network_card_index),
        eni_type,
    })
}

/// The subnet facts from the metadata service's per-MAC entries, once the
/// ones the plan needs (the gateway and the vSwitch CIDR or netmask) are
/// there; `None` while they lag behind the attach.
pub fn subnet_facts(md: &InterfaceFacts) -> Option<SubnetFacts> {
    let gateway = md.gateway?;
    if md.vswitch_cidr_block.is_none() && md.netmask_len.is_none() {
        return None;
    }
    Some(SubnetFacts {
        vswitch_cidr: md
            .vswitch_cidr_block
            .map(|n| IpNet::new(n.network(), n.prefix_len())),
        netmask: md
            .netmask_len
            .and_then(|len| ipnet::Ipv4Net::new(Ipv4Addr::UNSPECIFIED, len).ok())
            .map(|n| n.netmask()),
        gateway,
        ipv6_gateway: md.ipv6_gateway,
        vswitch_ipv6_cidr: md
            .vswitch_ipv6_cidr_block
            .map(|n| IpNet::new(n.network(), n.prefix_len())),
        vpc_cidr: md
            .vpc_cidr_block
            .map(|n| IpNet::new(n.network(), n.prefix_len())),
    })
}

/// True when the ENI has IPv6 addresses but the metadata has no IPv6 gateway
/// yet (it may still be lagging).
pub fn ipv6_facts_missing(eni: &EniFacts, md: &InterfaceFacts) -> bool {
    !eni.ipv6.is_empty() && (md.ipv6_gateway.is_none() || md.vswitch_ipv6_cidr_block.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ni(json: &str) -> NetworkInterface {
        serde_json::from_str(json).expect("valid json")
    }

    #[test]
    fn maps_every_fact() {
        let n = ni(
            r#"{"NetworkInterfaceId":"eni-1","MacAddress":"00:16:3E:00:00:01","Type":"Secondary","QueueNumber":4,
            "PrivateIpAddress":"10.0.0.5","PrivateIpSets":{"PrivateIpSet":[{"PrivateIpAddress":"10.0.0.5","Primary":true},{"PrivateIpAddress":"10.0.0.6"}]},
            "Ipv6Sets":{"Ipv6Set":[{"Ipv6Address":"2001:db8::5"}]},"Ipv4PrefixSets":{"Ipv4PrefixSet":[{"Ipv4Prefix":"10.0.0.32/28"}]},
            "Attachment":{"NetworkCardIndex":1}}"#,
        );
        let f = eni_facts(&n, "eni-1").expect("valid");
        assert_eq!(f.mac.to_string(), "00:16:3e:00:00:01");
        assert_eq!(f.primary_ipv4, Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(f.secondary_ipv4, [Ipv4Addr::new(10, 0, 0, 6)]);
        assert_eq!(f.ipv6.len(), 1);
        assert_eq!(f.ipv4_prefixes[0].to_string(), "10.0.0.32/28");
        assert_eq!((f.queue_number, f.network_card_index), (Some(4), Some(1)));
        assert_eq!(f.eni_type, EniType::Secondary);
    }

    #[test]
    fn bad_values_name_field_and_value() {
        for (json, field) in [
            (
                r#"{"NetworkInterfaceId":"eni-1","MacAddress":"00:16:3e:12:**:**","PrivateIpAddress":"10.0.0.5"}"#,
                "MacAddress",
            ),
            (
                r#"{"NetworkInterfaceId":"eni-1","MacAddress":"00:16:3e:00:00:01","PrivateIpAddress":"10.0.0.256"}"#,
                "PrivateIpAddress",
            ),
            (
                r#"{"NetworkInterfaceId":"eni-1","MacAddress":"00:16:3e:00:00:01","PrivateIpAddress":"10.0.0.5","Ipv6Sets":{"Ipv6Set":[{"Ipv6Address":"zz::1::"}]}}"#,
                "Ipv6Sets",
            ),
        ] {
            let e = eni_facts(&ni(json), "eni-1").expect_err("bad");
            assert!(
                e.to_string().contains(field) && e.to_string().contains("nothing was applied"),
                "{e}"
            );
        }
    }

    #[test]
    fn an_answer_about_another_eni_is_refused() {
        let n = ni(
            r#"{"NetworkInterfaceId":"eni-other","MacAddress":"00:16:3e:00:00:01","PrivateIpAddress":"10.0.0.5"}"#,
        );
        let e = eni_facts(&n, "eni-1").expect_err("mismatch").to_string();
        assert!(
            e.contains("eni-1") && e.contains("eni-other") && e.contains("NetworkInterfaceId"),
            "{e}"
        );
    }

    #[test]
    fn subnet_facts_wait_for_the_gateway_and_a_mask() {
        let mut md = InterfaceFacts::default();
        assert!(subnet_facts(&md).is_none());
        md.gateway = Some(Ipv4Addr::new(10, 0, 0, 253));
        assert!(subnet_facts(&md).is_none());
        md.netmask_len = Some(24);
        let s = subnet_facts(&md).expect("enough");
        assert_eq!(s.netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        md.vswitch_cidr_block = Some("10.0.0.0/24".parse().expect("cidr"));
        assert_eq!(
            subnet_facts(&md)
                .expect("enough")
                .vswitch_cidr
                .map(|n| n.to_string())
                .as_deref(),
            Some("10.0.0.0/24")
        );
    }
}
