//! DescribeNetworkInterfaceAttribute: one ENI's facts (MAC, addresses,
//! prefixes, queues, status, attachment).

use super::types::NetworkInterface;
use crate::cloud::{ApiResponse, CloudError, EcsClient, Params};

/// The request. `attribute` selects an extra block, e.g.
/// `connectionTrackingConfiguration`.
#[derive(Debug, Clone, Default)]
pub struct DescribeNetworkInterfaceAttribute {
    pub network_interface_id: String,
    pub attribute: Option<String>,
}

impl DescribeNetworkInterfaceAttribute {
    pub const ACTION: &'static str = "DescribeNetworkInterfaceAttribute";

    pub fn new(network_interface_id: impl Into<String>) -> Self {
        Self {
            network_interface_id: network_interface_id.into(),
            attribute: None,
        }
    }

    pub fn params(&self) -> Params {
        Params::new()
            .set("NetworkInterfaceId", &self.network_interface_id)
            .set_opt("Attribute", self.attribute.as_deref())
    }
}

impl EcsClient {
    /// Reads one ENI. A response for another ENI than the one asked for is
    /// rejected.
    pub async fn describe_network_interface_attribute(
        &self,
        request: &DescribeNetworkInterfaceAttribute,
    ) -> Result<ApiResponse<NetworkInterface>, CloudError> {
        let response: ApiResponse<NetworkInterface> = self
            .call(DescribeNetworkInterfaceAttribute::ACTION, request.params())
            .await?;
        let got = &response.body.network_interface_id;
        if !got.is_empty() && *got != request.network_interface_id {
            return Err(CloudError::InvalidResponse {
                action: DescribeNetworkInterfaceAttribute::ACTION,
                request_id: response.request_id,
                reason: format!(
                    "asked for {} but the answer describes {got}",
                    request.network_interface_id
                ),
            });
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::ecs::EniStatus;

    /// The "Success response" JSON example of the API reference page
    /// (`src/cloud/testdata/README.md` says where it comes from).
    fn documented_example() -> &'static str {
        include_str!("../testdata/DescribeNetworkInterfaceAttribute.example.json")
    }

    #[test]
    fn the_documented_example_parses_with_every_field() {
        let ni: NetworkInterface =
            serde_json::from_str(documented_example()).expect("documented example parses");
        assert_eq!(ni.creation_time, "2019-12-25T12:31:31Z");
        assert_eq!(ni.vpc_id, "vpc-bp67acfmxazb4p****");
        assert_eq!(ni.kind, "Secondary");
        assert_eq!(ni.status, EniStatus::Available);
        assert_eq!(ni.network_interface_traffic_mode, "Standard");
        assert_eq!(ni.network_interface_name, "my-eni-name");
        assert_eq!(ni.mac_address, "00:16:3e:12:**:**");
        assert_eq!(ni.queue_pair_number, Some(22));
        assert_eq!(ni.network_interface_id, "eni-bp125p95hhdhn3ot****");
        assert_eq!(ni.service_id, Some(12_345_678_910));
        assert_eq!(ni.instance_id, "i-bp1e2l6djkndyuli****");
        assert_eq!(ni.owner_id, "123456****");
        assert_eq!(ni.service_managed, Some(true));
        assert_eq!(ni.vswitch_id, "vsw-bp1s5fnvk4gn2tws0****");
        assert_eq!(ni.description, "testDescription");
        assert_eq!(ni.resource_group_id, "rg-bp67acfmxazb4p****");
        assert_eq!(ni.zone_id, "cn-hangzhou-g");
        assert_eq!(ni.private_ip_address, "10.1.**.**");
        assert_eq!(ni.queue_number, Some(8));
        assert_eq!(ni.security_group_ids.items, ["sg-bp18kz60mefsicfg****"]);
        assert_eq!(
            ni.associated_public_ip
                .as_ref()
                .map(|p| p.public_ip_address.as_str()),
            Some("116.62.**.**")
        );
        let att = ni.attachment.as_ref().expect("attachment");
        assert_eq!(
            (att.device_index, att.network_card_index),
            (Some(0), Some(0))
        );
        assert_eq!(att.member_network_interface_ids.items, ["hide"]);
        assert_eq!(ni.private_ip_sets.items.len(), 1);
        assert_eq!(ni.private_ip_sets.items[0].primary, Some(true));
        assert_eq!(
            ni.ipv6_addresses().collect::<Vec<_>>(),
            ["2001:db8:1234:1a00::****"]
        );
        assert_eq!(ni.ipv4_prefixes().collect::<Vec<_>>(), ["192.168.**.0/28"]);
        assert_eq!(
            ni.ipv6_prefixes().collect::<Vec<_>>(),
            ["2001:db8:1234:1a00:****::/80"]
        );
        assert_eq!(ni.tags.items[0].tag_key, "TestKey");
        let bond = ni.bond_interface_specification.as_ref().expect("bond");
        assert_eq!(bond.slave_interface_specification.items.len(), 1);
        assert_eq!(
            ni.slave_interface_specification
                .as_ref()
                .map(|s| s.work_state.as_str()),
            Some("null")
        );
        assert_eq!(ni.delete_on_release, Some(true));
        assert_eq!(ni.tcp_option_address_enabled.as_deref(), Some("null"));
        let traffic = ni
            .network_interface_traffic_config
            .as_ref()
            .expect("traffic config");
        assert_eq!(traffic.queue_pair_number, Some(8));
        let ct = ni
            .connection_tracking_configuration
            .as_ref()
            .expect("conntrack");
        assert_eq!(
            (
                ct.tcp_established_timeout,
                ct.tcp_closed_and_time_wait_timeout,
                ct.udp_timeout
            ),
            (Some(910), Some(3), Some(30))
        );
        assert_eq!(ni.source_dest_check, Some(false));
        assert_eq!(
            ni.enhanced_network.as_ref().and_then(|e| e.enable_rss),
            Some(true)
        );
        let qos = ni.qos_config.as_ref().expect("qos");
        assert_eq!(qos.enable_qos, Some(false));
        assert_eq!(
            qos.qos.as_ref().and_then(|q| q.concurrent_connections),
            Some(50000)
        );
    }

    #[test]
    fn absent_fields_are_tolerated_and_unknown_ones_ignored() {
        let ni: NetworkInterface =
            serde_json::from_str(r#"{"RequestId":"r","NetworkInterfaceId":"eni-1","SomethingNew":{"x":[1]},"QueueNumber":"4"}"#)
                .expect("minimal");
        assert_eq!(ni.network_interface_id, "eni-1");
        assert_eq!(ni.status, EniStatus::Unknown);
        assert_eq!(ni.queue_number, Some(4));
        assert!(ni.attachment.is_none() && ni.private_ip_sets.items.is_empty());
    }

    #[test]
    fn wrong_types_in_acted_on_fields_are_errors() {
        let err = serde_json::from_str::<NetworkInterface>(r#"{"QueueNumber":"many"}"#)
            .expect_err("bad number");
        assert!(err.to_string().contains("many"), "{err}");
        assert!(
            serde_json::from_str::<NetworkInterface>(r#"{"PrivateIpSets":{"PrivateIpSet":"x"}}"#)
                .is_err()
        );
    }

    #[test]
    fn primary_and_secondary_addresses() {
        let ni: NetworkInterface = serde_json::from_str(
            r#"{"PrivateIpAddress":"10.0.0.5","PrivateIpSets":{"PrivateIpSet":[
                {"PrivateIpAddress":"10.0.0.5","Primary":true},
                {"PrivateIpAddress":"10.0.0.6","Primary":false},
                {"PrivateIpAddress":"10.0.0.7"}]}}"#,
        )
        .expect("valid");
        assert_eq!(ni.primary_ip(), Some("10.0.0.5"));
        assert_eq!(
            ni.secondary_ips().collect::<Vec<_>>(),
            ["10.0.0.6", "10.0.0.7"]
        );
    }

    #[test]
    fn params_name_the_attribute_only_when_set() {
        let mut r = DescribeNetworkInterfaceAttribute::new("eni-1");
        assert_eq!(r.params().pairs().len(), 1);
        r.attribute = Some("connectionTrackingConfiguration".into());
        assert_eq!(
            r.params().get("Attribute"),
            Some("connectionTrackingConfiguration")
        );
    }
}
