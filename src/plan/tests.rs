//! Unit tests of the planner: one per validation rule, the desired state and
//! its printed form.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("test IPv4")
}
fn ip6(s: &str) -> Ipv6Addr {
    s.parse().expect("test IPv6")
}
fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn eni() -> EniFacts {
    EniFacts {
        eni_id: "eni-test".into(),
        mac: "00:16:3e:00:00:01".parse().expect("mac"),
        primary_ipv4: ip4("10.0.1.5"),
        secondary_ipv4: vec![ip4("10.0.1.6"), ip4("10.0.1.7")],
        ipv6: vec![ip6("2001:db8:1::5")],
        ipv4_prefixes: vec![net("10.0.1.32/28")],
        ipv6_prefixes: vec![net("2001:db8:1:0:1::/80")],
        queue_number: Some(4),
        network_card_index: Some(0),
        eni_type: EniType::Secondary,
    }
}

fn subnet() -> SubnetFacts {
    SubnetFacts {
        vswitch_cidr: Some(net("10.0.1.0/24")),
        netmask: None,
        gateway: ip4("10.0.1.253"),
        ipv6_gateway: Some(ip6("2001:db8:1::fffd")),
        vswitch_ipv6_cidr: Some(net("2001:db8:1::/64")),
        vpc_cidr: None,
    }
}

/// The fields and problems of a failed plan.
fn errors(e: &EniFacts, s: &SubnetFacts, o: &EniOptions) -> Vec<(String, Problem)> {
    match plan(e, s, o, 10001) {
        Ok(p) => panic!("expected a validation error, got a plan:\n{p}"),
        Err(err) => {
            assert!(!err.to_string().is_empty());
            err.field_errors()
                .iter()
                .map(|f| (f.field.clone(), f.problem.clone()))
                .collect()
        }
    }
}

fn has(errs: &[(String, Problem)], field: &str, pred: impl Fn(&Problem) -> bool) -> bool {
    errs.iter().any(|(f, p)| f == field && pred(p))
}

#[test]
fn valid_input_plans() {
    let p = plan(&eni(), &subnet(), &EniOptions::default(), 10001).expect("valid");
    assert_eq!(p.table, 10001);
    assert_eq!(p.queues, Some(4));
    assert_eq!(p.mtu, None);
}

#[test]
fn address_outside_vswitch_cidr() {
    let mut e = eni();
    e.secondary_ipv4[1] = ip4("10.0.2.7");
    let errs = errors(&e, &subnet(), &EniOptions::default());
    assert!(has(&errs, "eni.secondary_ipv4[1]", |p| matches!(
        p,
        Problem::OutsideSubnet { .. }
    )));
    let mut e = eni();
    e.ipv6[0] = ip6("2001:db8:2::5");
    let errs = errors(&e, &subnet(), &EniOptions::default());
    assert!(has(&errs, "eni.ipv6[0]", |p| matches!(
        p,
        Problem::OutsideSubnet { .. }
    )));
    let mut e = eni();
    e.ipv4_prefixes[0] = net("10.0.9.0/28");
    let errs = errors(&e, &subnet(), &EniOptions::default());
    assert!(has(&errs, "eni.ipv4_prefixes[0]", |p| matches!(
        p,
        Problem::OutsideSubnet { .. }
    )));
}

#[test]
fn primary_outside_netmask_derived_subnet_is_impossible_but_secondary_is_checked() {
    let mut s = subnet();
    s.vswitch_cidr = None;
    s.netmask = Some(ip4("255.255.255.0"));
    let p = plan(&eni(), &s, &EniOptions::default(), 10001).expect("netmask works");
    assert_eq!(p.routes[0].dst, net("10.0.1.0/24"));
    let mut e = eni();
    e.secondary_ipv4[0] = ip4("10.0.3.1");
    let errs = errors(&e, &s, &EniOptions::default());
    assert!(has(&errs, "eni.secondary_ipv4[0]", |p| matches!(
        p,
        Problem::OutsideSubnet { .. }
    )));
    s.netmask = Some(ip4("255.0.255.0"));
    let errs = errors(&eni(), &s, &EniOptions::default());
    assert!(has(&errs, "subnet.netmask", |p| matches!(
        p,
        Problem::BadNetmask(_)
    )));
    s.netmask = None;
    let errs = errors(&eni(), &s, &EniOptions::default());
    assert!(has(&errs, "subnet.vswitch_cidr", |p| *p
        == Problem::MissingSubnet));
}

#[test]
fn gateway_outside_subnet() {
    let mut s = subnet();
    s.gateway = ip4("10.0.2.253");
    let errs = errors(&eni(), &s, &EniOptions::default());
    assert!(has(&errs, "subnet.gateway", |p| matches!(
        p,
        Problem::GatewayOutsideSubnet { .. }
    )));
    let mut s = subnet();
    s.ipv6_gateway = Some(ip6("2001:db8:9::1"));
    let errs = errors(&eni(), &s, &EniOptions::default());
    assert!(has(&errs, "subnet.ipv6_gateway", |p| matches!(
        p,
        Problem::GatewayOutsideSubnet { .. }
    )));
    // A link-local IPv6 gateway is always on the link.
    let mut s = subnet();
    s.ipv6_gateway = Some(ip6("fe80::1"));
    plan(&eni(), &s, &EniOptions::default(), 10001).expect("link-local gateway is fine");
}

#[test]
fn prefix_length_out_of_range() {
    let mut s = subnet();
    s.vswitch_cidr = Some(net("10.0.1.0/33"));
    let errs = errors(&eni(), &s, &EniOptions::default());
    assert!(has(&errs, "subnet.vswitch_cidr", |p| matches!(
        p,
        Problem::PrefixLength { len: 33, .. }
    )));
    let mut s = subnet();
    s.vswitch_ipv6_cidr = Some(net("2001:db8:1::/129"));
    let errs = errors(&eni(), &s, &EniOptions::default());
    assert!(has(&errs, "subnet.vswitch_ipv6_cidr", |p| matches!(
        p,
        Problem::PrefixLength { .. }
    )));
    let mut e = eni();
    e.ipv4_prefixes[0] = net("10.0.1.32/0");
    let errs = errors(&e, &subnet(), &EniOptions::default());
    assert!(has(&errs, "eni.ipv4_prefixes[0]", |p| matches!(
        p,
        Problem::PrefixLength { .. }
    )));
    let mut e = eni();
    e.ipv6_prefixes[0] = net("2001:db8:1::/200");
    let errs = errors(&e, &subnet(), &EniOptions::default());
    assert!(has(&errs, "eni.ipv6_prefixes[0]", |p| matches!(
        p,
        Problem::PrefixLength { .. }
    )));
    let mut e = eni();
    e.ipv4_prefixes[0] = net("2001:db8:1::/80");
    let errs = errors(&e, &subnet(), &EniOptions::default());
    assert!(has(&errs, "eni.ipv4_prefixes[0]", |p| matches!(
        p,
        Problem::WrongFamily(..)
    )));
}

#[test]
fn duplicate_addresses() {
    let mut e = eni();
    e.secondary_ipv4[1] = e.primary_ipv4;
    let errs = errors(&e, &subnet(), &EniOptions::default());
    assert!(has(&errs, "eni.secondary_ipv4[1]", |p| matches!(
        p,
        Problem::Duplicate { other_field, .. } if other_field == "eni.primary_ipv4"
    )));
    let mut e = eni();
    e.ipv6.push(e.ipv6[0]);
    let errs = errors(&e, &subnet(), &EniOptions::default());
    assert!(has(&errs, "eni.ipv6[1]", |p| matches!(
        p,
        Problem::Duplicate { .. }
    )));
    let mut e = eni();
    e.ipv4_prefixes.push(net("10.0.1.32/29"));
    let errs = errors(&e, &subnet(), &EniOptions::default());
    assert!(has(&errs, "eni.ipv4_prefixes[1]", |p| matches!(
        p,
        Problem::Duplicate { .. }
    )));
    let mut e = eni();
    e.ipv4_prefixes[0] = net("10.0.1.0/29");
    let errs = errors(&e, &subnet(), &EniOptions::default());
    assert!(has(&errs, "eni.ipv4_prefixes[0]", |p| matches!(
        p,
        Problem::Duplicate { .. }
    )));
    let mut s = subnet();
    s.gateway = ip4("10.0.1.6");
    let errs = errors(&eni(), &s, &EniOptions::default());
    assert!(has(&errs, "subnet.gateway", |p| matches!(
        p,
        Problem::Duplicate { .. }
    )));
}

#[test]
fn queue_number_zero_or_too_big() {
    for q in [0, 2049] {
        let mut e = eni();
        e.queue_number = Some(q);
        let errs = errors(&e, &subnet(), &EniOptions::default());
        assert!(has(&errs, "eni.queue_number", |p| *p == Problem::QueueNumber(q)));
        let o = EniOptions {
            queues: Some(q),
            ..EniOptions::default()
        };
        let errs = errors(&eni(), &subnet(), &o);
        assert!(has(&errs, "options.queues", |p| *p == Problem::QueueNumber(q)));
    }
    let mut e = eni();
    e.queue_number = Some(2048);
    plan(&e, &subnet(), &EniOptions::default(), 10001).expect("2048 is allowed");
}

#[test]
fn multicast_or_zero_mac() {
    for (mac, kind) in [
        ("01:00:5e:00:00:01", "multicast"),
        ("ff:ff:ff:ff:ff:ff", "multicast"),
        ("00:00:00:00:00:00", "zero"),
    ] {
        let mut e = eni();
        e.mac = mac.parse().expect("mac");
        let errs = errors(&e, &subnet(), &EniOptions::default());
        assert!(
            has(
                &errs,
                "eni.mac",
                |p| matches!(p, Problem::BadMac { kind: k, .. } if *k == kind)
            ),
            "{mac}"
        );
    }
}

#[test]
fn ipv6_without_gateway() {
    let mut s = subnet();
    s.ipv6_gateway = None;
    let errs = errors(&eni(), &s, &EniOptions::default());
    assert!(has(&errs, "subnet.ipv6_gateway", |p| *p
        == Problem::MissingIpv6Gateway));
    // Only a delegated IPv6 prefix still needs the route.
    let mut e = eni();
    e.ipv6.clear();
    let errs = errors(&e, &s, &EniOptions::default());
    assert!(has(&errs, "subnet.ipv6_gateway", |p| *p
        == Problem::MissingIpv6Gateway));
    // No IPv6 at all: no gateway needed.
    e.ipv6_prefixes.clear();
    let p = plan(&e, &s, &EniOptions::default(), 10001).expect("IPv4 only");
    assert!(!p.uses_ipv6());
    assert!(p.rules.iter().all(|r| !r.ipv6) && p.routes.iter().all(|r| r.dst.is_ipv4()));
    let mut s = subnet();
    s.vswitch_ipv6_cidr = None;
    let errs = errors(&eni(), &s, &EniOptions::default());
    assert!(has(&errs, "subnet.vswitch_ipv6_cidr", |p| *p
        == Problem::MissingIpv6Cidr));
}

#[test]
fn options_are_checked() {
    let o = EniOptions {
        mtu: Some(1000),
        ..EniOptions::default()
    };
    let errs = errors(&eni(), &subnet(), &o);
    assert!(has(&errs, "options.mtu", |p| matches!(
        p,
        Problem::Mtu { min: 1280, .. }
    )));
    let o = EniOptions {
        table: Some(254),
        ..EniOptions::default()
    };
    let errs = errors(&eni(), &subnet(), &o);
    assert!(has(&errs, "options.table", |p| *p
        == Problem::ReservedTable(254)));
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut e = eni();
    e.mac = "00:00:00:00:00:00".parse().expect("mac");
    e.queue_number = Some(0);
    let mut s = subnet();
    s.gateway = ip4("192.0.2.1");
    let errs = errors(&e, &s, &EniOptions::default());
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn primary_eni_is_refused() {
    let mut e = eni();
    e.eni_type = EniType::Primary;
    let err = plan(&e, &subnet(), &EniOptions::default(), 10001).expect_err("primary");
    assert!(matches!(err, PlanError::PrimaryEni { .. }));
    assert!(err.to_string().contains("eni.eni_type"));
}

#[test]
fn desired_state() {
    let p = plan(&eni(), &subnet(), &EniOptions::default(), 10001).expect("valid");
    let a: Vec<String> = p
        .addresses
        .iter()
        .map(|a| format!("{}/{}", a.addr, a.prefix_len))
        .collect();
    assert_eq!(
        a,
        [
            "10.0.1.5/24",
            "10.0.1.6/32",
            "10.0.1.7/32",
            "2001:db8:1::5/64"
        ]
    );
    assert!(
        p.routes.iter().all(|r| r.table == 10001),
        "nothing in main by default"
    );
    assert_eq!(p.routes.len(), 4);
    assert_eq!(p.routes[1].gateway, Some(IpAddr::V4(ip4("10.0.1.253"))));
    // Rules: tier 1 for all 6 sources, one main rule per family, tier 3.
    assert_eq!(p.rules.len(), 6 + 2 + 6);
    assert!(
        p.rules[..6]
            .iter()
            .all(|r| r.priority == RULE_PRIORITY_SUBNET
                && r.suppress_prefixlen == Some(0)
                && r.table == 10001)
    );
    let main: Vec<_> = p.rules.iter().filter(|r| r.table == TABLE_MAIN).collect();
    assert_eq!(main.len(), 2);
    assert!(
        main.iter()
            .all(|r| r.src.is_none() && r.priority == RULE_PRIORITY_MAIN)
    );
    assert!(
        p.rules[8..]
            .iter()
            .all(|r| r.priority == RULE_PRIORITY_DEFAULT && r.suppress_prefixlen.is_none())
    );
    let keys: Vec<_> = p.sysctls.iter().map(|s| (s.key, s.value)).collect();
    assert_eq!(
        keys,
        [
            (SysctlKey::RpFilter, 2),
            (SysctlKey::ArpIgnore, 1),
            (SysctlKey::ArpAnnounce, 2),
            (SysctlKey::AcceptRa, 0),
            (SysctlKey::DisableIpv6, 0)
        ]
    );
}

#[test]
fn options_change_the_plan() {
    let o = EniOptions {
        table: Some(500),
        mtu: Some(9000),
        queues: Some(2),
        default_route: true,
        default_route_metric: None,
        sysctl: SysctlSwitches {
            rp_filter: false,
            arp: false,
            accept_ra: true,
        },
    };
    let mut e = eni();
    e.network_card_index = Some(1);
    let p = plan(&e, &subnet(), &o, 10001).expect("valid");
    assert_eq!((p.table, p.mtu, p.queues), (500, Some(9000), Some(2)));
    let main: Vec<_> = p.routes.iter().filter(|r| r.table == TABLE_MAIN).collect();
    assert_eq!(main.len(), 2);
    assert!(
        main.iter()
            .all(|r| r.metric == 2500 && r.onlink && r.dst.prefix_len == 0)
    );
    assert_eq!(p.sysctls.len(), 2, "accept_ra and disable_ipv6 stay");
}

#[test]
fn display_reads_like_ip_commands() {
    let mut e = eni();
    e.ipv6_prefixes.clear();
    e.ipv4_prefixes.clear();
    e.secondary_ipv4.truncate(1);
    let p = plan(&e, &subnet(), &EniOptions::default(), 10001).expect("valid");
    let text = p.with_dev("eth1").to_string();
    let expected = "\
# eni-test: MAC 00:16:3e:00:00:01, routing table 10001, NetworkCardIndex 0
sysctl -w net.ipv4.conf.eth1.rp_filter=2
sysctl -w net.ipv4.conf.eth1.arp_ignore=1
sysctl -w net.ipv4.conf.eth1.arp_announce=2
sysctl -w net.ipv6.conf.eth1.accept_ra=0
sysctl -w net.ipv6.conf.eth1.disable_ipv6=0
ethtool -L eth1 combined 4    # or: rx 4 tx 4; clamped to the driver's maximum
ip link set dev eth1 up
ip address add 10.0.1.5/24 dev eth1 noprefixroute
ip address add 10.0.1.6/32 dev eth1 noprefixroute
ip address add 2001:db8:1::5/64 dev eth1 noprefixroute nodad
ip route add 10.0.1.0/24 dev eth1 scope link src 10.0.1.5 table 10001 metric 0 proto 237
ip route add default via 10.0.1.253 dev eth1 src 10.0.1.5 table 10001 metric 0 proto 237
ip -6 route add 2001:db8:1::/64 dev eth1 src 2001:db8:1::5 table 10001 metric 1024 proto 237
ip -6 route add default via 2001:db8:1::fffd dev eth1 src 2001:db8:1::5 table 10001 metric 1024 proto 237
ip rule add from 10.0.1.5 lookup 10001 suppress_prefixlength 0 pref 20100 proto 237
ip rule add from 10.0.1.6 lookup 10001 suppress_prefixlength 0 pref 20100 proto 237
ip -6 rule add from 2001:db8:1::5 lookup 10001 suppress_prefixlength 0 pref 20100 proto 237
ip rule add lookup main suppress_prefixlength 0 pref 20200 proto 237
ip -6 rule add lookup main suppress_prefixlength 0 pref 20200 proto 237
ip rule add from 10.0.1.5 lookup 10001 pref 20300 proto 237
ip rule add from 10.0.1.6 lookup 10001 pref 20300 proto 237
ip -6 rule add from 2001:db8:1::5 lookup 10001 pref 20300 proto 237
";
    assert_eq!(text, expected);
    assert!(p.to_string().contains("dev $DEV"));
    assert_eq!(
        SysctlKey::RpFilter.path("eth1.100"),
        "net/ipv4/conf/eth1.100/rp_filter"
    );
}
