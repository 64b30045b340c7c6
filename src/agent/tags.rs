//! Which ENIs the configuration selects: ids as written, tags looked up with
//! DescribeNetworkInterfaces. A failed lookup is never read as "no ENIs": it
//! keeps its last successful answer and is retried with backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::error;

use super::context::Context;
use crate::cloud::ecs::{DescribeNetworkInterfaces, EniStatus, TagFilter};
use crate::config::{Config, EniConfig, EniSelector};

/// The last successful answer of each tag lookup (`key=value` → ENI ids):
/// a failed lookup keeps it, so an API error never reads as "no ENIs".
pub type TagViews = BTreeMap<String, Vec<String>>;

/// What the configuration selects now.
#[derive(Debug)]
pub struct Resolved {
    /// ENI ids with their entries.
    pub enis: Vec<(String, EniConfig)>,
    /// Tags whose lookup failed (their previous view was kept).
    pub failed: Vec<String>,
}

/// The ENI ids the configuration selects, with their entries. A tag whose
/// lookup fails contributes its last successful answer, if any.
pub async fn resolve(ctx: &Context, config: &Config, views: &mut TagViews) -> Resolved {
    let mut out: Vec<(String, EniConfig)> = Vec::new();
    let mut failed = Vec::new();
    let push = |out: &mut Vec<(String, EniConfig)>, id: String, entry: &EniConfig| {
        if !out.iter().any(|(known, _)| *known == id) {
            let mut e = entry.clone();
            e.tag = None;
            e.id = Some(id.clone());
            out.push((id, e));
        }
    };
    for entry in &config.eni {
        match entry.selector() {
            EniSelector::Id(id) => out.push((id, entry.clone())),
            EniSelector::Tag { key, value } => {
                let tag = format!("{key}={value}");
                let request = DescribeNetworkInterfaces {
                    vpc_id: ctx.identity.vpc_id.clone(),
                    tags: vec![TagFilter {
                        key: key.clone(),
                        value: Some(value.clone()),
                    }],
                    max_items: Some(ctx.agent.max_tag_enis),
                    ..Default::default()
                };
                match ctx.ecs.describe_network_interfaces(&request).await {
                    Ok((enis, _)) => {
                        let mut ids = Vec::new();
                        for ni in enis {
                            let mine =
                                ni.attached_instance() == Some(ctx.identity.instance_id.as_str());
                            let usable = ni.kind != "Primary"
                                && ni.zone_id == ctx.identity.zone_id
                                && (ni.status == EniStatus::Available || mine);
                            if usable {
                                ids.push(ni.network_interface_id.clone());
                                push(&mut out, ni.network_interface_id, entry);
                            }
                        }
                        views.insert(tag, ids);
                    }
                    Err(e) => {
                        let kept = views.get(&tag).cloned().unwrap_or_default();
                        error!(%tag, error = %e, kept = kept.len(),
                               "cannot list ENIs by tag; keeping the last successful answer and trying again");
                        for id in kept {
                            push(&mut out, id, entry);
                        }
                        failed.push(tag);
                    }
                }
            }
        }
    }
    Resolved { enis: out, failed }
}

/// When to look the failed tags up again: doubling from 1 s, at most the
/// describe interval, jittered.
pub fn tag_retry_delay(agent: &crate::config::AgentConfig, attempt: u32) -> Duration {
    let policy = crate::backoff::RetryPolicy {
        base_delay: Duration::from_secs(1),
        max_delay: agent.describe_interval.max(Duration::from_secs(1)),
        max_attempts: u32::MAX,
        deadline: Duration::MAX,
    };
    policy.ceiling(attempt) / 2 + policy.delay(attempt) / 2
}
