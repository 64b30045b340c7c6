//! API-side integration tests: both signatures and their error codes,
//! every action, the documented Attach errors, DescribeNetworkInterfaces
//! filters and pagination, ClientToken idempotency.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use serde_json::{Value, json};

/// The parameters of a table row.
type Params = &'static [(&'static str, &'static str)];

#[test]
fn describe_attribute_with_both_signatures_has_every_documented_field() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        for sig in [Sig::V2, Sig::V3] {
            let (code, v) = h
                .call(
                    sig,
                    &Creds::root(),
                    "DescribeNetworkInterfaceAttribute",
                    &[("NetworkInterfaceId", ENI1)],
                )
                .await;
            assert_eq!(code, 200, "{v}");
            for key in [
                "CreationTime",
                "VpcId",
                "Type",
                "Status",
                "NetworkInterfaceTrafficMode",
                "NetworkInterfaceName",
                "MacAddress",
                "NetworkInterfaceId",
                "InstanceId",
                "OwnerId",
                "ServiceManaged",
                "VSwitchId",
                "RequestId",
                "Description",
                "ResourceGroupId",
                "ZoneId",
                "PrivateIpAddress",
                "QueueNumber",
                "SecurityGroupIds",
                "AssociatedPublicIp",
                "PrivateIpSets",
                "Ipv6Sets",
                "Ipv4PrefixSets",
                "Ipv6PrefixSets",
                "Tags",
                "BondInterfaceSpecification",
                "SlaveInterfaceSpecification",
                "DeleteOnRelease",
                "TcpOptionAddressEnabled",
                "NetworkInterfaceTrafficConfig",
                "SourceDestCheck",
                "EnhancedNetwork",
                "QoSConfig",
            ] {
                assert!(v.get(key).is_some(), "{key} missing: {v}");
            }
            assert_eq!(v["Status"], "Available");
            assert_eq!(v["MacAddress"], "00:16:3e:10:00:02");
            assert_eq!(v["QueueNumber"], 2);
            assert_eq!(
                v["PrivateIpSets"]["PrivateIpSet"].as_array().map(Vec::len),
                Some(4)
            );
            assert_eq!(v["PrivateIpSets"]["PrivateIpSet"][0]["Primary"], true);
            assert_eq!(
                v["Ipv6Sets"]["Ipv6Set"][0]["Ipv6Address"],
                "2408:4005:3a0:7101::20"
            );
            assert_eq!(
                v["Ipv4PrefixSets"]["Ipv4PrefixSet"][0]["Ipv4Prefix"],
                "192.168.10.128/28"
            );
            assert_eq!(v["SecurityGroupIds"]["SecurityGroupId"][0], "sg-emu0main");
            assert!(v.get("ConnectionTrackingConfiguration").is_none());
            assert!(
                v.get("Attachment").is_none(),
                "Available ENIs have no Attachment"
            );
        }
        let (_, v) = h
            .v3(
                "DescribeNetworkInterfaceAttribute",
                &[
                    ("NetworkInterfaceId", ENI1),
                    ("Attribute", "connectionTrackingConfiguration"),
                ],
            )
            .await;
        assert_eq!(
            v["ConnectionTrackingConfiguration"]["TcpEstablishedTimeout"],
            910
        );
        assert_eq!(v["ConnectionTrackingConfiguration"]["UdpTimeout"], 30);
        let (_, v) = h
            .v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", PRIMARY)],
            )
            .await;
        assert_eq!(v["Type"], "Primary");
        assert_eq!(v["InstanceId"], INSTANCE);
        assert_eq!(
            v["QueueNumber"], 4,
            "primary ENI reports the type's default"
        );
        assert_eq!(v["Attachment"]["InstanceId"], INSTANCE);
        h.run(&[
            Case::v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", ENI1), ("Attribute", "bogus")],
            )
            .fails(400, "InvalidParameter"),
            Case::v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", "eni-nope")],
            )
            .fails(404, "InvalidEniId.NotFound"),
            Case::v2("DescribeNetworkInterfaceAttribute", &[]).fails(400, "MissingParameter"),
        ])
        .await;
        let calls = h.calls().await;
        assert!(
            calls
                .iter()
                .any(|c| c["signature_version"] == "v2" && c["code"] == "Success")
        );
        assert!(
            calls
                .iter()
                .any(|c| c["signature_version"] == "v3" && c["code"] == "Success")
        );
        assert!(
            calls
                .iter()
                .any(|c| c["code"] == "InvalidEniId.NotFound" && c["http_status"] == 404)
        );
        h.running.shutdown().await;
    });
}

#[test]
fn signature_errors() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let params = || {
            vec![
                ("RegionId".to_string(), REGION.to_string()),
                ("NetworkInterfaceId".to_string(), ENI1.to_string()),
            ]
        };
        let json = |r: reqwest::Response| async move {
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        };
        let action = "DescribeNetworkInterfaceAttribute";
        // Unknown key, both versions.
        let nobody = Creds {
            key: "LTAInobody".into(),
            secret: "x".into(),
            token: None,
        };
        for sig in [Sig::V2, Sig::V3] {
            assert_error(
                &h.call(sig, &nobody, action, &[("NetworkInterfaceId", ENI1)])
                    .await,
                404,
                "InvalidAccessKeyId.NotFound",
            );
        }
        // Wrong secret: the message carries the server's string to sign.
        let wrong = Creds {
            key: ROOT_KEY.into(),
            secret: "wrong".into(),
            token: None,
        };
        let got = h
            .call(Sig::V2, &wrong, action, &[("NetworkInterfaceId", ENI1)])
            .await;
        assert_error(&got, 400, "SignatureDoesNotMatch");
        let msg = got.1["Message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("server string to sign is:GET&%2F&AccessKeyId%3D"),
            "{msg}"
        );
        let got = h
            .call(Sig::V3, &wrong, action, &[("NetworkInterfaceId", ENI1)])
            .await;
        assert_error(&got, 400, "SignatureDoesNotMatch");
        assert!(
            got.1["Message"]
                .as_str()
                .unwrap_or_default()
                .contains("ACS3-HMAC-SHA256\n")
        );
        let got = json(
            h.send_v3(
                &Creds::root(),
                action,
                params(),
                SystemTime::now(),
                "n-tamper",
                Some("00ff"),
            )
            .await,
        )
        .await;
        assert_error(&got, 400, "SignatureDoesNotMatch");
        // Timestamps more than 15 minutes off.
        for skew in [-1000i64, 1000] {
            let t = if skew < 0 {
                SystemTime::now() - Duration::from_secs(1000)
            } else {
                SystemTime::now() + Duration::from_secs(1000)
            };
            let got = json(
                h.send_v2(&Creds::root(), action, params(), t, &format!("n-v2-{skew}"))
                    .await,
            )
            .await;
            assert_error(&got, 400, "InvalidTimeStamp.Expired");
            let got = json(
                h.send_v3(
                    &Creds::root(),
                    action,
                    params(),
                    t,
                    &format!("n-v3-{skew}"),
                    None,
                )
                .await,
            )
            .await;
            assert_error(&got, 400, "InvalidTimeStamp.Expired");
        }
        // 14 minutes off is fine.
        let t = SystemTime::now() - Duration::from_secs(840);
        let got = json(
            h.send_v2(&Creds::root(), action, params(), t, "n-ok-14min")
                .await,
        )
        .await;
        assert_eq!(got.0, 200, "{}", got.1);
        // Nonce reuse, per version.
        let got = json(
            h.send_v2(
                &Creds::root(),
                action,
                params(),
                SystemTime::now(),
                "nonce-1",
            )
            .await,
        )
        .await;
        assert_eq!(got.0, 200);
        let got = json(
            h.send_v2(
                &Creds::root(),
                action,
                params(),
                SystemTime::now(),
                "nonce-1",
            )
            .await,
        )
        .await;
        assert_error(&got, 400, "SignatureNonceUsed");
        let got = json(
            h.send_v3(
                &Creds::root(),
                action,
                params(),
                SystemTime::now(),
                "nonce-2",
                None,
            )
            .await,
        )
        .await;
        assert_eq!(got.0, 200);
        let got = json(
            h.send_v3(
                &Creds::root(),
                action,
                params(),
                SystemTime::now(),
                "nonce-2",
                None,
            )
            .await,
        )
        .await;
        assert_error(&got, 400, "SignatureNonceUsed");
        // No credentials at all, unknown action, wrong version.
        let r = h
            .http
            .get(format!("{}?Action={action}&RegionId={REGION}", h.api))
            .send()
            .await
            .expect("sent");
        assert_error(&json(r).await, 400, "MissingParameter");
        h.run(&[Case::v2("RunInstances", &[]).fails(404, "InvalidAction.NotFound")])
            .await;
        h.running.shutdown().await;
    });
}

#[test]
fn sts_credentials_from_metadata_are_accepted_and_checked() {
    in_netns(|| async {
        let mut s = fast_scenario();
        let mut settings = s.settings.clone().unwrap_or_default();
        settings.metadata.credential_ttl_secs = 2;
        settings.metadata.credential_refresh_secs = 1;
        s.settings = Some(settings);
        let h = start(s, None).await;
        let (code, role) = h
            .md("/latest/meta-data/ram/security-credentials/", None)
            .await;
        assert_eq!((code, role.as_str()), (200, "EniAgentRole"));
        let (_, doc) = h
            .md(
                "/latest/meta-data/ram/security-credentials/EniAgentRole",
                None,
            )
            .await;
        let doc: Value = serde_json::from_str(&doc).expect("credentials JSON");
        assert_eq!(doc["Code"], "Success");
        for key in [
            "AccessKeyId",
            "AccessKeySecret",
            "SecurityToken",
            "Expiration",
            "LastUpdated",
        ] {
            assert!(doc[key].is_string(), "{key}: {doc}");
        }
        let creds = Creds {
            key: doc["AccessKeyId"].as_str().unwrap_or_default().into(),
            secret: doc["AccessKeySecret"].as_str().unwrap_or_default().into(),
            token: doc["SecurityToken"].as_str().map(str::to_string),
        };
        for sig in [Sig::V2, Sig::V3] {
            let (code, v) = h
                .call(
                    sig,
                    &creds,
                    "DescribeNetworkInterfaceAttribute",
                    &[("NetworkInterfaceId", ENI1)],
                )
                .await;
            assert_eq!(code, 200, "{v}");
        }
        let mut bad = creds.clone();
        bad.token = Some("CAISnotatoken".into());
        h.run(&[Case::v2("DescribeNetworkInterfaces", &[])
            .by(&bad)
            .fails(400, "InvalidSecurityToken.Malformed")])
            .await;
        bad.token = None;
        h.run(&[Case::v3("DescribeNetworkInterfaces", &[])
            .by(&bad)
            .fails(400, "MissingSecurityToken")])
            .await;
        // Rotation: within the refresh window new credentials are issued.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let (_, doc2) = h
            .md(
                "/latest/meta-data/ram/security-credentials/EniAgentRole",
                None,
            )
            .await;
        let doc2: Value = serde_json::from_str(&doc2).expect("credentials JSON");
        assert_ne!(
            doc2["AccessKeyId"], doc["AccessKeyId"],
            "credentials rotate"
        );
        let mut stolen = creds.clone();
        stolen.token = doc2["SecurityToken"].as_str().map(str::to_string);
        h.run(&[Case::v2("DescribeNetworkInterfaces", &[])
            .by(&stolen)
            .fails(400, "InvalidSecurityToken.MismatchWithAccessKey")])
            .await;
        // Expiry.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        h.run(&[Case::v2("DescribeNetworkInterfaces", &[])
            .by(&creds)
            .fails(400, "InvalidSecurityToken.Expired")])
            .await;
        h.running.shutdown().await;
    });
}

#[test]
fn permissions_and_account_errors() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let ro = Creds {
            key: RO_KEY.into(),
            secret: RO_SECRET.into(),
            token: None,
        };
        h.run(&[
            Case::v2("DescribeNetworkInterfaces", &[]).by(&ro),
            Case::v3(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", ENI1), ("InstanceId", INSTANCE)],
            )
            .by(&ro)
            .fails(403, "Forbidden.SubUser"),
        ])
        .await;
        let seed = json!({
            "not_support_ram_actions": ["DeleteNetworkInterface"],
            "access_keys": [
                {"id": "LTAIgone", "secret": "s1", "account_status": "not-found"},
                {"id": "LTAIodd", "secret": "s2", "account_status": "unsupported-type"},
                {"id": "LTAIoff", "secret": "s3", "active": false},
                {"id": "LTAIram", "secret": "s4", "kind": "ram-user"}
            ]
        });
        let r = h
            .http
            .post(format!("{}/seed", h.control))
            .json(&seed)
            .send()
            .await
            .expect("seed");
        assert_eq!(r.status().as_u16(), 200);
        let c = |k: &str, s: &str| Creds {
            key: k.into(),
            secret: s.into(),
            token: None,
        };
        h.run(&[
            Case::v2("DescribeNetworkInterfaces", &[])
                .by(&c("LTAIgone", "s1"))
                .fails(403, "Abs.InvalidAccount.NotFound"),
            Case::v2("DescribeNetworkInterfaces", &[])
                .by(&c("LTAIodd", "s2"))
                .fails(403, "InvalidUserType.NotSupported"),
            Case::v2("DescribeNetworkInterfaces", &[])
                .by(&c("LTAIoff", "s3"))
                .fails(400, "InvalidAccessKeyId.Inactive"),
            Case::v2("DeleteNetworkInterface", &[("NetworkInterfaceId", ENI2)])
                .by(&c("LTAIram", "s4"))
                .fails(403, "Forbidden.NotSupportRAM"),
        ])
        .await;
        h.running.shutdown().await;
    });
}

#[test]
fn attach_errors_follow_the_document() {
    in_netns(|| async {
        let s = fast_scenario();
        let h = start(s, None).await;
        let seed = json!({
            "regions": ["cn-shanghai"],
            "instance_types": [
                {"name": "ecs.tiny", "eni_quantity": 2, "ipv4_per_eni": 2, "ipv6_per_eni": 1, "max_queues_per_eni": 2,
                 "total_queues": 3, "primary_queue_number": 1, "secondary_queue_number": 1, "rss": false}
            ],
            "vswitches": [{"id": "vsw-sh", "vpc_id": "vpc-emu0main", "zone_id": "cn-shanghai-a", "cidr": "192.168.30.0/24", "region_id": "cn-shanghai"}],
            "instances": [
                {"id": "i-starting", "instance_type": "ecs.g7.xlarge", "vswitch_id": "vsw-emu0zonei", "status": "Starting"},
                {"id": "i-baremetal", "instance_type": "ecs.ebmg7.32xlarge", "vswitch_id": "vsw-emu0zonei"},
                {"id": "i-tiny", "instance_type": "ecs.tiny", "vswitch_id": "vsw-emu0zonei"},
                {"id": "i-shanghai", "instance_type": "ecs.g7.xlarge", "vswitch_id": "vsw-sh"}
            ],
            "enis": [
                {"id": "eni-tinyprimary", "type": "Primary", "vswitch_id": "vsw-emu0zonei", "instance_id": "i-tiny"},
                {"id": "eni-manyips", "vswitch_id": "vsw-emu0zonei", "secondary_ip_count": 3},
                {"id": "eni-manyv6", "vswitch_id": "vsw-emu0zonei", "ipv6_count": 2},
                {"id": "eni-bigqueue", "vswitch_id": "vsw-emu0zonei", "queue_number": 3},
                {"id": "eni-queue2", "vswitch_id": "vsw-emu0zonei", "queue_number": 2},
                {"id": "eni-rss", "vswitch_id": "vsw-emu0zonei", "enable_rss": true},
                {"id": "eni-erdma", "vswitch_id": "vsw-emu0zonei", "traffic_mode": "HighPerformance"},
                {"id": "eni-managed", "vswitch_id": "vsw-emu0zonei", "service_managed": true},
                {"id": "eni-plain1", "vswitch_id": "vsw-emu0zonei"},
                {"id": "eni-plain2", "vswitch_id": "vsw-emu0zonei"}
            ]
        });
        let r = h
            .http
            .post(format!("{}/seed", h.control))
            .json(&seed)
            .send()
            .await
            .expect("seed");
        assert_eq!(
            r.status().as_u16(),
            200,
            "{}",
            r.text().await.unwrap_or_default()
        );
        let attach_case = |eni: &'static str, inst: &'static str| {
            Case::v2(
                "AttachNetworkInterface",
                &[("NetworkInterfaceId", eni), ("InstanceId", inst)],
            )
        };
        h.run(&[
            Case::v2("AttachNetworkInterface", &[("InstanceId", INSTANCE)])
                .fails(400, "MissingParameter"),
            Case::v2("AttachNetworkInterface", &[("NetworkInterfaceId", ENI1)])
                .fails(400, "MissingParameter"),
            Case::v2(
                "AttachNetworkInterface",
                &[
                    ("NetworkInterfaceId", ENI1),
                    ("InstanceId", INSTANCE),
                    ("RegionId", ""),
                ],
            )
            .fails(400, "MissingParameter"),
            Case::v2(
                "AttachNetworkInterface",
                &[
                    ("NetworkInterfaceId", ENI1),
                    ("InstanceId", INSTANCE),
                    ("NetworkCardIndex", "x"),
                ],
            )
            .fails(400, "InvalidParameter"),
            Case::v2(
                "AttachNetworkInterface",
                &[
                    ("NetworkInterfaceId", ENI1),
                    ("InstanceId", INSTANCE),
                    ("TrunkNetworkInstanceId", "eni-t"),
                ],
            )
            .fails(400, "UnsupportedParameter"),
            attach_case(ENI1, "instance-1").fails(400, "InvalidInstanceID.Malformed"),
            attach_case("nic-1", INSTANCE).fails(400, "InvalidParams.EniId"),
            Case::v2(
                "AttachNetworkInterface",
                &[
                    ("NetworkInterfaceId", ENI1),
                    ("InstanceId", INSTANCE),
                    ("RegionId", "Bad_Region"),
                ],
            )
            .fails(400, "InvalidOperation.InvalidRegion"),
            Case::v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", ENI1), ("RegionId", "Bad_Region")],
            )
            .fails(400, "InvalidRegionId.MalFormed"),
            Case::v2(
                "AttachNetworkInterface",
                &[
                    ("NetworkInterfaceId", ENI1),
                    ("InstanceId", INSTANCE),
                    ("RegionId", "us-east-9"),
                ],
            )
            .fails(400, "Forbidden.RegionId"),
            attach_case("eni-doesnotexist", INSTANCE).fails(404, "InvalidEniId.NotFound"),
            attach_case(ENI1, "i-doesnotexist").fails(404, "InvalidEcsId.NotFound"),
            attach_case(ENI1, "i-shanghai").fails(403, "InvalidInstanceId.NotFound"),
            attach_case(ENI_OTHER_ZONE, INSTANCE)
                .fails(403, "InvalidOperation.AvailabilityZoneMismatch"),
            attach_case(ENI_OTHER_VPC, INSTANCE).fails(403, "InvalidOperation.VpcMismatch"),
            attach_case(ENI1, "i-starting").fails(400, "InvalidOperation.InvalidEcsState"),
            attach_case(ENI1, "i-baremetal").fails(403, "InvalidOperation.HotPlugNotSupport"),
            attach_case("eni-managed", INSTANCE).fails(403, "InvalidOperation.EniServiceManaged"),
            attach_case("eni-manyips", "i-tiny").fails(403, "InvalidOperation.Ipv4CountExceeded"),
            attach_case("eni-manyv6", "i-tiny").fails(403, "InvalidOperation.Ipv6CountExceeded"),
            attach_case("eni-bigqueue", "i-tiny")
                .fails(403, "InvalidOperation.ExceedInstanceTypeQueueNumber"),
            attach_case("eni-rss", "i-tiny")
                .fails(400, "InvalidOperation.InstanceTypeNotSupportRss"),
            attach_case("eni-erdma", INSTANCE).fails(
                403,
                "InvalidOperation.InstanceTypeNotSupportHighPerformanceTrafficMode",
            ),
            Case::v2(
                "AttachNetworkInterface",
                &[
                    ("NetworkInterfaceId", ENI1),
                    ("InstanceId", "i-tiny"),
                    ("NetworkCardIndex", "0"),
                ],
            )
            .fails(400, "InvalidOperation.UserNotSupportNetworkCard"),
            Case::v2(
                "AttachNetworkInterface",
                &[
                    ("NetworkInterfaceId", ENI1),
                    ("InstanceId", INSTANCE),
                    ("NetworkCardIndex", "1"),
                ],
            )
            .fails(400, "InvalidParameter.NetworkCardIndexInvalid"),
        ])
        .await;
        // ENI limit of ecs.tiny: 2 including the primary.
        h.run(&[attach_case("eni-plain1", "i-tiny")]).await;
        h.run(&[
            attach_case("eni-plain2", "i-tiny").fails(403, "EniPerInstanceLimitExceeded"),
            // Not Available any more.
            attach_case("eni-plain1", INSTANCE).fails(400, "InvalidOperation.InvalidEniState"),
        ])
        .await;
        // Works with NetworkCardIndex 0 on a type with network cards.
        let (code, v) = h
            .v3(
                "AttachNetworkInterface",
                &[
                    ("NetworkInterfaceId", ENI1),
                    ("InstanceId", INSTANCE),
                    ("NetworkCardIndex", "0"),
                ],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        assert!(v["RequestId"].is_string());
        h.wait_status(ENI1, "InUse", Duration::from_secs(3)).await;
        let (_, v) = h
            .v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", ENI1)],
            )
            .await;
        assert_eq!(v["NetworkCardIndex"], 0);
        assert_eq!(v["Attachment"]["NetworkCardIndex"], 0);
        assert_eq!(v["Attachment"]["DeviceIndex"], 1);
        h.running.shutdown().await;
    });
}

#[test]
fn describe_network_interfaces_filters_and_pages() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let ids = |v: &Value| -> Vec<String> {
            v["NetworkInterfaceSets"]["NetworkInterfaceSet"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e["NetworkInterfaceId"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (code, v) = h.v2("DescribeNetworkInterfaces", &[]).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["TotalCount"], 5);
        assert_eq!(v["PageNumber"], 1);
        assert_eq!(v["PageSize"], 10);
        // Filters: each request and the ENIs it must list, in order.
        let filters: [(Sig, Params, &[&str]); 12] = [
            (Sig::V2, &[("InstanceId", INSTANCE)], &[PRIMARY]),
            (
                Sig::V2,
                &[("Status", "Available"), ("VpcId", "vpc-emu0main")],
                &[ENI1, ENI2, ENI_OTHER_ZONE],
            ),
            (
                Sig::V3,
                &[("VSwitchId", "vsw-emu0othervpc")],
                &[ENI_OTHER_VPC],
            ),
            (Sig::V2, &[("Type", "Primary")], &[PRIMARY]),
            (
                Sig::V2,
                &[
                    ("NetworkInterfaceId.1", ENI2),
                    ("NetworkInterfaceId.2", ENI_OTHER_VPC),
                ],
                &[ENI2, ENI_OTHER_VPC],
            ),
            (
                Sig::V2,
                &[("Tag.1.Key", "team"), ("Tag.1.Value", "net")],
                &[ENI1, ENI2],
            ),
            (Sig::V2, &[("Tag.1.Key", "role")], &[ENI1]),
            (Sig::V2, &[("PrivateIpAddress.1", "192.168.10.31")], &[ENI2]),
            (
                Sig::V2,
                &[("Ipv6Address.1", "2408:4005:3a0:7101::20")],
                &[ENI1],
            ),
            (
                Sig::V2,
                &[("SecurityGroupId", "sg-emu0other")],
                &[ENI_OTHER_VPC],
            ),
            (
                Sig::V2,
                &[("NetworkInterfaceName", "secondary-two")],
                &[ENI2],
            ),
            (
                Sig::V2,
                &[("PrimaryIpAddress", "192.168.20.40")],
                &[ENI_OTHER_ZONE],
            ),
        ];
        for (sig, params, want) in filters {
            let case = Case::new(sig, "DescribeNetworkInterfaces", params);
            let v = h.run(std::slice::from_ref(&case)).await;
            assert_eq!(ids(&v[0]), want, "{case:?}");
        }
        // PageNumber/PageSize.
        let (_, v) = h
            .v2(
                "DescribeNetworkInterfaces",
                &[("PageSize", "2"), ("PageNumber", "3")],
            )
            .await;
        assert_eq!(ids(&v), vec![ENI_OTHER_VPC]);
        assert_eq!(v["TotalCount"], 5);
        // NextToken/MaxResults.
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let mut p = vec![("MaxResults", "2")];
            if !token.is_empty() {
                p.push(("NextToken", token.as_str()));
            }
            let (code, v) = h.v3("DescribeNetworkInterfaces", &p).await;
            assert_eq!(code, 200, "{v}");
            seen.extend(ids(&v));
            token = v["NextToken"].as_str().unwrap_or_default().to_string();
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(
            seen,
            vec![PRIMARY, ENI1, ENI2, ENI_OTHER_ZONE, ENI_OTHER_VPC]
        );
        h.run(&[
            Case::v2("DescribeNetworkInterfaces", &[("MaxResults", "501")])
                .fails(400, "InvalidParameter"),
            Case::v2("DescribeNetworkInterfaces", &[("PageSize", "101")])
                .fails(400, "InvalidParameter"),
            Case::v2("DescribeNetworkInterfaces", &[("NextToken", "garbage")])
                .fails(400, "InvalidParameter"),
            Case::v2("DescribeNetworkInterfaces", &[("Status", "Sleeping")])
                .fails(400, "InvalidParameter"),
        ])
        .await;
        h.running.shutdown().await;
    });
}

#[test]
fn create_modify_assign_delete_and_idempotency() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let (code, v) = h
            .v2(
                "CreateNetworkInterface",
                &[
                    ("VSwitchId", "vsw-emu0zonei"),
                    ("SecurityGroupId", "sg-emu0main"),
                    ("SecondaryPrivateIpAddressCount", "2"),
                    ("Ipv6AddressCount", "1"),
                    ("Ipv4PrefixCount", "1"),
                    ("QueueNumber", "2"),
                    ("NetworkInterfaceName", "created"),
                    ("Tag.1.Key", "k"),
                    ("Tag.1.Value", "v"),
                    ("ClientToken", "token-1"),
                ],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        let id = v["NetworkInterfaceId"].as_str().expect("id").to_string();
        assert_eq!(v["Status"], "Available");
        assert_eq!(
            v["PrivateIpSets"]["PrivateIpSet"].as_array().map(Vec::len),
            Some(3)
        );
        assert_eq!(v["Ipv6Sets"]["Ipv6Set"].as_array().map(Vec::len), Some(1));
        assert!(
            v["MacAddress"]
                .as_str()
                .is_some_and(|m| m.starts_with("00:16:3e:"))
        );
        // Same token, same parameters: the same ENI.
        let (_, again) = h
            .v2(
                "CreateNetworkInterface",
                &[
                    ("VSwitchId", "vsw-emu0zonei"),
                    ("SecurityGroupId", "sg-emu0main"),
                    ("SecondaryPrivateIpAddressCount", "2"),
                    ("Ipv6AddressCount", "1"),
                    ("Ipv4PrefixCount", "1"),
                    ("QueueNumber", "2"),
                    ("NetworkInterfaceName", "created"),
                    ("Tag.1.Key", "k"),
                    ("Tag.1.Value", "v"),
                    ("ClientToken", "token-1"),
                ],
            )
            .await;
        assert_eq!(again["NetworkInterfaceId"], id.as_str());
        h.run(&[
            Case::v2(
                "CreateNetworkInterface",
                &[
                    ("VSwitchId", "vsw-emu0zonei"),
                    ("SecurityGroupId", "sg-emu0main"),
                    ("ClientToken", "token-1"),
                ],
            )
            .fails(400, "IdempotentParameterMismatch"),
            Case::v2(
                "CreateNetworkInterface",
                &[
                    ("VSwitchId", "vsw-nope"),
                    ("SecurityGroupId", "sg-emu0main"),
                ],
            )
            .fails(404, "InvalidVSwitchId.NotFound"),
            Case::v2(
                "CreateNetworkInterface",
                &[
                    ("VSwitchId", "vsw-emu0zonei"),
                    ("SecurityGroupId", "sg-nope"),
                ],
            )
            .fails(404, "InvalidSecurityGroupId.NotFound"),
            Case::v2("CreateNetworkInterface", &[("VSwitchId", "vsw-emu0zonei")])
                .fails(400, "MissingParameter"),
            Case::v2(
                "CreateNetworkInterface",
                &[
                    ("VSwitchId", "vsw-emu0zonej"),
                    ("SecurityGroupId", "sg-emu0main"),
                    ("Ipv6AddressCount", "1"),
                ],
            )
            .fails(403, "InvalidVSwitch.Ipv6NotTurnOn"),
            Case::v2(
                "CreateNetworkInterface",
                &[
                    ("VSwitchId", "vsw-emu0zonei"),
                    ("SecurityGroupId", "sg-emu0main"),
                    ("PrimaryIpAddress", "192.168.10.20"),
                ],
            )
            .fails(403, "InvalidIp.IpAssigned"),
            // Modify.
            Case::v3(
                "ModifyNetworkInterfaceAttribute",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("QueueNumber", "4"),
                    ("NetworkInterfaceName", "renamed"),
                    ("Description", "new description"),
                ],
            ),
        ])
        .await;
        let (_, v) = h
            .v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", id.as_str())],
            )
            .await;
        assert_eq!(
            (
                v["QueueNumber"].clone(),
                v["NetworkInterfaceName"].clone(),
                v["Description"].clone()
            ),
            (json!(4), json!("renamed"), json!("new description"))
        );
        h.run(&[
            Case::v2(
                "ModifyNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", id.as_str()), ("QueueNumber", "0")],
            )
            .fails(400, "InvalidParameter"),
            Case::v2(
                "ModifyNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", PRIMARY), ("QueueNumber", "2")],
            )
            .fails(400, "InvalidParameter"),
            Case::v2(
                "ModifyNetworkInterfaceAttribute",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("SecurityGroupId.1", "sg-emu0other"),
                ],
            )
            .fails(403, "InvalidEni.NotSameVpc"),
        ])
        .await;

        // Assign / unassign private IPv4 and prefixes, with ClientToken.
        let assign = [
            ("NetworkInterfaceId", id.as_str()),
            ("SecondaryPrivateIpAddressCount", "2"),
            ("ClientToken", "a-1"),
        ];
        let (code, v) = h.v2("AssignPrivateIpAddresses", &assign).await;
        assert_eq!(code, 200, "{v}");
        let new: Vec<String> =
            v["AssignedPrivateIpAddressesSet"]["PrivateIpSet"]["PrivateIpAddress"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
        assert_eq!(new.len(), 2);
        let (_, again) = h.v2("AssignPrivateIpAddresses", &assign).await;
        assert_eq!(
            again["AssignedPrivateIpAddressesSet"],
            v["AssignedPrivateIpAddressesSet"]
        );
        h.run(&[
            Case::v2(
                "AssignPrivateIpAddresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("SecondaryPrivateIpAddressCount", "1"),
                    ("ClientToken", "a-1"),
                ],
            )
            .fails(400, "IdempotentParameterMismatch"),
            Case::v2(
                "AssignPrivateIpAddresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("PrivateIpAddress.1", "192.168.10.21"),
                ],
            )
            .fails(403, "InvalidIp.IpAssigned"),
            Case::v2(
                "AssignPrivateIpAddresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("SecondaryPrivateIpAddressCount", "10"),
                ],
            )
            .fails(403, "InvalidOperation.Ipv4CountExceeded"),
            Case::v2(
                "AssignPrivateIpAddresses",
                &[("NetworkInterfaceId", id.as_str())],
            )
            .fails(400, "MissingParameter"),
            Case::v3(
                "UnassignPrivateIpAddresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("PrivateIpAddress.1", new[0].as_str()),
                ],
            ),
            Case::v2(
                "UnassignPrivateIpAddresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("PrivateIpAddress.1", new[0].as_str()),
                ],
            )
            .fails(403, "InvalidIp.IpUnassigned"),
        ])
        .await;
        let (code, v) = h
            .v2(
                "AssignPrivateIpAddresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("Ipv4PrefixCount", "1"),
                ],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        let prefix = v["AssignedPrivateIpAddressesSet"]["Ipv4PrefixSet"]["Ipv4Prefixes"][0]
            .as_str()
            .expect("prefix")
            .to_string();
        h.run(&[Case::v2(
            "UnassignPrivateIpAddresses",
            &[
                ("NetworkInterfaceId", id.as_str()),
                ("Ipv4Prefix.1", prefix.as_str()),
            ],
        )])
        .await;

        // IPv6.
        let (code, v) = h
            .v3(
                "AssignIpv6Addresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("Ipv6AddressCount", "2"),
                    ("ClientToken", "v6-1"),
                ],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        let v6 = v["Ipv6Sets"]["Ipv6Address"][0]
            .as_str()
            .expect("v6")
            .to_string();
        let (_, again) = h
            .v3(
                "AssignIpv6Addresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("Ipv6AddressCount", "2"),
                    ("ClientToken", "v6-1"),
                ],
            )
            .await;
        assert_eq!(again["Ipv6Sets"], v["Ipv6Sets"]);
        h.run(&[
            Case::v2(
                "AssignIpv6Addresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("Ipv6AddressCount", "10"),
                ],
            )
            .fails(403, "InvalidOperation.Ipv6CountExceeded"),
            Case::v2(
                "AssignIpv6Addresses",
                &[
                    ("NetworkInterfaceId", ENI_OTHER_ZONE),
                    ("Ipv6AddressCount", "1"),
                ],
            )
            .fails(403, "InvalidVSwitch.Ipv6NotTurnOn"),
        ])
        .await;
        let (code, v) = h
            .v2(
                "AssignIpv6Addresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("Ipv6PrefixCount", "1"),
                ],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        assert!(
            v["Ipv6PrefixSets"]["Ipv6Prefix"][0]
                .as_str()
                .is_some_and(|p| p.ends_with("/80"))
        );
        h.run(&[
            Case::v2(
                "UnassignIpv6Addresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("Ipv6Address.1", v6.as_str()),
                ],
            ),
            Case::v2(
                "UnassignIpv6Addresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("Ipv6Address.1", v6.as_str()),
                ],
            )
            .fails(403, "InvalidIp.IpUnassigned"),
        ])
        .await;

        // Delete: not while attached; Deleting, then gone.
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
        h.run(&[
            Case::v2(
                "DeleteNetworkInterface",
                &[("NetworkInterfaceId", id.as_str())],
            )
            .fails(400, "InvalidOperation.InvalidEniState"),
            Case::v2(
                "AssignPrivateIpAddresses",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("SecondaryPrivateIpAddressCount", "1"),
                ],
            )
            .fails(403, "Operation.Conflict"),
        ])
        .await;
        h.wait_status(&id, "InUse", Duration::from_secs(3)).await;
        h.run(&[
            Case::v2(
                "ModifyNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", id.as_str()), ("QueueNumber", "2")],
            )
            .fails(400, "InvalidOperation.InvalidEcsState"),
            Case::v2(
                "DetachNetworkInterface",
                &[("NetworkInterfaceId", PRIMARY), ("InstanceId", INSTANCE)],
            )
            .fails(403, "InvalidOperation.DetachPrimaryEniNotAllowed"),
            Case::v2(
                "DetachNetworkInterface",
                &[("NetworkInterfaceId", ENI2), ("InstanceId", INSTANCE)],
            )
            .fails(400, "InvalidOperation.InvalidEniState"),
        ])
        .await;
        assert_eq!(
            h.v2(
                "DetachNetworkInterface",
                &[
                    ("NetworkInterfaceId", id.as_str()),
                    ("InstanceId", INSTANCE)
                ]
            )
            .await
            .0,
            200
        );
        h.wait_status(&id, "Available", Duration::from_secs(3))
            .await;
        assert_eq!(
            h.v3(
                "DeleteNetworkInterface",
                &[("NetworkInterfaceId", id.as_str())]
            )
            .await
            .0,
            200
        );
        assert_eq!(h.status(&id).await, "Deleting");
        tokio::time::sleep(Duration::from_millis(400)).await;
        h.run(&[
            Case::v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", id.as_str())],
            )
            .fails(404, "InvalidEniId.NotFound"),
            Case::v2(
                "DeleteNetworkInterface",
                &[("NetworkInterfaceId", id.as_str())],
            )
            .fails(404, "InvalidEniId.NotFound"),
        ])
        .await;

        // Account ENI quota.
        let r = h
            .http
            .post(format!("{}/seed", h.control))
            .json(&json!({"max_enis": 5}))
            .send()
            .await
            .expect("seed");
        assert_eq!(r.status().as_u16(), 200);
        h.run(&[Case::v2(
            "CreateNetworkInterface",
            &[
                ("VSwitchId", "vsw-emu0zonei"),
                ("SecurityGroupId", "sg-emu0main"),
            ],
        )
        .fails(403, "MaxEniCountExceeded")])
            .await;
        h.running.shutdown().await;
    });
}

#[test]
fn gateway_parameter_errors_and_ip_exhaustion() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let raw = |overrides: Vec<(&'static str, String)>| {
            let mut p: Vec<(&str, String)> = vec![
                ("Action", "DescribeNetworkInterfaces".into()),
                ("RegionId", REGION.into()),
                ("AccessKeyId", ROOT_KEY.into()),
                ("Signature", "bm90IGEgc2lnbmF0dXJl".into()),
                ("SignatureMethod", "HMAC-SHA1".into()),
                ("SignatureVersion", "1.0".into()),
                ("SignatureNonce", ecs_emulator::util::random_hex::<8>()),
                ("Timestamp", now.clone()),
                ("Version", "2014-05-26".into()),
            ];
            for (k, v) in overrides {
                p.retain(|(pk, _)| *pk != k);
                p.push((k, v));
            }
            let q = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(p)
                .finish();
            let http = h.http.clone();
            let url = format!("{}?{q}", h.api);
            async move {
                let r = http.get(url).send().await.expect("sent");
                (r.status().as_u16(), r.json::<Value>().await.expect("json"))
            }
        };
        assert_error(
            &raw(vec![("SignatureMethod", "HMAC-SHA256".into())]).await,
            400,
            "InvalidSignatureMethod",
        );
        assert_error(
            &raw(vec![("SignatureVersion", "2.0".into())]).await,
            400,
            "InvalidSignatureVersion",
        );
        assert_error(
            &raw(vec![("Timestamp", "yesterday".into())]).await,
            400,
            "InvalidTimeStamp.Format",
        );
        assert_error(
            &raw(vec![("Version", "2016-01-01".into())]).await,
            400,
            "InvalidVersion",
        );
        assert_error(
            &raw(vec![("SignatureNonce", String::new())]).await,
            400,
            "MissingParameter",
        );
        assert_error(&raw(vec![]).await, 400, "SignatureDoesNotMatch");
        let r = h
            .http
            .post(format!("{}?RegionId={REGION}", h.api))
            .header(
                "authorization",
                "ACS3-HMAC-SM3 Credential=x,SignedHeaders=host,Signature=00",
            )
            .header("x-acs-action", "DescribeNetworkInterfaces")
            .send()
            .await
            .expect("sent");
        let got = (r.status().as_u16(), r.json::<Value>().await.expect("json"));
        assert_error(&got, 400, "IncompleteSignature");

        // A /29 vSwitch has 4 usable addresses.
        let seed = json!({"vswitches": [{"id": "vsw-tiny", "vpc_id": "vpc-emu0main", "zone_id": "cn-hangzhou-i", "cidr": "192.168.99.0/29"}]});
        let r = h
            .http
            .post(format!("{}/seed", h.control))
            .json(&seed)
            .send()
            .await
            .expect("seed");
        assert_eq!(r.status().as_u16(), 200);
        h.run(&[Case::v2(
            "CreateNetworkInterface",
            &[
                ("VSwitchId", "vsw-tiny"),
                ("SecurityGroupId", "sg-emu0main"),
                ("SecondaryPrivateIpAddressCount", "4"),
            ],
        )
        .fails(403, "InvalidVSwitchId.IpNotEnough")])
            .await;
        let (code, v) = h
            .v2(
                "CreateNetworkInterface",
                &[
                    ("VSwitchId", "vsw-tiny"),
                    ("SecurityGroupId", "sg-emu0main"),
                    ("SecondaryPrivateIpAddressCount", "3"),
                ],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        h.running.shutdown().await;
    });
}

#[test]
fn form_bodies_are_signed_with_both_versions() {
    in_netns(|| async {
        let h = start(fast_scenario(), None).await;
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        // V2: POST, every parameter in a form body, signed with "POST".
        let mut p: Vec<(String, String)> = [
            ("Action", "DescribeNetworkInterfaceAttribute"),
            ("RegionId", REGION),
            ("NetworkInterfaceId", ENI1),
            ("AccessKeyId", ROOT_KEY),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "form-v2"),
            ("Version", "2014-05-26"),
            ("Format", "JSON"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        p.push(("Timestamp".into(), now.clone()));
        let params = ecs_emulator::api::params::Params::from_pairs(p.clone());
        let sts = ecs_emulator::api::auth::v2_string_to_sign("POST", &params);
        p.push((
            "Signature".into(),
            ecs_emulator::api::auth::v2_sign(ROOT_SECRET, &sts),
        ));
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(p)
            .finish();
        let r = h
            .http
            .post(&h.api)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("sent");
        let status = r.status().as_u16();
        let v: Value = r.json().await.expect("json");
        assert_eq!(
            (status, v["NetworkInterfaceId"].as_str()),
            (200, Some(ENI1)),
            "{v}"
        );

        // V3: business parameters in a form body; the payload hash covers it.
        let body = format!("RegionId={REGION}&NetworkInterfaceId={ENI1}");
        let digest = ecs_emulator::util::hex_lower(
            ring::digest::digest(&ring::digest::SHA256, body.as_bytes()).as_ref(),
        );
        let host = h
            .api
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let mut headers = axum::http::HeaderMap::new();
        let hv = |s: &str| axum::http::HeaderValue::from_str(s).expect("header");
        headers.insert("host", hv(&host));
        headers.insert("content-type", hv("application/x-www-form-urlencoded"));
        headers.insert("x-acs-action", hv("DescribeNetworkInterfaceAttribute"));
        headers.insert("x-acs-version", hv("2014-05-26"));
        headers.insert("x-acs-date", hv(&now));
        headers.insert("x-acs-signature-nonce", hv("form-v3"));
        headers.insert("x-acs-content-sha256", hv(&digest));
        let mut signed: Vec<String> = headers.keys().map(|k| k.as_str().to_string()).collect();
        signed.sort();
        let canonical = ecs_emulator::api::auth::v3_canonical_request(
            "POST",
            "",
            &headers,
            &signed,
            body.as_bytes(),
        );
        let sig = ecs_emulator::api::auth::v3_sign(
            ROOT_SECRET,
            &ecs_emulator::api::auth::v3_string_to_sign(&canonical),
        );
        let mut req = h.http.post(&h.api).header(
            "authorization",
            format!(
                "ACS3-HMAC-SHA256 Credential={ROOT_KEY},SignedHeaders={},Signature={sig}",
                signed.join(";")
            ),
        );
        for (k, v) in &headers {
            if k.as_str() != "host" {
                req = req.header(k.as_str(), v.to_str().expect("ascii"));
            }
        }
        let r = req.body(body.clone()).send().await.expect("sent");
        let status = r.status().as_u16();
        let v: Value = r.json().await.expect("json");
        assert_eq!(
            (status, v["NetworkInterfaceId"].as_str()),
            (200, Some(ENI1)),
            "{v}"
        );
        // A body that does not match the signed hash is rejected.
        let mut req = h.http.post(&h.api).header(
            "authorization",
            format!(
                "ACS3-HMAC-SHA256 Credential={ROOT_KEY},SignedHeaders={},Signature={sig}",
                signed.join(";")
            ),
        );
        for (k, v) in &headers {
            if k.as_str() == "x-acs-signature-nonce" {
                req = req.header(k.as_str(), "form-v3-b");
            } else if k.as_str() != "host" {
                req = req.header(k.as_str(), v.to_str().expect("ascii"));
            }
        }
        let r = req
            .body(format!("{body}&Extra=1"))
            .send()
            .await
            .expect("sent");
        let got = (r.status().as_u16(), r.json::<Value>().await.expect("json"));
        assert_error(&got, 400, "SignatureDoesNotMatch");
        h.running.shutdown().await;
    });
}
