//! The converger (watcher + reconciler loop) against a real kernel, in
//! private network namespaces: links appearing before, during and after the
//! start, rename during configuration, drift repair per object type, ENOBUFS
//! resync, link removal and re-plug, release, and devices sharing the MAC.

mod common;

use std::time::Duration;

use common::*;
use eni_agent::apply::{ConvergeEvent, Converger, ConvergerConfig, ConvergerHandle, Reconciler};
use eni_agent::plan::EniOptions;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

const LONG: Duration = Duration::from_secs(10);

/// Config with no periodic resync during a test: repairs must come from events.
fn cfg() -> ConvergerConfig {
    ConvergerConfig {
        resync_interval: Duration::from_secs(3600),
        retry_delay: Duration::from_millis(100),
        ..ConvergerConfig::default()
    }
}

struct Running {
    handle: ConvergerHandle,
    events: broadcast::Receiver<ConvergeEvent>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), eni_agent::apply::ConvergeError>>,
}

fn start(conv: Converger, handle: ConvergerHandle) -> Running {
    let events = handle.subscribe();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(conv.run(async {
        let _ = stopped.await;
    }));
    Running {
        handle,
        events,
        stop,
        task,
    }
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("converger task")
            .expect("converger ran cleanly");
    }

    /// Waits for an event matching `pred`.
    async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&ConvergeEvent) -> bool,
    ) -> ConvergeEvent {
        let deadline = tokio::time::Instant::now() + LONG;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => panic!("no {what} event within {LONG:?}"),
                Ok(Ok(ev)) if pred(&ev) => return ev,
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("event channel: {e}"),
            }
        }
    }
}

fn bound(id: &str) -> impl Fn(&ConvergeEvent) -> bool + '_ {
    move |e| matches!(e, ConvergeEvent::Bound { eni_id, .. } if eni_id == id)
}

#[test]
fn netns_watch_links_before_during_and_after_start() {
    in_netns(
        "netns_watch_links_before_during_and_after_start",
        || async {
            fake_primary();
            let plans = [
                test_plan(1, 10001, None),
                test_plan(2, 10002, None),
                test_plan(3, 10003, None),
            ];
            add_nic("before1", mac(1), 1); // before the subscription
            let (mut conv, handle) = Converger::new(cfg()).expect("converger");
            for p in &plans[..2] {
                conv.manage(p.clone()).expect("no conflict");
            }
            add_nic("during2", mac(2), 1); // subscribed, not yet dumped
            let run = start(conv, handle);
            run.handle.manage(plans[2].clone()).await.expect("manage");
            add_nic("after3", mac(3), 1); // after the start
            let rec = Reconciler::connect().expect("netlink");
            for (p, name) in plans.iter().zip(["before1", "during2", "after3"]) {
                let took = wait_converged(&rec, p, name, LONG).await;
                assert!(
                    took < Duration::from_secs(2),
                    "{name} configured after {took:?}"
                );
            }
            assert!(
                ip(&["route", "get", "192.0.2.1", "from", "10.0.3.6"])
                    .contains("dev after3 table 10003")
            );
            // Two ENIs can never share a MAC or a table.
            let mut same_mac = plans[0].clone();
            same_mac.eni_id = "eni-other".into();
            same_mac.table = 10099;
            let err = run.handle.manage(same_mac).await.expect_err("MAC conflict");
            assert!(err.to_string().contains("MAC 00:16:3e:00:00:01"), "{err}");
            let mut same_table = test_plan(10, 10002, None);
            same_table.eni_id = "eni-other".into();
            let err = run
                .handle
                .manage(same_table)
                .await
                .expect_err("table conflict");
            assert!(
                err.to_string()
                    .contains("routing table 10002 is already used by eni-test2"),
                "{err}"
            );
            // The daemon's view: every ENI found and converged.
            let deadline = tokio::time::Instant::now() + LONG;
            loop {
                let st = run.handle.status().await.expect("status");
                if st.len() == 3 && st.values().all(|s| s.converged && s.ifindex.is_some()) {
                    assert_eq!(st["eni-test2"].ifindex, Some(ifindex("during2")));
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "status never converged: {st:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            run.shutdown().await;
        },
    );
}

#[test]
fn netns_watch_rename_during_configuration() {
    in_netns("netns_watch_rename_during_configuration", || async {
        fake_primary();
        let plan = test_plan(4, TABLE, Some(1));
        let (conv, handle) = Converger::new(cfg()).expect("converger");
        let mut run = start(conv, handle);
        run.handle.manage(plan.clone()).await.expect("manage");
        add_nic("eth7", mac(4), 2);
        let ev = run.wait_for("Bound", bound("eni-test4")).await;
        // Mid-configuration (the converger is between netlink round trips): rename.
        ip(&["link", "set", "eth7", "down"]);
        ip(&["link", "set", "eth7", "name", "ens7"]);
        let rec = Reconciler::connect().expect("netlink");
        wait_converged(&rec, &plan, "ens7", LONG).await;
        let ConvergeEvent::Bound { ifindex, .. } = ev else {
            unreachable!()
        };
        assert_eq!(
            ifindex,
            ifindex_of("ens7"),
            "keyed by ifindex across the rename"
        );
        let rp = std::fs::read_to_string("/proc/sys/net/ipv4/conf/ens7/rp_filter").expect("sysctl");
        assert_eq!(rp.trim(), "2");
        assert!(ip(&["link", "show", "ens7"]).contains(",UP"));
        run.shutdown().await;
    });
}

fn ifindex_of(name: &str) -> u32 {
    ifindex(name)
}

#[test]
fn netns_watch_drift_repair_for_each_object_type() {
    in_netns("netns_watch_drift_repair_for_each_object_type", || async {
        fake_primary();
        let options = EniOptions {
            mtu: Some(9000),
            ..EniOptions::default()
        };
        let plan = test_plan_with(5, TABLE, None, &options);
        add_nic("eni5", mac(5), 1);
        let (mut conv, handle) = Converger::new(cfg()).expect("converger");
        conv.manage(plan.clone()).expect("no conflict");
        let run = start(conv, handle);
        let rec = Reconciler::connect().expect("netlink");
        wait_converged(&rec, &plan, "eni5", LONG).await;
        let drifts: &[(&str, &[&str])] = &[
            ("address", &["address", "del", "10.0.5.6/32", "dev", "eni5"]),
            (
                "primary address",
                &["address", "del", "10.0.5.5/24", "dev", "eni5"],
            ),
            (
                "IPv6 address",
                &["-6", "address", "del", "2001:db8:5::5/64", "dev", "eni5"],
            ),
            ("IPv4 route", &["route", "del", "default", "table", "10001"]),
            (
                "IPv4 subnet route",
                &["route", "del", "10.0.5.0/24", "table", "10001"],
            ),
            (
                "IPv6 route",
                &["-6", "route", "del", "default", "table", "10001"],
            ),
            (
                "IPv4 rule",
                &[
                    "rule", "del", "from", "10.0.5.6", "lookup", "10001", "pref", "20300",
                ],
            ),
            (
                "IPv4 prefix rule",
                &[
                    "rule",
                    "del",
                    "from",
                    "10.0.5.32/28",
                    "lookup",
                    "10001",
                    "pref",
                    "20100",
                ],
            ),
            (
                "IPv6 rule",
                &[
                    "-6",
                    "rule",
                    "del",
                    "from",
                    "2001:db8:5::5",
                    "lookup",
                    "10001",
                    "pref",
                    "20100",
                ],
            ),
            ("main rule", &["rule", "del", "pref", "20200"]),
            ("link up", &["link", "set", "eni5", "down"]),
            ("MTU", &["link", "set", "eni5", "mtu", "1400"]),
            ("address flush", &["address", "flush", "dev", "eni5"]),
        ];
        for (what, cmd) in drifts {
            ip(cmd);
            let took = wait_converged(&rec, &plan, "eni5", LONG).await;
            assert!(
                took < Duration::from_secs(2),
                "{what}: repaired in {took:?}"
            );
            eprintln!("drift of the {what} repaired in {took:?}");
        }
        run.shutdown().await;
    });
}

#[test]
fn netns_watch_enobufs_triggers_a_full_resync() {
    in_netns("netns_watch_enobufs_triggers_a_full_resync", || async {
        fake_primary();
        let plan = test_plan(6, TABLE, None);
        add_nic("eni6", mac(6), 1);
        let cfg = ConvergerConfig {
            event_rcvbuf: Some(1),
            ..cfg()
        };
        let (mut conv, handle) = Converger::new(cfg).expect("converger");
        conv.manage(plan.clone()).expect("no conflict");
        let mut run = start(conv, handle);
        let rec = Reconciler::connect().expect("netlink");
        wait_converged(&rec, &plan, "eni6", LONG).await;

        // The event socket filters additions in the kernel, so a flood must
        // be of removals: add 1500 foreign routes (filtered, nothing queued),
        // then, while the runtime is blocked in `ip -batch`, delete them all
        // — 1500 notifications for a receive buffer of a few — and remove
        // one of our addresses in the middle of the flood.
        let dir = tempfile::tempdir().expect("tempdir");
        let route = |verb: &str, i: usize| {
            format!(
                "route {verb} 198.18.{}.{}/32 dev prim0 table 100",
                i / 250,
                i % 250
            )
        };
        let adds = dir.path().join("adds");
        let adds_text: Vec<String> = (0..1500).map(|i| route("add", i)).collect();
        std::fs::write(&adds, adds_text.join("\n") + "\n").expect("batch file");
        ip(&["-batch", adds.to_str().expect("utf-8 path")]);
        let flood = dir.path().join("flood");
        let mut lines: Vec<String> = (0..1500).map(|i| route("del", i)).collect();
        lines.insert(700, "address del 10.0.6.6/32 dev eni6".into());
        std::fs::write(&flood, lines.join("\n") + "\n").expect("batch file");
        ip(&["-batch", flood.to_str().expect("utf-8 path")]);

        run.wait_for("Resynced{overrun}", |e| {
            *e == ConvergeEvent::Resynced { reason: "overrun" }
        })
        .await;
        wait_converged(&rec, &plan, "eni6", LONG).await;
        run.shutdown().await;
    });
}

#[test]
fn netns_watch_link_removal_replug_and_release() {
    in_netns("netns_watch_link_removal_replug_and_release", || async {
        fake_primary();
        seed_foreign();
        let plan = test_plan(7, TABLE, None);
        add_nic("eni7", mac(7), 1);
        let (mut conv, handle) = Converger::new(cfg()).expect("converger");
        conv.manage(plan.clone()).expect("no conflict");
        let mut run = start(conv, handle);
        let rec = Reconciler::connect().expect("netlink");
        wait_converged(&rec, &plan, "eni7", LONG).await;
        assert!(agent_owned_objects() > 0);

        ip(&["link", "del", "eni7"]);
        let ev = run
            .wait_for("LinkGone", |e| matches!(e, ConvergeEvent::LinkGone { .. }))
            .await;
        assert_eq!(
            agent_owned_objects(),
            0,
            "leftovers after the link vanished: {ev:?}\n{}",
            ip(&["rule", "show"])
        );
        assert_foreign_intact();

        // Re-plug: same MAC, new ifindex, same table.
        add_nic("eni7", mac(7), 1);
        run.wait_for("Bound", bound("eni-test7")).await;
        wait_converged(&rec, &plan, "eni7", LONG).await;

        let removed = run.handle.release("eni-test7").await.expect("release");
        assert!(!removed.is_empty());
        assert_eq!(agent_owned_objects(), 0, "{}", ip(&["rule", "show"]));
        assert!(!ip(&["address", "show", "dev", "eni7"]).contains("10.0.7."));
        assert_foreign_intact();
        run.shutdown().await;
    });
}

#[test]
fn netns_watch_ignores_stacked_devices_sharing_the_mac() {
    in_netns(
        "netns_watch_ignores_stacked_devices_sharing_the_mac",
        || async {
            fake_primary();
            let m = mac(8).to_string();
            ip(&[
                "link", "add", "link", "prim0", "name", "mv8", "address", &m, "type", "macvlan",
            ]);
            ip(&["link", "add", "br8", "address", &m, "type", "bridge"]);
            let plan = test_plan(8, TABLE, None);
            let (mut conv, handle) = Converger::new(cfg()).expect("converger");
            conv.manage(plan.clone()).expect("no conflict");
            let mut run = start(conv, handle);
            // The converger answers a status only after its start dump has
            // seen the macvlan and the bridge.
            let st = run.handle.status().await.expect("status");
            assert_eq!(
                st["eni-test8"].ifindex, None,
                "bound to a macvlan or bridge"
            );
            assert!(
                !matches!(run.events.try_recv(), Ok(ConvergeEvent::Bound { .. })),
                "bound to a macvlan or bridge"
            );
            add_nic("eni8", mac(8), 1);
            let ev = run.wait_for("Bound", bound("eni-test8")).await;
            assert_eq!(
                ev,
                ConvergeEvent::Bound {
                    eni_id: "eni-test8".into(),
                    ifindex: ifindex("eni8"),
                    name: "eni8".into()
                }
            );
            let rec = Reconciler::connect().expect("netlink");
            wait_converged(&rec, &plan, "eni8", LONG).await;
            assert!(!ip(&["address", "show", "dev", "mv8"]).contains("10.0.8."));
            run.shutdown().await;
        },
    );
}

#[test]
fn netns_watch_periodic_resync_repairs_sysctls_and_queues() {
    // Sysctl and channel changes raise no rtnetlink event: the periodic,
    // level-triggered resync is what repairs them.
    in_netns(
        "netns_watch_periodic_resync_repairs_sysctls_and_queues",
        || async {
            fake_primary();
            let plan = test_plan(9, TABLE, Some(2));
            add_nic("eni9", mac(9), 4);
            let cfg = ConvergerConfig {
                resync_interval: Duration::from_millis(300),
                ..cfg()
            };
            let (mut conv, handle) = Converger::new(cfg).expect("converger");
            conv.manage(plan.clone()).expect("no conflict");
            let mut run = start(conv, handle);
            let rec = Reconciler::connect().expect("netlink");
            wait_converged(&rec, &plan, "eni9", LONG).await;
            std::fs::write("/proc/sys/net/ipv4/conf/eni9/rp_filter", "0\n").expect("sysctl write");
            std::fs::write("/proc/sys/net/ipv6/conf/eni9/accept_ra", "1\n").expect("sysctl write");
            let mut ch = eni_agent::ethtool::channels_get("eni9").expect("ethtool -l");
            (ch.rx_count, ch.tx_count) = (4, 4);
            eni_agent::ethtool::channels_set("eni9", &ch).expect("ethtool -L");
            run.wait_for("Resynced{periodic}", |e| {
                *e == ConvergeEvent::Resynced { reason: "periodic" }
            })
            .await;
            let took = wait_converged(&rec, &plan, "eni9", LONG).await;
            assert!(took < Duration::from_secs(2), "repaired in {took:?}");
            let ch = eni_agent::ethtool::channels_get("eni9").expect("ethtool -l");
            assert_eq!((ch.rx_count, ch.tx_count), (2, 2));
            run.shutdown().await;
        },
    );
}

#[test]
fn netns_watch_restart_on_a_configured_nic_sends_nothing() {
    // Restarting the agent must not disturb a configured NIC.
    in_netns(
        "netns_watch_restart_on_a_configured_nic_sends_nothing",
        || async {
            fake_primary();
            let plan = test_plan(11, TABLE, Some(1));
            add_nic("eni11", mac(11), 2);
            let (mut conv, handle) = Converger::new(cfg()).expect("converger");
            conv.manage(plan.clone()).expect("no conflict");
            let run = start(conv, handle);
            let rec = Reconciler::connect().expect("netlink");
            // A NIC found by the first dump is configured without waiting for an event.
            let took = wait_converged(&rec, &plan, "eni11", LONG).await;
            assert!(
                took < Duration::from_millis(500),
                "first configuration took {took:?}"
            );
            run.shutdown().await;
            assert!(
                agent_owned_objects() > 0,
                "shutdown leaves the configuration in place"
            );

            let (mut conv, handle) = Converger::new(cfg()).expect("converger");
            conv.manage(plan.clone()).expect("no conflict");
            let mut run = start(conv, handle);
            let ev = run
                .wait_for("Converged", |e| {
                    matches!(e, ConvergeEvent::Converged { .. })
                })
                .await;
            let ConvergeEvent::Converged { ops, .. } = ev else {
                unreachable!()
            };
            assert_eq!(ops, Vec::<String>::new(), "a restart sent operations");
            run.shutdown().await;
        },
    );
}
