//! The metadata tree of one emulated instance (paths and value formats of
//! the Alibaba Cloud "instance metadata" document): instance keys,
//! `network/interfaces/macs/<mac>/…` for ENIs whose metadata is visible,
//! `public-keys/<id>/openssh-key` and `ram/security-credentials/<role>`;
//! beside `meta-data/` the instance's `user-data` and `vendor-data`, and
//! `meta-data/all`, the whole tree (credentials left out) as one JSON
//! document with the same string leaves.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::credentials;
use crate::model::State;
use crate::settings::MetadataSettings;

/// Marker leaf replaced by freshly issued credentials when read.
const CREDENTIALS_LEAF: &str = "\u{0}credentials";

fn s(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

/// Builds the `meta-data` tree of instance `instance_id`.
fn meta_data(st: &State, instance_id: &str) -> Value {
    let mut root = Map::new();
    let Some(inst) = st.instances.get(instance_id) else {
        return Value::Object(root);
    };
    let vsw = st.vswitches.get(&inst.vswitch_id);
    let vpc = vsw.and_then(|v| st.vpcs.get(&v.vpc_id));
    let primary = st
        .enis
        .values()
        .find(|e| e.eni_type == "Primary" && e.instance_id.as_deref() == Some(inst.id.as_str()));
    root.insert("instance-id".into(), s(&inst.id));
    root.insert("region-id".into(), s(&inst.region_id));
    root.insert("hostname".into(), s(&inst.hostname));
    root.insert("serial-number".into(), s(&inst.serial_number));
    root.insert("owner-account-id".into(), s(&st.account_id));
    root.insert("image-id".into(), s(&inst.image_id));
    root.insert("network-type".into(), s("vpc"));
    root.insert(
        "source-address".into(),
        s("http://mirrors.cloud.aliyuncs.com"),
    );
    root.insert(
        "instance".into(),
        json!({
            "instance-name": inst.name,
            "instance-type": inst.instance_type,
            "max-netbw-egress": "1024000",
        }),
    );
    root.insert(
        "dns-conf".into(),
        json!({"nameservers": "100.100.2.136\n100.100.2.138"}),
    );
    root.insert(
        "ntp-conf".into(),
        json!({"ntp-servers": "ntp.cloud.aliyuncs.com\nntp7.cloud.aliyuncs.com"}),
    );
    if let Some(v) = vsw {
        root.insert("zone-id".into(), s(&v.zone_id));
        root.insert("vswitch-id".into(), s(&v.id));
        root.insert("vswitch-cidr-block".into(), s(v.cidr));
        root.insert("vpc-id".into(), s(&v.vpc_id));
    }
    if let Some(vpc) = vpc {
        root.insert("vpc-cidr-block".into(), s(vpc.cidr));
    }
    if let Some(p) = primary {
        root.insert("mac".into(), s(&p.mac));
        root.insert("private-ipv4".into(), s(p.primary_ip));
    }
    let mut macs = Map::new();
    for eni in st.enis.values() {
        if eni.instance_id.as_deref() != Some(inst.id.as_str()) {
            continue;
        }
        let Some(m) = &eni.metadata else {
            continue;
        };
        let Some(v) = st.vswitches.get(&m.vswitch_id) else {
            continue;
        };
        let mut e = Map::new();
        e.insert("network-interface-id".into(), s(&m.id));
        e.insert("vpc-id".into(), s(&v.vpc_id));
        e.insert("vswitch-id".into(), s(&v.id));
        e.insert("primary-ip-address".into(), s(m.primary_ip));
        let ips: Vec<String> = m.private_ips.iter().map(ToString::to_string).collect();
        e.insert(
            "private-ipv4s".into(),
            s(serde_json::to_string(&ips).unwrap_or_else(|_| "[]".into())),
        );
        e.insert("netmask".into(), s(v.cidr.netmask()));
        e.insert("gateway".into(), s(v.cidr.gateway()));
        e.insert("vswitch-cidr-block".into(), s(v.cidr));
        if let Some(vpc) = st.vpcs.get(&v.vpc_id) {
            e.insert("vpc-cidr-block".into(), s(vpc.cidr));
            if let Some(c6) = vpc.ipv6_cidr {
                e.insert("vpc-ipv6-cidr-blocks".into(), s(format!("[{c6}]")));
            }
        }
        // The document shows one plain CIDR (`192.168.XX.XX/28`); several
        // are one a line, like every other multi-valued leaf.
        if !m.ipv4_prefixes.is_empty() {
            e.insert("ipv4-prefixes".into(), s(m.ipv4_prefixes.join("\n")));
        }
        if let Some(c6) = v.ipv6_cidr {
            e.insert("ipv6-gateway".into(), s(c6.gateway()));
            e.insert("vswitch-ipv6-cidr-block".into(), s(c6));
        }
        if !m.ipv6s.is_empty() {
            let v6: Vec<String> = m.ipv6s.iter().map(ToString::to_string).collect();
            e.insert("ipv6s".into(), s(format!("[{}]", v6.join(","))));
        }
        if !m.ipv6_prefixes.is_empty() {
            e.insert("ipv6-prefixes".into(), s(m.ipv6_prefixes.join("\n")));
        }
        macs.insert(eni.mac.clone(), Value::Object(e));
    }
    root.insert(
        "network".into(),
        json!({"interfaces": {"macs": Value::Object(macs)}}),
    );
    if !inst.key_pairs.is_empty() {
        let keys: Map<String, Value> = inst
            .key_pairs
            .iter()
            .map(|(id, key)| (id.clone(), json!({"openssh-key": key.trim()})))
            .collect();
        root.insert("public-keys".into(), Value::Object(keys));
    }
    if let Some(role) = &inst.ram_role {
        root.insert(
            "ram".into(),
            json!({"security-credentials": {role.clone(): CREDENTIALS_LEAF}}),
        );
    }
    Value::Object(root)
}

/// Renders a directory listing: one entry per line, `/` after
/// sub-directories, no trailing newline.
fn listing(map: &Map<String, Value>) -> String {
    map.iter()
        .map(|(k, v)| {
            if v.is_object() {
                format!("{k}/")
            } else {
                k.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The body for `/<version>/<segments…>`, or `None` (404).
pub fn lookup(
    st: &mut State,
    instance_id: &str,
    cfg: &MetadataSettings,
    segments: &[&str],
    now: SystemTime,
) -> Option<String> {
    let inst = st.instances.get(instance_id);
    let user_data = inst.and_then(|i| i.user_data.clone());
    let vendor_data = inst.and_then(|i| i.vendor_data.clone());
    let (first, rest) = match segments.split_first() {
        None => {
            let mut entries = vec!["meta-data/"];
            entries.extend(user_data.as_ref().map(|_| "user-data"));
            entries.extend(vendor_data.as_ref().map(|_| "vendor-data"));
            return Some(entries.join("\n"));
        }
        Some(split) => split,
    };
    match (*first, rest) {
        ("user-data", []) => return user_data,
        ("vendor-data", []) => return vendor_data,
        ("meta-data", _) => {}
        _ => return None,
    }
    let tree = meta_data(st, instance_id);
    if rest == ["all"] {
        let mut all = tree;
        if let Some(map) = all.as_object_mut() {
            map.remove("ram");
        }
        return serde_json::to_string_pretty(&all).ok();
    }
    let mut node = &tree;
    for seg in rest {
        node = node.as_object()?.get(*seg)?;
    }
    match node {
        Value::Object(map) => Some(listing(map)),
        Value::String(v) if v == CREDENTIALS_LEAF => {
            let role = rest.last()?;
            let c = credentials::current(st, role, cfg, now);
            Some(serde_json::to_string_pretty(&credentials::document(&c)).unwrap_or_default())
        }
        Value::String(v) => Some(v.clone()),
        _ => None,
    }
}
