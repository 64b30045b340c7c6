//! The reconciler: diff the kernel against a plan, send only what is missing
//! or wrong, and clean up an ENI's objects.
//!
//! Ownership: routes and rules are ours when they carry
//! [`crate::plan::ROUTE_PROTOCOL`]; addresses when they carry the address
//! mark (`IFA_PROTO`, or on older kernels when the agent recorded adding
//! them). Nothing else is ever changed or deleted. Objects in the ENI's table
//! that are not this ENI's stop the apply with [`ApplyError::TableInUse`]; a
//! NIC carrying addresses or routes the agent did not add stops it with
//! [`ApplyError::ForeignNic`]; [`Reconciler::guard`] refuses the primary NIC
//! before anything is attached.
//!
//! [`Reconciler::apply`] on a converged NIC sends nothing: its report counts
//! the operations, and a second apply of the same plan reports zero.

mod cleanup;
mod converger;
mod diff;
#[cfg(test)]
mod diff_tests;
mod guard;
mod observe;
mod ops;

use std::sync::Arc;

use rtnetlink::Handle;
use tokio::sync::Mutex;

use crate::ethtool::{self, EthtoolError};
use crate::netlink::{self, Batcher, NetlinkError, Request, rule_list};
use crate::plan::Plan;
use crate::sysctl::{Sysctl, SysctlError};

pub use converger::{
    ConvergeError, ConvergeEvent, Converger, ConvergerConfig, ConvergerHandle, EniStatus,
};
pub use diff::{Foreign, Observed, diff, foreign_on_nic, rules_in_the_way};
pub use guard::{Candidate, check as guard_check};
use ops::stages;
pub use ops::{Op, OpCmd};

/// Applying a plan failed; what was sent before the failure stays.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A netlink request or dump failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A sysctl could not be read or written.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// The channel ioctl failed.
    #[error(transparent)]
    Ethtool(#[from] EthtoolError),
    /// The link is gone (detached or unplugged).
    #[error("link {index} is gone (detached or unplugged)")]
    LinkGone {
        /// The ifindex.
        index: u32,
    },
    /// The link was renamed while being configured; retry with the new name.
    #[error("link {index} ({name}) was renamed while being configured; will retry")]
    Renamed {
        /// The ifindex.
        index: u32,
        /// The name that no longer works.
        name: String,
    },
    /// The NIC with the ENI's MAC carries addresses or routes eni-agent did
    /// not add: it is another NIC (the primary, or one configured by someone
    /// else) and is never touched.
    #[error(
        "refusing to configure {name} for {eni_id} (MAC {mac}): the NIC carries objects eni-agent \
         did not add: {}; it is not a fresh ENI NIC (the primary NIC or one managed by something else) \
         and nothing was changed — check the ENI's MacAddress in ECS, or remove those objects if the NIC \
         really is this ENI's",
        .foreign.join(", ")
    )]
    ForeignNic {
        /// The ENI.
        eni_id: String,
        /// Its MAC.
        mac: String,
        /// The NIC's name.
        name: String,
        /// The foreign addresses and routes.
        foreign: Vec<String>,
    },
    /// The ENI must not be taken on: its MAC or addresses belong to a NIC
    /// that is not the agent's.
    #[error(
        "refusing {eni_id} (MAC {mac}): {reason}; nothing was changed — eni-agent never touches the \
         primary NIC or what it did not add; check the ENI's MacAddress and addresses in ECS"
    )]
    Untouchable {
        /// The ENI.
        eni_id: String,
        /// The MAC the API gave.
        mac: String,
        /// Why.
        reason: String,
    },
    /// The ENI's table holds routes or rules that are not this ENI's
    /// (someone else's, or another ENI's through another NIC).
    #[error(
        "routing table {table} is in use by objects that are not this ENI's: {}; \
         remove them or set another table for this ENI (options.table)",
        .foreign.join(", ")
    )]
    TableInUse {
        /// The table.
        table: u32,
        /// The foreign routes and rules.
        foreign: Vec<String>,
    },
}

impl ApplyError {
    /// True when retrying cannot help until a person acts (the NIC is not
    /// the ENI's to configure).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::ForeignNic { .. } | Self::Untouchable { .. })
    }
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Every operation sent, as its `ip`/`sysctl`/`ethtool` command.
    pub ops: Vec<String>,
    /// Things a person should know (a clamped queue count, ...).
    pub warnings: Vec<String>,
}

/// Cleanup could not remove everything; it went on past each failure.
#[derive(Debug, thiserror::Error)]
#[error("cleanup of {eni_id} left {} object(s): {}", .errors.len(), .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct CleanupError {
    /// The ENI.
    pub eni_id: String,
    /// What was removed before and after the failures.
    pub ops: Vec<String>,
    /// Every failure.
    pub errors: Vec<NetlinkError>,
}

/// Applies plans and cleans up, over one netlink request socket.
#[derive(Debug, Clone)]
pub struct Reconciler {
    handle: Handle,
    sysctl: Sysctl,
    /// The socket for batched changes.
    batcher: Arc<Batcher>,
    /// One dump at a time: the kernel answers a second dump on the same
    /// socket with EBUSY while the first is still running.
    dumping: Arc<Mutex<()>>,
}

impl Reconciler {
    /// A reconciler on `handle` (dumps and link changes) and a socket of its
    /// own for batched changes, writing sysctls through `sysctl`.
    pub fn new(handle: Handle, sysctl: Sysctl) -> Result<Self, NetlinkError> {
        Ok(Self {
            handle,
            sysctl,
            batcher: Arc::new(Batcher::new()?),
            dumping: Arc::new(Mutex::new(())),
        })
    }

    /// Opens its own netlink sockets (on the current runtime) and uses `/proc/sys`.
    pub fn connect() -> Result<Self, NetlinkError> {
        Self::new(netlink::connect()?, Sysctl::default())
    }

    /// The netlink handle (for callers that dump state themselves).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Reads the kernel state `plan` is about, on link `index`.
    pub async fn observe(&self, plan: &Plan, index: u32) -> Result<Observed, ApplyError> {
        let _dumping = self.dumping.lock().await;
        let rules = observe::all_rules(&self.handle).await?;
        observe::observe(&self.handle, &self.sysctl, plan, index, &rules).await
    }

    /// Converges link `index` to `plan`, sending only what differs.
    pub async fn apply(&self, plan: &Plan, index: u32) -> Result<ApplyReport, ApplyError> {
        let mut reports = self.apply_many(&[(plan, index)]).await;
        reports.pop().unwrap_or(Ok(ApplyReport::default()))
    }

    /// Converges several links at once: the kernel is read once for all of
    /// them (one rule dump however many ENIs), then their changes go out
    /// concurrently. One result per target, in order.
    pub async fn apply_many(
        &self,
        targets: &[(&Plan, u32)],
    ) -> Vec<Result<ApplyReport, ApplyError>> {
        let mut observed = Vec::with_capacity(targets.len());
        {
            let _dumping = self.dumping.lock().await;
            match observe::all_rules(&self.handle).await {
                Ok(rules) => {
                    for (plan, index) in targets {
                        let obs =
                            observe::observe(&self.handle, &self.sysctl, plan, *index, &rules)
                                .await;
                        observed.push(obs);
                    }
                }
                Err(e) => {
                    return targets
                        .iter()
                        .map(|_| Err(ApplyError::Netlink(e.duplicate())))
                        .collect();
                }
            }
        }
        futures_util::future::join_all(
            targets
                .iter()
                .zip(observed)
                .map(|((plan, index), obs)| async move { self.converge(plan, *index, obs?).await }),
        )
        .await
    }

    /// Sends what `obs` lacks of `plan`.
    async fn converge(
        &self,
        plan: &Plan,
        index: u32,
        obs: Observed,
    ) -> Result<ApplyReport, ApplyError> {
        let ops = diff(plan, &obs).map_err(|refusal| match refusal {
            Foreign::Table(foreign) => ApplyError::TableInUse {
                table: plan.table,
                foreign,
            },
            Foreign::Nic(foreign) => ApplyError::ForeignNic {
                eni_id: plan.eni_id.clone(),
                mac: plan.mac.to_string(),
                name: obs.link.name.clone(),
                foreign,
            },
        })?;
        let name = obs.link.name.clone();
        let mut report = ApplyReport {
            warnings: rules_in_the_way(plan, &obs),
            ..ApplyReport::default()
        };
        if let (Some(q), None) = (plan.queues, obs.channels) {
            report.warnings.push(format!(
                "{name}: the driver reports no channels (ethtool -l unsupported); queue count {q} not applied"
            ));
        }
        let mut failure = None;
        for (stage, group) in stages(&ops) {
            let results = if stage.sequential() {
                let mut out = Vec::with_capacity(group.len());
                for op in &group {
                    out.push(self.execute(op, index, &name).await);
                }
                out
            } else {
                // Independent requests: one datagram, one acknowledgement.
                let requests: Vec<Request<'_>> =
                    group.iter().filter_map(|op| op.request(index)).collect();
                let outcomes = self
                    .batcher
                    .send(&requests)
                    .await
                    .map_err(NetlinkError::from)?;
                requests
                    .iter()
                    .zip(outcomes)
                    .map(|(req, outcome)| match (req, outcome) {
                        // The kernel compares every field, our protocol
                        // included: an identical rule of ours exists (another
                        // ENI's apply added the shared main rule a moment
                        // ago). That is the wanted state.
                        (Request::AddRule(_), Err(e)) if e.errno() == Some(nix::libc::EEXIST) => {
                            Ok(())
                        }
                        (_, outcome) => outcome.map_err(ApplyError::from),
                    })
                    .collect()
            };
            for (op, result) in group.iter().zip(results) {
                let cmd = OpCmd(op, &name).to_string();
                if let Err(e) = result {
                    failure.get_or_insert(e);
                    continue;
                }
                tracing::debug!(eni = %plan.eni_id, ifindex = index, "{cmd}");
                if let Op::SetChannels {
                    clamped_to: Some(max),
                    ..
                } = op
                {
                    report.warnings.push(format!(
                        "{name}: wanted {} queues, the driver allows at most {max}; set {max}",
                        plan.queues.unwrap_or(0)
                    ));
                }
                report.ops.push(cmd);
            }
            // A later stage depends on this one (routes need addresses and
            // their subnet route): stop at the first failed stage.
            if let Some(e) = failure {
                return Err(match e {
                    ApplyError::Sysctl(s) if s.is_not_found() => ApplyError::Renamed {
                        index,
                        name: name.clone(),
                    },
                    ApplyError::Ethtool(t) if t.is_no_device() => ApplyError::Renamed {
                        index,
                        name: name.clone(),
                    },
                    other => other,
                });
            }
        }
        // Only when something changed: a converged NIC stays quiet.
        if !report.ops.is_empty() {
            for w in &report.warnings {
                tracing::warn!(eni = %plan.eni_id, "{w}");
            }
        }
        Ok(report)
    }

    /// Table numbers that any route or rule refers to — eni-agent's own
    /// included, since another ENI's may be recorded in another state
    /// directory or a lost allocation file — besides main, local and
    /// default: pass them to [`crate::tables::TableAllocator::allocate`] so a
    /// new ENI only ever gets an empty table.
    pub async fn tables_in_use(&self) -> Result<std::collections::BTreeSet<u32>, NetlinkError> {
        let mut out = std::collections::BTreeSet::new();
        for v6 in [false, true] {
            // Every route counts, not only the unicast ones the agent manages:
            // a table holding another tool's unreachable route is in use.
            out.extend(netlink::route_tables(&self.handle, v6).await?);
            for r in rule_list(&self.handle, v6).await? {
                if r.lookup {
                    out.insert(r.table);
                }
            }
        }
        out.retain(|t| !matches!(t, 0 | 253..=255));
        Ok(out)
    }

    /// One operation on its own: the link-level ones directly, any other as
    /// a batch of one.
    async fn execute(&self, op: &Op, index: u32, name: &str) -> Result<(), ApplyError> {
        let h = &self.handle;
        match op {
            Op::Sysctl(s) => self.sysctl.set(s.key, name, s.value)?,
            Op::SetMtu(m) => netlink::link_set_mtu(h, index, *m).await?,
            // The ioctl is short; run inline so it happens in this thread's
            // network namespace (a blocking-pool thread may be in another one).
            Op::SetChannels { target, .. } => ethtool::channels_set(name, target)?,
            Op::SetUp => netlink::link_set_up(h, index).await?,
            batched => {
                let requests: Vec<Request<'_>> = batched.request(index).into_iter().collect();
                let outcomes = self
                    .batcher
                    .send(&requests)
                    .await
                    .map_err(NetlinkError::from)?;
                for outcome in outcomes {
                    outcome?;
                }
            }
        }
        Ok(())
    }
}
