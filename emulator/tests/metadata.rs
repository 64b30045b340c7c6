//! The metadata service as real clients read it: every path the same under
//! `latest` and the dated `2016-01-01` (and 404 under any other version),
//! the version listing, `meta-data/all` agreeing with a crawl of the tree,
//! `public-keys/`, `user-data` and `vendor-data` from the scenario and the
//! control API, the documented prefix formats, and all of it in hardened
//! (token) mode too.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const VERSIONS: [&str; 2] = ["latest", "2016-01-01"];
const MAC1: &str = "00:16:3e:10:00:02";
const KEY_ID: &str = "skp-emu0key0001";

/// The built-in scenario with a second IPv4 prefix and two IPv6 prefixes on
/// the first secondary ENI (to see the multi-value format).
fn scenario() -> ecs_emulator::scenario::Scenario {
    let mut s = fast_scenario();
    let e = s
        .enis
        .iter_mut()
        .find(|e| e.id == ENI1)
        .expect("ENI1 in the scenario");
    e.ipv4_prefixes.push("192.168.10.160/28".into());
    e.ipv6_prefixes = vec![
        "2408:4005:3a0:7101:1::/80".into(),
        "2408:4005:3a0:7101:2::/80".into(),
    ];
    s
}

/// Attaches ENI1 and waits until its MAC is in metadata.
async fn attach_eni1(h: &Harness) {
    let (code, v) = h
        .v3(
            "AttachNetworkInterface",
            &[("NetworkInterfaceId", ENI1), ("InstanceId", INSTANCE)],
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let start = Instant::now();
    loop {
        let (_, macs) = h
            .md("/latest/meta-data/network/interfaces/macs/", None)
            .await;
        if macs.lines().any(|l| l == format!("{MAC1}/")) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{MAC1} never reached metadata"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn put_token(h: &Harness) -> String {
    let r = h
        .http
        .put(format!("{}/latest/api/token", h.md))
        .header("X-aliyun-ecs-metadata-token-ttl-seconds", "600")
        .send()
        .await
        .expect("token PUT");
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.expect("token")
}

async fn patch_instance(h: &Harness, body: Value) -> (u16, Value) {
    let r = h
        .http
        .patch(format!("{}/instances/{INSTANCE}", h.control))
        .json(&body)
        .send()
        .await
        .expect("control PATCH");
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

#[test]
fn every_path_is_served_alike_under_each_version_tokenless_and_with_token() {
    in_netns(|| async {
        let h = start(scenario(), None).await;
        attach_eni1(&h).await;
        let m = format!("meta-data/network/interfaces/macs/{MAC1}");
        let cases: Vec<(String, &str)> = vec![
            ("meta-data/instance-id".into(), INSTANCE),
            ("meta-data/region-id".into(), REGION),
            ("meta-data/zone-id".into(), "cn-hangzhou-i"),
            ("meta-data/hostname".into(), "iZemu0instance0001Z"),
            ("meta-data/mac".into(), "00:16:3e:10:00:01"),
            ("meta-data/private-ipv4".into(), "192.168.10.10"),
            ("meta-data/vpc-id".into(), "vpc-emu0main"),
            ("meta-data/instance/instance-type".into(), "ecs.g7.xlarge"),
            (
                "meta-data/dns-conf/nameservers".into(),
                "100.100.2.136\n100.100.2.138",
            ),
            ("meta-data/public-keys/".into(), "skp-emu0key0001/"),
            (format!("meta-data/public-keys/{KEY_ID}/"), "openssh-key"),
            (
                "meta-data/network/interfaces/macs/".into(),
                "00:16:3e:10:00:01/\n00:16:3e:10:00:02/",
            ),
            (format!("{m}/network-interface-id"), ENI1),
            (
                format!("{m}/private-ipv4s"),
                r#"["192.168.10.20","192.168.10.21","192.168.10.22","192.168.10.23"]"#,
            ),
            // The document's format: plain CIDR, several one a line.
            (
                format!("{m}/ipv4-prefixes"),
                "192.168.10.128/28\n192.168.10.160/28",
            ),
            (
                format!("{m}/ipv6-prefixes"),
                "2408:4005:3a0:7101:1::/80\n2408:4005:3a0:7101:2::/80",
            ),
            (
                format!("{m}/ipv6s"),
                "[2408:4005:3a0:7101::20,2408:4005:3a0:7101::21]",
            ),
            ("meta-data/ram/security-credentials/".into(), "EniAgentRole"),
            ("".into(), "meta-data/\nuser-data\nvendor-data"),
            (
                "user-data".into(),
                "#cloud-config\nhostname: emulated-from-user-data\n",
            ),
            (
                "vendor-data".into(),
                "#cloud-config\nbootcmd:\n- echo vendor-data-from-emulator\n",
            ),
        ];
        let key = h
            .md(
                &format!("/latest/meta-data/public-keys/{KEY_ID}/openssh-key"),
                None,
            )
            .await;
        assert_eq!(key.0, 200);
        assert!(key.1.starts_with("ssh-ed25519 AAAA"), "{key:?}");
        for hardened in [false, true] {
            h.patch_settings(json!({"metadata": {"hardened_only": hardened}}))
                .await;
            let token = put_token(&h).await;
            for (path, want) in &cases {
                for version in VERSIONS {
                    let url = format!("/{version}/{path}");
                    assert_eq!(
                        h.md(&url, Some(&token)).await,
                        (200, want.to_string()),
                        "{url} with token"
                    );
                    let tokenless = h.md(&url, None).await;
                    if hardened {
                        assert_eq!(tokenless.0, 403, "{url} tokenless, hardened");
                    } else {
                        assert_eq!(tokenless, (200, want.to_string()), "{url} tokenless");
                    }
                }
            }
            // Credentials are served (fresh JSON) under both versions too.
            for version in VERSIONS {
                let (code, body) = h
                    .md(
                        &format!("/{version}/meta-data/ram/security-credentials/EniAgentRole"),
                        Some(&token),
                    )
                    .await;
                assert_eq!(code, 200);
                let doc: Value = serde_json::from_str(&body).expect("credentials JSON");
                assert_eq!(doc["Code"], "Success");
            }
        }
        h.running.shutdown().await;
    });
}

#[test]
fn version_listing_and_unknown_versions() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let token = put_token(&h).await;
        assert_eq!(h.md("/", None).await, (200, "2016-01-01\nlatest".into()));
        let cases = [
            ("/2016-01-02/meta-data/instance-id", 404),
            ("/2009-04-04/meta-data/instance-id", 404),
            ("/LATEST/meta-data/instance-id", 404),
            ("/v1/meta-data/", 404),
            ("/meta-data/instance-id", 404),
            ("/2016-01-01/meta-data/no-such-key", 404),
            ("/2016-01-01/no-such-tree", 404),
            ("/2016-01-01/meta-data/instance-id/more", 404),
            ("/2016-01-01/meta-data/instance-id", 200),
            ("/2016-01-01/meta-data", 200),
            ("/latest", 200),
        ];
        for (path, want) in cases {
            assert_eq!(h.md(path, None).await.0, want, "{path}");
            assert_eq!(h.md(path, Some(&token)).await.0, want, "{path} with token");
        }
        // Without user/vendor data both are 404 and left out of the listing.
        let (code, _) = patch_instance(&h, json!({"user_data": null, "vendor_data": null})).await;
        assert_eq!(code, 200);
        for version in VERSIONS {
            assert_eq!(h.md(&format!("/{version}/user-data"), None).await.0, 404);
            assert_eq!(h.md(&format!("/{version}/vendor-data"), None).await.0, 404);
            assert_eq!(
                h.md(&format!("/{version}/"), None).await,
                (200, "meta-data/".into())
            );
        }
        h.running.shutdown().await;
    });
}

/// Fetches every leaf below `path` (a directory, ending in `/`) the way
/// the EC2-style crawlers do and builds the same nested map.
async fn crawl(h: &Harness, token: &str, path: String) -> Value {
    let mut map = serde_json::Map::new();
    let mut stack = vec![(path, Vec::<String>::new())];
    while let Some((dir, keys)) = stack.pop() {
        let (code, listing) = h.md(&dir, Some(token)).await;
        assert_eq!(code, 200, "{dir}");
        for entry in listing.lines() {
            let mut k = keys.clone();
            if let Some(sub) = entry.strip_suffix('/') {
                if sub == "security-credentials" {
                    continue;
                }
                k.push(sub.to_string());
                stack.push((format!("{dir}{entry}"), k));
            } else {
                let (code, body) = h.md(&format!("{dir}{entry}"), Some(token)).await;
                assert_eq!(code, 200, "{dir}{entry}");
                k.push(entry.to_string());
                let mut node = &mut map;
                for seg in &k[..k.len() - 1] {
                    node = node
                        .entry(seg.clone())
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                        .expect("object");
                }
                node.insert(entry.to_string(), Value::String(body));
            }
        }
    }
    Value::Object(map)
}

/// Drops empty objects (a directory whose only entry was skipped).
fn prune(v: &mut Value) {
    if let Value::Object(m) = v {
        m.values_mut().for_each(prune);
        m.retain(|_, c| !matches!(c, Value::Object(o) if o.is_empty()));
    }
}

#[test]
fn meta_data_all_is_the_crawled_tree_without_credentials() {
    in_netns(|| async {
        let h = start(scenario(), None).await;
        attach_eni1(&h).await;
        h.patch_settings(json!({"metadata": {"hardened_only": true}}))
            .await;
        let token = put_token(&h).await;
        for version in VERSIONS {
            let (code, body) = h
                .md(&format!("/{version}/meta-data/all"), Some(&token))
                .await;
            assert_eq!(code, 200);
            let all: Value = serde_json::from_str(&body).expect("meta-data/all is JSON");
            assert!(all.get("ram").is_none(), "no credentials in all: {body}");
            assert!(
                !body.contains("AccessKeySecret") && !body.contains("SecurityToken"),
                "{body}"
            );
            assert_eq!(all["instance-id"], INSTANCE);
            assert_eq!(
                all["public-keys"][KEY_ID]["openssh-key"]
                    .as_str()
                    .map(|k| k.starts_with("ssh-ed25519 ")),
                Some(true)
            );
            assert_eq!(
                all["network"]["interfaces"]["macs"][MAC1]["network-interface-id"],
                ENI1
            );
            let mut crawled = crawl(&h, &token, format!("/{version}/meta-data/")).await;
            prune(&mut crawled);
            assert_eq!(all, crawled, "meta-data/all differs from the crawl");
            // `all` is not a directory entry (a crawler would fetch it as a leaf).
            let (_, root) = h.md(&format!("/{version}/meta-data/"), Some(&token)).await;
            assert!(!root.lines().any(|l| l == "all"), "{root}");
        }
        h.running.shutdown().await;
    });
}

#[test]
fn key_pairs_user_data_and_vendor_data_are_set_through_the_control_api() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let pairs: BTreeMap<&str, &str> = [
            ("skp-a", "ssh-rsa AAAAB3NzaC1yc2E a@example"),
            ("skp-b", "ecdsa-sha2-nistp256 AAAAE2VjZHNh b@example"),
        ]
        .into();
        let (code, v) = patch_instance(
            &h,
            json!({"key_pairs": pairs, "user_data": "#!/bin/sh\necho hi\n", "vendor_data": "v"}),
        )
        .await;
        assert_eq!(code, 200, "{v}");
        for version in VERSIONS {
            let h = &h;
            let get = |p: String| {
                let url = format!("/{version}/{p}");
                async move { h.md(&url, None).await }
            };
            assert_eq!(
                get("meta-data/public-keys/".into()).await.1,
                "skp-a/\nskp-b/"
            );
            for (id, key) in &pairs {
                assert_eq!(
                    get(format!("meta-data/public-keys/{id}/openssh-key")).await,
                    (200, key.to_string())
                );
            }
            assert_eq!(get("user-data".into()).await.1, "#!/bin/sh\necho hi\n");
            assert_eq!(get("vendor-data".into()).await.1, "v");
        }
        // Bad changes are refused whole: nothing of the patch is applied.
        let bad = [
            json!({"key_pairs": {"a/b": "ssh-rsa AAAA"}, "user_data": "changed"}),
            json!({"key_pairs": {"skp-c": ""}, "user_data": "changed"}),
            json!({"key_pairs": {"skp-c": "ssh-rsa A\nssh-rsa B"}}),
            json!({"key_pairs": {"": "ssh-rsa AAAA"}}),
            json!({"user_data": 5}),
            json!({"public_keys": {}}),
        ];
        for body in bad {
            let (code, v) = patch_instance(&h, body.clone()).await;
            assert!(code == 400 || code == 422, "{body}: {code} {v}");
            assert_eq!(
                h.md("/2016-01-01/user-data", None).await.1,
                "#!/bin/sh\necho hi\n",
                "{body}"
            );
            assert_eq!(
                h.md("/2016-01-01/meta-data/public-keys/", None).await.1,
                "skp-a/\nskp-b/"
            );
        }
        // No key pairs: public-keys/ is gone (404), as on an instance
        // launched without one.
        let (code, _) = patch_instance(&h, json!({"key_pairs": {}})).await;
        assert_eq!(code, 200);
        assert_eq!(
            h.md("/2016-01-01/meta-data/public-keys/", None).await.0,
            404
        );
        h.running.shutdown().await;
    });
}

#[test]
fn scenario_key_pairs_are_checked() {
    let mut s = fast_scenario();
    s.instances[0]
        .key_pairs
        .insert("bad id".into(), "ssh-rsa AAAA".into());
    let Err(err) = ecs_emulator::model::State::from_scenario(&s) else {
        panic!("a key pair id with a space is refused");
    };
    let msg = err.to_string();
    assert!(
        msg.contains(INSTANCE) && msg.contains("bad id"),
        "the message names the instance and the key pair: {msg}"
    );
}
