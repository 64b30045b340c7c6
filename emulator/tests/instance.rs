//! The instance side: the asynchronous state machine and its timing, the
//! metadata service (token rules, formats, per-MAC entries after the lag),
//! and hot-plug / unplug of real veth NICs in the instance namespace.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const MAC1: &str = "00:16:3e:10:00:02";
const MAC2: &str = "00:16:3e:10:00:03";

async fn link_with_mac(ns: &std::os::fd::OwnedFd, mac: &str) -> Option<Link> {
    links_in(ns).await.into_iter().find(|l| l.mac == mac)
}

async fn wait_link(ns: &std::os::fd::OwnedFd, mac: &str, present: bool, max: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if link_with_mac(ns, mac).await.is_some() == present {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < max,
            "link {mac} present={present} not reached within {max:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn macs(h: &Harness) -> String {
    let (code, body) = h
        .md("/latest/meta-data/network/interfaces/macs/", None)
        .await;
    assert_eq!(code, 200);
    body
}

#[test]
fn attach_detach_cycle_with_timing_metadata_and_hotplug() {
    in_netns(|| async {
        let ns = new_instance_netns();
        let probe = ns.try_clone().expect("dup netns fd");
        let mut s = fast_scenario();
        let mut settings = s.settings.clone().unwrap_or_default();
        settings.timing.attach_delay_ms = 600;
        settings.timing.detach_delay_ms = 600;
        settings.timing.metadata_lag_ms = 400;
        s.settings = Some(settings);
        let h = start(s, Some(ns)).await;

        // The primary ENI is plugged at start, as eth0 with its queue count.
        wait_link(&probe, "00:16:3e:10:00:01", true, Duration::from_secs(2)).await;
        let eth0 = link_with_mac(&probe, "00:16:3e:10:00:01")
            .await
            .expect("primary link");
        assert_eq!(
            (eth0.name.as_str(), eth0.tx_queues, eth0.rx_queues),
            ("eth0", 4, 4)
        );
        assert!(macs(&h).await.contains("00:16:3e:10:00:01/"));
        assert!(!macs(&h).await.contains(MAC1));

        let t0 = Instant::now();
        let (code, v) = h
            .v2(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", ENI1), ("InstanceId", INSTANCE)],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        assert!(
            t0.elapsed() < Duration::from_millis(450),
            "Attach answers at once"
        );
        assert_eq!(h.status(ENI1).await, "Attaching");
        let (_, v) = h
            .v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", ENI1)],
            )
            .await;
        assert_eq!(v["InstanceId"], INSTANCE);
        assert!(
            link_with_mac(&probe, MAC1).await.is_none(),
            "no NIC while Attaching (offset 0)"
        );
        h.wait_status(ENI1, "InUse", Duration::from_secs(3)).await;
        let in_use_after = t0.elapsed();
        assert!(
            in_use_after >= Duration::from_millis(550),
            "InUse only after the delay: {in_use_after:?}"
        );
        // Metadata only after the lag; the link appears at InUse.
        assert!(!macs(&h).await.contains(MAC1), "metadata lags behind InUse");
        wait_link(&probe, MAC1, true, Duration::from_secs(2)).await;
        let l = link_with_mac(&probe, MAC1).await.expect("hot-plugged NIC");
        assert_eq!(
            (l.name.as_str(), l.tx_queues, l.rx_queues),
            ("eth1", 2, 2),
            "{l:?}"
        );
        let start = Instant::now();
        while !macs(&h).await.contains(&format!("{MAC1}/")) {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "MAC never appeared in metadata"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            t0.elapsed() >= Duration::from_millis(950),
            "lag respected: {:?}",
            t0.elapsed()
        );
        let base = format!("/latest/meta-data/network/interfaces/macs/{MAC1}");
        let (_, ips) = h.md(&format!("{base}/private-ipv4s"), None).await;
        assert_eq!(
            ips,
            r#"["192.168.10.20","192.168.10.21","192.168.10.22","192.168.10.23"]"#
        );
        let (_, v6) = h.md(&format!("{base}/ipv6s"), None).await;
        assert_eq!(v6, "[2408:4005:3a0:7101::20,2408:4005:3a0:7101::21]");
        for (key, want) in [
            ("network-interface-id", ENI1),
            ("primary-ip-address", "192.168.10.20"),
            ("netmask", "255.255.255.0"),
            ("gateway", "192.168.10.253"),
            ("vswitch-cidr-block", "192.168.10.0/24"),
            ("vpc-cidr-block", "192.168.0.0/16"),
            ("vpc-id", "vpc-emu0main"),
            ("vswitch-id", "vsw-emu0zonei"),
            ("ipv4-prefixes", "192.168.10.128/28"),
            ("ipv6-gateway", "2408:4005:3a0:7101:ffff:ffff:ffff:fff7"),
            ("vswitch-ipv6-cidr-block", "2408:4005:3a0:7101::/64"),
            ("vpc-ipv6-cidr-blocks", "[2408:4005:3a0:7100::/56]"),
        ] {
            assert_eq!(
                h.md(&format!("{base}/{key}"), None).await,
                (200, want.to_string()),
                "{key}"
            );
        }
        // An IP change shows in metadata after the lag.
        let (code, v) = h
            .v3(
                "AssignPrivateIpAddresses",
                &[
                    ("NetworkInterfaceId", ENI1),
                    ("PrivateIpAddress.1", "192.168.10.24"),
                ],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        assert!(
            !h.md(&format!("{base}/private-ipv4s"), None)
                .await
                .1
                .contains("192.168.10.24")
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            h.md(&format!("{base}/private-ipv4s"), None)
                .await
                .1
                .contains("192.168.10.24")
        );

        // Detach: Detaching, then Available; link and metadata go away.
        let t1 = Instant::now();
        let (code, _) = h
            .v3(
                "DetachNetworkInterface",
                &[("NetworkInterfaceId", ENI1), ("InstanceId", INSTANCE)],
            )
            .await;
        assert_eq!(code, 200);
        assert_eq!(h.status(ENI1).await, "Detaching");
        assert!(
            link_with_mac(&probe, MAC1).await.is_some(),
            "NIC still there while Detaching"
        );
        h.wait_status(ENI1, "Available", Duration::from_secs(3))
            .await;
        assert!(t1.elapsed() >= Duration::from_millis(550));
        wait_link(&probe, MAC1, false, Duration::from_secs(2)).await;
        assert!(!macs(&h).await.contains(MAC1));
        let (_, v) = h
            .v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", ENI1)],
            )
            .await;
        assert_eq!(v["InstanceId"], "");
        h.running.shutdown().await;
    });
}

#[test]
fn link_offset_both_signs() {
    in_netns(|| async {
        let ns = new_instance_netns();
        let probe = ns.try_clone().expect("dup netns fd");
        let mut s = fast_scenario();
        let mut settings = s.settings.clone().unwrap_or_default();
        settings.timing.attach_delay_ms = 800;
        settings.timing.link_offset_ms = -600;
        settings.timing.detach_delay_ms = 300;
        settings.timing.unplug_offset_ms = 500;
        s.settings = Some(settings);
        let h = start(s, Some(ns)).await;
        // Negative: the NIC shows up while Describe still says Attaching.
        assert_eq!(
            h.v2(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", ENI2), ("InstanceId", INSTANCE)]
            )
            .await
            .0,
            200
        );
        wait_link(&probe, MAC2, true, Duration::from_millis(700)).await;
        assert_eq!(h.status(ENI2).await, "Attaching", "NIC before InUse");
        let l = link_with_mac(&probe, MAC2).await.expect("link");
        assert_eq!((l.tx_queues, l.rx_queues), (4, 4));
        h.wait_status(ENI2, "InUse", Duration::from_secs(2)).await;
        // Positive unplug offset: Available first, NIC removed later.
        assert_eq!(
            h.v2(
                "DetachNetworkInterface",
                &[("NetworkInterfaceId", ENI2), ("InstanceId", INSTANCE)]
            )
            .await
            .0,
            200
        );
        h.wait_status(ENI2, "Available", Duration::from_secs(2))
            .await;
        assert!(
            link_with_mac(&probe, MAC2).await.is_some(),
            "NIC outlives the detach by the offset"
        );
        wait_link(&probe, MAC2, false, Duration::from_secs(2)).await;
        // Positive link offset: InUse first, NIC later.
        h.patch_settings(json!({"timing": {"attach_delay_ms": 200, "link_offset_ms": 500}}))
            .await;
        assert_eq!(
            h.v2(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", ENI2), ("InstanceId", INSTANCE)]
            )
            .await
            .0,
            200
        );
        h.wait_status(ENI2, "InUse", Duration::from_secs(2)).await;
        assert!(
            link_with_mac(&probe, MAC2).await.is_none(),
            "InUse before the NIC"
        );
        wait_link(&probe, MAC2, true, Duration::from_secs(2)).await;
        h.running.shutdown().await;
    });
}

#[test]
fn stuck_and_failed_attach() {
    in_netns(|| async {
        let ns = new_instance_netns();
        let probe = ns.try_clone().expect("dup netns fd");
        let h = start(fast_scenario(), Some(ns)).await;
        h.patch_settings(json!({"faults": {"stuck_attaching": [ENI1], "fail_attach": [ENI2]}}))
            .await;
        assert_eq!(
            h.v2(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", ENI1), ("InstanceId", INSTANCE)]
            )
            .await
            .0,
            200
        );
        assert_eq!(
            h.v2(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", ENI2), ("InstanceId", INSTANCE)]
            )
            .await
            .0,
            200
        );
        assert_eq!(h.status(ENI2).await, "Attaching");
        h.wait_status(ENI2, "Available", Duration::from_secs(2))
            .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(h.status(ENI1).await, "Attaching", "stuck");
        assert!(link_with_mac(&probe, MAC1).await.is_none());
        assert!(link_with_mac(&probe, MAC2).await.is_none());
        assert!(!macs(&h).await.contains(MAC1));
        // The failed ENI can be attached again once the fault is cleared.
        h.patch_settings(json!({"faults": {"fail_attach": []}}))
            .await;
        assert_eq!(
            h.v2(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", ENI2), ("InstanceId", INSTANCE)]
            )
            .await
            .0,
            200
        );
        h.wait_status(ENI2, "InUse", Duration::from_secs(2)).await;
        // A random failure rate of 1 fails every attach.
        h.patch_settings(json!({"faults": {"fail_attach_rate": 1.0, "stuck_attaching": []}}))
            .await;
        let (code, v) = h
            .v2(
                "CreateNetworkInterface",
                &[
                    ("VSwitchId", "vsw-emu0zonei"),
                    ("SecurityGroupId", "sg-emu0main"),
                ],
            )
            .await;
        assert_eq!(code, 200);
        let id = v["NetworkInterfaceId"].as_str().expect("id").to_string();
        assert_eq!(
            h.v2(
                "AttachNetworkInterface",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("InstanceId", INSTANCE)
                ]
            )
            .await
            .0,
            200
        );
        h.wait_status(&id, "Available", Duration::from_secs(2))
            .await;
        h.running.shutdown().await;
    });
}

#[test]
fn metadata_token_rules_and_formats() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let put = |ttl: Option<&str>, xff: bool| {
            let mut r = h.http.put(format!("{}/latest/api/token", h.md));
            if let Some(t) = ttl {
                r = r.header("X-aliyun-ecs-metadata-token-ttl-seconds", t);
            }
            if xff {
                r = r.header("X-Forwarded-For", "10.0.0.1");
            }
            async move {
                let resp = r.send().await.expect("token request");
                (resp.status().as_u16(), resp.text().await.expect("text"))
            }
        };
        assert_eq!(put(None, false).await.0, 400);
        assert_eq!(put(Some("0"), false).await.0, 400);
        assert_eq!(put(Some("21601"), false).await.0, 400);
        assert_eq!(put(Some("21700"), false).await.0, 400);
        assert_eq!(put(Some("abc"), false).await.0, 400);
        assert_eq!(put(Some("60"), true).await.0, 403);
        let (code, token) = put(Some("21600"), false).await;
        assert_eq!(code, 200);
        assert!(!token.is_empty());
        assert_eq!(
            h.md("/latest/meta-data/instance-id", Some(&token)).await,
            (200, INSTANCE.to_string())
        );
        assert_eq!(
            h.md("/latest/meta-data/instance-id", Some("aaa")).await.0,
            401
        );
        assert_eq!(
            h.md("/latest/meta-data/instance-id", None).await,
            (200, INSTANCE.to_string())
        );
        // Hardened only: tokenless 403, tokens still work.
        h.patch_settings(json!({"metadata": {"hardened_only": true}}))
            .await;
        assert_eq!(h.md("/latest/meta-data/instance-id", None).await.0, 403);
        assert_eq!(
            h.md("/latest/meta-data/instance-id", Some(&token)).await.0,
            200
        );
        h.patch_settings(json!({"metadata": {"hardened_only": false}}))
            .await;
        // Tokens expire.
        let (_, short) = put(Some("1"), false).await;
        assert_eq!(
            h.md("/latest/meta-data/region-id", Some(&short)).await.0,
            200
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            h.md("/latest/meta-data/region-id", Some(&short)).await.0,
            401
        );
        // Instance keys.
        for (path, want) in [
            ("instance-id", INSTANCE),
            ("region-id", REGION),
            ("zone-id", "cn-hangzhou-i"),
            ("mac", "00:16:3e:10:00:01"),
            ("private-ipv4", "192.168.10.10"),
            ("vpc-id", "vpc-emu0main"),
            ("vswitch-id", "vsw-emu0zonei"),
            ("vpc-cidr-block", "192.168.0.0/16"),
            ("vswitch-cidr-block", "192.168.10.0/24"),
            ("owner-account-id", "1234567890123456"),
            ("instance/instance-type", "ecs.g7.xlarge"),
            ("network-type", "vpc"),
        ] {
            assert_eq!(
                h.md(&format!("/latest/meta-data/{path}"), None).await,
                (200, want.to_string()),
                "{path}"
            );
        }
        // Listings: sub-directories end with '/', no trailing newline.
        let (_, root) = h.md("/latest/meta-data/", None).await;
        assert!(
            root.lines().any(|l| l == "network/") && root.lines().any(|l| l == "instance-id"),
            "{root}"
        );
        assert!(!root.ends_with('\n'));
        assert_eq!(
            h.md("/latest/meta-data/network/interfaces/", None).await.1,
            "macs/"
        );
        assert_eq!(
            h.md("/latest/meta-data/network/interfaces/macs/", None)
                .await
                .1,
            "00:16:3e:10:00:01/"
        );
        let primary = "/latest/meta-data/network/interfaces/macs/00:16:3e:10:00:01";
        assert_eq!(
            h.md(&format!("{primary}/private-ipv4s"), None).await.1,
            r#"["192.168.10.10"]"#
        );
        assert_eq!(
            h.md(&format!("{primary}/ipv6s"), None).await.0,
            404,
            "no IPv6 → 404"
        );
        assert_eq!(h.md("/latest/meta-data/no-such-key", None).await.0, 404);
        assert_eq!(
            h.md(
                "/latest/meta-data/network/interfaces/macs/00:16:3e:10:00:02/",
                None
            )
            .await
            .0,
            404
        );
        h.running.shutdown().await;
    });
}
