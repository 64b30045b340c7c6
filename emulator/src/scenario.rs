//! The scenario: what the emulated account holds when the emulator starts
//! (access keys, instance types, VPCs, vSwitches, security groups, instances,
//! ENIs) plus the initial [`Settings`]. Read from a TOML file
//! (`serve --scenario FILE`), or the built-in `scenarios/default.toml`; the
//! control API's `/_emulator/seed` accepts the same structure as JSON to add
//! resources at run time. See `emulator/README.md` for the format.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// The built-in default scenario (also the format's reference example).
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.toml");

/// A complete or partial (seed) account description.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// The region the API and the emulated instance live in.
    pub region_id: Option<String>,
    /// Other regions that exist (resources may be placed there).
    pub regions: Vec<String>,
    /// The account id (`OwnerId`, `owner-account-id`).
    pub account_id: Option<String>,
    /// The instance the metadata service and hot-plug emulate (default: the
    /// first instance).
    pub metadata_instance_id: Option<String>,
    /// Account quota of ENIs (`MaxEniCountExceeded` on create beyond it).
    pub max_enis: Option<usize>,
    /// Actions that RAM users and roles may never call
    /// (`Forbidden.NotSupportRAM`).
    pub not_support_ram_actions: Vec<String>,
    /// API credentials.
    pub access_keys: Vec<AccessKeySpec>,
    /// RAM roles that instances may carry.
    pub ram_roles: Vec<RamRoleSpec>,
    /// Instance types and their ENI limits.
    pub instance_types: Vec<InstanceTypeSpec>,
    /// VPCs.
    pub vpcs: Vec<VpcSpec>,
    /// vSwitches.
    pub vswitches: Vec<VSwitchSpec>,
    /// Security groups.
    pub security_groups: Vec<SecurityGroupSpec>,
    /// Instances.
    pub instances: Vec<InstanceSpec>,
    /// ENIs (primary ENIs included).
    pub enis: Vec<EniSpec>,
    /// Initial run-time settings.
    pub settings: Option<Settings>,
}

impl Scenario {
    /// Parses a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Scenario, toml::de::Error> {
        toml::from_str(text)
    }

    /// The built-in default scenario.
    pub fn builtin() -> Scenario {
        // The built-in file is checked by a unit test; an error here is a
        // build defect, reported as an empty scenario rather than a panic.
        Scenario::from_toml(DEFAULT_SCENARIO).unwrap_or_default()
    }
}

/// Who an access key belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// The account owner: every action is allowed.
    #[default]
    Root,
    /// A RAM user: limited to `allowed_actions`.
    RamUser,
}

/// State of the account behind a key (for account-level error codes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountStatus {
    /// Normal account.
    #[default]
    Normal,
    /// `Abs.InvalidAccount.NotFound` on every call.
    NotFound,
    /// `InvalidUserType.NotSupported` on every call.
    UnsupportedType,
}

fn yes() -> bool {
    true
}

/// An API access key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeySpec {
    /// AccessKeyId.
    pub id: String,
    /// AccessKeySecret.
    pub secret: String,
    /// Owner or RAM user.
    #[serde(default)]
    pub kind: KeyKind,
    /// For RAM users: the actions the user may call (`None`: all).
    #[serde(default)]
    pub allowed_actions: Option<Vec<String>>,
    /// Account state.
    #[serde(default)]
    pub account_status: AccountStatus,
    /// `false`: `InvalidAccessKeyId.Inactive`.
    #[serde(default = "yes")]
    pub active: bool,
}

/// A RAM role whose credentials the metadata service hands out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RamRoleSpec {
    /// Role name.
    pub name: String,
    /// Actions the role may call (`None`: all).
    #[serde(default)]
    pub allowed_actions: Option<Vec<String>>,
}

/// An instance type and its network limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceTypeSpec {
    /// e.g. `ecs.g7.large`.
    pub name: String,
    /// ENIs per instance, the primary included.
    pub eni_quantity: u32,
    /// Private IPv4 addresses per ENI.
    pub ipv4_per_eni: u32,
    /// IPv6 addresses per ENI.
    pub ipv6_per_eni: u32,
    /// Number of network cards (0: the type has no network-card concept).
    #[serde(default)]
    pub network_cards: u32,
    /// `false`: ENIs attach and detach only while the instance is Stopped.
    #[serde(default = "yes")]
    pub hotplug: bool,
    /// Maximum queues of one ENI.
    pub max_queues_per_eni: u32,
    /// Maximum queues of all ENIs of an instance.
    pub total_queues: u32,
    /// Default queue count of the primary ENI.
    pub primary_queue_number: u32,
    /// Default queue count of a secondary ENI.
    pub secondary_queue_number: u32,
    /// Supports RSS on ENIs.
    #[serde(default = "yes")]
    pub rss: bool,
    /// Supports the HighPerformance (eRDMA) traffic mode.
    #[serde(default)]
    pub erdma: bool,
}

/// A VPC.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcSpec {
    /// `vpc-…`.
    pub id: String,
    /// IPv4 CIDR.
    pub cidr: String,
    /// IPv6 CIDR (`/56`), if IPv6 is enabled.
    #[serde(default)]
    pub ipv6_cidr: Option<String>,
}

/// A vSwitch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VSwitchSpec {
    /// `vsw-…`.
    pub id: String,
    /// Its VPC.
    pub vpc_id: String,
    /// Its zone.
    pub zone_id: String,
    /// IPv4 CIDR.
    pub cidr: String,
    /// IPv6 CIDR (`/64`), if IPv6 is enabled.
    #[serde(default)]
    pub ipv6_cidr: Option<String>,
    /// Region (default: the scenario's region).
    #[serde(default)]
    pub region_id: Option<String>,
}

/// A security group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupSpec {
    /// `sg-…`.
    pub id: String,
    /// Its VPC.
    pub vpc_id: String,
}

/// An instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// `i-…`.
    pub id: String,
    /// Instance type name.
    pub instance_type: String,
    /// The vSwitch of its primary ENI.
    pub vswitch_id: String,
    /// `Running`, `Stopped`, `Starting`, `Stopping`, `Pending`.
    #[serde(default = "running")]
    pub status: String,
    /// Instance name.
    #[serde(default)]
    pub name: Option<String>,
    /// Host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Image id.
    #[serde(default)]
    pub image_id: Option<String>,
    /// RAM role attached to the instance.
    #[serde(default)]
    pub ram_role: Option<String>,
    /// Region (default: the scenario's region).
    #[serde(default)]
    pub region_id: Option<String>,
    /// Key pairs of the instance: key pair id → OpenSSH public key line
    /// (metadata `public-keys/<id>/openssh-key`).
    #[serde(default)]
    pub key_pairs: BTreeMap<String, String>,
    /// User data (metadata `user-data`; 404 when absent).
    #[serde(default)]
    pub user_data: Option<String>,
    /// Vendor data (metadata `vendor-data`; 404 when absent).
    #[serde(default)]
    pub vendor_data: Option<String>,
}

fn running() -> String {
    "Running".to_string()
}

/// An ENI.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EniSpec {
    /// `eni-…`.
    pub id: String,
    /// Its vSwitch.
    pub vswitch_id: String,
    /// MAC (generated `00:16:3e:…` when absent).
    pub mac: Option<String>,
    /// Primary private IPv4 (allocated when absent).
    pub primary_ip: Option<String>,
    /// Secondary private IPv4 addresses.
    pub secondary_ips: Vec<String>,
    /// Number of further secondary IPv4 addresses to allocate.
    pub secondary_ip_count: u32,
    /// IPv6 addresses.
    pub ipv6s: Vec<String>,
    /// Number of IPv6 addresses to allocate.
    pub ipv6_count: u32,
    /// IPv4 prefixes (`a.b.c.d/28`).
    pub ipv4_prefixes: Vec<String>,
    /// Number of IPv4 /28 prefixes to allocate.
    pub ipv4_prefix_count: u32,
    /// IPv6 prefixes (`…/80`).
    pub ipv6_prefixes: Vec<String>,
    /// Explicit queue count.
    pub queue_number: Option<u32>,
    /// `Primary` or `Secondary` (default).
    #[serde(rename = "type")]
    pub eni_type: Option<String>,
    /// Instance it is attached to (`InUse`); primary ENIs must have one.
    pub instance_id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Security groups.
    pub security_group_ids: Vec<String>,
    /// Managed by another cloud service.
    pub service_managed: bool,
    /// `Standard` (default) or `HighPerformance`.
    pub traffic_mode: Option<String>,
    /// RSS enabled on the ENI.
    pub enable_rss: bool,
    /// Resource group.
    pub resource_group_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scenario_parses() {
        let s = Scenario::from_toml(DEFAULT_SCENARIO).expect("default scenario is valid TOML");
        assert!(!s.instances.is_empty());
        assert!(s.enis.len() >= 5);
    }
}
