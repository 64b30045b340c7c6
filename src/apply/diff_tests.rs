//! Unit tests of the pure diff: converged state sends nothing, the order
//! leaves no transient misroute, and only our own objects are touched.

use std::net::{IpAddr, Ipv4Addr};

use crate::ethtool::Channels;
use crate::netlink::{Addr, Link, Route, Rule, addr_message, route_message, rule_message};
use crate::plan::{
    self, EniFacts, EniOptions, EniType, IpNet, Plan, RULE_PRIORITY_DEFAULT, RULE_PRIORITY_MAIN,
    RULE_PRIORITY_SUBNET, SubnetFacts, TABLE_MAIN,
};

use super::diff::{Foreign, Observed, diff};
use super::ops::Op;

const IX: u32 = 7;

fn test_plan(default_route: bool) -> Plan {
    let eni = EniFacts {
        eni_id: "eni-d".into(),
        mac: "00:16:3e:00:00:09".parse().expect("mac"),
        primary_ipv4: Ipv4Addr::new(10, 0, 1, 5),
        secondary_ipv4: vec![Ipv4Addr::new(10, 0, 1, 6)],
        ipv6: vec!["2001:db8:1::5".parse().expect("v6")],
        ipv4_prefixes: vec![],
        ipv6_prefixes: vec![],
        queue_number: Some(2),
        network_card_index: None,
        eni_type: EniType::Secondary,
    };
    let subnet = SubnetFacts {
        vswitch_cidr: Some("10.0.1.0/24".parse().expect("net")),
        netmask: None,
        gateway: Ipv4Addr::new(10, 0, 1, 253),
        ipv6_gateway: Some("2001:db8:1::fffd".parse().expect("v6")),
        vswitch_ipv6_cidr: Some("2001:db8:1::/64".parse().expect("net")),
        vpc_cidr: None,
    };
    let o = EniOptions {
        mtu: Some(9000),
        default_route,
        ..EniOptions::default()
    };
    plan::plan(&eni, &subnet, &o, 10001).expect("valid")
}

fn link(up: bool, mtu: u32) -> Link {
    Link {
        index: IX,
        name: "eth1".into(),
        mac: None,
        perm_mac: None,
        mtu: Some(mtu),
        up,
        kind: None,
        controller: None,
    }
}

fn veth_channels(n: u32) -> Channels {
    let mut c = Channels::default();
    (c.max_rx, c.max_tx, c.rx_count, c.tx_count) = (4, 4, n, n);
    c
}

/// The kernel exactly as the plan wants it.
fn converged(p: &Plan) -> Observed {
    Observed {
        link: link(true, p.mtu.unwrap_or(1500)),
        addrs: p
            .addresses
            .iter()
            .map(|a| Addr::from_message(&addr_message(IX, a)).expect("addr"))
            .collect(),
        routes: p
            .routes
            .iter()
            .map(|r| Route::from_message(&route_message(r, IX)).expect("route"))
            .collect(),
        rules: p
            .rules
            .iter()
            .map(|r| Rule::from_message(&rule_message(r)))
            .collect(),
        sysctls: p.sysctls.iter().map(|s| (*s, Some(s.value))).collect(),
        channels: Some(veth_channels(p.queues.unwrap_or(2).min(4))),
    }
}

/// A freshly plugged NIC: down, nothing configured.
fn fresh() -> Observed {
    Observed {
        link: link(false, 1500),
        addrs: vec![],
        routes: vec![],
        rules: vec![],
        sysctls: test_plan(false)
            .sysctls
            .iter()
            .map(|s| (*s, Some(s.value + 1)))
            .collect(),
        channels: Some(veth_channels(4)),
    }
}

fn foreign_route(table: u32) -> Route {
    let spec = plan::RouteSpec {
        table,
        dst: "198.51.100.0/24".parse().expect("net"),
        gateway: None,
        pref_src: None,
        metric: 0,
        scope: plan::Scope::Link,
        onlink: false,
    };
    let mut m = route_message(&spec, 2);
    m.header.protocol = rtnetlink::packet_route::route::RouteProtocol::Static;
    Route::from_message(&m).expect("route")
}

#[test]
fn converged_state_sends_nothing() {
    for default_route in [false, true] {
        let p = test_plan(default_route);
        assert_eq!(diff(&p, &converged(&p)), Ok(vec![]));
    }
}

#[test]
fn fresh_nic_gets_everything_in_a_safe_order() {
    let p = test_plan(true);
    let ops = diff(&p, &fresh()).expect("no foreign objects");
    let pos = |f: &dyn Fn(&Op) -> bool| ops.iter().position(f).expect("op present");
    let last = |f: &dyn Fn(&Op) -> bool| ops.iter().rposition(f).expect("op present");
    let up = pos(&|o| *o == Op::SetUp);
    // accept_ra=0 and the other sysctls before the link can take an RA.
    assert!(last(&|o| matches!(o, Op::Sysctl(_))) < up);
    assert!(pos(&|o| matches!(o, Op::SetMtu(9000))) < up);
    assert!(pos(&|o| matches!(o, Op::SetChannels { .. })) < up);
    assert!(up < pos(&|o| matches!(o, Op::AddAddr(_))));
    // Every table route before the first rule that points at the table.
    let last_table_route = last(&|o| matches!(o, Op::AddRoute(r) if r.table == p.table));
    let first_rule = pos(&|o| matches!(o, Op::AddRule(_)));
    assert!(last_table_route < first_rule);
    // The subnet route before the default route that needs it.
    let subnet = pos(&|o| matches!(o, Op::AddRoute(r) if r.dst.prefix_len == 24));
    let default = pos(
        &|o| matches!(o, Op::AddRoute(r) if r.dst.prefix_len == 0 && r.table == p.table && r.dst.is_ipv4()),
    );
    assert!(subnet < default);
    // Tiers in order; the main-table default route (option) last of all adds.
    let prio = |o: &Op| match o {
        Op::AddRule(r) => Some(r.priority),
        _ => None,
    };
    let prios: Vec<u32> = ops.iter().filter_map(prio).collect();
    assert!(prios.windows(2).all(|w| w[0] <= w[1]), "{prios:?}");
    assert_eq!(prios.first(), Some(&RULE_PRIORITY_SUBNET));
    assert!(prios.contains(&RULE_PRIORITY_MAIN));
    assert_eq!(prios.last(), Some(&RULE_PRIORITY_DEFAULT));
    let main_route = pos(&|o| matches!(o, Op::AddRoute(r) if r.table == TABLE_MAIN));
    assert!(main_route > last(&|o| matches!(o, Op::AddRule(_))));
    assert_eq!(ops.len(), 5 + 3 + 3 + 6 + 8);
}

#[test]
fn foreign_objects_in_the_table_stop_the_apply() {
    let p = test_plan(false);
    let mut obs = converged(&p);
    obs.routes.push(foreign_route(p.table));
    let Err(Foreign::Table(what)) = diff(&p, &obs) else {
        panic!("foreign route not reported")
    };
    assert!(what[0].contains("198.51.100.0/24"), "{what:?}");
    // Foreign objects elsewhere are none of our business.
    let mut obs = converged(&p);
    obs.routes.push(foreign_route(100));
    assert_eq!(diff(&p, &obs), Ok(vec![]));
}

#[test]
fn stale_and_duplicate_objects_of_ours_are_removed_and_nothing_else() {
    let p = test_plan(false);
    let mut obs = converged(&p);
    // An address the plan no longer has (stays: not ours any more), a rule and
    // a route of ours for it, and a duplicate of a wanted rule.
    let old = IpNet::host(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 9)));
    let mut stale_rule = p.rules[0].clone();
    stale_rule.src = Some(old);
    obs.rules
        .push(Rule::from_message(&rule_message(&stale_rule)));
    obs.rules
        .push(Rule::from_message(&rule_message(&p.rules[1])));
    let mut stale_route = p.routes[0].clone();
    stale_route.dst = "10.0.9.0/24".parse().expect("net");
    obs.routes
        .push(Route::from_message(&route_message(&stale_route, IX)).expect("route"));
    let ops = diff(&p, &obs).expect("ours only");
    assert_eq!(ops.len(), 3, "{ops:?}");
    assert!(matches!(&ops[0], Op::DelRule(r) if r.src == Some(old)));
    assert!(matches!(&ops[1], Op::DelRule(r) if r.src == p.rules[1].src));
    assert!(matches!(&ops[2], Op::DelRoute(r) if r.dst == stale_route.dst));
}

#[test]
fn drifted_attributes_are_replaced_or_re_added() {
    let p = test_plan(false);
    let mut obs = converged(&p);
    // Our default route now points elsewhere: replace it (never delete + add).
    let mut wrong = p.routes[1].clone();
    wrong.gateway = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)));
    obs.routes[1] = Route::from_message(&route_message(&wrong, IX)).expect("route");
    // Someone re-added our address without noprefixroute.
    let mut m = addr_message(IX, &p.addresses[0]);
    m.attributes.retain(|a| {
        !matches!(
            a,
            rtnetlink::packet_route::address::AddressAttribute::Flags(_)
        )
    });
    obs.addrs[0] = Addr::from_message(&m).expect("addr");
    obs.channels = Some(veth_channels(4));
    obs.sysctls[0].1 = Some(0);
    obs.sysctls[3].1 = None; // not available: skipped
    let ops = diff(&p, &obs).expect("ours only");
    assert_eq!(
        ops,
        vec![
            Op::Sysctl(p.sysctls[0]),
            Op::SetChannels {
                target: veth_channels(2),
                clamped_to: None
            },
            Op::DelAddr(obs.addrs[0].clone()),
            Op::AddAddr(p.addresses[0]),
            Op::ReplaceRoute(p.routes[1].clone()),
        ]
    );
}

#[test]
fn foreign_rules_in_the_way_are_reported() {
    let p = test_plan(false);
    let mut obs = converged(&p);
    let foreign = |spec: &plan::RuleSpec| {
        let mut m = rule_message(spec);
        m.attributes
            .retain(|a| !matches!(a, rtnetlink::packet_route::rule::RuleAttribute::Protocol(_)));
        Rule::from_message(&m)
    };
    // Harmless: a foreign copy of the main rule, and rules for other sources.
    obs.rules.push(foreign(&p.rules[3]));
    let mut other = p.rules[0].clone();
    other.src = Some("192.0.2.9/32".parse().expect("net"));
    other.table = 100;
    obs.rules.push(foreign(&other));
    assert!(super::diff::rules_in_the_way(&p, &obs).is_empty());
    // In the way: `from all lookup main` before our default tier.
    let mut all_main = p.rules[3].clone();
    all_main.suppress_prefixlen = None;
    all_main.priority = 1000;
    obs.rules.push(foreign(&all_main));
    let w = super::diff::rules_in_the_way(&p, &obs);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("priority 1000 from all lookup 254"), "{w:?}");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any valid plan, applied, diffs to nothing; its rules only point
        /// at tables the plan fills (or main).
        #[test]
        fn any_valid_plan_converges_to_zero_ops(
            secondaries in 0u8..6,
            v6 in 0u16..3,
            v4_prefix in any::<bool>(),
            v6_prefix in any::<bool>(),
            default_route in any::<bool>(),
            mtu in proptest::option::of(1280u32..9001),
            queues in proptest::option::of(1u32..=2048),
            table in 256u32..100_000,
        ) {
            let eni = EniFacts {
                eni_id: "eni-p".into(),
                mac: "00:16:3e:00:00:0a".parse().expect("mac"),
                primary_ipv4: Ipv4Addr::new(10, 1, 0, 5),
                secondary_ipv4: (0..secondaries).map(|i| Ipv4Addr::new(10, 1, 0, 10 + i)).collect(),
                ipv6: (0..v6).map(|i| std::net::Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 5 + i)).collect(),
                ipv4_prefixes: if v4_prefix { vec!["10.1.0.64/28".parse().expect("net")] } else { vec![] },
                ipv6_prefixes: if v6_prefix { vec!["2001:db8:9:0:1::/80".parse().expect("net")] } else { vec![] },
                queue_number: queues,
                network_card_index: Some(1),
                eni_type: EniType::Secondary,
            };
            let subnet = SubnetFacts {
                vswitch_cidr: Some("10.1.0.0/24".parse().expect("net")),
                netmask: None,
                gateway: Ipv4Addr::new(10, 1, 0, 253),
                ipv6_gateway: Some("2001:db8:9::fffd".parse().expect("v6")),
                vswitch_ipv6_cidr: Some("2001:db8:9::/64".parse().expect("net")),
                vpc_cidr: None,
            };
            let o = EniOptions { mtu, default_route, ..EniOptions::default() };
            let p = plan::plan(&eni, &subnet, &o, table).expect("valid by construction");
            prop_assert_eq!(diff(&p, &converged(&p)), Ok(vec![]));
            for r in &p.rules {
                let filled = r.table == TABLE_MAIN
                    || p.routes.iter().any(|rt| rt.table == r.table && rt.dst.is_ipv4() != r.ipv6);
                prop_assert!(filled, "rule {:?} points at an empty table", r);
            }
            prop_assert!(p.routes.iter().all(|r| r.table == table || (default_route && r.table == TABLE_MAIN)));
            prop_assert_eq!(p.to_string().lines().filter(|l| l.starts_with("ip ")).count(),
                1 + p.mtu.iter().count() + p.addresses.len() + p.routes.len() + p.rules.len());
        }
    }
}
