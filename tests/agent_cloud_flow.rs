//! The cloud side of the attach flow against a scripted ECS: every starting
//! state of the ENI, takeover, local refusals before Attach, failed attaches.

mod support;

use std::time::Duration;

use eni_agent::agent::cloud_flow::{
    self, AttachError, AttachTarget, Confirmation, PollPolicy, Readiness,
};
use eni_agent::backoff::{RetryPolicy, ThrottleBackoff};
use eni_agent::cloud::{EcsClient, EcsOptions, SignatureVersion};
use eni_agent::credentials::{CredentialProvider, Credentials};
use eni_agent::secret::Secret;
use support::{Recorded, Reply, Scripted};

fn client(server: &Scripted) -> EcsClient {
    let options = EcsOptions {
        endpoint: server.url(),
        region: "cn-hangzhou".into(),
        signature: SignatureVersion::V3,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_attempts: 3,
            deadline: Duration::from_secs(5),
        },
        throttle: ThrottleBackoff {
            min_delay: Duration::ZERO,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
    };
    let credentials = Credentials {
        access_key_id: "ak".into(),
        access_key_secret: Secret::new("s"),
        security_token: None,
        expiration: None,
    };
    EcsClient::new(
        options,
        CredentialProvider::Static {
            credentials,
            origin: "test".into(),
        },
    )
    .expect("client")
}

fn target(takeover: bool) -> AttachTarget {
    AttachTarget {
        eni_id: "eni-1".into(),
        instance_id: "i-me".into(),
        zone_id: "cn-hangzhou-i".into(),
        vpc_id: Some("vpc-1".into()),
        network_card_index: None,
        takeover,
    }
}

fn fast() -> PollPolicy {
    PollPolicy {
        first: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
    }
}

fn eni(status: &str, instance: &str) -> Reply {
    Reply::new(
        200,
        format!(
            r#"{{"RequestId":"REQ-{status}","NetworkInterfaceId":"eni-1","Status":"{status}","Type":"Secondary","InstanceId":"{instance}",
               "ZoneId":"cn-hangzhou-i","VpcId":"vpc-1","VSwitchId":"vsw-1","MacAddress":"00:16:3e:00:00:01"}}"#
        ),
    )
}

fn action(name: &'static str) -> impl Fn(&Recorded) -> bool + Send + Sync {
    move |r| r.header("x-acs-action").as_deref() == Some(name)
}

fn calls(server: &Scripted, name: &'static str) -> usize {
    server.count(action(name))
}

#[tokio::test]
async fn available_eni_is_attached_and_confirmed_in_use() {
    let server = Scripted::start().await;
    server.on(
        action("DescribeNetworkInterfaceAttribute"),
        vec![
            eni("Available", ""),
            eni("Attaching", "i-me"),
            eni("Attaching", "i-me"),
            eni("InUse", "i-me"),
        ],
    );
    server.on(
        action("AttachNetworkInterface"),
        vec![Reply::new(200, r#"{"RequestId":"REQ-ATTACH"}"#)],
    );
    let c = client(&server);
    let t = target(false);
    assert!(matches!(
        cloud_flow::prepare(&c, &t, fast()).await.expect("prepare"),
        Readiness::NeedsAttach(_)
    ));
    let request_id = cloud_flow::attach(&c, &t).await.expect("attach");
    assert_eq!(request_id, "REQ-ATTACH");
    let (ni, rid) = cloud_flow::poll_in_use(&c, &t, &request_id, fast())
        .await
        .expect("in use");
    assert_eq!(ni.attached_instance(), Some("i-me"));
    assert_eq!(rid, "REQ-InUse");
    assert_eq!(calls(&server, "AttachNetworkInterface"), 1);
    let attach = server
        .log()
        .into_iter()
        .find(|r| action("AttachNetworkInterface")(r))
        .expect("attach call");
    assert_eq!(attach.query("InstanceId").as_deref(), Some("i-me"));
    assert_eq!(attach.query("NetworkInterfaceId").as_deref(), Some("eni-1"));
}

/// The NIC appearing confirms the attach without a Describe; the polls
/// only back it up.
#[tokio::test]
async fn the_nic_appearing_confirms_the_attach_without_a_call() {
    let server = Scripted::start().await;
    server.on(
        action("DescribeNetworkInterfaceAttribute"),
        vec![eni("Attaching", "i-me")],
    );
    let poll = PollPolicy {
        first: Duration::from_millis(200),
        ..fast()
    };
    let seen = tokio::time::sleep(Duration::from_millis(50));
    let how = cloud_flow::confirm_in_use(&client(&server), &target(false), "R", poll, seen)
        .await
        .expect("confirmed");
    assert!(matches!(how, Confirmation::LinkSeen), "{how:?}");
    assert_eq!(calls(&server, "DescribeNetworkInterfaceAttribute"), 0);

    // No NIC: the polls decide (here: InUse after one Attaching).
    let server = Scripted::start().await;
    server.on(
        action("DescribeNetworkInterfaceAttribute"),
        vec![eni("Attaching", "i-me"), eni("InUse", "i-me")],
    );
    let how = cloud_flow::confirm_in_use(
        &client(&server),
        &target(false),
        "R",
        fast(),
        std::future::pending(),
    )
    .await
    .expect("confirmed by Describe");
    assert!(
        matches!(&how, Confirmation::Described(rid) if rid == "REQ-InUse"),
        "{how:?}"
    );
}

#[tokio::test]
async fn in_use_here_or_attaching_here_needs_no_attach() {
    for sequence in [
        vec![eni("InUse", "i-me")],
        vec![eni("Attaching", "i-me"), eni("InUse", "i-me")],
    ] {
        let server = Scripted::start().await;
        server.on(action("DescribeNetworkInterfaceAttribute"), sequence);
        let r = cloud_flow::prepare(&client(&server), &target(false), fast())
            .await
            .expect("prepare");
        assert!(matches!(r, Readiness::AttachedHere(_)));
        assert_eq!(
            calls(&server, "AttachNetworkInterface"),
            0,
            "no duplicate Attach"
        );
    }
}

#[tokio::test]
async fn in_use_elsewhere_is_refused_or_taken_over() {
    let server = Scripted::start().await;
    server.on(
        action("DescribeNetworkInterfaceAttribute"),
        vec![eni("InUse", "i-other")],
    );
    let err = cloud_flow::prepare(&client(&server), &target(false), fast())
        .await
        .expect_err("elsewhere");
    assert!(matches!(err, AttachError::InUseElsewhere { .. }), "{err}");
    assert!(
        err.to_string().contains("i-other") && err.to_string().contains("takeover = true"),
        "{err}"
    );

    let server = Scripted::start().await;
    server.on(
        action("DescribeNetworkInterfaceAttribute"),
        vec![
            eni("InUse", "i-other"),
            eni("Detaching", "i-other"),
            eni("Available", ""),
            eni("Available", ""),
        ],
    );
    server.on(
        action("DetachNetworkInterface"),
        vec![Reply::new(200, r#"{"RequestId":"REQ-DETACH"}"#)],
    );
    let r = cloud_flow::prepare(&client(&server), &target(true), fast())
        .await
        .expect("takeover");
    assert!(matches!(r, Readiness::NeedsAttach(_)));
    let detach = server
        .log()
        .into_iter()
        .find(|r| action("DetachNetworkInterface")(r))
        .expect("detach call");
    assert_eq!(detach.query("InstanceId").as_deref(), Some("i-other"));
}

#[tokio::test]
async fn placement_problems_are_explained_before_any_attach() {
    let wrong_zone = Reply::new(
        200,
        r#"{"RequestId":"R","NetworkInterfaceId":"eni-1","Status":"Available","Type":"Secondary","ZoneId":"cn-hangzhou-k","VpcId":"vpc-1"}"#,
    );
    let wrong_vpc = Reply::new(
        200,
        r#"{"RequestId":"R","NetworkInterfaceId":"eni-1","Status":"Available","Type":"Secondary","ZoneId":"cn-hangzhou-i","VpcId":"vpc-2"}"#,
    );
    let primary = Reply::new(
        200,
        r#"{"RequestId":"R","NetworkInterfaceId":"eni-1","Status":"InUse","Type":"Primary","InstanceId":"i-x"}"#,
    );
    let deleting = eni("Deleting", "");
    for (reply, needle) in [
        (wrong_zone, "cn-hangzhou-k"),
        (wrong_vpc, "vpc-2"),
        (primary, "primary ENI"),
        (deleting, "Deleting"),
    ] {
        let server = Scripted::start().await;
        server.on(action("DescribeNetworkInterfaceAttribute"), vec![reply]);
        let err = cloud_flow::prepare(&client(&server), &target(true), fast())
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(needle), "{err}");
        assert_eq!(
            calls(&server, "AttachNetworkInterface") + calls(&server, "DetachNetworkInterface"),
            0
        );
    }
}

#[tokio::test]
async fn back_to_available_after_attaching_is_a_failed_attach() {
    let server = Scripted::start().await;
    server.on(
        action("DescribeNetworkInterfaceAttribute"),
        vec![eni("Attaching", "i-me"), eni("Available", "")],
    );
    let err = cloud_flow::confirm_in_use(
        &client(&server),
        &target(false),
        "REQ-A",
        fast(),
        std::future::pending(),
    )
    .await
    .expect_err("failed");
    assert!(matches!(err, AttachError::AttachFailed { .. }), "{err}");
    assert!(
        err.to_string().contains("REQ-A") && err.to_string().contains("vsw-1"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stuck_attach_times_out_with_the_last_status() {
    let server = Scripted::start().await;
    server.on(
        action("DescribeNetworkInterfaceAttribute"),
        vec![eni("Attaching", "i-me")],
    );
    let poll = PollPolicy {
        timeout: Duration::from_millis(100),
        ..fast()
    };
    let err = cloud_flow::confirm_in_use(
        &client(&server),
        &target(false),
        "R",
        poll,
        std::future::pending(),
    )
    .await
    .expect_err("timeout");
    assert!(
        err.is_timeout() && err.to_string().contains("Attaching"),
        "{err}"
    );
}

#[tokio::test]
async fn detach_waits_for_available_and_tolerates_a_missing_eni() {
    let server = Scripted::start().await;
    server.on(
        action("DetachNetworkInterface"),
        vec![Reply::new(200, r#"{"RequestId":"D"}"#)],
    );
    server.on(
        action("DescribeNetworkInterfaceAttribute"),
        vec![eni("Detaching", "i-me"), eni("Available", "")],
    );
    cloud_flow::detach(&client(&server), "eni-1", "i-me")
        .await
        .expect("detached");
    assert_eq!(calls(&server, "DescribeNetworkInterfaceAttribute"), 2);

    let server = Scripted::start().await;
    server.on(
        action("DetachNetworkInterface"),
        vec![Reply::new(
            404,
            r#"{"RequestId":"D","Code":"InvalidEniId.NotFound","Message":"gone"}"#,
        )],
    );
    cloud_flow::detach(&client(&server), "eni-1", "i-me")
        .await
        .expect("gone counts as detached");
}
