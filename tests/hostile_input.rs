//! Hostile input: whatever ECS, the metadata service or the configuration
//! file say, the agent answers with a clear error or a valid plan — never a
//! panic, never a hang — and a rejected answer reaches no kernel call (the
//! plan is the last step before any is made).

use std::time::{Duration, Instant};

use eni_agent::agent::facts;
use eni_agent::cloud::ecs::NetworkInterface;
use eni_agent::config::Config;
use eni_agent::plan::{self, EniOptions, IpNet, SubnetFacts};
use proptest::prelude::*;

fn subnet() -> SubnetFacts {
    SubnetFacts {
        vswitch_cidr: Some("192.168.10.0/24".parse().expect("cidr")),
        netmask: None,
        gateway: "192.168.10.253".parse().expect("gw"),
        ipv6_gateway: Some("2408:4005:3a0:7101::1".parse().expect("gw6")),
        vswitch_ipv6_cidr: Some("2408:4005:3a0:7101::/64".parse::<IpNet>().expect("cidr6")),
        vpc_cidr: None,
    }
}

/// Describe JSON → facts → plan; the error text when refused.
fn pipeline(json: &str) -> Result<plan::Plan, String> {
    let ni: NetworkInterface = serde_json::from_str(json).map_err(|e| format!("decode: {e}"))?;
    let f = facts::eni_facts(&ni, "eni-1").map_err(|e| e.to_string())?;
    plan::plan(&f, &subnet(), &EniOptions::default(), 10001).map_err(|e| e.to_string())
}

fn eni_json(extra: &str) -> String {
    format!(
        r#"{{"NetworkInterfaceId":"eni-1","Type":"Secondary","MacAddress":"00:16:3e:00:00:02","PrivateIpAddress":"192.168.10.20"{extra}}}"#
    )
}

#[test]
fn a_sane_answer_plans() {
    pipeline(&eni_json("")).expect("valid ENI plans");
}

#[test]
fn malicious_describe_answers_are_refused_with_the_reason() {
    let many: Vec<String> = (0..5000)
        .map(|i| {
            format!(
                r#"{{"PrivateIpAddress":"10.{}.{}.{}"}}"#,
                i / 65536,
                (i / 256) % 256,
                i % 256
            )
        })
        .collect();
    let huge = format!(
        r#","PrivateIpSets":{{"PrivateIpSet":[{}]}}"#,
        many.join(",")
    );
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (json, needle) in [
        (eni_json(r#","PrivateIpSets":{"PrivateIpSet":[{"PrivateIpAddress":"10.9.9.9"}]}"#), "outside"),
        (eni_json(r#","Ipv6Sets":{"Ipv6Set":[{"Ipv6Address":"2001:db8::1"}]}"#), "outside"),
        (eni_json(r#","QueueNumber":99999"#), "99999"),
        (eni_json(r#","QueueNumber":"4294967296""#), "out of range"),
        (eni_json(&huge), "more than any ENI can have"),
        (eni_json(r#","Ipv4PrefixSets":{"Ipv4PrefixSet":[{"Ipv4Prefix":"192.168.10.0/33"}]}"#), "prefix length 33"),
        (eni_json(r#","PrivateIpSets":{"PrivateIpSet":[{"PrivateIpAddress":"192.168.10.20"},{"PrivateIpAddress":"192.168.10.21"},{"PrivateIpAddress":"192.168.10.21"}]}"#), "duplicate"),
        (r#"{"NetworkInterfaceId":"eni-1","MacAddress":"01:00:5e:00:00:01","PrivateIpAddress":"192.168.10.20"}"#.to_owned(), "multicast"),
        (format!(r#"{{"NetworkInterfaceId":"eni-1","Extra":{nested}}}"#), "MacAddress"),
        (format!(r#"{{"NetworkInterfaceId":"eni-1","PrivateIpSets":{nested}}}"#), "decode"),
        ("\u{0}\u{1}not json".to_owned(), "decode"),
    ] {
        let started = Instant::now();
        let err = pipeline(&json).expect_err("refused");
        assert!(err.to_lowercase().contains(&needle.to_lowercase()), "expected {needle:?} in: {err}");
        assert!(started.elapsed() < Duration::from_secs(2), "refusing took {:?}", started.elapsed());
    }
    // Invalid UTF-8 never becomes a string.
    assert!(serde_json::from_slice::<NetworkInterface>(b"{\"MacAddress\":\"\xff\xfe\"}").is_err());
}

/// Describe JSON for "eni-1" with `primary` and `extra` fields, planned
/// against `subnet`: the refusal's text.
fn refusal(primary: &str, extra: &str, subnet: &SubnetFacts) -> String {
    let json = format!(
        r#"{{"NetworkInterfaceId":"eni-1","Type":"Secondary","MacAddress":"00:16:3e:00:00:02","PrivateIpAddress":"{primary}"{extra}}}"#
    );
    let ni: NetworkInterface = serde_json::from_str(&json).expect("json");
    let f = match facts::eni_facts(&ni, "eni-1") {
        Ok(f) => f,
        Err(e) => return e.to_string(),
    };
    match plan::plan(&f, subnet, &EniOptions::default(), 10001) {
        Ok(p) => panic!("planned a hostile answer: {primary} {extra} {subnet:?}: {p}"),
        Err(e) => e.to_string(),
    }
}

fn with(f: impl FnOnce(&mut SubnetFacts)) -> SubnetFacts {
    let mut s = subnet();
    f(&mut s);
    s
}

fn net(text: &str) -> IpNet {
    text.parse().expect("net")
}

/// Address classes and widths no ENI can have: each refusal names the field
/// and the value.
#[test]
fn hostile_address_classes_and_widths_are_refused_naming_field_and_value() {
    let v4 = |cidr: &str, gw: &str| {
        with(|s| {
            s.vswitch_cidr = Some(net(cidr));
            s.gateway = gw.parse().expect("gw");
        })
    };
    let prefix =
        |p: &str| format!(r#","Ipv4PrefixSets":{{"Ipv4PrefixSet":[{{"Ipv4Prefix":"{p}"}}]}}"#);
    let secondary =
        |a: &str| format!(r#","PrivateIpSets":{{"PrivateIpSet":[{{"PrivateIpAddress":"{a}"}}]}}"#);
    let v6 = |a: &str| format!(r#","Ipv6Sets":{{"Ipv6Set":[{{"Ipv6Address":"{a}"}}]}}"#);
    let cases: Vec<(String, &[&str])> = vec![
        // The whole Internet in the ENI's table.
        (
            refusal("0.0.0.5", &prefix("0.0.0.0/2"), &v4("0.0.0.0/1", "0.0.0.1")),
            &["subnet.vswitch_cidr", "0.0.0.0/1", "prefix length 1"],
        ),
        (
            refusal("192.168.10.20", &prefix("0.0.0.0/2"), &subnet()),
            &["eni.ipv4_prefixes[0]", "prefix length 2"],
        ),
        (
            refusal("192.168.10.20", &prefix("192.168.10.0/33"), &subnet()),
            &["eni.ipv4_prefixes[0]", "prefix length 33"],
        ),
        (
            refusal("127.0.0.5", "", &v4("127.0.0.0/8", "127.0.0.1")),
            &["127.0.0.5", "loopback", "eni.primary_ipv4"],
        ),
        (
            refusal("224.0.0.5", "", &v4("224.0.0.0/4", "224.0.0.1")),
            &["subnet.vswitch_cidr", "224.0.0.0/4"],
        ),
        (
            refusal("224.0.0.5", "", &v4("224.0.0.0/8", "224.0.0.1")),
            &["eni.primary_ipv4", "224.0.0.5", "multicast"],
        ),
        (
            refusal("169.254.169.254", "", &v4("169.254.0.0/16", "169.254.0.1")),
            &["eni.primary_ipv4", "169.254.169.254", "link-local"],
        ),
        (
            refusal("240.0.0.5", "", &v4("240.0.0.0/24", "240.0.0.1")),
            &["eni.primary_ipv4", "240.0.0.5", "class E"],
        ),
        (
            refusal("192.168.10.20", &secondary("255.255.255.255"), &subnet()),
            &["eni.secondary_ipv4[0]", "255.255.255.255", "broadcast"],
        ),
        (
            refusal("192.168.10.255", "", &subnet()),
            &["eni.primary_ipv4", "192.168.10.255", "broadcast address"],
        ),
        (
            refusal("192.168.10.0", "", &subnet()),
            &["eni.primary_ipv4", "192.168.10.0", "network"],
        ),
        (
            refusal("0.0.0.0", "", &subnet()),
            &["eni.primary_ipv4", "0.0.0.0", "unspecified"],
        ),
        (
            refusal("192.168.10.20", &v6("fe80::5"), &subnet()),
            &["eni.ipv6[0]", "fe80::5", "link-local"],
        ),
        (
            refusal("192.168.10.20", &v6("ff02::1"), &subnet()),
            &["eni.ipv6[0]", "ff02::1", "multicast"],
        ),
        (
            refusal("192.168.10.20", &v6("::1"), &subnet()),
            &["eni.ipv6[0]", "::1", "loopback"],
        ),
        (
            refusal(
                "192.168.10.20",
                "",
                &with(|s| s.vswitch_ipv6_cidr = Some(net("2408::/8"))),
            ),
            &["subnet.vswitch_ipv6_cidr", "prefix length 8"],
        ),
        (
            refusal("10.0.0.20", "", &v4("10.0.0.0/7", "10.0.0.1")),
            &["subnet.vswitch_cidr", "prefix length 7"],
        ),
        (
            refusal(
                "192.168.10.20",
                "",
                &with(|s| {
                    s.vswitch_cidr = None;
                    s.netmask = Some("128.0.0.0".parse().expect("mask"));
                }),
            ),
            &["subnet.netmask", "prefix length 1"],
        ),
        // The VPC CIDR is used: the vSwitch must lie inside it.
        (
            refusal(
                "192.168.10.20",
                "",
                &with(|s| s.vpc_cidr = Some(net("10.0.0.0/8"))),
            ),
            &["subnet.vswitch_cidr", "192.168.10.0/24", "10.0.0.0/8"],
        ),
        // Gateways.
        (
            refusal(
                "192.168.10.20",
                "",
                &with(|s| s.gateway = "10.9.9.9".parse().expect("gw")),
            ),
            &["subnet.gateway", "10.9.9.9", "outside"],
        ),
        (
            refusal(
                "192.168.10.20",
                "",
                &with(|s| s.ipv6_gateway = Some("ff02::2".parse().expect("gw"))),
            ),
            &["subnet.ipv6_gateway", "ff02::2", "multicast"],
        ),
    ];
    for (text, needles) in &cases {
        for n in *needles {
            assert!(text.contains(n), "expected {n:?} in: {text}");
        }
    }
    // Inside the VPC is fine.
    let ok = with(|s| s.vpc_cidr = Some(net("192.168.0.0/16")));
    let ni: NetworkInterface = serde_json::from_str(&eni_json("")).expect("json");
    let f = facts::eni_facts(&ni, "eni-1").expect("facts");
    plan::plan(&f, &ok, &EniOptions::default(), 10001).expect("a vSwitch inside its VPC plans");
}

/// An answer about another ENI than the one asked for is refused, naming both.
#[test]
fn an_answer_about_another_eni_is_refused() {
    let ni: NetworkInterface = serde_json::from_str(&eni_json("")).expect("json");
    let e = facts::eni_facts(&ni, "eni-asked")
        .expect_err("mismatch")
        .to_string();
    assert!(
        e.contains("eni-asked") && e.contains("eni-1") && e.contains("NetworkInterfaceId"),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text never panics the decoder.
    #[test]
    fn any_text_decodes_or_errors(s in any::<String>()) {
        let _ = pipeline(&s);
    }

    /// Arbitrary field values in a well-formed answer: a plan whose every
    /// address lies inside the vSwitch, or an error.
    #[test]
    fn any_values_plan_validly_or_error(
        mac in "[0-9a-f:]{0,20}",
        primary in "[0-9.]{0,16}",
        secondaries in proptest::collection::vec("192\\.168\\.(10|11)\\.[0-9]{1,3}", 0..20),
        v6 in proptest::collection::vec("2408:4005:3a0:710[01]::[0-9a-f]{1,4}", 0..5),
        prefixes in proptest::collection::vec("192\\.168\\.10\\.[0-9]{1,3}/[0-9]{1,2}", 0..3),
        queues in proptest::option::of(0u64..5000),
    ) {
        let list = |items: &[String], key: &str| items.iter().map(|i| format!(r#"{{"{key}":"{i}"}}"#)).collect::<Vec<_>>().join(",");
        let json = format!(
            r#"{{"NetworkInterfaceId":"eni-1","MacAddress":"{mac}","PrivateIpAddress":"{primary}",
                "PrivateIpSets":{{"PrivateIpSet":[{}]}},"Ipv6Sets":{{"Ipv6Set":[{}]}},
                "Ipv4PrefixSets":{{"Ipv4PrefixSet":[{}]}}{}}}"#,
            list(&secondaries, "PrivateIpAddress"),
            list(&v6, "Ipv6Address"),
            list(&prefixes, "Ipv4Prefix"),
            queues.map(|q| format!(r#","QueueNumber":{q}"#)).unwrap_or_default(),
        );
        if let Ok(p) = pipeline(&json) {
            let s = subnet();
            let v4 = s.vswitch_cidr.expect("v4");
            let v6net = s.vswitch_ipv6_cidr.expect("v6");
            for a in &p.addresses {
                prop_assert!(if a.addr.is_ipv4() { v4.contains(a.addr) } else { v6net.contains(a.addr) }, "{} outside", a.addr);
            }
            prop_assert!(p.queues.is_none_or(|q| (1..=2048).contains(&q)));
        }
    }

    /// Arbitrary configuration text never panics the parser.
    #[test]
    fn any_config_text_parses_or_errors(s in any::<String>()) {
        let _ = Config::from_toml(&s, "fuzz");
    }

    /// Configuration built from plausible keys with arbitrary values.
    #[test]
    fn any_config_values_parse_or_error(id in ".{0,20}", mtu in any::<i64>(), tag in ".{0,10}", interval in ".{0,8}") {
        let text = format!("[agent]\ndescribe_interval = {interval:?}\n[[eni]]\nid = {id:?}\nmtu = {mtu}\n[[eni]]\ntag = {tag:?}\n");
        let _ = Config::from_toml(&text, "fuzz");
    }
}

// --- Ids, endpoints and secrets at the edges (pure) ---

mod edges {
    use eni_agent::config::{Config, check_url};
    use eni_agent::ids::{EniId, InstanceId, RegionId, ZoneId};
    use eni_agent::secret::{MAX_MESSAGE_CHARS, scrub};
    use proptest::prelude::*;

    #[test]
    fn configured_ids_and_endpoints_are_refused_naming_the_key() {
        for (text, needle) in [
            ("[api]\nregion = \"x@127.0.0.1:18443#\"\n", "region id"),
            (
                "[api]\nendpoint = \"https://x@127.0.0.1:18443\"\n",
                "api.endpoint",
            ),
            (
                "[api]\nendpoint = \"https://127.0.0.1:18443/#\"\n",
                "api.endpoint",
            ),
            (
                "[metadata]\nendpoint = \"http://a@100.100.100.200\"\n",
                "metadata.endpoint",
            ),
            ("[agent]\ninstance_id = \"i-1 i-2\"\n", "instance id"),
            ("[agent]\nzone_id = \"cn-hangzhou-i\\n\"\n", "zone id"),
            ("[[eni]]\nid = \"eni-a\\nmanaged=0\"\n", "not an ENI id"),
        ] {
            let err = Config::from_toml(text, "t").expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn the_documented_endpoints_pass() {
        for ok in [
            "https://ecs-vpc.cn-hangzhou.aliyuncs.com",
            "https://ecs.cn-shanghai.aliyuncs.com/",
            "http://127.0.0.1:18443",
            "http://100.100.100.200",
        ] {
            check_url(ok).expect(ok);
        }
    }

    proptest! {
        /// Whatever an id parses to is safe in a file name, a URL host and a
        /// status line.
        #[test]
        fn parsed_ids_are_safe_everywhere(s in "\\PC{0,80}") {
            for ok in [
                EniId::parse(&s).is_ok(),
                InstanceId::parse(&s).is_ok(),
                RegionId::parse(&s).is_ok(),
                ZoneId::parse(&s).is_ok(),
            ] {
                if ok {
                    prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{s:?}");
                    prop_assert!(!s.is_empty() && s.len() <= 68);
                }
            }
        }

        /// A scrubbed message is bounded, one line, and carries no known secret.
        #[test]
        fn scrubbed_messages_are_bounded_and_secret_free(
            prefix in "\\PC{0,300}",
            token in "[A-Za-z0-9+/=]{8,40}",
            suffix in "\\PC{0,300}",
        ) {
            let text = format!("{prefix}SecurityToken={token}&{suffix}\n{token}");
            let clean = scrub(&text, &[token.as_str()]);
            prop_assert!(!clean.contains(&token), "{clean}");
            prop_assert!(clean.chars().count() <= MAX_MESSAGE_CHARS + 1);
            prop_assert!(!clean.chars().any(char::is_control));
        }
    }
}
