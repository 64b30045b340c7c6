//! `eni-agent run`: converge every configured ENI, then keep them so.
//!
//! One task per ENI brings it up and then re-describes it periodically
//! (jittered) to pick up IPs assigned or unassigned after the attach; the
//! converger repairs drift from netlink events. SIGHUP reloads the ENI list;
//! SIGTERM stops without touching the network. READY=1 goes to systemd once
//! every ENI is configured or has failed permanently.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::context::{Context, SetupError};
use super::tags::{TagViews, resolve, tag_retry_delay};
use super::teardown::teardown;
use super::worker::{self, Configured, Refresh};
use crate::apply::{Converger, ConvergerConfig};
use crate::cloud::ecs::EniStatus;
use crate::config::{Config, EniConfig, EniSelector};
use crate::notify;

/// What a worker tells the main loop.
#[derive(Debug)]
enum Report {
    Configured(String),
    Failed {
        eni_id: String,
        error: String,
        permanent: bool,
    },
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot start the netlink converger: {0}")]
    Converger(#[from] crate::apply::ConvergeError),
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
}

struct Worker {
    entry: EniConfig,
    task: JoinHandle<()>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), DaemonError> {
    let store =
        crate::state::StateStore::open(&config.agent.state_dir).map_err(SetupError::from)?;
    let _lock = store.lock().map_err(SetupError::from)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;

    let (converger, handle) = Converger::new(ConvergerConfig::default())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let converger_task = tokio::spawn(converger.run(async move {
        let _ = stop_rx.await;
    }));
    let _metrics = crate::metrics::serve(config.metrics.listen_addr())
        .await
        .map_err(|e| SetupError::Config(e.to_string()))?;
    let ctx = Arc::new(Context::new(&config, handle).await?);
    info!(instance = %ctx.identity.instance_id, zone = %ctx.identity.zone_id, "eni-agent started");
    let drift = tokio::spawn(super::drift::monitor(
        ctx.clone(),
        ctx.converger.subscribe(),
    ));

    let (report_tx, mut report_rx) = mpsc::channel::<Report>(64);
    let mut workers: BTreeMap<String, Worker> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, Result<(), (String, bool)>> = BTreeMap::new();
    let mut config = config;
    let mut views = TagViews::new();
    // Failed tag lookups are retried with backoff: (attempt, when).
    let schedule = |failed: bool, attempt: u32| {
        failed.then(|| {
            let delay = tag_retry_delay(&ctx.agent, attempt);
            warn!(attempt, ?delay, "a tag lookup failed; trying again");
            (attempt, tokio::time::Instant::now() + delay)
        })
    };
    let failed = start_workers(&ctx, &config, &mut workers, &mut views, &report_tx).await;
    let mut tag_retry: Option<(u32, tokio::time::Instant)> = schedule(failed, 1);
    resume_detaches(&ctx, &workers);
    let mut ready = false;
    if workers.is_empty() {
        notify::ready("no ENI configured");
        ready = true;
    }
    // The watchdog is petted from its own task, so a slow reload (a tag
    // lookup retried through throttling) cannot starve it; it still stops
    // when the runtime or the process is stuck.
    let watchdog = notify::watchdog_period().map(|period| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                notify::watchdog();
            }
        })
    });
    loop {
        tokio::select! {
            Some(report) = report_rx.recv() => {
                match report {
                    Report::Configured(id) => { outcomes.insert(id, Ok(())); }
                    Report::Failed { eni_id, error, permanent } => { outcomes.insert(eni_id, Err((error, permanent))); }
                }
                let summary = summarize(&workers, &outcomes);
                let settled = workers.keys().all(|id| matches!(outcomes.get(id), Some(Ok(())) | Some(Err((_, true)))));
                if settled && !ready {
                    notify::ready(&summary);
                    ready = true;
                } else {
                    notify::status(&summary);
                }
            }
            () = async { if let Some((_, at)) = tag_retry { tokio::time::sleep_until(at).await } else { std::future::pending().await } } => {
                let attempt = tag_retry.map_or(1, |(n, _)| n);
                let failed = apply_reload(&ctx, &config, &mut workers, &mut outcomes, &mut views, &report_tx).await;
                tag_retry = schedule(failed, attempt.saturating_add(1));
                if !failed {
                    info!("the tag lookups succeeded again");
                }
                notify::status(&summarize(&workers, &outcomes));
            }
            _ = sighup.recv() => {
                info!("SIGHUP: reloading the configuration");
                match reload(config_path.as_deref()) {
                    Ok(new) => {
                        config = new;
                        let failed = apply_reload(&ctx, &config, &mut workers, &mut outcomes, &mut views, &report_tx).await;
                        tag_retry = schedule(failed, 1);
                        notify::status(&summarize(&workers, &outcomes));
                    }
                    Err(e) => error!(error = %e, "the new configuration is invalid; keeping the current one"),
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    notify::stopping();
    info!("stopping; the network configuration stays as it is");
    for (_, w) in std::mem::take(&mut workers) {
        w.task.abort();
    }
    drift.abort();
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = stop_tx.send(());
    let _ = converger_task.await;
    Ok(())
}

/// Finishes detaches a previous run recorded but did not complete (killed
/// during a SIGHUP removal), for ENIs no longer in the configuration.
fn resume_detaches(ctx: &Arc<Context>, workers: &BTreeMap<String, Worker>) {
    let records = match ctx.store.load_all() {
        Ok((records, bad)) => {
            for e in bad {
                error!(error = %e, "a state record cannot be read; its ENI is skipped, the others are resumed");
            }
            records
        }
        Err(e) => {
            error!(error = %e, "cannot read the state records; interrupted detaches are not resumed");
            return;
        }
    };
    for r in records {
        // A failed detach (refused by the API) is over: never resumed.
        if r.intent != crate::state::Intent::Detach
            || r.progress == crate::state::Progress::Failed
            || workers.contains_key(&r.eni_id)
        {
            continue;
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            info!(eni = %r.eni_id, "resuming an interrupted detach");
            if let Err(e) = teardown(&ctx, &r.eni_id).await {
                error!(eni = %r.eni_id, error = %e, "the interrupted detach failed");
            }
        });
    }
}

fn reload(path: Option<&std::path::Path>) -> Result<Config, String> {
    let path = path.unwrap_or(std::path::Path::new(crate::cli::DEFAULT_CONFIG));
    Config::load(path).map_err(|e| e.to_string())
}

/// Starts a worker per selected ENI; true when a tag lookup failed (to be
/// retried).
async fn start_workers(
    ctx: &Arc<Context>,
    config: &Config,
    workers: &mut BTreeMap<String, Worker>,
    views: &mut TagViews,
    tx: &mpsc::Sender<Report>,
) -> bool {
    let resolved = resolve(ctx, config, views).await;
    for (eni_id, entry) in resolved.enis {
        ensure_worker(ctx, workers, eni_id, entry, tx);
    }
    !resolved.failed.is_empty()
}

/// Starts the worker of `eni_id` unless it runs already.
fn ensure_worker(
    ctx: &Arc<Context>,
    workers: &mut BTreeMap<String, Worker>,
    eni_id: String,
    entry: EniConfig,
    tx: &mpsc::Sender<Report>,
) {
    if let std::collections::btree_map::Entry::Vacant(slot) = workers.entry(eni_id.clone()) {
        let task = tokio::spawn(supervise(ctx.clone(), entry.clone(), eni_id, tx.clone()));
        slot.insert(Worker { entry, task });
    }
}

/// Brings the workers in line with `config`; true when a tag lookup failed
/// (its ENIs were kept as last seen; to be retried). Only a successful
/// answer removes an ENI.
async fn apply_reload(
    ctx: &Arc<Context>,
    config: &Config,
    workers: &mut BTreeMap<String, Worker>,
    outcomes: &mut BTreeMap<String, Result<(), (String, bool)>>,
    views: &mut TagViews,
    tx: &mpsc::Sender<Report>,
) -> bool {
    // Tags no longer configured are forgotten.
    views.retain(|tag, _| {
        config.eni.iter().any(|e| {
            matches!(e.selector(), EniSelector::Tag { key, value } if format!("{key}={value}") == *tag)
        })
    });
    let resolved = resolve(ctx, config, views).await;
    let failed = !resolved.failed.is_empty();
    let wanted = resolved.enis;
    let removed: Vec<String> = workers
        .keys()
        .filter(|id| !wanted.iter().any(|(w, _)| w == *id))
        .cloned()
        .collect();
    for id in removed {
        if let Some(w) = workers.remove(&id) {
            w.task.abort();
        }
        outcomes.remove(&id);
        super::observe::forget(&id);
        if config.agent.detach_on_remove {
            // In its own task: a detach waits for Available, and the main
            // loop must stay responsive (signals, readiness) meanwhile.
            let ctx = ctx.clone();
            tokio::spawn(async move {
                match teardown(&ctx, &id).await {
                    Ok(t) => {
                        info!(eni = %id, removed = t.removed.len(), "removed from the configuration: unconfigured and detached")
                    }
                    Err(e) => {
                        error!(eni = %id, error = %e, "removed from the configuration, but the detach failed")
                    }
                }
            });
        } else {
            info!(eni = %id, "removed from the configuration; left attached and configured (detach_on_remove = false)");
        }
    }
    // Entries whose settings changed are restarted with the new ones.
    for (id, entry) in &wanted {
        if workers.get(id).is_some_and(|w| w.entry != *entry) {
            if let Some(w) = workers.remove(id) {
                w.task.abort();
            }
        }
    }
    for (eni_id, entry) in wanted {
        ensure_worker(ctx, workers, eni_id, entry, tx);
    }
    failed
}

/// Brings one ENI up, then keeps it: re-describes it periodically and
/// re-plans when its addresses change; starts over when it is no longer
/// attached here; retries failures with backoff.
async fn supervise(ctx: Arc<Context>, entry: EniConfig, eni_id: String, tx: mpsc::Sender<Report>) {
    let mut failures: u32 = 0;
    loop {
        super::observe::attaching(&eni_id);
        match worker::bring_up(&ctx, &entry, &eni_id).await {
            Ok(configured) => {
                failures = 0;
                let _ = tx.send(Report::Configured(eni_id.clone())).await;
                keep(&ctx, &entry, configured).await;
            }
            Err(e) => {
                failures += 1;
                let permanent = !e.is_transient();
                error!(eni = %eni_id, error = %e, permanent, "ENI not configured");
                let _ = tx
                    .send(Report::Failed {
                        eni_id: eni_id.clone(),
                        error: e.to_string(),
                        permanent,
                    })
                    .await;
                let delay = if permanent {
                    ctx.agent.describe_interval
                } else {
                    Duration::from_secs(2u64.saturating_pow(failures.min(6)))
                        .min(ctx.agent.describe_interval)
                };
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Keeps a configured ENI up to date; returns when it must be brought up again.
async fn keep(ctx: &Context, entry: &EniConfig, mut current: Configured) {
    let mut lost_to: Option<String> = None;
    loop {
        tokio::time::sleep(jittered(ctx.agent.describe_interval)).await;
        match worker::refresh(ctx, &current.facts).await {
            Ok(Refresh::Unchanged) => {}
            Ok(Refresh::NotHere(ni)) => match &ni.status {
                EniStatus::Available => {
                    warn!(eni = %current.facts.eni_id, "the ENI was detached behind the agent's back; attaching it again");
                    return;
                }
                // Another instance holds it now (an HA peer took it over, or
                // an operator moved it): taking it back would make two peers
                // with `takeover = true` fight over it forever. Keep watching;
                // it is attached again here only once it is released.
                EniStatus::InUse if lost_to.as_deref() != ni.attached_instance() => {
                    lost_to = ni.attached_instance().map(str::to_owned);
                    warn!(eni = %current.facts.eni_id, instance = lost_to.as_deref().unwrap_or("unknown"),
                          "the ENI now belongs to another instance; not taking it back (it is attached here again once released)");
                }
                _ => {}
            },
            // An ENI's MAC never changes: an answer saying otherwise is
            // wrong (or hostile) and must not move the configuration to
            // another NIC.
            Ok(Refresh::Changed(fresh)) if fresh.mac != current.facts.mac => {
                error!(eni = %fresh.eni_id, configured = %current.facts.mac, reported = %fresh.mac,
                       "ECS now reports another MAC for the ENI; ignoring the answer and keeping the current configuration");
            }
            Ok(Refresh::Changed(fresh)) => {
                info!(eni = %fresh.eni_id, "the ENI's addresses changed; re-planning");
                match worker::make_plan(ctx, entry, &fresh).await {
                    Ok(plan) => match ctx.converger.manage(plan.clone()).await {
                        Ok(()) => {
                            let recorded =
                                ctx.store
                                    .update(&fresh.eni_id, &ctx.identity.instance_id, |r| {
                                        r.addresses = super::preflight::recorded_addresses(&plan)
                                    });
                            if let Err(e) = recorded {
                                warn!(eni = %fresh.eni_id, error = %e, "cannot record the ENI's new addresses");
                            }
                            current.facts = fresh;
                            current.plan = plan;
                        }
                        Err(e) => {
                            error!(eni = %fresh.eni_id, error = %e, "cannot hand the new plan to the converger")
                        }
                    },
                    Err(e) => {
                        error!(eni = %fresh.eni_id, error = %e, "the ENI's new facts cannot be applied; keeping the current configuration")
                    }
                }
            }
            Err(e) => warn!(eni = %current.facts.eni_id, error = %e, "periodic Describe failed"),
        }
    }
}

/// `base` ± 10 %.
fn jittered(base: Duration) -> Duration {
    let tenth = base / 10;
    let span = u64::try_from(tenth.as_millis() * 2)
        .unwrap_or(u64::MAX)
        .max(1);
    base - tenth + Duration::from_millis(crate::backoff::random_u64() % span)
}

fn summarize(
    workers: &BTreeMap<String, Worker>,
    outcomes: &BTreeMap<String, Result<(), (String, bool)>>,
) -> String {
    let total = workers.len();
    let ok = workers
        .keys()
        .filter(|id| matches!(outcomes.get(*id), Some(Ok(()))))
        .count();
    let failed: Vec<&String> = workers
        .keys()
        .filter(|id| matches!(outcomes.get(*id), Some(Err(_))))
        .collect();
    let mut s = format!("{ok}/{total} ENIs configured");
    if !failed.is_empty() {
        s.push_str(&format!(
            ", failing: {}",
            failed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s
}
