//! Turns a [`Scenario`] into model state: validates references and
//! addresses, allocates what the scenario leaves open (MACs, IPs, prefixes).
//! Used at start-up and by the control API's seed endpoint.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use super::net::{Net4, Net6};
use super::{Eni, EniStatus, Instance, State, VSwitch, Vpc};
use crate::scenario::{EniSpec, Scenario};
use crate::util;

/// A scenario that does not describe a consistent account.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A reference to something that does not exist.
    #[error("{what} {id:?} refers to unknown {target} {target_id:?}")]
    UnknownRef {
        /// Kind of the referring object.
        what: &'static str,
        /// Its id.
        id: String,
        /// Kind of the referenced object.
        target: &'static str,
        /// Referenced id.
        target_id: String,
    },
    /// A malformed or impossible value.
    #[error("{what} {id:?}: {problem}")]
    Invalid {
        /// Kind of the object.
        what: &'static str,
        /// Its id.
        id: String,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(what: &'static str, id: &str, problem: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        what,
        id: id.to_string(),
        problem: problem.into(),
    }
}

impl State {
    /// Builds a fresh state from a scenario.
    pub fn from_scenario(s: &Scenario) -> Result<State, ScenarioError> {
        let region = s
            .region_id
            .clone()
            .unwrap_or_else(|| "cn-hangzhou".to_string());
        let mut st = State {
            region_id: region.clone(),
            regions: vec![region],
            account_id: s
                .account_id
                .clone()
                .unwrap_or_else(|| "1234567890123456".to_string()),
            max_enis: s.max_enis.unwrap_or(100),
            ..State::default()
        };
        st.seed(s)?;
        st.metadata_instance_id = match &s.metadata_instance_id {
            Some(id) => id.clone(),
            None => st.instances.keys().next().cloned().unwrap_or_default(),
        };
        if !st.metadata_instance_id.is_empty()
            && !st.instances.contains_key(&st.metadata_instance_id)
        {
            return Err(ScenarioError::UnknownRef {
                what: "scenario",
                id: "metadata_instance_id".into(),
                target: "instance",
                target_id: st.metadata_instance_id.clone(),
            });
        }
        Ok(st)
    }

    /// Adds the resources of `s` (a complete scenario or a seed fragment).
    /// On error nothing is changed.
    pub fn seed(&mut self, s: &Scenario) -> Result<(), ScenarioError> {
        let mut next = self.clone();
        next.seed_into(s)?;
        *self = next;
        Ok(())
    }

    fn seed_into(&mut self, s: &Scenario) -> Result<(), ScenarioError> {
        for r in &s.regions {
            if !self.regions.contains(r) {
                self.regions.push(r.clone());
            }
        }
        if let Some(m) = s.max_enis {
            self.max_enis = m;
        }
        self.not_support_ram_actions
            .extend(s.not_support_ram_actions.iter().cloned());
        for k in &s.access_keys {
            self.access_keys.insert(k.id.clone(), k.clone());
        }
        for r in &s.ram_roles {
            self.ram_roles.insert(r.name.clone(), r.clone());
        }
        for t in &s.instance_types {
            self.instance_types.insert(t.name.clone(), t.clone());
        }
        for v in &s.vpcs {
            let cidr = Net4::parse(&v.cidr).ok_or_else(|| invalid("vpc", &v.id, "bad cidr"))?;
            let ipv6_cidr = match &v.ipv6_cidr {
                Some(c) => {
                    Some(Net6::parse(c).ok_or_else(|| invalid("vpc", &v.id, "bad ipv6_cidr"))?)
                }
                None => None,
            };
            self.vpcs.insert(
                v.id.clone(),
                Vpc {
                    id: v.id.clone(),
                    cidr,
                    ipv6_cidr,
                },
            );
        }
        for v in &s.vswitches {
            if !self.vpcs.contains_key(&v.vpc_id) {
                return Err(unknown("vswitch", &v.id, "vpc", &v.vpc_id));
            }
            let cidr = Net4::parse(&v.cidr).ok_or_else(|| invalid("vswitch", &v.id, "bad cidr"))?;
            let ipv6_cidr = match &v.ipv6_cidr {
                Some(c) => {
                    Some(Net6::parse(c).ok_or_else(|| invalid("vswitch", &v.id, "bad ipv6_cidr"))?)
                }
                None => None,
            };
            let region_id = v
                .region_id
                .clone()
                .unwrap_or_else(|| self.region_id.clone());
            if !self.regions.contains(&region_id) {
                self.regions.push(region_id.clone());
            }
            self.vswitches.insert(
                v.id.clone(),
                VSwitch {
                    id: v.id.clone(),
                    vpc_id: v.vpc_id.clone(),
                    zone_id: v.zone_id.clone(),
                    region_id,
                    cidr,
                    ipv6_cidr,
                },
            );
        }
        for g in &s.security_groups {
            if !self.vpcs.contains_key(&g.vpc_id) {
                return Err(unknown("security group", &g.id, "vpc", &g.vpc_id));
            }
            self.security_groups.insert(g.id.clone(), g.vpc_id.clone());
        }
        for i in &s.instances {
            if !self.instance_types.contains_key(&i.instance_type) {
                return Err(unknown(
                    "instance",
                    &i.id,
                    "instance type",
                    &i.instance_type,
                ));
            }
            let vsw = self
                .vswitches
                .get(&i.vswitch_id)
                .ok_or_else(|| unknown("instance", &i.id, "vswitch", &i.vswitch_id))?;
            if let Some(role) = &i.ram_role {
                if !self.ram_roles.contains_key(role) {
                    return Err(unknown("instance", &i.id, "ram role", role));
                }
            }
            super::instance_data::check_key_pairs(&i.key_pairs)
                .map_err(|problem| invalid("instance", &i.id, problem))?;
            let region_id = i.region_id.clone().unwrap_or_else(|| vsw.region_id.clone());
            if !self.regions.contains(&region_id) {
                self.regions.push(region_id.clone());
            }
            self.instances.insert(
                i.id.clone(),
                Instance {
                    id: i.id.clone(),
                    instance_type: i.instance_type.clone(),
                    status: i.status.clone(),
                    vswitch_id: i.vswitch_id.clone(),
                    region_id,
                    name: i.name.clone().unwrap_or_else(|| i.id.clone()),
                    hostname: i
                        .hostname
                        .clone()
                        .unwrap_or_else(|| format!("iZ{}Z", i.id.trim_start_matches("i-"))),
                    image_id: i
                        .image_id
                        .clone()
                        .unwrap_or_else(|| "aliyun_3_x64_20G_alibase_20240819.vhd".into()),
                    ram_role: i.ram_role.clone(),
                    serial_number: util::request_id().to_lowercase(),
                    key_pairs: i.key_pairs.clone(),
                    user_data: i.user_data.clone(),
                    vendor_data: i.vendor_data.clone(),
                },
            );
        }
        for e in &s.enis {
            let eni = self.build_eni(e)?;
            self.enis.insert(eni.id.clone(), eni);
        }
        Ok(())
    }

    fn build_eni(&mut self, e: &EniSpec) -> Result<Eni, ScenarioError> {
        if !e.id.starts_with("eni-") {
            return Err(invalid("eni", &e.id, "ids start with eni-"));
        }
        if self.enis.contains_key(&e.id) {
            return Err(invalid("eni", &e.id, "duplicate id"));
        }
        let vsw = self
            .vswitches
            .get(&e.vswitch_id)
            .cloned()
            .ok_or_else(|| unknown("eni", &e.id, "vswitch", &e.vswitch_id))?;
        for g in &e.security_group_ids {
            if !self.security_groups.contains_key(g) {
                return Err(unknown("eni", &e.id, "security group", g));
            }
        }
        let eni_type = e.eni_type.clone().unwrap_or_else(|| "Secondary".into());
        if eni_type != "Primary" && eni_type != "Secondary" {
            return Err(invalid("eni", &e.id, "type is Primary or Secondary"));
        }
        if let Some(inst) = &e.instance_id {
            let i = self
                .instances
                .get(inst)
                .ok_or_else(|| unknown("eni", &e.id, "instance", inst))?;
            if eni_type == "Primary" && i.vswitch_id != e.vswitch_id {
                return Err(invalid(
                    "eni",
                    &e.id,
                    "a primary ENI is in its instance's vswitch",
                ));
            }
        } else if eni_type == "Primary" {
            return Err(invalid("eni", &e.id, "a primary ENI needs instance_id"));
        }
        let mut v4: Vec<Ipv4Addr> = Vec::new();
        let parse4 = |s: &str| -> Result<Ipv4Addr, ScenarioError> {
            let ip: Ipv4Addr = s
                .parse()
                .map_err(|_| invalid("eni", &e.id, format!("bad IPv4 {s}")))?;
            if !vsw.cidr.usable(ip) {
                return Err(invalid(
                    "eni",
                    &e.id,
                    format!("{ip} not usable in {}", vsw.cidr),
                ));
            }
            Ok(ip)
        };
        let primary_ip = match &e.primary_ip {
            Some(s) => parse4(s)?,
            None => self
                .alloc_ipv4(&vsw, &v4)
                .ok_or_else(|| invalid("eni", &e.id, "vswitch full"))?,
        };
        v4.push(primary_ip);
        for s in &e.secondary_ips {
            v4.push(parse4(s)?);
        }
        for _ in 0..e.secondary_ip_count {
            let ip = self
                .alloc_ipv4(&vsw, &v4)
                .ok_or_else(|| invalid("eni", &e.id, "vswitch full"))?;
            v4.push(ip);
        }
        for ip in &v4 {
            if self.ipv4_used(&vsw.id, *ip) {
                return Err(invalid("eni", &e.id, format!("{ip} already in use")));
            }
        }
        let mut p4 = Vec::new();
        for s in &e.ipv4_prefixes {
            let p =
                Net4::parse(s).ok_or_else(|| invalid("eni", &e.id, format!("bad prefix {s}")))?;
            if !vsw.cidr.contains(p.addr) || p.len != 28 {
                return Err(invalid(
                    "eni",
                    &e.id,
                    format!("{s} is not a /28 of the vswitch"),
                ));
            }
            p4.push(p);
        }
        for _ in 0..e.ipv4_prefix_count {
            let p = self
                .alloc_ipv4_prefix(&vsw, &p4)
                .ok_or_else(|| invalid("eni", &e.id, "vswitch full"))?;
            p4.push(p);
        }
        let mut v6: Vec<Ipv6Addr> = Vec::new();
        if (!e.ipv6s.is_empty() || e.ipv6_count > 0 || !e.ipv6_prefixes.is_empty())
            && vsw.ipv6_cidr.is_none()
        {
            return Err(invalid("eni", &e.id, "IPv6 on a vswitch without ipv6_cidr"));
        }
        for s in &e.ipv6s {
            let ip: Ipv6Addr = s
                .parse()
                .map_err(|_| invalid("eni", &e.id, format!("bad IPv6 {s}")))?;
            if !vsw.ipv6_cidr.is_some_and(|n| n.contains(ip)) {
                return Err(invalid("eni", &e.id, format!("{ip} outside the vswitch")));
            }
            v6.push(ip);
        }
        for _ in 0..e.ipv6_count {
            let ip = self
                .alloc_ipv6(&vsw, &v6)
                .ok_or_else(|| invalid("eni", &e.id, "vswitch full"))?;
            v6.push(ip);
        }
        let mut p6 = Vec::new();
        for s in &e.ipv6_prefixes {
            p6.push(
                Net6::parse(s).ok_or_else(|| invalid("eni", &e.id, format!("bad prefix {s}")))?,
            );
        }
        let mac = match &e.mac {
            Some(m) => {
                let ok = m.len() == 17
                    && m.split(':').count() == 6
                    && m.split(':')
                        .all(|o| o.len() == 2 && u8::from_str_radix(o, 16).is_ok());
                if !ok {
                    return Err(invalid("eni", &e.id, format!("bad mac {m}")));
                }
                m.to_lowercase()
            }
            None => self.alloc_mac(),
        };
        let attached = e.instance_id.is_some();
        let device_index = if attached {
            let inst = e.instance_id.as_deref().unwrap_or_default();
            Some(if eni_type == "Primary" {
                0
            } else {
                self.next_device_index(inst)
            })
        } else {
            None
        };
        let seq = self.take_seq();
        let eni = Eni {
            id: e.id.clone(),
            seq,
            region_id: vsw.region_id.clone(),
            vswitch_id: vsw.id.clone(),
            vpc_id: vsw.vpc_id.clone(),
            zone_id: vsw.zone_id.clone(),
            mac,
            primary_ip,
            secondary_ips: v4[1..].to_vec(),
            ipv6s: v6,
            ipv4_prefixes: p4,
            ipv6_prefixes: p6,
            queue_number: e.queue_number,
            eni_type,
            status: if attached {
                EniStatus::InUse
            } else {
                EniStatus::Available
            },
            instance_id: e.instance_id.clone(),
            device_index,
            network_card_index: None,
            name: e.name.clone().unwrap_or_default(),
            description: e.description.clone().unwrap_or_default(),
            tags: e.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            security_group_ids: e.security_group_ids.clone(),
            service_managed: e.service_managed,
            traffic_mode: e.traffic_mode.clone().unwrap_or_else(|| "Standard".into()),
            enable_rss: e.enable_rss,
            resource_group_id: e.resource_group_id.clone().unwrap_or_default(),
            creation_time: util::format_time(SystemTime::now()),
            delete_on_release: true,
            generation: 0,
            metadata: None,
            link_present: false,
        };
        let mut eni = eni;
        if attached {
            eni.metadata = Some(eni.meta_snapshot());
        }
        Ok(eni)
    }

    /// The lowest device index not used on `instance`.
    pub fn next_device_index(&self, instance: &str) -> u32 {
        (0..)
            .find(|i| {
                !self
                    .enis
                    .values()
                    .any(|e| e.occupies(instance) && e.device_index == Some(*i))
            })
            .unwrap_or(0)
    }
}

fn unknown(what: &'static str, id: &str, target: &'static str, target_id: &str) -> ScenarioError {
    ScenarioError::UnknownRef {
        what,
        id: id.to_string(),
        target,
        target_id: target_id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn default_scenario_builds() {
        let st = State::from_scenario(&Scenario::builtin()).expect("consistent scenario");
        assert_eq!(st.metadata_instance_id, "i-emu0instance0001");
        let primary = &st.enis["eni-emu0primary0001"];
        assert_eq!(primary.status, EniStatus::InUse);
        assert!(primary.metadata.is_some());
        assert_eq!(st.enis["eni-emu0secondary001"].status, EniStatus::Available);
    }

    #[test]
    fn bad_references_are_reported() {
        let mut s = Scenario::builtin();
        s.enis[1].vswitch_id = "vsw-nope".into();
        let err = State::from_scenario(&s).expect_err("unknown vswitch");
        assert!(err.to_string().contains("vsw-nope"), "{err}");
    }
}
