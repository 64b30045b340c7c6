//! The control API: settings replace and patch, seeding, instance state
//! changes (and what they allow), the state dump and the call log.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[test]
fn control_api_drives_instance_state_and_settings() {
    in_netns(|| async {
        let ns = new_instance_netns();
        let probe = ns.try_clone().expect("dup netns fd");
        let h = start(fast_scenario(), Some(ns)).await;
        let get = |path: &str| {
            let url = format!("{}{path}", h.control);
            let http = h.http.clone();
            async move {
                http.get(url)
                    .send()
                    .await
                    .expect("control")
                    .json::<Value>()
                    .await
                    .expect("json")
            }
        };
        // Full replace of the settings.
        let mut s = get("/settings").await;
        s["timing"]["attach_delay_ms"] = json!(100);
        let r = h
            .http
            .put(format!("{}/settings", h.control))
            .json(&s)
            .send()
            .await
            .expect("put");
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(get("/settings").await["timing"]["attach_delay_ms"], 100);

        // A stopped instance: attach works, no NIC is plugged, QueueNumber of
        // an attached ENI may change.
        let r = h
            .http
            .patch(format!("{}/instances/{INSTANCE}", h.control))
            .json(&json!({"status": "Stopped"}))
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(
            h.v2(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", ENI1), ("InstanceId", INSTANCE)]
            )
            .await
            .0,
            200
        );
        h.wait_status(ENI1, "InUse", Duration::from_secs(2)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !links_in(&probe)
                .await
                .iter()
                .any(|l| l.mac == "00:16:3e:10:00:02"),
            "no NIC while Stopped"
        );
        let (code, v) = h
            .v2(
                "ModifyNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", ENI1), ("QueueNumber", "3")],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        assert_error(
            &h.v2(
                "ModifyNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", ENI1), ("QueueNumber", "8")],
            )
            .await,
            403,
            "InvalidOperation.ExceedInstanceTypeQueueNumber",
        );
        // Starting the instance plugs the NICs of its InUse ENIs (with the
        // new queue count); stopping it removes them.
        let set_status = |status: &'static str| {
            let req = h
                .http
                .patch(format!("{}/instances/{INSTANCE}", h.control))
                .json(&json!({ "status": status }));
            async move { assert_eq!(req.send().await.expect("patch").status().as_u16(), 200) }
        };
        set_status("Running").await;
        let start = std::time::Instant::now();
        loop {
            let links = links_in(&probe).await;
            let eni1 = links.iter().find(|l| l.mac == "00:16:3e:10:00:02");
            if eni1.is_some() && links.iter().any(|l| l.mac == "00:16:3e:10:00:01") {
                assert_eq!(eni1.map(|l| l.tx_queues), Some(3));
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "NICs not plugged on start: {links:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        set_status("Stopped").await;
        let start = std::time::Instant::now();
        while !links_in(&probe).await.is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "NICs not removed on stop"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A transitional instance state refuses attach and detach.
        let r = h
            .http
            .patch(format!("{}/instances/{INSTANCE}", h.control))
            .json(&json!({"status": "Stopping"}))
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status().as_u16(), 200);
        assert_error(
            &h.v2(
                "DetachNetworkInterface",
                &[("NetworkInterfaceId", ENI1), ("InstanceId", INSTANCE)],
            )
            .await,
            400,
            "InvalidOperation.InvalidEcsState",
        );
        let r = h
            .http
            .patch(format!("{}/instances/i-nope", h.control))
            .json(&json!({"status": "Running"}))
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status().as_u16(), 404);

        // State dump.
        let state = get("/state").await;
        let eni = state["enis"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["id"] == ENI1))
            .cloned()
            .expect("ENI in dump");
        assert_eq!(
            (eni["status"].clone(), eni["queue_number"].clone()),
            (json!("InUse"), json!(3))
        );
        assert_eq!(state["instances"][INSTANCE]["status"], "Stopping");

        // Seeding an inconsistent fragment changes nothing.
        let r = h
            .http
            .post(format!("{}/seed", h.control))
            .json(&json!({"enis": [{"id": "eni-new", "vswitch_id": "vsw-missing"}]}))
            .send()
            .await
            .expect("seed");
        assert_eq!(r.status().as_u16(), 400);
        assert_error(
            &h.v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", "eni-new")],
            )
            .await,
            404,
            "InvalidEniId.NotFound",
        );

        // The call log records everything and can be cleared.
        let calls = h.calls().await;
        assert!(calls.len() >= 5);
        let c = &calls[0];
        for key in [
            "time",
            "action",
            "params",
            "signature_version",
            "access_key_id",
            "code",
            "http_status",
            "request_id",
        ] {
            assert!(c.get(key).is_some(), "{key}: {c}");
        }
        assert_eq!(c["params"]["NetworkInterfaceId"], ENI1);
        let r = h
            .http
            .delete(format!("{}/calls", h.control))
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status().as_u16(), 204);
        assert!(h.calls().await.is_empty());
        h.running.shutdown().await;
    });
}
