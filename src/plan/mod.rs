//! The planner: a pure function from an ENI's facts to the kernel state its
//! NIC should have.
//!
//! [`plan`] validates the inputs (every problem names its field), then builds
//! a [`Plan`]: link settings, addresses with `noprefixroute`, the ENI's own
//! routing table, the three-tier rule layout of nm-cloud-setup and sysctls.
//! Its `Display` reads like the equivalent `ip`/`sysctl`/`ethtool` commands
//! (this backs `eni-agent plan`).
//!
//! The rule layout, per address family, with `T` the ENI's table:
//!
//! ```text
//! 20100: from <each ENI address or prefix> lookup T suppress_prefixlength 0
//! 20200: lookup main suppress_prefixlength 0
//! 20300: from <each ENI address or prefix> lookup T
//! ```
//!
//! One table holds both the subnet routes and the default route: the
//! `suppress_prefixlength 0` on the first tier hides the default route there,
//! which gives exactly nm-cloud-setup's "subnet table, main without defaults,
//! default table" order with a single table number per ENI.

mod desired;
mod display;
mod error;
mod facts;
mod net;
mod options;
mod validate;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use desired::{
    AddressSpec, IPV6_DEFAULT_METRIC, Plan, ROUTE_PROTOCOL, RULE_PRIORITY_DEFAULT,
    RULE_PRIORITY_MAIN, RULE_PRIORITY_SUBNET, RouteSpec, RuleSpec, Scope, SysctlKey, SysctlSpec,
    TABLE_MAIN,
};
pub use display::WithDev;
pub use error::{FieldError, PlanError, Problem};
pub use facts::{EniFacts, EniType, SubnetFacts};
pub use net::{IpNet, MacAddr, ParseMacError, ParseNetError, netmask_len};
pub use options::{EniOptions, SysctlSwitches};
pub use validate::MAX_QUEUES;

/// Base of the main-table default route metric when `default_route = true`;
/// the ENI's table number is added, so two ENIs never collide (the kernel
/// refuses a second default route with the same metric). Worse than any usual
/// primary NIC metric (0, 100 or 1024).
pub const DEFAULT_ROUTE_METRIC_BASE: u32 = 2000;

/// Builds the desired state of the ENI's NIC.
///
/// `table` is the ENI's allocated routing table (see `crate::tables`);
/// `options.table` wins over it. Nothing is applied here.
pub fn plan(
    eni: &EniFacts,
    subnet: &SubnetFacts,
    options: &EniOptions,
    table: u32,
) -> Result<Plan, PlanError> {
    if eni.eni_type == EniType::Primary {
        return Err(PlanError::PrimaryEni {
            eni_id: eni.eni_id.clone(),
        });
    }
    let nets = validate::validate(eni, subnet, options).map_err(|errors| PlanError::Invalid {
        eni_id: eni.eni_id.clone(),
        errors,
    })?;
    let table = options.table.unwrap_or(table);
    let primary = IpAddr::V4(eni.primary_ipv4);
    let first_v6 = eni.ipv6.first().map(|a| IpAddr::V6(*a));
    let has_v6 = !eni.ipv6.is_empty() || !eni.ipv6_prefixes.is_empty();

    let mut sysctls = Vec::new();
    let sw = &options.sysctl;
    if sw.rp_filter {
        sysctls.push(SysctlSpec {
            key: SysctlKey::RpFilter,
            value: 2,
        });
    }
    if sw.arp {
        sysctls.push(SysctlSpec {
            key: SysctlKey::ArpIgnore,
            value: 1,
        });
        sysctls.push(SysctlSpec {
            key: SysctlKey::ArpAnnounce,
            value: 2,
        });
    }
    if sw.accept_ra {
        sysctls.push(SysctlSpec {
            key: SysctlKey::AcceptRa,
            value: 0,
        });
    }
    // After accept_ra=0, so IPv6 never comes up accepting router adverts.
    if !eni.ipv6.is_empty() {
        sysctls.push(SysctlSpec {
            key: SysctlKey::DisableIpv6,
            value: 0,
        });
    }

    let mut addresses = vec![AddressSpec {
        addr: primary,
        prefix_len: nets.v4.prefix_len,
    }];
    addresses.extend(eni.secondary_ipv4.iter().map(|a| AddressSpec {
        addr: IpAddr::V4(*a),
        prefix_len: 32,
    }));
    let v6_len = nets.v6.map_or(128, |n| n.prefix_len);
    addresses.extend(eni.ipv6.iter().map(|a| AddressSpec {
        addr: IpAddr::V6(*a),
        prefix_len: v6_len,
    }));

    let default_v4 = IpNet::new(std::net::Ipv4Addr::UNSPECIFIED, 0);
    let default_v6 = IpNet::new(std::net::Ipv6Addr::UNSPECIFIED, 0);
    let mut routes = vec![
        RouteSpec {
            table,
            dst: nets.v4,
            gateway: None,
            pref_src: Some(primary),
            metric: 0,
            scope: Scope::Link,
            onlink: false,
        },
        RouteSpec {
            table,
            dst: default_v4,
            gateway: Some(IpAddr::V4(subnet.gateway)),
            pref_src: Some(primary),
            metric: 0,
            scope: Scope::Universe,
            onlink: false,
        },
    ];
    let gw6 = subnet.ipv6_gateway.filter(|_| has_v6).map(IpAddr::V6);
    if let (Some(cidr6), true) = (nets.v6, has_v6) {
        routes.push(RouteSpec {
            table,
            dst: cidr6,
            gateway: None,
            pref_src: first_v6,
            metric: IPV6_DEFAULT_METRIC,
            scope: Scope::Universe,
            onlink: false,
        });
    }
    if let Some(gw6) = gw6 {
        routes.push(RouteSpec {
            table,
            dst: default_v6,
            gateway: Some(gw6),
            pref_src: first_v6,
            metric: IPV6_DEFAULT_METRIC,
            scope: Scope::Universe,
            // Without the vSwitch IPv6 CIDR there is no subnet route to resolve it.
            onlink: nets.v6.is_none(),
        });
    }
    if options.default_route {
        let metric = options
            .default_route_metric
            .unwrap_or_else(|| DEFAULT_ROUTE_METRIC_BASE.saturating_add(table));
        routes.push(RouteSpec {
            table: TABLE_MAIN,
            dst: default_v4,
            gateway: Some(IpAddr::V4(subnet.gateway)),
            pref_src: Some(primary),
            metric,
            scope: Scope::Universe,
            onlink: true,
        });
        if let Some(gw6) = gw6 {
            routes.push(RouteSpec {
                table: TABLE_MAIN,
                dst: default_v6,
                gateway: Some(gw6),
                pref_src: first_v6,
                metric,
                scope: Scope::Universe,
                onlink: true,
            });
        }
    }

    let sources: Vec<IpNet> = eni
        .addresses()
        .into_iter()
        .map(|(_, a)| IpNet::host(a))
        .chain(eni.ipv4_prefixes.iter().map(IpNet::network))
        .chain(eni.ipv6_prefixes.iter().map(IpNet::network))
        .collect();
    let tier = |priority, suppress| {
        sources.iter().map(move |src| RuleSpec {
            priority,
            ipv6: !src.is_ipv4(),
            src: Some(*src),
            table,
            suppress_prefixlen: suppress,
        })
    };
    let mut rules: Vec<RuleSpec> = tier(RULE_PRIORITY_SUBNET, Some(0)).collect();
    for ipv6 in [false, true] {
        if sources.iter().any(|s| s.is_ipv4() != ipv6) {
            rules.push(RuleSpec {
                priority: RULE_PRIORITY_MAIN,
                ipv6,
                src: None,
                table: TABLE_MAIN,
                suppress_prefixlen: Some(0),
            });
        }
    }
    rules.extend(tier(RULE_PRIORITY_DEFAULT, None));

    Ok(Plan {
        eni_id: eni.eni_id.clone(),
        mac: eni.mac,
        network_card_index: eni.network_card_index,
        table,
        mtu: options.mtu,
        sysctls,
        queues: options.queues.or(eni.queue_number),
        addresses,
        routes,
        rules,
    })
}

/// `ip address <verb> ...` for logs and errors.
pub(crate) fn display_addr_cmd(verb: &str, a: &AddressSpec, dev: &str) -> String {
    display::AddrCmd(verb, a, dev).to_string()
}

/// `ip route <verb> ...` for logs and errors.
pub(crate) fn display_route_cmd(verb: &str, r: &RouteSpec, dev: &str) -> String {
    display::RouteCmd(verb, r, dev).to_string()
}

/// `ip rule <verb> ...` for logs and errors.
pub(crate) fn display_rule_cmd(verb: &str, r: &RuleSpec) -> String {
    display::RuleCmd(verb, r).to_string()
}

/// `sysctl -w ...` for logs and errors.
pub(crate) fn display_sysctl_cmd(s: &SysctlSpec, dev: &str) -> String {
    display::SysctlCmd(s, dev).to_string()
}
