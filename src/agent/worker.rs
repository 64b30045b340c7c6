//! One ENI's flow, start to configured: read it, check it, hand it off from
//! the OS network managers, record the intent, attach, and — concurrently —
//! confirm InUse with Describe polls while the converger configures the NIC
//! the moment it appears and the metadata facts are there.

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use super::cloud_flow::{self, AttachError, AttachTarget, Confirmation, PollPolicy, Readiness};
use super::context::Context;
use super::facts::{self, FactsError};
use super::planning::{self, PlanningError, Subnets, TablePolicy};
use super::preflight;
use super::timeline::{Phase, Timeline};
use crate::apply::{ConvergeError, ConvergeEvent};
use crate::cloud::ecs::NetworkInterface;
use crate::cloud::{CloudError, ErrorClass};
use crate::config::EniConfig;
use crate::mac::MacAddr;
use crate::plan::{EniFacts, Plan};
use crate::state::{Intent, Progress, StateError};

/// Why an ENI could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Facts(#[from] FactsError),
    #[error(transparent)]
    Planning(#[from] PlanningError),
    #[error("{eni_id}: routing table: {source}")]
    Tables {
        eni_id: String,
        #[source]
        source: crate::tables::TableError,
    },
    #[error("{eni_id}: listing the kernel's routing tables failed: {source}")]
    Netlink {
        eni_id: String,
        #[source]
        source: crate::netlink::NetlinkError,
    },
    #[error("{eni_id}: {source}")]
    Converger {
        eni_id: String,
        #[source]
        source: ConvergeError,
    },
    /// The guard refused the ENI (primary NIC, foreign NIC or addresses),
    /// or could not read the kernel to decide.
    #[error("{0}")]
    Guard(crate::apply::ApplyError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Handoff(#[from] crate::handoff::HandoffError),
    #[error("{eni_id}: not configured within {timeout:?} (last state: {last})")]
    Timeout {
        eni_id: String,
        timeout: Duration,
        last: String,
    },
}

impl WorkerError {
    /// True when trying again later may help (throttling, timeouts, an
    /// unreachable service); false when a person must change something.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Attach(AttachError::Cloud(e)) => e.class() != ErrorClass::Permanent,
            Self::Attach(e) => e.is_timeout(),
            Self::Planning(e) => e.is_transient(),
            Self::Timeout { .. } | Self::Netlink { .. } => true,
            Self::Guard(e) => !e.is_permanent(),
            _ => false,
        }
    }

    /// True for a timeout (exit code 2 of the one-shot).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
            || matches!(self, Self::Attach(e) if e.is_timeout())
            || matches!(self, Self::Planning(e) if e.is_timeout())
    }
}

impl From<CloudError> for WorkerError {
    fn from(e: CloudError) -> Self {
        Self::Attach(AttachError::Cloud(e))
    }
}

/// A configured ENI.
#[derive(Debug, Clone)]
pub struct Configured {
    pub facts: EniFacts,
    pub plan: Plan,
    pub ifindex: u32,
    pub ifname: String,
    pub timeline: Timeline,
}

/// Brings `eni_id` (configured by `entry`) to configured.
pub async fn bring_up(
    ctx: &Context,
    entry: &EniConfig,
    eni_id: &str,
) -> Result<Configured, WorkerError> {
    // Subscribe before anything can happen, so no converger event is missed.
    let mut events = ctx.converger.subscribe();
    let timeline = StdMutex::new(Timeline::start());
    // Flips when the converger binds the ENI's NIC: that confirms the attach.
    let (link_tx, link_rx) = watch::channel(false);
    let mark = |phase, rid: Option<&str>| {
        if phase == Phase::LinkSeen {
            link_tx.send_replace(true);
        }
        if let Ok(mut t) = timeline.lock() {
            t.mark(phase, rid);
        }
    };
    let instance = ctx.identity.instance_id.as_str();
    let target = AttachTarget {
        eni_id: eni_id.to_owned(),
        instance_id: ctx.identity.instance_id.clone(),
        zone_id: ctx.identity.zone_id.clone(),
        vpc_id: ctx.identity.vpc_id.clone(),
        network_card_index: entry.network_card_index,
        takeover: entry.takeover,
    };
    let poll = PollPolicy {
        first: Duration::from_millis(100),
        cap: Duration::from_secs(2),
        timeout: ctx.agent.attach_timeout,
    };
    let run = async {
        let readiness = cloud_flow::prepare(&ctx.ecs, &target, poll).await?;
        mark(Phase::Described, None);
        let (ni, needs_attach) = match readiness {
            Readiness::AttachedHere(ni) => {
                mark(Phase::InUseConfirmed, None);
                (ni, false)
            }
            Readiness::NeedsAttach(ni) => (ni, true),
        };
        // Parse the facts before attaching: a malformed answer must not
        // leave an ENI attached and half configured.
        let eni_facts = facts::eni_facts(&ni, eni_id)?;
        // Before anything is written or attached: never the primary NIC,
        // never a NIC or an address that is not the agent's.
        preflight::guard(ctx, &eni_facts).await?;
        if let Some(dirs) = &ctx.handoff {
            dirs.install(eni_id, MacAddr(eni_facts.mac.0))?;
        }
        let mut early_plan: Option<Plan> = None;
        let mut attach_request = None;
        if needs_attach {
            // When another NIC of this instance sits in the same vSwitch, its
            // metadata already has the gateway and CIDR: plan now and let the
            // converger configure the NIC the moment it appears.
            if let Some(subnet) = subnets(ctx).from_sibling(&ni.vswitch_id, &eni_facts).await {
                let (plan, _) = planning::plan(
                    &TablePolicy::Allocate(&ctx.tables),
                    entry,
                    &eni_facts,
                    &subnet,
                )
                .await?;
                manage(ctx, &plan).await?;
                early_plan = Some(plan);
            }
            ctx.store.update(eni_id, instance, |r| {
                r.intent = Intent::Attach;
                r.mac = Some(eni_facts.mac.to_string());
                r.progress = Progress::AttachRequested;
            })?;
            let rid = cloud_flow::attach(&ctx.ecs, &target).await?;
            mark(Phase::AttachAccepted, Some(&rid));
            attach_request = Some(rid);
        }
        let confirm = async {
            if let Some(rid) = &attach_request {
                let mut link_rx = link_rx.clone();
                let link_seen = async move {
                    // Only a NIC seen confirms; a closed channel (not
                    // expected: the sender lives in this function) leaves
                    // it to the polls.
                    if link_rx.wait_for(|seen| *seen).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                };
                let behind_link = PollPolicy::behind_link(poll.timeout);
                match cloud_flow::confirm_in_use(&ctx.ecs, &target, rid, behind_link, link_seen)
                    .await?
                {
                    Confirmation::LinkSeen => mark(Phase::InUseConfirmed, None),
                    Confirmation::Described(describe_rid) => {
                        mark(Phase::InUseConfirmed, Some(&describe_rid))
                    }
                }
            }
            Ok::<_, WorkerError>(())
        };
        let configure = async {
            let plan = match early_plan {
                Some(plan) => plan,
                None => {
                    let plan = make_plan(ctx, entry, &eni_facts).await?;
                    manage(ctx, &plan).await?;
                    plan
                }
            };
            let (ifindex, ifname) = wait_converged(&mut events, eni_id, &mark).await?;
            Ok::<_, WorkerError>((plan, ifindex, ifname))
        };
        let ((), (plan, ifindex, ifname)) = tokio::try_join!(confirm, configure)?;
        Ok::<_, WorkerError>((eni_facts, plan, ifindex, ifname))
    };
    let outcome = tokio::time::timeout(ctx.agent.attach_timeout, run).await;
    let tl = timeline
        .lock()
        .map(|t| t.clone())
        .unwrap_or_else(|_| Timeline::start());
    let result = match outcome {
        Ok(Ok((facts, plan, ifindex, ifname))) => {
            info!(eni = %eni_id, ifname = %ifname, ifindex, table = plan.table, timeline = %tl, "ENI configured");
            Ok(Configured {
                facts,
                plan,
                ifindex,
                ifname,
                timeline: tl.clone(),
            })
        }
        // The waits inside share the command's deadline; one that ends
        // with it is the same timeout, told once, with the phases.
        Ok(Err(e)) if e.is_timeout() => Err(WorkerError::Timeout {
            eni_id: eni_id.to_owned(),
            timeout: ctx.agent.attach_timeout,
            last: format!("{}; {e}", last_phase(&tl)),
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(WorkerError::Timeout {
            eni_id: eni_id.to_owned(),
            timeout: ctx.agent.attach_timeout,
            last: last_phase(&tl),
        }),
    };
    super::observe::brought_up(eni_id, &tl, &result);
    let saved = ctx.store.update(eni_id, instance, |r| {
        r.intent = Intent::Attach;
        r.timeline = tl.marks().to_vec();
        match &result {
            Ok(c) => {
                r.progress = Progress::Configured;
                r.ifindex = Some(c.ifindex);
                r.ifname = Some(c.ifname.clone());
                r.table = Some(c.plan.table);
                r.mac = Some(c.facts.mac.to_string());
                r.addresses = preflight::recorded_addresses(&c.plan);
                r.last_error = None;
            }
            Err(e) => {
                r.last_error = Some(e.to_string());
                if !e.is_transient() {
                    r.progress = Progress::Failed;
                }
            }
        }
    });
    if let Err(e) = saved {
        warn!(eni = %eni_id, error = %e, "cannot record the ENI's state");
    }
    result
}

/// The phases reached, for a timeout message.
fn last_phase(tl: &Timeline) -> String {
    if tl.marks().is_empty() {
        "not described yet".into()
    } else {
        tl.to_string()
    }
}

/// Hands `plan` to the converger.
async fn manage(ctx: &Context, plan: &Plan) -> Result<(), WorkerError> {
    super::observe::planned(plan);
    ctx.converger
        .manage(plan.clone())
        .await
        .map_err(|source| WorkerError::Converger {
            eni_id: plan.eni_id.clone(),
            source,
        })
}

/// The vSwitch facts of this process: the metadata client and its cache.
fn subnets(ctx: &Context) -> Subnets<'_> {
    Subnets {
        metadata: &ctx.metadata,
        cache: &ctx.subnets,
    }
}

/// Waits for the metadata service's vSwitch facts of the ENI's MAC (they lag
/// the attach), allocates the table and plans.
pub async fn make_plan(
    ctx: &Context,
    entry: &EniConfig,
    eni: &EniFacts,
) -> Result<Plan, WorkerError> {
    let subnet = subnets(ctx).wait_own(eni, ctx.agent.attach_timeout).await?;
    let (plan, _) =
        planning::plan(&TablePolicy::Allocate(&ctx.tables), entry, eni, &subnet).await?;
    super::observe::planned(&plan);
    Ok(plan)
}

/// Waits for the converger to report the ENI configured; returns its ifindex
/// and name.
async fn wait_converged(
    events: &mut broadcast::Receiver<ConvergeEvent>,
    eni_id: &str,
    mark: &impl Fn(Phase, Option<&str>),
) -> Result<(u32, String), WorkerError> {
    let mut name = String::new();
    loop {
        match events.recv().await {
            Ok(ConvergeEvent::Bound {
                eni_id: id,
                name: n,
                ..
            }) if id == eni_id => {
                mark(Phase::LinkSeen, None);
                name = n;
            }
            Ok(ConvergeEvent::Converged {
                eni_id: id,
                ifindex,
                warnings,
                ..
            }) if id == eni_id => {
                mark(Phase::LinkSeen, None);
                mark(Phase::Configured, None);
                for w in warnings {
                    warn!(eni = %eni_id, "{w}");
                }
                return Ok((ifindex, name));
            }
            Ok(ConvergeEvent::Failed {
                eni_id: id,
                error,
                permanent: true,
                ..
            }) if id == eni_id => {
                return Err(WorkerError::Converger {
                    eni_id: eni_id.to_owned(),
                    source: ConvergeError::Refused(error),
                });
            }
            Ok(ConvergeEvent::Failed {
                eni_id: id, error, ..
            }) if id == eni_id => {
                warn!(eni = %eni_id, %error, "configuring the NIC failed; the converger retries");
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(missed = n, "converger events were dropped")
            }
            Err(broadcast::error::RecvError::Closed) => {
                return Err(WorkerError::Converger {
                    eni_id: eni_id.to_owned(),
                    source: ConvergeError::Stopped,
                });
            }
        }
    }
}

/// What a periodic Describe found.
#[derive(Debug)]
pub enum Refresh {
    /// Attached here, facts unchanged.
    Unchanged,
    /// Attached here with new addresses, prefixes or queues.
    Changed(EniFacts),
    /// No longer InUse on this instance (detached or moved by someone).
    NotHere(Box<NetworkInterface>),
}

/// Describes the ENI again and compares it with `current`.
pub async fn refresh(ctx: &Context, current: &EniFacts) -> Result<Refresh, WorkerError> {
    let (ni, _) = cloud_flow::describe(&ctx.ecs, &current.eni_id).await?;
    let here = ni.status == crate::cloud::ecs::EniStatus::InUse
        && ni.attached_instance() == Some(ctx.identity.instance_id.as_str());
    if !here {
        return Ok(Refresh::NotHere(Box::new(ni)));
    }
    let fresh = facts::eni_facts(&ni, &current.eni_id)?;
    Ok(if fresh == *current {
        Refresh::Unchanged
    } else {
        Refresh::Changed(fresh)
    })
}
