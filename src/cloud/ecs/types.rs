//! The network interface as DescribeNetworkInterfaceAttribute and
//! DescribeNetworkInterfaces return it: every response field the API reference
//! documents for DescribeNetworkInterfaceAttribute (its example answer is in
//! `src/cloud/testdata/`). List fields are wrapped
//! the RPC way (`{"PrivateIpSets": {"PrivateIpSet": [...]}}`).

use serde::Deserialize;

use super::lenient;

/// ENI status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EniStatus {
    Available,
    Attaching,
    InUse,
    Detaching,
    Deleting,
    Creating,
    CreateFailed,
    /// Absent from the response.
    #[default]
    Unknown,
    /// A value this version does not know.
    Other(String),
}

impl EniStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Available => "Available",
            Self::Attaching => "Attaching",
            Self::InUse => "InUse",
            Self::Detaching => "Detaching",
            Self::Deleting => "Deleting",
            Self::Creating => "Creating",
            Self::CreateFailed => "CreateFailed",
            Self::Unknown => "",
            Self::Other(s) => s,
        }
    }
}

impl std::fmt::Display for EniStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if *self == Self::Unknown {
            "(none)"
        } else {
            self.as_str()
        })
    }
}

impl<'de> Deserialize<'de> for EniStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        Ok(match s.as_str() {
            "Available" => Self::Available,
            "Attaching" => Self::Attaching,
            "InUse" => Self::InUse,
            "Detaching" => Self::Detaching,
            "Deleting" => Self::Deleting,
            "Creating" => Self::Creating,
            "CreateFailed" => Self::CreateFailed,
            "" => Self::Unknown,
            _ => Self::Other(s),
        })
    }
}

/// One network interface.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkInterface {
    pub network_interface_id: String,
    pub status: EniStatus,
    /// `Primary`, `Secondary`, `Trunk` or `Member`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub vpc_id: String,
    #[serde(rename = "VSwitchId")]
    pub vswitch_id: String,
    pub zone_id: String,
    pub private_ip_address: String,
    pub mac_address: String,
    pub network_interface_name: String,
    pub description: String,
    pub instance_id: String,
    pub creation_time: String,
    pub resource_group_id: String,
    pub owner_id: String,
    #[serde(rename = "ServiceID", deserialize_with = "lenient::opt_u64")]
    pub service_id: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub service_managed: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub queue_number: Option<u32>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub queue_pair_number: Option<u32>,
    pub network_interface_traffic_mode: String,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub delete_on_release: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub source_dest_check: Option<bool>,
    pub tcp_option_address_enabled: Option<String>,
    pub security_group_ids: SecurityGroupIds,
    pub private_ip_sets: PrivateIpSets,
    pub ipv6_sets: Ipv6Sets,
    pub ipv4_prefix_sets: Ipv4PrefixSets,
    pub ipv6_prefix_sets: Ipv6PrefixSets,
    pub tags: Tags,
    pub associated_public_ip: Option<AssociatedPublicIp>,
    pub attachment: Option<Attachment>,
    pub bond_interface_specification: Option<BondInterfaceSpecification>,
    pub slave_interface_specification: Option<SlaveInterfaceSpecification>,
    pub connection_tracking_configuration: Option<ConnectionTrackingConfiguration>,
    pub enhanced_network: Option<EnhancedNetwork>,
    #[serde(rename = "QoSConfig")]
    pub qos_config: Option<QosConfig>,
    pub network_interface_traffic_config: Option<NetworkInterfaceTrafficConfig>,
}

impl NetworkInterface {
    /// The primary private IPv4: `PrivateIpAddress`, else the set entry
    /// marked `Primary`.
    pub fn primary_ip(&self) -> Option<&str> {
        if !self.private_ip_address.is_empty() {
            return Some(&self.private_ip_address);
        }
        self.private_ip_sets
            .items
            .iter()
            .find(|p| p.primary == Some(true))
            .map(|p| p.private_ip_address.as_str())
    }

    /// Secondary private IPv4s (set entries not marked primary and not equal
    /// to the primary address).
    pub fn secondary_ips(&self) -> impl Iterator<Item = &str> {
        let primary = self.primary_ip().map(str::to_owned);
        self.private_ip_sets
            .items
            .iter()
            .filter(move |p| {
                p.primary != Some(true) && Some(&p.private_ip_address) != primary.as_ref()
            })
            .map(|p| p.private_ip_address.as_str())
    }

    pub fn ipv6_addresses(&self) -> impl Iterator<Item = &str> {
        self.ipv6_sets.items.iter().map(|s| s.ipv6_address.as_str())
    }

    pub fn ipv4_prefixes(&self) -> impl Iterator<Item = &str> {
        self.ipv4_prefix_sets
            .items
            .iter()
            .map(|s| s.ipv4_prefix.as_str())
    }

    pub fn ipv6_prefixes(&self) -> impl Iterator<Item = &str> {
        self.ipv6_prefix_sets
            .items
            .iter()
            .map(|s| s.ipv6_prefix.as_str())
    }

    /// The instance it is attached to: `InstanceId`, else `Attachment.InstanceId`.
    pub fn attached_instance(&self) -> Option<&str> {
        Some(self.instance_id.as_str())
            .filter(|s| !s.is_empty())
            .or_else(|| {
                self.attachment
                    .as_ref()
                    .map(|a| a.instance_id.as_str())
                    .filter(|s| !s.is_empty())
            })
    }
}

/// Declares `Outer { Inner: [Item] }` wrappers.
macro_rules! wrapped_list {
    ($(#[$m:meta])* $outer:ident, $inner:literal, $item:ty) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(default)]
        pub struct $outer {
            #[serde(rename = $inner)]
            pub items: Vec<$item>,
        }
    };
}

wrapped_list!(SecurityGroupIds, "SecurityGroupId", String);
wrapped_list!(PrivateIpSets, "PrivateIpSet", PrivateIpSet);
wrapped_list!(Ipv6Sets, "Ipv6Set", Ipv6Set);
wrapped_list!(Ipv4PrefixSets, "Ipv4PrefixSet", Ipv4PrefixSet);
wrapped_list!(Ipv6PrefixSets, "Ipv6PrefixSet", Ipv6PrefixSet);
wrapped_list!(Tags, "Tag", Tag);
wrapped_list!(
    MemberNetworkInterfaceIds,
    "MemberNetworkInterfaceId",
    String
);
wrapped_list!(
    SlaveInterfaceSpecificationSets,
    "SlaveInterfaceSpecificationSet",
    SlaveInterfaceSpecification
);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PrivateIpSet {
    pub private_ip_address: String,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub primary: Option<bool>,
    pub associated_public_ip: Option<AssociatedPublicIp>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipv6Set {
    pub ipv6_address: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipv4PrefixSet {
    pub ipv4_prefix: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipv6PrefixSet {
    pub ipv6_prefix: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Tag {
    pub tag_key: String,
    pub tag_value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AssociatedPublicIp {
    pub public_ip_address: String,
    pub allocation_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Attachment {
    pub instance_id: String,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub device_index: Option<u32>,
    pub trunk_network_interface_id: String,
    pub member_network_interface_ids: MemberNetworkInterfaceIds,
    /// Absent when the ENI is Available or no index was given at attach.
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub network_card_index: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BondInterfaceSpecification {
    pub bond_mode: String,
    pub slave_interface_specification: SlaveInterfaceSpecificationSets,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SlaveInterfaceSpecification {
    pub slave_network_interface_id: String,
    pub work_state: String,
    pub bond_network_interface_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConnectionTrackingConfiguration {
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub tcp_established_timeout: Option<u32>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub tcp_closed_and_time_wait_timeout: Option<u32>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub udp_timeout: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EnhancedNetwork {
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub enable_sriov: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub enable_rss: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub virtual_function_total_queue_number: Option<u32>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub virtual_function_quantity: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct QosConfig {
    #[serde(rename = "EnableQoS", deserialize_with = "lenient::opt_bool")]
    pub enable_qos: Option<bool>,
    #[serde(rename = "QoS")]
    pub qos: Option<Qos>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Qos {
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub bandwidth_tx: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub bandwidth_rx: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub pps_tx: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub pps_rx: Option<u64>,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub concurrent_connections: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkInterfaceTrafficConfig {
    pub network_interface_traffic_mode: String,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub queue_number: Option<u32>,
    #[serde(deserialize_with = "lenient::opt_u32")]
    pub queue_pair_number: Option<u32>,
}
