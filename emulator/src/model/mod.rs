//! The emulated account: instances, ENIs, networks, credentials and the
//! bookkeeping the API needs (nonces, idempotency tokens, metadata tokens).
//! Everything lives in one [`State`] behind a mutex in [`crate::Emulator`];
//! nothing here awaits, so the lock is only ever held briefly.

mod build;
pub mod instance_data;
pub mod net;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use serde::Serialize;

pub use self::build::ScenarioError;
use self::net::{Net4, Net6};
use crate::scenario::{AccessKeySpec, InstanceTypeSpec, RamRoleSpec};
use crate::util;

/// ENI status values (DescribeNetworkInterfaces `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EniStatus {
    /// Being created.
    Creating,
    /// Not attached.
    Available,
    /// Attach in progress.
    Attaching,
    /// Attached.
    InUse,
    /// Detach in progress.
    Detaching,
    /// Delete in progress.
    Deleting,
}

impl EniStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EniStatus::Creating => "Creating",
            EniStatus::Available => "Available",
            EniStatus::Attaching => "Attaching",
            EniStatus::InUse => "InUse",
            EniStatus::Detaching => "Detaching",
            EniStatus::Deleting => "Deleting",
        }
    }
}

/// A vSwitch.
#[derive(Debug, Clone, Serialize)]
pub struct VSwitch {
    /// Id.
    pub id: String,
    /// VPC id.
    pub vpc_id: String,
    /// Zone id.
    pub zone_id: String,
    /// Region id.
    pub region_id: String,
    /// IPv4 CIDR.
    #[serde(serialize_with = "display")]
    pub cidr: Net4,
    /// IPv6 CIDR.
    #[serde(serialize_with = "display_opt")]
    pub ipv6_cidr: Option<Net6>,
}

/// A VPC.
#[derive(Debug, Clone, Serialize)]
pub struct Vpc {
    /// Id.
    pub id: String,
    /// IPv4 CIDR.
    #[serde(serialize_with = "display")]
    pub cidr: Net4,
    /// IPv6 CIDR.
    #[serde(serialize_with = "display_opt")]
    pub ipv6_cidr: Option<Net6>,
}

/// An instance.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    /// Id.
    pub id: String,
    /// Instance type name.
    pub instance_type: String,
    /// Status (`Running`, `Stopped`, …).
    pub status: String,
    /// vSwitch of the primary ENI.
    pub vswitch_id: String,
    /// Region.
    pub region_id: String,
    /// Name.
    pub name: String,
    /// Host name.
    pub hostname: String,
    /// Image.
    pub image_id: String,
    /// RAM role.
    pub ram_role: Option<String>,
    /// Serial number.
    pub serial_number: String,
    /// Key pairs (id → OpenSSH public key), `public-keys/` in metadata.
    pub key_pairs: BTreeMap<String, String>,
    /// User data served at `user-data` (404 when `None`).
    pub user_data: Option<String>,
    /// Vendor data served at `vendor-data` (404 when `None`).
    pub vendor_data: Option<String>,
}

/// An ENI with its runtime state.
#[derive(Debug, Clone, Serialize)]
pub struct Eni {
    /// Id.
    pub id: String,
    /// Creation order (list order of DescribeNetworkInterfaces).
    pub seq: u64,
    /// Region.
    pub region_id: String,
    /// vSwitch.
    pub vswitch_id: String,
    /// VPC.
    pub vpc_id: String,
    /// Zone.
    pub zone_id: String,
    /// MAC, `00:16:3e:xx:xx:xx`.
    pub mac: String,
    /// Primary private IPv4.
    pub primary_ip: Ipv4Addr,
    /// Secondary private IPv4 addresses.
    pub secondary_ips: Vec<Ipv4Addr>,
    /// IPv6 addresses.
    pub ipv6s: Vec<Ipv6Addr>,
    /// IPv4 prefixes.
    #[serde(serialize_with = "display_vec")]
    pub ipv4_prefixes: Vec<Net4>,
    /// IPv6 prefixes.
    #[serde(serialize_with = "display_vec")]
    pub ipv6_prefixes: Vec<Net6>,
    /// Explicitly set queue count (`None`: the type's default).
    pub queue_number: Option<u32>,
    /// `Primary` or `Secondary`.
    pub eni_type: String,
    /// Status.
    pub status: EniStatus,
    /// Attached (or attaching/detaching) instance.
    pub instance_id: Option<String>,
    /// Device index on the instance.
    pub device_index: Option<u32>,
    /// Network card index given at attach.
    pub network_card_index: Option<u32>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Tags (key, value) in insertion order.
    pub tags: Vec<(String, String)>,
    /// Security groups.
    pub security_group_ids: Vec<String>,
    /// Managed by another cloud service.
    pub service_managed: bool,
    /// `Standard` or `HighPerformance`.
    pub traffic_mode: String,
    /// RSS enabled.
    pub enable_rss: bool,
    /// Resource group.
    pub resource_group_id: String,
    /// Creation time.
    pub creation_time: String,
    /// Retained on instance release?
    pub delete_on_release: bool,
    /// Bumped by every state change; timers carry the value they were
    /// scheduled under and do nothing if it moved on.
    pub generation: u64,
    /// What the metadata service shows for this ENI (`None`: not listed).
    pub metadata: Option<MetaEni>,
    /// Whether the hot-plugged link exists (or is being created).
    pub link_present: bool,
}

/// The per-MAC view of an ENI the metadata service serves. It is a snapshot
/// refreshed after the configured lag, so metadata can trail the API.
#[derive(Debug, Clone, Serialize)]
pub struct MetaEni {
    /// ENI id.
    pub id: String,
    /// vSwitch.
    pub vswitch_id: String,
    /// Primary IPv4.
    pub primary_ip: Ipv4Addr,
    /// All private IPv4 (primary first).
    pub private_ips: Vec<Ipv4Addr>,
    /// IPv6 addresses.
    pub ipv6s: Vec<Ipv6Addr>,
    /// IPv4 prefixes.
    pub ipv4_prefixes: Vec<String>,
    /// IPv6 prefixes.
    pub ipv6_prefixes: Vec<String>,
}

impl Eni {
    /// The metadata snapshot of the current state.
    pub fn meta_snapshot(&self) -> MetaEni {
        let mut private_ips = vec![self.primary_ip];
        private_ips.extend(self.secondary_ips.iter().copied());
        MetaEni {
            id: self.id.clone(),
            vswitch_id: self.vswitch_id.clone(),
            primary_ip: self.primary_ip,
            private_ips,
            ipv6s: self.ipv6s.clone(),
            ipv4_prefixes: self.ipv4_prefixes.iter().map(ToString::to_string).collect(),
            ipv6_prefixes: self.ipv6_prefixes.iter().map(ToString::to_string).collect(),
        }
    }

    /// Whether the ENI counts as attached to `instance` for limits.
    pub fn occupies(&self, instance: &str) -> bool {
        self.instance_id.as_deref() == Some(instance)
            && matches!(
                self.status,
                EniStatus::Attaching | EniStatus::InUse | EniStatus::Detaching
            )
    }
}

/// Temporary (STS) credentials issued by the metadata service.
#[derive(Debug, Clone, Serialize)]
pub struct StsCredential {
    /// `STS.…`.
    pub access_key_id: String,
    /// Secret.
    pub secret: String,
    /// Security token.
    pub token: String,
    /// Role that owns it.
    pub role: String,
    /// Issue time.
    #[serde(skip)]
    pub issued: SystemTime,
    /// Expiry.
    #[serde(skip)]
    pub expires: SystemTime,
}

/// A remembered `ClientToken` request.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    /// Action name.
    pub action: String,
    /// Business parameters (signature and common parameters excluded).
    pub fingerprint: Vec<(String, String)>,
    /// The original successful answer.
    pub response: serde_json::Value,
}

/// The whole emulated account.
#[derive(Debug, Default, Clone)]
pub struct State {
    /// The region the API serves.
    pub region_id: String,
    /// All existing regions (the API's included).
    pub regions: Vec<String>,
    /// Account id.
    pub account_id: String,
    /// Instance emulated by the metadata service and hot-plug.
    pub metadata_instance_id: String,
    /// ENI quota of the account.
    pub max_enis: usize,
    /// Actions RAM identities may never call.
    pub not_support_ram_actions: Vec<String>,
    /// Long-term access keys by id.
    pub access_keys: BTreeMap<String, AccessKeySpec>,
    /// RAM roles by name.
    pub ram_roles: BTreeMap<String, RamRoleSpec>,
    /// STS credentials by AccessKeyId (expired ones are kept so they can be
    /// reported as expired).
    pub sts: BTreeMap<String, StsCredential>,
    /// Current credentials per role.
    pub role_current: BTreeMap<String, String>,
    /// Instance types by name.
    pub instance_types: BTreeMap<String, InstanceTypeSpec>,
    /// VPCs by id.
    pub vpcs: BTreeMap<String, Vpc>,
    /// vSwitches by id.
    pub vswitches: BTreeMap<String, VSwitch>,
    /// Security group id → VPC id.
    pub security_groups: BTreeMap<String, String>,
    /// Instances by id.
    pub instances: BTreeMap<String, Instance>,
    /// ENIs by id.
    pub enis: BTreeMap<String, Eni>,
    /// Used signature nonces: (key id, nonce) → first use.
    pub nonces: HashMap<(String, String), SystemTime>,
    /// ClientToken → first answer.
    pub idempotency: HashMap<String, IdempotencyRecord>,
    /// Metadata tokens → expiry.
    pub metadata_tokens: HashMap<String, SystemTime>,
    /// Next ENI sequence number.
    pub next_seq: u64,
}

impl State {
    /// The ENI `id`, if it exists in `region`.
    pub fn eni_in(&self, id: &str, region: &str) -> Option<&Eni> {
        self.enis.get(id).filter(|e| e.region_id == region)
    }

    /// Whether `ip` is used by any ENI (address or prefix) of `vswitch`.
    pub fn ipv4_used(&self, vswitch: &str, ip: Ipv4Addr) -> bool {
        self.enis
            .values()
            .filter(|e| e.vswitch_id == vswitch)
            .any(|e| {
                e.primary_ip == ip
                    || e.secondary_ips.contains(&ip)
                    || e.ipv4_prefixes.iter().any(|p| p.contains(ip))
            })
    }

    /// Whether `ip` is used by any ENI of `vswitch`.
    pub fn ipv6_used(&self, vswitch: &str, ip: Ipv6Addr) -> bool {
        self.enis
            .values()
            .filter(|e| e.vswitch_id == vswitch)
            .any(|e| e.ipv6s.contains(&ip) || e.ipv6_prefixes.iter().any(|p| p.contains(ip)))
    }

    /// Whether `p` overlaps anything used in `vswitch`.
    pub fn ipv6_prefix_used(&self, vswitch: &str, p: &Net6) -> bool {
        self.enis
            .values()
            .filter(|e| e.vswitch_id == vswitch)
            .any(|e| {
                e.ipv6s.iter().any(|ip| p.contains(*ip))
                    || e.ipv6_prefixes
                        .iter()
                        .any(|q| q.contains(p.addr) || p.contains(q.addr))
            })
    }

    /// A free IPv4 address in `vswitch`, avoiding `extra` too.
    pub fn alloc_ipv4(&self, vswitch: &VSwitch, extra: &[Ipv4Addr]) -> Option<Ipv4Addr> {
        net::alloc4(&vswitch.cidr, |ip| {
            extra.contains(&ip) || self.ipv4_used(&vswitch.id, ip)
        })
    }

    /// A free /28 in `vswitch`, avoiding `extra` too.
    pub fn alloc_ipv4_prefix(&self, vswitch: &VSwitch, extra: &[Net4]) -> Option<Net4> {
        net::alloc4_prefix(&vswitch.cidr, |ip| {
            extra.iter().any(|p| p.contains(ip)) || self.ipv4_used(&vswitch.id, ip)
        })
    }

    /// A free IPv6 address in `vswitch`, avoiding `extra` too.
    pub fn alloc_ipv6(&self, vswitch: &VSwitch, extra: &[Ipv6Addr]) -> Option<Ipv6Addr> {
        let net = vswitch.ipv6_cidr?;
        net::alloc6(&net, |ip| {
            extra.contains(&ip) || self.ipv6_used(&vswitch.id, ip)
        })
    }

    /// A free IPv6 /80 in `vswitch`, avoiding `extra` too.
    pub fn alloc_ipv6_prefix(&self, vswitch: &VSwitch, extra: &[Net6]) -> Option<Net6> {
        let net = vswitch.ipv6_cidr?;
        net::alloc6_prefix(&net, |p| {
            extra
                .iter()
                .any(|q| q.contains(p.addr) || p.contains(q.addr))
                || self.ipv6_prefix_used(&vswitch.id, p)
        })
    }

    /// A MAC address not used by any ENI.
    pub fn alloc_mac(&self) -> String {
        loop {
            let b = util::random_bytes::<3>();
            let mac = format!("00:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]);
            if !self.enis.values().any(|e| e.mac == mac) {
                return mac;
            }
        }
    }

    /// Effective queue count of an ENI (explicit, or the type's default when
    /// attached to an instance).
    pub fn effective_queue_number(&self, eni: &Eni) -> Option<u32> {
        if eni.queue_number.is_some() {
            return eni.queue_number;
        }
        let inst = self.instances.get(eni.instance_id.as_deref()?)?;
        let ty = self.instance_types.get(&inst.instance_type)?;
        Some(if eni.eni_type == "Primary" {
            ty.primary_queue_number
        } else {
            ty.secondary_queue_number
        })
    }

    /// The instance type of `instance`.
    pub fn instance_type_of(&self, instance: &Instance) -> Option<&InstanceTypeSpec> {
        self.instance_types.get(&instance.instance_type)
    }

    /// Next ENI sequence number.
    pub fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display_opt<T: std::fmt::Display, S: serde::Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

fn display_vec<T: std::fmt::Display, S: serde::Serializer>(
    v: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}
