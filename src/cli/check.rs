//! `eni-agent check-config`: the effective configuration, as the agent will
//! use it, with warnings for a file that manages nothing; and the parser of
//! `--timeout` values.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use humantime::format_duration as human;

use super::{Cli, DEFAULT_CONFIG};
use crate::config::{Config, EniConfig, EniSelector, MAX_DURATION};

/// `eni-agent check-config [FILE]`: parse and validate, print what it means.
pub fn check_config(cli: &Cli, file: Option<&Path>) -> Result<(), String> {
    let path = file
        .or(cli.config.as_deref())
        .unwrap_or(Path::new(DEFAULT_CONFIG));
    let config = Config::load(path).map_err(|e| e.to_string())?;
    println!("{}: valid", path.display());
    print!("{}", render(&config));
    if config.eni.is_empty() {
        eprintln!(
            "warning: {} has no [[eni]] entry: the daemon will manage nothing (attach and detach still work)",
            path.display()
        );
    }
    Ok(())
}

/// The effective configuration, every default resolved.
pub fn render(config: &Config) -> String {
    let mut out = String::new();
    let api = &config.api;
    let r = &api.retry;
    let _ = writeln!(
        out,
        "[api]\n  region {}\n  endpoint {}\n  signature {:?}; connect timeout {}, request timeout {}\n  \
         retries: {} attempts within {}, waits {}..{}; throttled: {}..{} (at most {})",
        api.region
            .as_deref()
            .unwrap_or("(from the metadata service)"),
        api.endpoint
            .as_deref()
            .unwrap_or("(the VPC endpoint of the region)"),
        api.signature,
        human(api.connect_timeout),
        human(api.request_timeout),
        r.max_attempts,
        human(r.deadline),
        human(r.base_delay),
        human(r.max_delay),
        human(r.throttle_min_delay),
        human(r.throttle_base_delay),
        human(r.throttle_max_delay),
    );
    let md = &config.metadata;
    let _ = writeln!(
        out,
        "[metadata]\n  endpoint {}{}; timeout {}",
        md.endpoint
            .as_deref()
            .unwrap_or(crate::metadata::DEFAULT_ENDPOINT),
        if md.require_token {
            ", token required"
        } else {
            ""
        },
        human(md.timeout),
    );
    let _ = writeln!(out, "[credentials] tried in this order:");
    for (i, source) in crate::credentials::chain(&config.credentials)
        .iter()
        .enumerate()
    {
        let _ = writeln!(out, "  {}. {source}", i + 1);
    }
    let a = &config.agent;
    let _ = writeln!(
        out,
        "[agent]\n  state_dir {}\n  attach_timeout {}, describe_interval {}\n  tables {}..{}\n  \
         detach_on_remove {}, manage_network_managers {}\n  instance {}, zone {}, VPC {}",
        a.state_dir.display(),
        human(a.attach_timeout),
        human(a.describe_interval),
        a.table_min,
        a.table_max,
        a.detach_on_remove,
        a.manage_network_managers,
        a.instance_id.as_deref().unwrap_or("(from metadata)"),
        a.zone_id.as_deref().unwrap_or("(from metadata)"),
        a.vpc_id.as_deref().unwrap_or("(from metadata)"),
    );
    if config.eni.is_empty() {
        let _ = writeln!(out, "[[eni]] none");
    }
    for (i, e) in config.eni.iter().enumerate() {
        let _ = writeln!(out, "[[eni]] #{}: {}", i + 1, eni_line(e));
    }
    out
}

fn eni_line(e: &EniConfig) -> String {
    let selector = match e.selector() {
        EniSelector::Id(id) => id,
        EniSelector::Tag { key, value } => format!("every Available ENI tagged {key}={value}"),
    };
    let on_off = |b: bool| if b { "on" } else { "off" };
    format!(
        "{selector}\n    table {}, mtu {}, queues {}, network card {}\n    takeover {}, default route {}\n    \
         sysctls: rp_filter {}, arp {}, accept_ra=0 {}",
        e.table
            .map_or("(allocated from the range)".to_owned(), |t| t.to_string()),
        e.mtu.map_or("(unchanged)".to_owned(), |m| m.to_string()),
        e.queues
            .map_or("(the API's QueueNumber)".to_owned(), |q| q.to_string()),
        e.network_card_index
            .map_or("(default)".to_owned(), |n| n.to_string()),
        on_off(e.takeover),
        if e.default_route {
            format!(
                "in main (metric {})",
                e.default_route_metric
                    .map_or("(default)".to_owned(), |m| m.to_string())
            )
        } else {
            "off".to_owned()
        },
        on_off(e.sysctl.rp_filter),
        on_off(e.sysctl.arp),
        on_off(e.sysctl.accept_ra),
    )
}

/// `--timeout VALUE`: a duration from 1 ms to a day.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|_| format!("expected a duration like 30s or 2m, not {text:?}"))?;
    if d.is_zero() {
        return Err(
            "a timeout of 0 gives up before starting; give a duration like 30s or 2m".into(),
        );
    }
    if d > MAX_DURATION {
        return Err(format!(
            "{text} is longer than {}; give a duration like 30s or 2m",
            human(MAX_DURATION)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_checked() {
        assert_eq!(parse_timeout("8s"), Ok(Duration::from_secs(8)));
        for (text, needle) in [
            ("forever", "expected a duration like 30s or 2m"),
            ("0s", "gives up before starting"),
            ("400days", "longer than"),
        ] {
            let err = parse_timeout(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn the_effective_configuration_is_printed() {
        let c = Config::from_toml(
            "[credentials]\nfile = \"/etc/eni-agent/credentials\"\n[[eni]]\nid = \"eni-bp1abc\"\nmtu = 9000\n\
             [[eni]]\ntag = \"role=db\"\n",
            "t",
        )
        .expect("valid");
        let text = render(&c);
        for needle in [
            "[agent]",
            "attach_timeout 3m",
            "[[eni]] #1: eni-bp1abc",
            "mtu 9000",
            "[[eni]] #2: every Available ENI tagged role=db",
            "2. the file /etc/eni-agent/credentials [default], when it exists",
            "3. the instance RAM role",
        ] {
            assert!(text.contains(needle), "{needle}:\n{text}");
        }
        assert!(render(&Config::default()).contains("[[eni]] none"));
    }
}
