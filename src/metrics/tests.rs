use super::*;

#[test]
fn repair_kinds_follow_the_printed_commands() {
    for (op, kind) in [
        (
            "ip address add 10.0.0.2/24 dev eth1 noprefixroute",
            "address",
        ),
        (
            "ip -6 route add default via fe80::1 dev eth1 table 10001 metric 2000 proto 237",
            "route",
        ),
        (
            "ip rule add from 10.0.0.2 lookup 10001 pref 20300 proto 237",
            "rule",
        ),
        ("ip -6 rule del from ::1 lookup 10001", "rule"),
        ("ip link set dev eth1 up", "link"),
        ("ethtool -L eth1 combined 2", "channels"),
        ("sysctl -w net.ipv4.conf.eth1.rp_filter=2", "sysctl"),
        ("something else", "other"),
    ] {
        assert_eq!(repair_kind(op), kind, "{op}");
    }
}

#[test]
fn states_are_exclusive_and_forgotten_enis_leave_no_series() {
    let m = Metrics::new();
    m.eni_state("eni-a", EniState::Attaching);
    m.eni_desired_addresses(
        "eni-a",
        ["10.0.0.2".parse().expect("ip"), "::2".parse().expect("ip")],
    );
    m.eni_configured("eni-a", "00:16:3e:00:00:01", "eth1", 10001);
    m.eni_converged("eni-a");
    assert_eq!(m.state_of("eni-a"), Some(EniState::Configured));
    m.eni_degraded("eni-a", true);
    assert_eq!(m.state_of("eni-a"), Some(EniState::Degraded));
    m.eni_converged("eni-a");
    assert_eq!(m.state_of("eni-a"), Some(EniState::Configured));
    let text = encode(&m, false);
    assert!(
        text.contains("eni_agent_eni_state{eni=\"eni-a\",state=\"configured\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("eni_agent_eni_state{eni=\"eni-a\",state=\"attaching\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("eni_agent_eni_addresses_configured{eni=\"eni-a\",family=\"ipv6\"} 1"),
        "{text}"
    );
    assert!(text.contains("eni_agent_eni_info{eni=\"eni-a\",mac=\"00:16:3e:00:00:01\",ifname=\"eth1\",table=\"10001\"} 1"), "{text}");
    m.eni_forget("eni-a");
    let text = encode(&m, false);
    assert!(!text.contains("eni=\"eni-a\""), "{text}");
}

#[test]
fn a_fight_shows_in_the_tug_of_war_gauge() {
    let m = Metrics::new();
    m.drift_repaired(
        "eni-a",
        &["ip rule add from 10.0.0.2 lookup 10001".into()],
        false,
    );
    assert!(encode(&m, false).contains("eni_agent_tug_of_war{eni=\"eni-a\"} 0"));
    m.drift_repaired(
        "eni-a",
        &[
            "ip rule add from 10.0.0.2 lookup 10001".into(),
            "ip rule add from 10.0.0.3 lookup 10001".into(),
        ],
        true,
    );
    let text = encode(&m, false);
    assert!(
        text.contains("eni_agent_tug_of_war{eni=\"eni-a\"} 1"),
        "{text}"
    );
    // One repair that touched rules counts once for its kind.
    assert!(
        text.contains("eni_agent_drift_repairs_total{eni=\"eni-a\",kind=\"rule\"} 2"),
        "{text}"
    );
}

#[test]
fn phase_buckets_resolve_a_millisecond_and_five_minutes() {
    let m = Metrics::new();
    m.phase_reached("configured", Duration::from_micros(800));
    m.phase_reached("configured", Duration::from_secs(290));
    let text = encode(&m, false);
    assert!(
        text.contains(
            "eni_agent_phase_duration_seconds_bucket{le=\"0.001\",phase=\"configured\"} 1"
        ) || text.contains(
            "eni_agent_phase_duration_seconds_bucket{phase=\"configured\",le=\"0.001\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("le=\"300.0\"") || text.contains("le=\"300\""),
        "{text}"
    );
    assert!(
        text.contains("eni_agent_phase_duration_seconds_count{phase=\"configured\"} 2"),
        "{text}"
    );
}
