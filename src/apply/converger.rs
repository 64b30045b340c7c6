//! The converger: one task that owns the event subscription, finds each
//! managed ENI's NIC by MAC, keeps it converged and ends its configuration
//! when the link goes away.
//!
//! - It subscribes to link, address, route and rule events BEFORE it dumps
//!   the links, so a NIC appearing at any moment is seen.
//! - NICs are keyed by ifindex once found: a rename changes nothing.
//! - A deleted address, route or rule of ours marks its ENI dirty; the next
//!   loop turn re-applies the plan (one event round trip).
//! - An overrun (ENOBUFS: events lost) triggers a full resync.
//! - A removed link has its rules and leftover table routes removed (the
//!   kernel keeps rules after the link is gone); the plan stays managed, so a
//!   re-plug is configured again.
//! - A periodic resync catches anything the events did not show.
//!
//! The daemon drives it through a [`ConvergerHandle`] and stops it with the
//! shutdown future given to [`Converger::run`].

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use crate::netlink::{self, Event, EventStream, NetlinkError, link_list};
use crate::plan::{AddressSpec, Plan, TABLE_MAIN};
use crate::sysctl::Sysctl;

use super::{ApplyError, CleanupError, Reconciler};

/// Tuning of the converger.
#[derive(Debug, Clone)]
pub struct ConvergerConfig {
    /// Full resync period (level-triggered safety net).
    pub resync_interval: Duration,
    /// Delay before retrying a failed apply.
    pub retry_delay: Duration,
    /// `SO_RCVBUF` of the event socket; `None` keeps the system default.
    pub event_rcvbuf: Option<usize>,
    /// Where sysctls are written.
    pub sysctl: Sysctl,
}

impl Default for ConvergerConfig {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(60),
            retry_delay: Duration::from_secs(1),
            // Large enough for a full flush of a busy rule set (thousands of
            // events) without an overrun and its full resync.
            event_rcvbuf: Some(8 << 20),
            sysctl: Sysctl::default(),
        }
    }
}

/// What the converger did, for the daemon's status and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvergeEvent {
    /// The ENI's NIC was found.
    Bound {
        /// ENI id.
        eni_id: String,
        /// Its ifindex.
        ifindex: u32,
        /// Its name when found.
        name: String,
    },
    /// An apply succeeded; `ops` is empty when nothing had to change.
    Converged {
        /// ENI id.
        eni_id: String,
        /// ifindex.
        ifindex: u32,
        /// The operations sent.
        ops: Vec<String>,
        /// Things a person should know (clamped queues, foreign rules in the way).
        warnings: Vec<String>,
    },
    /// An apply failed; it is retried.
    Failed {
        /// ENI id.
        eni_id: String,
        /// ifindex.
        ifindex: u32,
        /// The error.
        error: String,
        /// Retrying cannot help until a person acts (the NIC is not the
        /// ENI's: it carries objects the agent did not add). The converger
        /// still looks again, with backoff, in case someone fixes it.
        permanent: bool,
    },
    /// The NIC disappeared; its rules and leftover routes were removed.
    LinkGone {
        /// ENI id.
        eni_id: String,
        /// The old ifindex.
        ifindex: u32,
        /// What was removed.
        cleanup: Vec<String>,
    },
    /// Every ENI was re-checked after lost events (`overrun`) or periodically.
    Resynced {
        /// `overrun` or `periodic`.
        reason: &'static str,
    },
}

/// The converger could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    /// Opening the sockets or a dump failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// Cleanup of a released ENI was incomplete.
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
    /// Two managed ENIs would share a MAC or a routing table.
    #[error("{eni_id} cannot be managed: its {what} is already used by {other}")]
    Conflict {
        /// The ENI refused.
        eni_id: String,
        /// The managed ENI it collides with.
        other: String,
        /// `MAC 00:16:3e:..` or `routing table N`.
        what: String,
    },
    /// The ENI's NIC cannot be configured until a person acts.
    #[error("{0}")]
    Refused(String),
    /// `release` of an ENI that is not managed.
    #[error("{0} is not managed by the converger")]
    UnknownEni(String),
    /// The converger task has stopped.
    #[error("the converger has stopped")]
    Stopped,
    /// The event socket closed.
    #[error("the rtnetlink event socket closed unexpectedly")]
    EventsClosed,
}

enum Command {
    Manage(Box<Plan>, oneshot::Sender<Result<(), ConvergeError>>),
    Release(String, oneshot::Sender<Result<Vec<String>, ConvergeError>>),
    Status(oneshot::Sender<BTreeMap<String, EniStatus>>),
}

/// Where one managed ENI stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniStatus {
    /// The NIC's ifindex, once found.
    pub ifindex: Option<u32>,
    /// The last apply succeeded and nothing has been seen to drift since.
    pub converged: bool,
    /// The last apply's error, if it failed.
    pub last_error: Option<String>,
}

/// Cheap, cloneable control of a running [`Converger`].
#[derive(Debug, Clone)]
pub struct ConvergerHandle {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<ConvergeEvent>,
}

impl ConvergerHandle {
    /// Starts (or updates) converging `plan`. Returns once the converger has
    /// taken it; progress shows in [`ConvergerHandle::subscribe`].
    pub async fn manage(&self, plan: Plan) -> Result<(), ConvergeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Manage(Box::new(plan), tx))
            .await
            .map_err(|_| ConvergeError::Stopped)?;
        rx.await.map_err(|_| ConvergeError::Stopped)?
    }

    /// Stops managing the ENI and cleans up its objects; returns what was removed.
    pub async fn release(&self, eni_id: &str) -> Result<Vec<String>, ConvergeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Release(eni_id.to_owned(), tx))
            .await
            .map_err(|_| ConvergeError::Stopped)?;
        rx.await.map_err(|_| ConvergeError::Stopped)?
    }

    /// Events from now on (a slow receiver loses the oldest ones).
    pub fn subscribe(&self) -> broadcast::Receiver<ConvergeEvent> {
        self.events.subscribe()
    }

    /// The state of every managed ENI (for `eni-agent status`).
    pub async fn status(&self) -> Result<BTreeMap<String, EniStatus>, ConvergeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Status(tx))
            .await
            .map_err(|_| ConvergeError::Stopped)?;
        rx.await.map_err(|_| ConvergeError::Stopped)
    }
}

struct Managed {
    plan: Plan,
    ifindex: Option<u32>,
    dirty: bool,
    /// Consecutive failed applies (for the backoff).
    failures: u32,
    /// No apply before this instant (backoff after failures).
    not_before: Option<Instant>,
    /// Set when the link went away: its leftovers still need cleaning.
    gone: Option<u32>,
    /// The last apply's error.
    last_error: Option<String>,
}

/// The convergence loop; see the module documentation.
///
/// How the daemon drives it:
///
/// ```no_run
/// use eni_agent::apply::{ConvergeEvent, Converger, ConvergerConfig, Reconciler};
/// use eni_agent::plan::{self, EniFacts, EniOptions, SubnetFacts};
/// use eni_agent::tables::{DEFAULT_TABLE_RANGE, TableAllocator};
///
/// # async fn daemon(eni: EniFacts, subnet: SubnetFacts) -> Result<(), Box<dyn std::error::Error>> {
/// // Subscribes to rtnetlink events now, before anything is dumped.
/// let (converger, handle) = Converger::new(ConvergerConfig::default())?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let task = tokio::spawn(converger.run(async {
///     let _ = stopped.await;
/// }));
///
/// // A stable table for the ENI, avoiding tables others use.
/// let mut tables = TableAllocator::load("/var/lib/eni-agent/tables.json", DEFAULT_TABLE_RANGE)?;
/// let in_use = Reconciler::connect()?.tables_in_use().await?;
/// let table = tables.allocate(&eni.eni_id, &in_use)?.table;
///
/// let plan = plan::plan(&eni, &subnet, &EniOptions::default(), table)?;
/// print!("{plan}"); // what `eni-agent plan` shows
/// let mut events = handle.subscribe();
/// handle.manage(plan).await?; // the NIC may appear before or after this
/// while let Ok(ev) = events.recv().await {
///     if matches!(&ev, ConvergeEvent::Converged { eni_id, .. } if *eni_id == eni.eni_id) {
///         break;
///     }
/// }
///
/// // On detach: remove the ENI's rules, routes and addresses, then forget its table.
/// handle.release(&eni.eni_id).await?;
/// tables.release(&eni.eni_id)?;
/// let _ = stop.send(());
/// task.await??;
/// # Ok(())
/// # }
/// ```
pub struct Converger {
    reconciler: Reconciler,
    events: EventStream,
    cmds: mpsc::Receiver<Command>,
    out: broadcast::Sender<ConvergeEvent>,
    cfg: ConvergerConfig,
    enis: BTreeMap<String, Managed>,
    resync_needed: Option<&'static str>,
    /// NICs udev has yet to name (ifindex → first seen), and when to look again.
    udev_wait: BTreeMap<u32, Instant>,
    udev_recheck: Option<Instant>,
}

impl std::fmt::Debug for Converger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converger")
            .field("enis", &self.enis.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Converger {
    /// Subscribes to events, then opens the request socket. Call inside the
    /// tokio runtime (and network namespace) the converger will run in.
    pub fn new(cfg: ConvergerConfig) -> Result<(Self, ConvergerHandle), ConvergeError> {
        let events = netlink::subscribe(cfg.event_rcvbuf, netlink::Interest::Removals)?;
        let reconciler = Reconciler::new(netlink::connect()?, cfg.sysctl.clone())?;
        let (tx, cmds) = mpsc::channel(16);
        let (out, _) = broadcast::channel(1024);
        let handle = ConvergerHandle {
            tx,
            events: out.clone(),
        };
        let me = Self {
            reconciler,
            events,
            cmds,
            out,
            cfg,
            enis: BTreeMap::new(),
            resync_needed: None,
            udev_wait: BTreeMap::new(),
            udev_recheck: None,
        };
        Ok((me, handle))
    }

    /// Registers `plan` before [`Converger::run`] starts (for ENIs known at
    /// startup); the first link dump of `run` finds their NICs.
    pub fn manage(&mut self, plan: Plan) -> Result<(), ConvergeError> {
        self.check_conflicts(&plan)?;
        let id = plan.eni_id.clone();
        self.enis.insert(
            id,
            Managed {
                plan,
                ifindex: None,
                dirty: false,
                failures: 0,
                not_before: None,
                gone: None,
                last_error: None,
            },
        );
        Ok(())
    }

    /// Refuses a plan whose MAC or table another managed ENI already has:
    /// both would fight over one NIC or delete each other's routes.
    fn check_conflicts(&self, plan: &Plan) -> Result<(), ConvergeError> {
        let clash = self.enis.iter().find_map(|(id, m)| {
            if *id == plan.eni_id {
                None
            } else if m.plan.mac == plan.mac {
                Some((id, format!("MAC {}", plan.mac)))
            } else if m.plan.table == plan.table {
                Some((id, format!("routing table {}", plan.table)))
            } else {
                None
            }
        });
        match clash {
            None => Ok(()),
            Some((other, what)) => Err(ConvergeError::Conflict {
                eni_id: plan.eni_id.clone(),
                other: other.clone(),
                what,
            }),
        }
    }

    /// Runs until `shutdown` completes. Objects stay configured on shutdown
    /// (stopping the agent never disrupts traffic).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ConvergeError> {
        tokio::pin!(shutdown);
        self.resync("start").await?;
        // NICs found by the first dump are configured right away, not at the next event.
        let mut retry_at = self.converge_dirty().await.map(|d| Instant::now() + d);
        let mut next_resync = Instant::now() + self.cfg.resync_interval;
        let mut commands_open = true;
        loop {
            let retry = async move {
                match retry_at {
                    Some(t) => sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let udev_recheck = self.udev_recheck;
            let udev = async move {
                match udev_recheck {
                    Some(t) => sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                () = udev => {
                    self.udev_recheck = None;
                    self.resync_needed = Some("udev");
                }
                ev = self.events.next() => {
                    let ev = ev.ok_or(ConvergeError::EventsClosed)?;
                    self.on_event(ev);
                    while let Some(ev) = self.events.next_now() {
                        self.on_event(ev);
                    }
                }
                cmd = self.cmds.recv(), if commands_open => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => commands_open = false,
                },
                () = sleep_until(next_resync) => {
                    next_resync = Instant::now() + self.cfg.resync_interval;
                    self.resync_needed = Some("periodic");
                }
                () = retry => retry_at = None,
            }
            if let Some(reason) = self.resync_needed.take() {
                if let Err(e) = self.resync(reason).await {
                    tracing::warn!("resync failed: {e}; retrying");
                    self.resync_needed = Some(reason);
                    retry_at = Some(Instant::now() + self.cfg.retry_delay);
                }
            }
            if let Some(delay) = self.converge_dirty().await {
                let t = Instant::now() + delay;
                retry_at = Some(retry_at.map_or(t, |r| r.min(t)));
            }
        }
    }

    fn emit(&self, ev: ConvergeEvent) {
        let _ = self.out.send(ev);
    }

    fn bind(&mut self, eni_id: &str, link: &netlink::Link) {
        if crate::udev::pending(link.index, &link.name) {
            let first = *self
                .udev_wait
                .entry(link.index)
                .or_insert_with(Instant::now);
            if first.elapsed() < UDEV_WAIT_MAX {
                self.udev_recheck.get_or_insert(Instant::now() + UDEV_POLL);
                return;
            }
            tracing::warn!(eni = eni_id, name = %link.name, "udev has not named the NIC in time; configuring it as it is");
        }
        self.udev_wait.remove(&link.index);
        if let Some(m) = self.enis.get_mut(eni_id) {
            m.ifindex = Some(link.index);
            m.dirty = true;
            m.failures = 0;
            m.not_before = None;
            tracing::info!(eni = eni_id, ifindex = link.index, name = %link.name, "found the ENI's NIC");
            let ev = ConvergeEvent::Bound {
                eni_id: eni_id.to_owned(),
                ifindex: link.index,
                name: link.name.clone(),
            };
            self.emit(ev);
        }
    }

    /// Bookkeeping only; the async work happens in `converge_dirty`.
    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Overrun => {
                tracing::warn!("rtnetlink events were lost (ENOBUFS); resyncing everything");
                self.resync_needed = Some("overrun");
            }
            Event::NewLink(l) => {
                if let Some(m) = self.enis.values_mut().find(|m| m.ifindex == Some(l.index)) {
                    // Only what an apply changes on the link: down, or the
                    // wrong MTU. Other link events (the kernel announcing its
                    // own address work, renames) need no re-apply.
                    if !l.up || m.plan.mtu.is_some_and(|mtu| l.mtu != Some(mtu)) {
                        m.dirty = true;
                    }
                } else if let Some(id) = self
                    .enis
                    .iter()
                    .find(|(_, m)| m.ifindex.is_none() && l.is_nic_with_mac(m.plan.mac))
                    .map(|(id, _)| id.clone())
                {
                    self.bind(&id, &l);
                }
            }
            Event::DelLink(l) => {
                for m in self
                    .enis
                    .values_mut()
                    .filter(|m| m.ifindex == Some(l.index))
                {
                    m.ifindex = None;
                    m.gone = Some(l.index);
                }
            }
            Event::DelAddr(a) => self.mark(|m| m.ifindex == Some(a.index)),
            Event::DelRoute(r) if r.is_ours() => self
                .mark(|m| m.plan.table == r.table || (r.table == TABLE_MAIN && r.oif == m.ifindex)),
            Event::DelRule(r) if r.is_ours() => {
                self.mark(|m| m.plan.table == r.table || r.table == TABLE_MAIN)
            }
            _ => {}
        }
    }

    fn mark(&mut self, pred: impl Fn(&Managed) -> bool) {
        for m in self
            .enis
            .values_mut()
            .filter(|m| m.ifindex.is_some() && pred(m))
        {
            m.dirty = true;
        }
    }

    /// Re-dumps the links, binds what appeared, notices what vanished and
    /// marks every bound ENI dirty.
    async fn resync(&mut self, reason: &'static str) -> Result<(), ConvergeError> {
        let links = link_list(self.reconciler.handle()).await?;
        let mut to_bind = Vec::new();
        for (id, m) in &mut self.enis {
            if let Some(ix) = m.ifindex {
                if links.iter().any(|l| l.index == ix) {
                    m.dirty = true;
                    continue;
                }
                m.ifindex = None;
                m.gone = Some(ix);
            }
            if let Some(l) = links.iter().find(|l| l.is_nic_with_mac(m.plan.mac)) {
                to_bind.push((id.clone(), l.clone()));
            }
        }
        for (id, l) in to_bind {
            self.bind(&id, &l);
        }
        if reason != "start" {
            self.emit(ConvergeEvent::Resynced { reason });
        }
        Ok(())
    }

    /// Cleans up after vanished links, then applies every dirty ENI, all of
    /// them at once (one read of the kernel, their changes batched). Returns
    /// a retry delay if something failed.
    async fn converge_dirty(&mut self) -> Option<Duration> {
        let mut retry: Option<Duration> = None;
        let vanished: Vec<(String, u32)> = self
            .enis
            .iter_mut()
            .filter_map(|(id, m)| m.gone.take().map(|old| (id.clone(), old)))
            .collect();
        for (id, old) in vanished {
            let Some(plan) = self.enis.get(&id).map(|m| m.plan.clone()) else {
                continue;
            };
            let cleanup = match self.reconciler.cleanup(&plan, None).await {
                Ok(ops) => ops,
                Err(e) => {
                    tracing::warn!(eni = %id, "cleanup after the link vanished: {e}");
                    e.ops
                }
            };
            tracing::info!(eni = %id, ifindex = old, "the ENI's NIC is gone; configuration ended");
            self.emit(ConvergeEvent::LinkGone {
                eni_id: id,
                ifindex: old,
                cleanup,
            });
        }

        let now = Instant::now();
        let mut ready = Vec::new();
        for (id, m) in &mut self.enis {
            let (Some(ix), true) = (m.ifindex, m.dirty) else {
                continue;
            };
            let wait = m
                .not_before
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
            if !wait.is_zero() {
                retry = Some(retry.map_or(wait, |r| r.min(wait)));
                continue;
            }
            m.dirty = false;
            ready.push((id.clone(), m.plan.clone(), ix));
        }
        let targets: Vec<(&Plan, u32)> = ready.iter().map(|(_, plan, ix)| (plan, *ix)).collect();
        let results = self.reconciler.apply_many(&targets).await;
        for ((id, _, ix), result) in ready.into_iter().zip(results) {
            if let Some(delay) = self.applied(id, ix, result) {
                retry = Some(retry.map_or(delay, |r| r.min(delay)));
            }
        }
        retry
    }

    /// Records the outcome of one apply; returns when to retry a failure.
    fn applied(
        &mut self,
        id: String,
        ix: u32,
        result: Result<super::ApplyReport, ApplyError>,
    ) -> Option<Duration> {
        match result {
            Ok(report) => {
                if let Some(m) = self.enis.get_mut(&id) {
                    m.failures = 0;
                    m.not_before = None;
                    m.last_error = None;
                }
                if !report.ops.is_empty() {
                    tracing::info!(eni = %id, ifindex = ix, ops = report.ops.len(), "converged");
                }
                self.emit(ConvergeEvent::Converged {
                    eni_id: id,
                    ifindex: ix,
                    ops: report.ops,
                    warnings: report.warnings,
                });
                None
            }
            Err(ApplyError::LinkGone { .. }) => {
                if let Some(m) = self.enis.get_mut(&id) {
                    m.ifindex = None;
                    m.gone = Some(ix);
                }
                Some(Duration::ZERO)
            }
            Err(e) => {
                let failures = self.enis.get(&id).map_or(0, |m| m.failures);
                let renamed = matches!(e, ApplyError::Renamed { .. });
                // After a rename the new name arrives with the next link event.
                let delay = if renamed {
                    Duration::from_millis(50)
                } else {
                    backoff(self.cfg.retry_delay, failures)
                };
                tracing::warn!(eni = %id, ifindex = ix, "apply failed: {e}; retrying in {delay:?}");
                if let Some(m) = self.enis.get_mut(&id) {
                    m.dirty = true;
                    if !renamed {
                        m.failures = m.failures.saturating_add(1);
                    }
                    m.not_before = Some(Instant::now() + delay);
                    m.last_error = Some(e.to_string());
                }
                self.emit(ConvergeEvent::Failed {
                    eni_id: id,
                    ifindex: ix,
                    error: e.to_string(),
                    permanent: e.is_permanent(),
                });
                Some(delay)
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Manage(plan, ack) => {
                let plan = *plan;
                if let Err(e) = self.check_conflicts(&plan) {
                    let _ = ack.send(Err(e));
                    return;
                }
                let id = plan.eni_id.clone();
                match self.enis.get_mut(&id) {
                    Some(m) => {
                        if let Some(ix) = m.ifindex {
                            let gone: Vec<AddressSpec> = m
                                .plan
                                .addresses
                                .iter()
                                .filter(|a| !plan.addresses.iter().any(|b| b.addr == a.addr))
                                .copied()
                                .collect();
                            if let Err(e) = self.reconciler.remove_addresses(ix, &gone).await {
                                tracing::warn!(eni = %id, "removing addresses the new plan dropped: {e}");
                            }
                        }
                        if m.plan.table != plan.table {
                            let old = m.plan.clone();
                            if let Err(e) = self.reconciler.cleanup(&old, None).await {
                                tracing::warn!(eni = %id, "cleaning the old table {}: {e}", old.table);
                            }
                        }
                        if let Some(m) = self.enis.get_mut(&id) {
                            m.plan = plan;
                            m.dirty = true;
                            m.failures = 0;
                            m.not_before = None;
                        }
                    }
                    None => {
                        let mac = plan.mac;
                        self.enis.insert(
                            id.clone(),
                            Managed {
                                plan,
                                ifindex: None,
                                dirty: false,
                                failures: 0,
                                not_before: None,
                                gone: None,
                                last_error: None,
                            },
                        );
                        match link_list(self.reconciler.handle()).await {
                            Ok(links) => {
                                if let Some(l) = links.iter().find(|l| l.is_nic_with_mac(mac)) {
                                    self.bind(&id, l);
                                }
                            }
                            Err(e) => {
                                tracing::warn!("link dump failed: {e}; resyncing");
                                self.resync_needed = Some("periodic");
                            }
                        }
                    }
                }
                let _ = ack.send(Ok(()));
            }
            Command::Release(id, reply) => {
                let result = match self.enis.remove(&id) {
                    None => Err(ConvergeError::UnknownEni(id)),
                    Some(m) => self
                        .reconciler
                        .cleanup(&m.plan, m.ifindex)
                        .await
                        .map_err(ConvergeError::from),
                };
                let _ = reply.send(result);
            }
            Command::Status(reply) => {
                let status = self
                    .enis
                    .iter()
                    .map(|(id, m)| {
                        let st = EniStatus {
                            ifindex: m.ifindex,
                            converged: m.ifindex.is_some() && !m.dirty && m.last_error.is_none(),
                            last_error: m.last_error.clone(),
                        };
                        (id.clone(), st)
                    })
                    .collect();
                let _ = reply.send(status);
            }
        }
    }
}

/// `base`, doubled per consecutive failure, at most [`MAX_BACKOFF`].
fn backoff(base: Duration, failures: u32) -> Duration {
    base.saturating_mul(1u32 << failures.min(10))
        .min(MAX_BACKOFF)
}

/// The longest wait between retries of a failing apply.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a NIC may wait for udev to name it, and how often to look.
const UDEV_WAIT_MAX: Duration = Duration::from_secs(5);
const UDEV_POLL: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(1);
        assert_eq!(backoff(b, 0), b);
        assert_eq!(backoff(b, 3), Duration::from_secs(8));
        assert_eq!(backoff(b, 40), MAX_BACKOFF);
    }
}
