//! Fault injection knobs, each changed at run time through the control API:
//! the account-wide request budget, random Throttling, InternalError and
//! ServiceUnavailable, latency, dropped connections (before and after the
//! action ran), per-action scoping, and the metadata service's faults.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[test]
fn api_faults() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let describe = [("NetworkInterfaceId", ENI1)];
        let action = "DescribeNetworkInterfaceAttribute";

        h.patch_settings(json!({"faults": {"requests_per_second": 2}}))
            .await;
        let mut codes = Vec::new();
        for _ in 0..8 {
            let (status, v) = h.v2(action, &describe).await;
            codes.push((status, v["Code"].as_str().unwrap_or("Success").to_string()));
        }
        assert!(
            codes
                .iter()
                .any(|c| c == &(400, "Throttling.User".to_string())),
            "{codes:?}"
        );
        assert!(codes.iter().any(|c| c.0 == 200), "{codes:?}");
        h.patch_settings(json!({"faults": {"requests_per_second": null}}))
            .await;
        tokio::time::sleep(Duration::from_millis(1000)).await;

        h.patch_settings(json!({"faults": {"default": {"throttling_rate": 1.0}}}))
            .await;
        assert_error(&h.v2(action, &describe).await, 400, "Throttling");
        assert_error(
            &h.v3("DescribeNetworkInterfaces", &[]).await,
            400,
            "Throttling",
        );
        h.patch_settings(
            json!({"faults": {"default": {"throttling_rate": 0.0, "internal_error_rate": 1.0}}}),
        )
        .await;
        assert_error(&h.v2(action, &describe).await, 500, "InternalError");
        h.patch_settings(json!({"faults": {"default": {"internal_error_rate": 0.0, "service_unavailable_rate": 1.0}}})).await;
        assert_error(&h.v2(action, &describe).await, 503, "ServiceUnavailable");
        // Per action: only Attach fails.
        h.patch_settings(
            json!({"faults": {"default": {"service_unavailable_rate": 0.0},
            "actions": {"AttachNetworkInterface": {"internal_error_rate": 1.0}}}}),
        )
        .await;
        assert_eq!(h.v2(action, &describe).await.0, 200);
        assert_error(
            &h.v2(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", ENI1), ("InstanceId", INSTANCE)],
            )
            .await,
            500,
            "InternalError",
        );
        assert_eq!(
            h.status(ENI1).await,
            "Available",
            "an injected InternalError changes nothing"
        );

        // Latency.
        h.patch_settings(json!({"faults": {"actions": {action: {"latency_ms": 400}}}}))
            .await;
        let t = Instant::now();
        assert_eq!(h.v2(action, &describe).await.0, 200);
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
        let t = Instant::now();
        assert_eq!(h.v2("DescribeNetworkInterfaces", &[]).await.0, 200);
        assert!(t.elapsed() < Duration::from_millis(400));

        h.running.shutdown().await;
    });
}

#[test]
fn dropped_connections() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let root = Creds::root();
        let attach = |eni: &'static str, nonce: &'static str| {
            let p = vec![
                ("RegionId".to_string(), REGION.to_string()),
                ("NetworkInterfaceId".to_string(), eni.to_string()),
                ("InstanceId".to_string(), INSTANCE.to_string()),
            ];
            h.try_send_v2(
                &root,
                "AttachNetworkInterface",
                p,
                std::time::SystemTime::now(),
                nonce,
            )
        };
        // Before the action: no answer and nothing changed.
        h.patch_settings(
            json!({"faults": {"actions": {"AttachNetworkInterface": {"drop_rate": 1.0}}}}),
        )
        .await;
        let err = attach(ENI1, "drop-1")
            .await
            .expect_err("connection dropped");
        assert!(!err.is_status(), "{err}");
        assert_eq!(h.status(ENI1).await, "Available");
        let calls = h.calls().await;
        assert!(
            calls.iter().any(|c| c["action"] == "AttachNetworkInterface"
                && c["code"] == "ConnectionDropped"
                && c["http_status"] == 0),
            "{calls:?}"
        );
        // After the action: no answer, but the attach happened.
        h.patch_settings(json!({"faults": {"actions": {"AttachNetworkInterface": {"drop_rate": 0.0, "drop_after_rate": 1.0}}}})).await;
        attach(ENI1, "drop-2")
            .await
            .expect_err("connection dropped after the action");
        assert_eq!(h.status(ENI1).await, "Attaching");
        h.wait_status(ENI1, "InUse", Duration::from_secs(2)).await;
        // Clearing the faults restores normal answers.
        h.patch_settings(json!({"faults": {"actions": null}})).await;
        let r = attach(ENI2, "drop-3").await.expect("answered");
        assert_eq!(r.status().as_u16(), 200);
        h.running.shutdown().await;
    });
}

#[test]
fn metadata_faults() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let path = "/latest/meta-data/instance-id";
        for (knob, status) in [
            ("too_many_requests_rate", 429),
            ("server_error_rate", 500),
            ("unavailable_rate", 503),
        ] {
            h.patch_settings(json!({"faults": {"metadata": {knob: 1.0}}}))
                .await;
            assert_eq!(h.md(path, None).await.0, status, "{knob}");
            h.patch_settings(json!({"faults": {"metadata": {knob: 0.0}}}))
                .await;
            assert_eq!(h.md(path, None).await.0, 200);
        }
        h.patch_settings(json!({"faults": {"metadata": {"latency_ms": 300}}}))
            .await;
        let t = Instant::now();
        assert_eq!(h.md(path, None).await.0, 200);
        assert!(t.elapsed() >= Duration::from_millis(300));
        // Settings round-trip through the control API.
        let s: serde_json::Value = h
            .http
            .get(format!("{}/settings", h.control))
            .send()
            .await
            .expect("control")
            .json()
            .await
            .expect("json");
        assert_eq!(s["faults"]["metadata"]["latency_ms"], 300);
        let r = h
            .http
            .patch(format!("{}/settings", h.control))
            .json(&json!({"timing": {"nope": 1}}))
            .send()
            .await
            .expect("control");
        assert_eq!(r.status().as_u16(), 400, "unknown settings are rejected");
        h.running.shutdown().await;
    });
}
