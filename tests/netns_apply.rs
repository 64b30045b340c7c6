//! The reconciler against a real kernel, in private network namespaces:
//! full configuration (dumps and FIB lookups), queues, sysctls, idempotence,
//! cleanup, and a foreign table in the way.

mod common;

use common::*;
use eni_agent::apply::{ApplyError, Candidate, Reconciler};
use eni_agent::ethtool::channels_get;
use eni_agent::netlink::{self, addr_list, route_list, rule_list};
use eni_agent::plan::{AddressSpec, ROUTE_PROTOCOL, TABLE_MAIN};

#[test]
fn netns_full_configuration_idempotence_and_cleanup() {
    in_netns(
        "netns_full_configuration_idempotence_and_cleanup",
        || async {
            fake_primary();
            seed_foreign();
            // A host that disables IPv6 on new interfaces: the ENI's IPv6 still works.
            std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1\n").expect("sysctl");
            add_nic("eni1", mac(1), 4);
            let ix = ifindex("eni1");
            let plan = test_plan(1, TABLE, Some(2));
            let rec = Reconciler::connect().expect("netlink");
            let h = rec.handle().clone();

            // A table nothing was ever added to dumps as empty (the kernel says ENOENT).
            let none = netlink::route_list_table(&h, false, TABLE, None)
                .await
                .expect("filtered dump");
            assert!(none.is_empty());
            let first = rec.apply(&plan, ix).await.expect("first apply");
            let v4 = netlink::route_list_table(&h, false, TABLE, None)
                .await
                .expect("filtered dump");
            assert_eq!(v4.len(), 2, "{v4:#?}");
            let v6 = netlink::route_list_table(&h, true, TABLE, None)
                .await
                .expect("filtered dump");
            // One AF_UNSPEC dump returns both families, filtered the same way.
            let both = netlink::route_list_table_both(&h, TABLE, None)
                .await
                .expect("dump");
            assert!(!v6.is_empty());
            assert_eq!(both.len(), v4.len() + v6.len(), "{both:#?}");
            let main_v6 = netlink::route_list_table(&h, true, TABLE_MAIN, Some(ix))
                .await
                .expect("dump");
            assert!(
                main_v6
                    .iter()
                    .all(|r| r.oif == Some(ix) && r.dst.to_string() == "fe80::/64"),
                "{main_v6:#?}"
            );
            assert!(first.ops.len() > 10, "{:?}", first.ops);
            // Idempotence: the same plan again sends nothing.
            let second = rec.apply(&plan, ix).await.expect("second apply");
            assert_eq!(
                second.ops,
                Vec::<String>::new(),
                "second apply must send zero operations"
            );

            // --- Dumps ---
            let link = netlink::link_show(&h, ix)
                .await
                .expect("dump")
                .expect("link");
            assert!(link.up);
            let addrs = addr_list(&h, ix).await.expect("dump");
            for spec in &plan.addresses {
                let a = addrs
                    .iter()
                    .find(|a| a.addr == spec.addr)
                    .expect("planned address present");
                assert!(
                    a.matches(spec),
                    "{a:?} lacks noprefixroute/nodad or has the wrong length"
                );
            }
            let mut routes = route_list(&h, false).await.expect("dump");
            routes.extend(route_list(&h, true).await.expect("dump"));
            let ours: Vec<_> = routes.iter().filter(|r| r.table == TABLE).collect();
            assert_eq!(ours.len(), 4, "{ours:#?}");
            assert!(
                ours.iter()
                    .all(|r| r.protocol == ROUTE_PROTOCOL && r.oif == Some(ix))
            );
            // Nothing of this NIC in main except the kernel's IPv6 link-local route.
            let in_main: Vec<_> = routes
                .iter()
                .filter(|r| r.table == TABLE_MAIN && r.oif == Some(ix))
                .filter(|r| !(r.dst.to_string() == "fe80::/64" && r.protocol == 2))
                .collect();
            assert!(
                in_main.is_empty(),
                "main routes through the ENI: {in_main:#?}"
            );
            let mut rules = rule_list(&h, false).await.expect("dump");
            rules.extend(rule_list(&h, true).await.expect("dump"));
            for spec in &plan.rules {
                assert!(
                    rules.iter().any(|r| r.matches(spec)),
                    "missing rule {spec:?}"
                );
            }
            let text = ip(&["rule", "show"]);
            assert!(
                text.contains(
                    "20100:\tfrom 10.0.1.5 lookup 10001 suppress_prefixlength 0 proto 237"
                ),
                "{text}"
            );
            assert!(
                text.contains("20300:\tfrom 10.0.1.32/28 lookup 10001 proto 237"),
                "{text}"
            );
            assert!(!text.contains(" none"), "a rule without action: {text}");

            // --- FIB lookups ---
            let get = |args: &[&str]| ip(&[&["route", "get"], args].concat());
            let r = get(&["192.0.2.1", "from", "10.0.1.6"]);
            assert!(r.contains("via 10.0.1.253 dev eni1 table 10001"), "{r}");
            let r = get(&["192.0.2.1"]);
            assert!(
                r.contains("via 192.168.100.1 dev prim0"),
                "no source must use main: {r}"
            );
            let r = get(&["10.0.1.77", "from", "10.0.1.6"]);
            assert!(
                r.contains("10.0.1.77 from 10.0.1.6 dev eni1 table 10001"),
                "subnet is direct: {r}"
            );
            let r = get(&["192.168.100.7", "from", "10.0.1.6"]);
            assert!(
                r.contains("dev prim0") && !r.contains("via"),
                "main's specific route wins: {r}"
            );
            // Traffic from an address inside the ENI's IPv4 prefix (a container
            // behind a bridge, forwarded by this host).
            std::fs::write("/proc/sys/net/ipv4/conf/all/forwarding", "1\n").expect("sysctl");
            ip(&[
                "link", "add", "ctr0", "type", "veth", "peer", "name", "ctr1",
            ]);
            ip(&["link", "set", "ctr0", "up"]);
            ip(&["link", "set", "ctr1", "up"]);
            let from_prefix =
                |dst: &str| ip(&["route", "get", dst, "from", "10.0.1.40", "iif", "ctr0"]);
            let r = from_prefix("192.0.2.1");
            assert!(r.contains("via 10.0.1.253 dev eni1 table 10001"), "{r}");
            let r = from_prefix("10.0.1.77");
            assert!(
                r.contains("dev eni1 table 10001") && !r.contains("via"),
                "{r}"
            );
            let r = from_prefix("192.168.100.9");
            assert!(r.contains("dev prim0"), "main's connected route wins: {r}");
            let r = ip(&[
                "-6",
                "route",
                "get",
                "2001:4860::1",
                "from",
                "2001:db8:1::5",
            ]);
            assert!(
                r.contains("via 2001:db8:1::fffd dev eni1 table 10001"),
                "{r}"
            );
            let r = ip(&["-6", "route", "get", "2001:4860::1"]);
            assert!(r.contains("via fd00::1 dev prim0"), "{r}");
            let r = ip(&[
                "-6",
                "route",
                "get",
                "2001:db8:1::99",
                "from",
                "2001:db8:1::5",
            ]);
            assert!(
                r.contains("dev eni1 table 10001") && !r.contains("via"),
                "{r}"
            );

            // --- Queues and sysctls ---
            let ch = channels_get("eni1").expect("ethtool -l");
            assert_eq!((ch.rx_count, ch.tx_count, ch.max_rx), (2, 2, 4), "{ch:?}");
            match std::process::Command::new("ethtool")
                .args(["-l", "eni1"])
                .output()
            {
                Ok(out) => {
                    let text = String::from_utf8_lossy(&out.stdout);
                    let current = text
                        .split("Current hardware settings:")
                        .nth(1)
                        .unwrap_or_default();
                    assert!(
                        current.contains("RX:\t\t2") && current.contains("TX:\t\t2"),
                        "{text}"
                    );
                }
                Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("ethtool -l: {e}"),
                Err(e) => eprintln!(
                    "ethtool not runnable ({e}): queue counts checked through the ioctl only"
                ),
            }
            let sys = |p: &str| {
                std::fs::read_to_string(format!("/proc/sys/net/{p}"))
                    .expect("sysctl")
                    .trim()
                    .to_owned()
            };
            assert_eq!(sys("ipv4/conf/eni1/rp_filter"), "2");
            assert_eq!(sys("ipv4/conf/eni1/arp_ignore"), "1");
            assert_eq!(sys("ipv4/conf/eni1/arp_announce"), "2");
            assert_eq!(sys("ipv6/conf/eni1/accept_ra"), "0");
            assert_eq!(sys("ipv6/conf/eni1/disable_ipv6"), "0");

            // A queue count above the driver's maximum is clamped, with a warning.
            let mut more = plan.clone();
            more.queues = Some(16);
            let rep = rec.apply(&more, ix).await.expect("apply");
            assert_eq!(rep.ops, ["ethtool -L eni1 rx 4 tx 4"]);
            assert_eq!(rep.warnings.len(), 1, "{:?}", rep.warnings);

            // --- Cleanup ---
            let removed = rec.cleanup(&plan, Some(ix)).await.expect("cleanup");
            assert!(!removed.is_empty());
            assert_eq!(
                agent_owned_objects(),
                0,
                "{}\n{}\n{}",
                ip(&["-6", "rule", "show"]),
                ip(&["route", "show", "table", "all", "proto", "237"]),
                ip(&["-6", "route", "show", "table", "all", "proto", "237"])
            );
            let left = addr_list(&h, ix).await.expect("dump");
            assert!(
                left.iter().all(|a| !plan
                    .addresses
                    .iter()
                    .any(|s: &AddressSpec| s.addr == a.addr)),
                "{left:?}"
            );
            assert_foreign_intact();
        },
    );
}

#[test]
fn netns_foreign_table_in_the_way_is_reported_not_overwritten() {
    in_netns(
        "netns_foreign_table_in_the_way_is_reported_not_overwritten",
        || async {
            fake_primary();
            add_nic("eni2", mac(2), 1);
            ip(&[
                "route",
                "add",
                "203.0.113.0/24",
                "via",
                "192.168.100.1",
                "table",
                "10001",
            ]);
            let plan = test_plan(2, TABLE, None);
            let rec = Reconciler::connect().expect("netlink");
            let err = rec
                .apply(&plan, ifindex("eni2"))
                .await
                .expect_err("table in use");
            assert!(
                matches!(&err, ApplyError::TableInUse { table: 10001, .. }),
                "{err}"
            );
            assert!(err.to_string().contains("203.0.113.0/24"), "{err}");
            assert!(
                ip(&["address", "show", "dev", "eni2"])
                    .lines()
                    .all(|l| !l.contains("10.0.2.5"))
            );
            assert!(ip(&["route", "show", "table", "10001"]).contains("203.0.113.0/24"));
        },
    );
}

#[test]
fn netns_no_transient_misroute_while_applying() {
    in_netns("netns_no_transient_misroute_while_applying", || async {
        fake_primary();
        add_nic("eni3", mac(3), 1);
        let ix = ifindex("eni3");
        // The kernel's own account of every change, in order.
        let mut events =
            netlink::subscribe(Some(8 << 20), netlink::Interest::Everything).expect("subscribe");
        let plan = test_plan(3, TABLE, None);
        let rec = Reconciler::connect().expect("netlink");
        rec.apply(&plan, ix).await.expect("apply");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut seen = Vec::new();
        while let Some(ev) = events.next_now() {
            seen.push(ev);
        }
        assert!(!seen.iter().any(|e| matches!(e, netlink::Event::Overrun)));
        // Never a route through the new NIC in main (the kernel's IPv6
        // link-local route aside).
        for e in &seen {
            if let netlink::Event::NewRoute(r) = e {
                let link_local = r.dst.to_string() == "fe80::/64";
                assert!(
                    r.table != TABLE_MAIN || r.oif != Some(ix) || link_local,
                    "transient main route through the ENI: {r}"
                );
            }
        }
        // No rule pointing at the table before the table's last route.
        let last_route = seen
            .iter()
            .rposition(|e| matches!(e, netlink::Event::NewRoute(r) if r.table == TABLE))
            .expect("table routes were added");
        let first_rule = seen
            .iter()
            .position(|e| matches!(e, netlink::Event::NewRule(r) if r.table == TABLE))
            .expect("rules were added");
        assert!(
            last_route < first_rule,
            "a rule existed before its table was complete"
        );
        // The link came up before any address, so no address sat on a down link
        // waiting to produce routes later.
        let up = seen
            .iter()
            .position(|e| matches!(e, netlink::Event::NewLink(l) if l.index == ix && l.up))
            .expect("link up event");
        let first_addr = seen
            .iter()
            .position(|e| matches!(e, netlink::Event::NewAddr(a) if a.index == ix && !a.addr.to_string().starts_with("fe80")))
            .expect("address events");
        assert!(up < first_addr);
    });
}

#[test]
fn netns_removals_subscription_filters_additions_in_the_kernel() {
    in_netns(
        "netns_removals_subscription_filters_additions_in_the_kernel",
        || async {
            fake_primary();
            add_nic("eni4", mac(4), 1);
            let ix = ifindex("eni4");
            let mut removals =
                netlink::subscribe(Some(8 << 20), netlink::Interest::Removals).expect("subscribe");
            let mut everything = netlink::subscribe(Some(8 << 20), netlink::Interest::Everything)
                .expect("subscribe");
            let plan = test_plan(4, TABLE, None);
            let rec = Reconciler::connect().expect("netlink");
            rec.apply(&plan, ix).await.expect("apply");
            rec.cleanup(&plan, Some(ix)).await.expect("cleanup");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let drain = |s: &mut netlink::EventStream| {
                let mut seen = Vec::new();
                while let Some(ev) = s.next_now() {
                    seen.push(ev);
                }
                seen
            };
            let (r, e) = (drain(&mut removals), drain(&mut everything));
            let count = |seen: &[netlink::Event], f: fn(&netlink::Event) -> bool| {
                seen.iter().filter(|ev| f(ev)).count()
            };
            let additions = |ev: &netlink::Event| {
                matches!(
                    ev,
                    netlink::Event::NewAddr(_)
                        | netlink::Event::NewRoute(_)
                        | netlink::Event::NewRule(_)
                )
            };
            let deletions = |ev: &netlink::Event| {
                matches!(
                    ev,
                    netlink::Event::DelAddr(_)
                        | netlink::Event::DelRoute(_)
                        | netlink::Event::DelRule(_)
                )
            };
            let links = |ev: &netlink::Event| matches!(ev, netlink::Event::NewLink(_));
            assert!(
                count(&e, additions) > 10,
                "the unfiltered socket saw the additions: {e:?}"
            );
            assert_eq!(
                count(&r, additions),
                0,
                "additions reached the filtered socket"
            );
            assert!(count(&e, deletions) > 0);
            assert_eq!(
                count(&r, deletions),
                count(&e, deletions),
                "every removal passes"
            );
            assert_eq!(
                count(&r, links),
                count(&e, links),
                "every link event passes"
            );
        },
    );
}

#[test]
fn netns_default_route_option_puts_a_worse_default_in_main() {
    in_netns(
        "netns_default_route_option_puts_a_worse_default_in_main",
        || async {
            fake_primary();
            let options = eni_agent::plan::EniOptions {
                default_route: true,
                ..eni_agent::plan::EniOptions::default()
            };
            let rec = Reconciler::connect().expect("netlink");
            let mut plans = Vec::new();
            for (n, table) in [(4u8, 10001u32), (5, 10002)] {
                let name = format!("eni{n}");
                add_nic(&name, mac(n), 1);
                let plan = test_plan_with(n, table, None, &options);
                rec.apply(&plan, ifindex(&name)).await.expect("apply");
                assert_eq!(
                    rec.apply(&plan, ifindex(&name))
                        .await
                        .expect("again")
                        .ops
                        .len(),
                    0
                );
                plans.push((plan, name));
            }
            let main = ip(&["route", "show", "default"]);
            assert!(
                main.contains(
                    "default via 10.0.4.253 dev eni4 proto 237 src 10.0.4.5 metric 12001 onlink"
                ),
                "{main}"
            );
            assert!(
                main.contains("dev eni5 proto 237 src 10.0.5.5 metric 12002 onlink"),
                "{main}"
            );
            assert!(
                ip(&["-6", "route", "show", "default"])
                    .contains("dev eni4 proto 237 src 2001:db8:4::5 metric 12001")
            );
            // The primary NIC keeps the default; the ENIs are the fallback.
            assert!(ip(&["route", "get", "192.0.2.1"]).contains("dev prim0"));
            ip(&["route", "del", "default", "via", "192.168.100.1"]);
            assert!(ip(&["route", "get", "192.0.2.1"]).contains("via 10.0.4.253 dev eni4"));
            for (plan, name) in &plans {
                rec.cleanup(plan, Some(ifindex(name)))
                    .await
                    .expect("cleanup");
            }
            assert_eq!(agent_owned_objects(), 0);
        },
    );
}

#[test]
fn netns_batch_reports_each_failure_and_applies_the_rest() {
    in_netns(
        "netns_batch_reports_each_failure_and_applies_the_rest",
        || async {
            use eni_agent::netlink::{Batcher, Request};
            use eni_agent::plan::{IpNet, RuleSpec};
            let rule = |i: u32| RuleSpec {
                priority: 30000 + i,
                ipv6: false,
                src: Some(IpNet::host(
                    std::net::Ipv4Addr::from(0x0a09_0000 + i).into(),
                )),
                table: TABLE,
                suppress_prefixlen: None,
            };
            // More than one datagram's worth, with a request the kernel
            // refuses (an address on a link that does not exist) in the
            // middle of the first datagram and at the very end (the
            // acknowledged one).
            let specs: Vec<RuleSpec> = (0..700).map(rule).collect();
            let bad = AddressSpec {
                addr: "192.0.2.9".parse().expect("ip"),
                prefix_len: 32,
            };
            let mut requests: Vec<Request<'_>> = specs.iter().map(Request::AddRule).collect();
            requests.insert(100, Request::AddAddr(999_999, &bad));
            requests.push(Request::AddAddr(999_999, &bad));
            let batcher = Batcher::new().expect("socket");
            let outcomes = batcher.send(&requests).await.expect("batch");
            assert_eq!(outcomes.len(), requests.len());
            let failed: Vec<usize> = outcomes
                .iter()
                .enumerate()
                .filter(|(_, o)| o.is_err())
                .map(|(i, _)| i)
                .collect();
            assert_eq!(
                failed,
                vec![100, 701],
                "exactly the refused requests failed"
            );
            let err = outcomes[100].as_ref().expect_err("no such link");
            assert_eq!(err.errno(), Some(nix::libc::ENODEV));
            assert!(
                err.to_string()
                    .contains("ip address add 192.0.2.9/32 dev if999999"),
                "the error names the request: {err}"
            );
            let rec = Reconciler::connect().expect("netlink");
            let ours = || async {
                rule_list(rec.handle(), false)
                    .await
                    .expect("dump")
                    .into_iter()
                    .filter(|r| r.is_ours() && r.table == TABLE)
                    .count()
            };
            assert_eq!(ours().await, 700, "every other request was applied");
            // A rule of an ENI's own table goes without the kernel's
            // duplicate check (the next diff removes a copy); a rule into
            // main keeps it.
            let again = batcher
                .send(&[Request::AddRule(&specs[5])])
                .await
                .expect("batch");
            assert!(again[0].is_ok());
            assert_eq!(ours().await, 701);
            let main = RuleSpec {
                table: TABLE_MAIN,
                suppress_prefixlen: Some(0),
                src: None,
                ..rule(0)
            };
            let twice = batcher
                .send(&[Request::AddRule(&main), Request::AddRule(&main)])
                .await
                .expect("batch");
            assert!(twice[0].is_ok());
            assert_eq!(
                twice[1].as_ref().err().and_then(|e| e.errno()),
                Some(nix::libc::EEXIST)
            );
            // The socket is clean for the next batch.
            let last = batcher
                .send(&[Request::AddRule(&rule(700))])
                .await
                .expect("batch");
            assert!(last[0].is_ok());
        },
    );
}

/// The primary NIC's addresses, main-table routes and sysctls, as text.
fn primary_snapshot() -> String {
    let sys = |p: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/{p}"))
            .expect("sysctl")
            .trim()
            .to_owned()
    };
    format!(
        "{}\n{}\n{}\n{}\n{} {} {} {}",
        ip(&["-d", "address", "show", "dev", "prim0"]),
        ip(&["route", "show", "table", "main"]),
        ip(&["-6", "route", "show", "table", "main"]),
        ip(&["rule", "show"]),
        sys("ipv4/conf/prim0/rp_filter"),
        sys("ipv4/conf/prim0/arp_ignore"),
        sys("ipv4/conf/prim0/arp_announce"),
        sys("ipv6/conf/prim0/accept_ra"),
    )
}

/// A hostile answer: an "ENI" with the primary NIC's MAC and address.
fn primary_takeover_plan() -> eni_agent::plan::Plan {
    let out = ip(&["-br", "link", "show", "dev", "prim0"]);
    let prim_mac: eni_agent::plan::MacAddr = out
        .split_whitespace()
        .nth(2)
        .expect("mac column")
        .parse()
        .expect("mac");
    let (mut e, mut s) = facts(7, None);
    e.mac = prim_mac;
    e.primary_ipv4 = "192.168.100.2".parse().expect("ip");
    e.secondary_ipv4.clear();
    e.ipv6.clear();
    e.ipv4_prefixes.clear();
    s.vswitch_cidr = Some("192.168.100.0/24".parse().expect("net"));
    s.gateway = "192.168.100.1".parse().expect("gw");
    s.ipv6_gateway = None;
    s.vswitch_ipv6_cidr = None;
    eni_agent::plan::plan(&e, &s, &Default::default(), TABLE).expect("plans")
}

#[test]
fn netns_primary_nic_is_never_taken_over() {
    in_netns("netns_primary_nic_is_never_taken_over", || async {
        fake_primary();
        let before = primary_snapshot();
        let plan = primary_takeover_plan();
        let rec = Reconciler::connect().expect("netlink");
        let addrs = [plan.addresses[0].addr];
        let refused = rec
            .guard(&Candidate {
                eni_id: &plan.eni_id,
                mac: plan.mac,
                addresses: &addrs,
                primary_mac: None,
            })
            .await
            .expect_err("the default route's NIC is refused");
        let text = refused.to_string();
        assert!(
            text.contains(&plan.eni_id)
                && text.contains(&plan.mac.to_string())
                && text.contains("default route"),
            "{text}"
        );
        // The converger's own check, should the NIC be bound anyway.
        let err = rec
            .apply(&plan, ifindex("prim0"))
            .await
            .expect_err("a NIC with foreign addresses is refused");
        assert!(
            matches!(&err, ApplyError::ForeignNic { .. }) && err.is_permanent(),
            "{err}"
        );
        assert!(err.to_string().contains("192.168.100.2/24"), "{err}");
        assert_eq!(primary_snapshot(), before, "the primary NIC changed");
        assert_eq!(agent_owned_objects(), 0);
        // A cleanup of that plan (a detach) leaves the primary's address.
        rec.cleanup(&plan, Some(ifindex("prim0")))
            .await
            .expect("cleanup");
        assert_eq!(
            primary_snapshot(),
            before,
            "cleanup touched the primary NIC"
        );
    });
}

#[test]
fn netns_addresses_the_agent_did_not_add_are_never_replaced_or_deleted() {
    in_netns(
        "netns_addresses_the_agent_did_not_add_are_never_replaced_or_deleted",
        || async {
            fake_primary();
            add_nic("eni3", mac(3), 1);
            let ix = ifindex("eni3");
            // Someone else's address with the plan's IP (and its prefix route).
            ip(&["link", "set", "eni3", "up"]);
            ip(&["address", "add", "10.0.3.5/24", "dev", "eni3"]);
            let plan = test_plan(3, TABLE, None);
            let rec = Reconciler::connect().expect("netlink");
            let err = rec.apply(&plan, ix).await.expect_err("conflict");
            assert!(err.to_string().contains("address 10.0.3.5/24"), "{err}");
            let shown = ip(&["address", "show", "dev", "eni3"]);
            assert!(
                shown.contains("10.0.3.5/24") && !shown.contains("noprefixroute"),
                "{shown}"
            );
            assert!(ip(&["route", "show", "dev", "eni3"]).contains("10.0.3.0/24"));
            assert_eq!(agent_owned_objects(), 0);

            // Without it the plan applies, and every address carries the mark.
            ip(&["address", "del", "10.0.3.5/24", "dev", "eni3"]);
            rec.apply(&plan, ix).await.expect("apply");
            let ours = addr_list(rec.handle(), ix).await.expect("dump");
            for spec in &plan.addresses {
                let a = ours.iter().find(|a| a.addr == spec.addr).expect("added");
                assert!(a.is_marked(), "{a:?} lacks the IFA_PROTO mark");
            }
            // An address added later by someone else survives the cleanup.
            ip(&["address", "add", "10.0.3.77/32", "dev", "eni3"]);
            rec.cleanup(&plan, Some(ix)).await.expect("cleanup");
            let left: Vec<String> = addr_list(rec.handle(), ix)
                .await
                .expect("dump")
                .iter()
                .filter(|a| !a.is_link_local())
                .map(|a| a.addr.to_string())
                .collect();
            assert_eq!(left, ["10.0.3.77"]);
        },
    );
}

#[test]
fn netns_guard_refuses_the_primary_mac_and_addresses_on_other_links() {
    in_netns(
        "netns_guard_refuses_the_primary_mac_and_addresses_on_other_links",
        || async {
            fake_primary();
            add_nic("eni4", mac(4), 1);
            let plan = test_plan(4, TABLE, None);
            let rec = Reconciler::connect().expect("netlink");
            let addrs: Vec<std::net::IpAddr> = plan.addresses.iter().map(|a| a.addr).collect();
            let candidate = |primary_mac| Candidate {
                eni_id: "eni-test4",
                mac: mac(4),
                addresses: &addrs,
                primary_mac,
            };
            rec.guard(&candidate(None))
                .await
                .expect("a fresh NIC passes");
            let err = rec
                .guard(&candidate(Some(mac(4))))
                .await
                .expect_err("primary MAC");
            assert!(err.to_string().contains("primary NIC"), "{err}");
            ip(&["address", "add", "10.0.4.5/32", "dev", "lo"]);
            let err = rec
                .guard(&candidate(None))
                .await
                .expect_err("address elsewhere");
            assert!(
                err.to_string()
                    .contains("10.0.4.5 is already on another link (lo)"),
                "{err}"
            );
        },
    );
}

/// A second allocation of a table that holds another ENI's routes (a lost
/// tables.json, a second state directory) is refused; the first ENI's rules
/// and routes stay.
#[test]
fn netns_a_table_holding_another_enis_routes_is_refused() {
    in_netns(
        "netns_a_table_holding_another_enis_routes_is_refused",
        || async {
            fake_primary();
            add_nic("eni5", mac(5), 1);
            add_nic("eni6", mac(6), 1);
            let rec = Reconciler::connect().expect("netlink");
            let first = test_plan(5, TABLE, None);
            rec.apply(&first, ifindex("eni5")).await.expect("first ENI");
            let rules = ip(&["rule", "show"]);
            let routes = ip(&["route", "show", "table", &TABLE.to_string()]);
            let second = test_plan(6, TABLE, None);
            let err = rec
                .apply(&second, ifindex("eni6"))
                .await
                .expect_err("another ENI's table");
            assert!(
                matches!(&err, ApplyError::TableInUse { table: TABLE, .. })
                    && err.to_string().contains("another NIC's"),
                "{err}"
            );
            assert_eq!(
                ip(&["rule", "show"]),
                rules,
                "the first ENI's rules changed"
            );
            assert_eq!(ip(&["route", "show", "table", &TABLE.to_string()]), routes);
            // The allocator sees the table as taken.
            let in_use = rec.tables_in_use().await.expect("dump");
            assert!(in_use.contains(&TABLE), "{in_use:?}");
        },
    );
}

/// Cleanup never touches a NIC whose MAC is no longer the ENI's: its
/// addresses stay; the rules of the ENI's own table still go.
#[test]
fn netns_cleanup_leaves_a_nic_whose_mac_changed() {
    in_netns("netns_cleanup_leaves_a_nic_whose_mac_changed", || async {
        fake_primary();
        add_nic("eni8", mac(8), 1);
        let ix = ifindex("eni8");
        let rec = Reconciler::connect().expect("netlink");
        let plan = test_plan(8, TABLE, None);
        rec.apply(&plan, ix).await.expect("apply");
        ip(&["link", "set", "eni8", "address", "00:16:3e:aa:bb:cc"]);
        let before = ip(&["address", "show", "dev", "eni8"]);
        rec.cleanup(&plan, Some(ix)).await.expect("cleanup");
        assert_eq!(ip(&["address", "show", "dev", "eni8"]), before);
        assert!(!ip(&["rule", "show"]).contains("lookup 10001"));
    });
}
