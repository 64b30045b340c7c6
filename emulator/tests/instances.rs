//! Several emulated instances, each in its own network namespace: an ENI
//! attached to instance X is hot-plugged into X's namespace only, and a
//! metadata listener bound for X answers as X (instance id, MACs, per-MAC
//! entries), while the scenario's metadata instance keeps the plain
//! listener.

mod common;

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::*;
use ecs_emulator::scenario::{EniSpec, InstanceSpec, Scenario};
use ecs_emulator::{Config, Listeners};

const OTHER: &str = "i-emu0instance0002";
const OTHER_PRIMARY_MAC: &str = "00:16:3e:20:00:01";

/// The built-in scenario plus a second Running instance with its own
/// primary ENI.
fn two_instances() -> Scenario {
    let mut s = fast_scenario();
    let first = s.instances[0].clone();
    s.instances.push(InstanceSpec {
        id: OTHER.into(),
        hostname: Some("iZemu0instance0002Z".into()),
        ..first
    });
    s.enis.push(EniSpec {
        id: "eni-emu0primary0002".into(),
        eni_type: Some("Primary".into()),
        vswitch_id: "vsw-emu0zonei".into(),
        instance_id: Some(OTHER.into()),
        mac: Some(OTHER_PRIMARY_MAC.into()),
        primary_ip: Some("192.168.10.11".into()),
        security_group_ids: vec!["sg-emu0main".into()],
        ..EniSpec::default()
    });
    s
}

async fn wait_mac(ns: &OwnedFd, mac: &str, max: Duration) {
    let start = Instant::now();
    while !links_in(ns).await.iter().any(|l| l.mac == mac) {
        assert!(start.elapsed() < max, "NIC {mac} never appeared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn get(http: &reqwest::Client, base: &str, path: &str) -> String {
    let r = http
        .get(format!("{base}/latest/meta-data/{path}"))
        .send()
        .await
        .expect("metadata request");
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.text().await.expect("text")
}

#[test]
fn each_instance_sees_its_own_metadata_and_nics() {
    in_netns(|| async {
        let (ns1, ns2) = (new_instance_netns(), new_instance_netns());
        let (probe1, probe2) = (ns1.try_clone().expect("dup"), ns2.try_clone().expect("dup"));
        let bind = || async {
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind")
        };
        let md2 = bind().await;
        let md2_url = format!("http://{}", md2.local_addr().expect("addr"));
        let running = ecs_emulator::start(
            Config {
                scenario: two_instances(),
                instance_netns: Some(ns1),
                instance_namespaces: vec![(OTHER.into(), ns2)],
                qemu_vms: Vec::new(),
            },
            Listeners {
                api: bind().await,
                api_extra: Vec::new(),
                metadata: vec![bind().await],
                instance_metadata: vec![(OTHER.into(), md2)],
            },
        )
        .expect("emulator starts");
        let md1_url = running.info.metadata_url.clone();
        let h = Harness {
            api: running.info.api_url.clone(),
            md: md1_url.clone(),
            control: running.info.control_url.clone(),
            running,
            http: http_client(),
        };

        // Each primary NIC is plugged into its own instance's namespace.
        wait_mac(&probe1, "00:16:3e:10:00:01", Duration::from_secs(2)).await;
        wait_mac(&probe2, OTHER_PRIMARY_MAC, Duration::from_secs(2)).await;
        assert!(
            !links_in(&probe1)
                .await
                .iter()
                .any(|l| l.mac == OTHER_PRIMARY_MAC)
        );

        // Each metadata listener answers as its instance.
        assert_eq!(get(&h.http, &md1_url, "instance-id").await, INSTANCE);
        assert_eq!(get(&h.http, &md2_url, "instance-id").await, OTHER);
        assert_eq!(get(&h.http, &md2_url, "mac").await, OTHER_PRIMARY_MAC);
        assert_eq!(
            get(&h.http, &md2_url, "private-ipv4").await,
            "192.168.10.11"
        );

        // ENI1 attached to the second instance: its NIC appears there only,
        // and only the second instance's metadata lists its MAC.
        let (code, v) = h
            .v3(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", ENI1), ("InstanceId", OTHER)],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        h.wait_status(ENI1, "InUse", Duration::from_secs(3)).await;
        wait_mac(&probe2, "00:16:3e:10:00:02", Duration::from_secs(2)).await;
        assert!(
            !links_in(&probe1)
                .await
                .iter()
                .any(|l| l.mac == "00:16:3e:10:00:02"),
            "the NIC went to the other instance's namespace"
        );
        let start = Instant::now();
        loop {
            let macs = get(&h.http, &md2_url, "network/interfaces/macs/").await;
            if macs.contains("00:16:3e:10:00:02/") {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(2), "{macs}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let base = "network/interfaces/macs/00:16:3e:10:00:02";
        assert_eq!(
            get(&h.http, &md2_url, &format!("{base}/network-interface-id")).await,
            ENI1
        );
        let macs1 = get(&h.http, &md1_url, "network/interfaces/macs/").await;
        assert!(!macs1.contains("00:16:3e:10:00:02"), "{macs1}");
        h.running.shutdown().await;
    });
}
