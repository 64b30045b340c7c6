//! Validation of the planner's inputs, before anything is applied.
//!
//! Every check reports the field it failed on; all problems are collected so
//! one run shows everything that needs fixing.

use std::net::IpAddr;

use super::error::{FieldError, Problem};
use super::facts::{EniFacts, SubnetFacts};
use super::net::{IpNet, netmask_len, non_unicast_kind};
use super::options::EniOptions;

/// The largest channel count accepted from the API or the config.
pub const MAX_QUEUES: u32 = 2048;

/// Allowed IPv4 prefix lengths of a vSwitch (ECS: /16../29; anything wider
/// than /8 would pull a large part of the Internet into the ENI's table).
const V4_SUBNET_LEN: (u8, u8) = (8, 30);
/// Allowed IPv6 prefix lengths of a vSwitch.
const V6_SUBNET_LEN: (u8, u8) = (16, 127);
/// Allowed lengths of a delegated IPv4 prefix.
const V4_PREFIX_LEN: (u8, u8) = (8, 32);
/// Allowed lengths of a delegated IPv6 prefix.
const V6_PREFIX_LEN: (u8, u8) = (16, 128);

/// The subnets a valid input resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Subnets {
    /// The vSwitch IPv4 CIDR (network address).
    pub v4: IpNet,
    /// The vSwitch IPv6 CIDR (network address), if any.
    pub v6: Option<IpNet>,
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, problem: Problem) {
        self.0.push(FieldError {
            field: field.into(),
            problem,
        });
    }
}

/// Checks everything; returns the resolved subnets or every problem found.
pub(super) fn validate(
    eni: &EniFacts,
    subnet: &SubnetFacts,
    options: &EniOptions,
) -> Result<Subnets, Vec<FieldError>> {
    let mut errs = Errors::default();

    if eni.mac.is_multicast() {
        errs.push(
            "eni.mac",
            Problem::BadMac {
                mac: eni.mac,
                kind: "multicast",
            },
        );
    } else if eni.mac.is_zero() {
        errs.push(
            "eni.mac",
            Problem::BadMac {
                mac: eni.mac,
                kind: "zero",
            },
        );
    }

    let v4 = subnet_v4(eni, subnet, &mut errs);
    let v6 = subnet.vswitch_ipv6_cidr.and_then(|c| {
        let (min, max) = V6_SUBNET_LEN;
        check_net(&mut errs, "subnet.vswitch_ipv6_cidr", &c, false, min, max)
            .then(|| c.network())
            .filter(|n| unicast_net(&mut errs, "subnet.vswitch_ipv6_cidr", n))
    });
    if let (Some(net), Some(vpc)) = (v4, subnet.vpc_cidr) {
        if !vpc.is_ipv4() || !vpc.len_is_valid() || !vpc.contains_net(&net) {
            let field = if subnet.vswitch_cidr.is_some() {
                "subnet.vswitch_cidr"
            } else {
                "subnet.netmask"
            };
            errs.push(field, Problem::OutsideVpc { cidr: net, vpc });
        }
    }

    // Addresses: inside the vSwitch, no duplicates.
    let mut seen: Vec<(String, IpAddr)> = Vec::new();
    for (field, addr) in eni.addresses() {
        if let Some(kind) = non_unicast_kind(addr) {
            errs.push(
                &field,
                Problem::NotUnicast {
                    value: addr.to_string(),
                    kind,
                },
            );
            continue;
        }
        let cidr = if addr.is_ipv4() { v4 } else { v6 };
        // The IPv4 subnet's own network and broadcast addresses are no hosts.
        if let Some(c) = cidr.filter(|c| c.is_ipv4() && c.prefix_len <= 30) {
            if c.contains(addr) && (addr == c.network().addr || addr == c.broadcast()) {
                errs.push(&field, Problem::SubnetEdge { addr, cidr: c });
            }
        }
        if let Some(cidr) = cidr.filter(|c| !c.contains(addr)) {
            errs.push(
                &field,
                Problem::OutsideSubnet {
                    addr: addr.to_string(),
                    cidr,
                },
            );
        }
        if let Some((other, _)) = seen.iter().find(|(_, a)| *a == addr) {
            errs.push(
                &field,
                Problem::Duplicate {
                    addr: addr.to_string(),
                    other_field: other.clone(),
                },
            );
        }
        seen.push((field, addr));
    }

    // Delegated prefixes: right family, sane length, inside the vSwitch, no overlap.
    let mut seen_nets: Vec<(String, IpNet)> = Vec::new();
    let prefixes = eni
        .ipv4_prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("eni.ipv4_prefixes[{i}]"), *p, true))
        .chain(
            eni.ipv6_prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("eni.ipv6_prefixes[{i}]"), *p, false)),
        );
    for (field, net, want_v4) in prefixes {
        let (min, max) = if want_v4 {
            V4_PREFIX_LEN
        } else {
            V6_PREFIX_LEN
        };
        if !check_net(&mut errs, &field, &net, want_v4, min, max)
            || !unicast_net(&mut errs, &field, &net.network())
        {
            continue;
        }
        let cidr = if want_v4 { v4 } else { v6 };
        if let Some(cidr) = cidr.filter(|c| !c.contains_net(&net)) {
            errs.push(
                &field,
                Problem::OutsideSubnet {
                    addr: net.to_string(),
                    cidr,
                },
            );
        }
        if let Some((other, _)) = seen.iter().find(|(_, a)| net.contains(*a)) {
            errs.push(
                &field,
                Problem::Duplicate {
                    addr: net.to_string(),
                    other_field: other.clone(),
                },
            );
        } else if let Some((other, _)) = seen_nets
            .iter()
            .find(|(_, n)| n.contains_net(&net) || net.contains_net(n))
        {
            errs.push(
                &field,
                Problem::Duplicate {
                    addr: net.to_string(),
                    other_field: other.clone(),
                },
            );
        }
        seen_nets.push((field, net));
    }

    // Gateways.
    let gw = IpAddr::V4(subnet.gateway);
    if let Some(kind) = non_unicast_kind(gw) {
        errs.push(
            "subnet.gateway",
            Problem::NotUnicast {
                value: gw.to_string(),
                kind,
            },
        );
    }
    if let Some(cidr) = v4.filter(|c| !c.contains(gw)) {
        errs.push(
            "subnet.gateway",
            Problem::GatewayOutsideSubnet { gateway: gw, cidr },
        );
    }
    if let Some((other, _)) = seen.iter().find(|(_, a)| *a == gw) {
        errs.push(
            "subnet.gateway",
            Problem::Duplicate {
                addr: gw.to_string(),
                other_field: other.clone(),
            },
        );
    }
    let has_v6 = !eni.ipv6.is_empty() || !eni.ipv6_prefixes.is_empty();
    match subnet.ipv6_gateway {
        None if has_v6 => errs.push("subnet.ipv6_gateway", Problem::MissingIpv6Gateway),
        Some(g) => {
            let g = IpAddr::V6(g);
            let link_local = matches!(g, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
            if let Some(kind) = non_unicast_kind(g).filter(|_| !link_local) {
                errs.push(
                    "subnet.ipv6_gateway",
                    Problem::NotUnicast {
                        value: g.to_string(),
                        kind,
                    },
                );
            }
            if let Some(cidr) = v6.filter(|c| !link_local && !c.contains(g)) {
                errs.push(
                    "subnet.ipv6_gateway",
                    Problem::GatewayOutsideSubnet { gateway: g, cidr },
                );
            }
            if let Some((other, _)) = seen.iter().find(|(_, a)| *a == g) {
                errs.push(
                    "subnet.ipv6_gateway",
                    Problem::Duplicate {
                        addr: g.to_string(),
                        other_field: other.clone(),
                    },
                );
            }
        }
        None => {}
    }
    if !eni.ipv6.is_empty() && subnet.vswitch_ipv6_cidr.is_none() {
        errs.push("subnet.vswitch_ipv6_cidr", Problem::MissingIpv6Cidr);
    }

    // Knobs.
    if let Some(q) = eni.queue_number.filter(|q| !(1..=MAX_QUEUES).contains(q)) {
        errs.push("eni.queue_number", Problem::QueueNumber(q));
    }
    if let Some(q) = options.queues.filter(|q| !(1..=MAX_QUEUES).contains(q)) {
        errs.push("options.queues", Problem::QueueNumber(q));
    }
    if let Some(mtu) = options.mtu {
        let min = if has_v6 { 1280 } else { 68 };
        if !(min..=65535).contains(&mtu) {
            errs.push("options.mtu", Problem::Mtu { mtu, min });
        }
    }
    if let Some(t) = options.table.filter(|t| matches!(t, 0 | 253..=255)) {
        errs.push("options.table", Problem::ReservedTable(t));
    }

    match (errs.0.is_empty(), v4) {
        (true, Some(v4)) => Ok(Subnets { v4, v6 }),
        _ => Err(errs.0),
    }
}

/// The vSwitch IPv4 CIDR from the CIDR or, failing that, the netmask.
fn subnet_v4(eni: &EniFacts, subnet: &SubnetFacts, errs: &mut Errors) -> Option<IpNet> {
    let (min, max) = V4_SUBNET_LEN;
    if let Some(c) = subnet.vswitch_cidr {
        return check_net(errs, "subnet.vswitch_cidr", &c, true, min, max)
            .then(|| c.network())
            .filter(|n| unicast_net(errs, "subnet.vswitch_cidr", n));
    }
    let Some(mask) = subnet.netmask else {
        errs.push("subnet.vswitch_cidr", Problem::MissingSubnet);
        return None;
    };
    match netmask_len(mask) {
        None => {
            errs.push("subnet.netmask", Problem::BadNetmask(mask));
            None
        }
        Some(len) if !(min..=max).contains(&len) => {
            errs.push(
                "subnet.netmask",
                Problem::PrefixLength {
                    value: mask.to_string(),
                    len,
                    min,
                    max,
                },
            );
            None
        }
        Some(len) => Some(IpNet::new(eni.primary_ipv4, len).network())
            .filter(|n| unicast_net(errs, "subnet.netmask", n)),
    }
}

/// Family and length checks of one prefix; false if it is unusable.
fn check_net(errs: &mut Errors, field: &str, net: &IpNet, want_v4: bool, min: u8, max: u8) -> bool {
    if net.is_ipv4() != want_v4 {
        let fam = if want_v4 {
            "an IPv4 prefix"
        } else {
            "an IPv6 prefix"
        };
        errs.push(field, Problem::WrongFamily(net.to_string(), fam));
        return false;
    }
    if !(min..=max).contains(&net.prefix_len) {
        errs.push(
            field,
            Problem::PrefixLength {
                value: net.to_string(),
                len: net.prefix_len,
                min,
                max,
            },
        );
        return false;
    }
    true
}

/// Whether the network `net` (host bits cleared) is unicast space; reports it if not.
fn unicast_net(errs: &mut Errors, field: &str, net: &IpNet) -> bool {
    match non_unicast_kind(net.addr) {
        // A prefix may start at the unspecified address only when it is the
        // whole space, which the length checks refuse already.
        Some(kind) if !(kind == "unspecified" && net.prefix_len == 0) => {
            errs.push(
                field,
                Problem::NotUnicast {
                    value: net.to_string(),
                    kind,
                },
            );
            false
        }
        _ => true,
    }
}
