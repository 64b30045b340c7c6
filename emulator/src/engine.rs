//! The emulator's shared core and its asynchronous state machine. Actions
//! change [`State`] synchronously and hand the follow-ups (Attaching →
//! InUse, Detaching → Available, Deleting → gone, metadata lag, link
//! appearance and removal) to timer tasks scheduled here. Every API-driven
//! change bumps the ENI's `generation`; a timer carries the generation it
//! was scheduled under and does nothing if the ENI has moved on.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::calllog::CallRecord;
use crate::hotplug::{Hotplug, NicSpec};
use crate::model::{EniStatus, State};
use crate::settings::Settings;

/// Records kept in the call log of a long-running emulator.
pub const CALL_LOG_CAPACITY: usize = 20_000;

/// How a started attach ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachOutcome {
    /// Becomes `InUse`.
    Succeed,
    /// Returns to `Available` (injected failure).
    Fail,
    /// Stays `Attaching` (injected).
    Stuck,
}

/// Shared state of a running emulator.
#[derive(Debug)]
pub struct Emulator {
    state: Mutex<State>,
    settings: Mutex<Settings>,
    calls: Mutex<Vec<CallRecord>>,
    /// Account-wide request budget: (unix second, requests in it).
    budget: Mutex<(u64, u32)>,
    /// NIC hot-plug, when instance namespaces are configured.
    pub hotplug: Option<Hotplug>,
    /// Flips to `true` on shutdown; timers stop.
    shutdown: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Emulator {
    /// Creates the core.
    pub fn new(
        state: State,
        settings: Settings,
        hotplug: Option<Hotplug>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Emulator> {
        Arc::new(Emulator {
            state: Mutex::new(state),
            settings: Mutex::new(settings),
            calls: Mutex::new(Vec::new()),
            budget: Mutex::new((0, 0)),
            hotplug,
            shutdown,
        })
    }

    /// Locks the model.
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A copy of the current settings.
    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Replaces the settings.
    pub fn set_settings(&self, s: Settings) {
        *lock(&self.settings) = s;
    }

    /// Appends to the call log (the oldest records go beyond
    /// [`CALL_LOG_CAPACITY`]).
    pub fn log_call(&self, r: CallRecord) {
        let mut calls = lock(&self.calls);
        if calls.len() >= CALL_LOG_CAPACITY {
            let excess = calls.len() + 1 - CALL_LOG_CAPACITY;
            calls.drain(..excess);
        }
        calls.push(r);
    }

    /// The call log.
    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.calls).clone()
    }

    /// Empties the call log.
    pub fn clear_calls(&self) {
        lock(&self.calls).clear();
    }

    /// Counts one request against the account-wide per-second budget;
    /// `false` if it is over.
    pub fn take_budget(&self, per_second: Option<u32>) -> bool {
        let Some(limit) = per_second else {
            return true;
        };
        let sec = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut b = lock(&self.budget);
        if b.0 != sec {
            *b = (sec, 0);
        }
        b.1 += 1;
        b.1 <= limit
    }

    /// Sleeps `d`; `false` if the emulator shut down meanwhile.
    async fn sleep(&self, d: Duration) -> bool {
        let mut rx = self.shutdown.clone();
        if *rx.borrow() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => !*self.shutdown.borrow(),
            _ = rx.changed() => false,
        }
    }

    /// Schedules the end of an attach started under `generation`.
    pub fn start_attach(self: &Arc<Self>, eni_id: &str, generation: u64, outcome: AttachOutcome) {
        let t = self.settings().timing;
        let delay = Duration::from_millis(t.attach_delay_ms);
        let emu = Arc::clone(self);
        let id = eni_id.to_string();
        tokio::spawn(async move {
            if outcome == AttachOutcome::Stuck || !emu.sleep(delay).await {
                return;
            }
            let mut st = emu.state();
            let Some(eni) = st.enis.get_mut(&id) else {
                return;
            };
            if eni.generation != generation || eni.status != EniStatus::Attaching {
                return;
            }
            if outcome == AttachOutcome::Fail {
                eni.status = EniStatus::Available;
                eni.instance_id = None;
                eni.device_index = None;
                eni.network_card_index = None;
                tracing::info!(eni = %id, "attach failed (injected)");
                return;
            }
            eni.status = EniStatus::InUse;
            tracing::info!(eni = %id, "attached: InUse");
            drop(st);
            emu.schedule_metadata(&id, generation, Duration::from_millis(t.metadata_lag_ms));
        });
        if outcome == AttachOutcome::Succeed {
            let at = offset(t.attach_delay_ms, t.link_offset_ms);
            self.schedule_plug(eni_id, generation, at);
        }
    }

    /// Makes the ENI's per-MAC metadata appear after `lag`.
    fn schedule_metadata(self: &Arc<Self>, eni_id: &str, generation: u64, lag: Duration) {
        self.after(eni_id, lag, move |emu, id| async move {
            let mut st = emu.state();
            if let Some(eni) = st.enis.get_mut(&id) {
                if eni.generation == generation && eni.status == EniStatus::InUse {
                    eni.metadata = Some(eni.meta_snapshot());
                }
            }
        });
    }

    /// Refreshes the metadata view of an attached ENI after the lag (for
    /// IP changes).
    pub fn refresh_metadata(self: &Arc<Self>, eni_id: &str) {
        let lag = Duration::from_millis(self.settings().timing.metadata_lag_ms);
        self.after(eni_id, lag, move |emu, id| async move {
            let mut st = emu.state();
            if let Some(eni) = st.enis.get_mut(&id) {
                if eni.status == EniStatus::InUse && eni.metadata.is_some() {
                    eni.metadata = Some(eni.meta_snapshot());
                }
            }
        });
    }

    /// Runs `job` with the emulator and `eni_id` on a task after `delay`,
    /// unless the emulator stops first.
    fn after<F, Fut>(self: &Arc<Self>, eni_id: &str, delay: Duration, job: F)
    where
        F: FnOnce(Arc<Self>, String) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let emu = Arc::clone(self);
        let id = eni_id.to_string();
        tokio::spawn(async move {
            if emu.sleep(delay).await {
                job(emu, id).await;
            }
        });
    }

    /// Schedules the link of an attaching ENI to appear after `delay`.
    pub fn schedule_plug(self: &Arc<Self>, eni_id: &str, generation: u64, delay: Duration) {
        if self.hotplug.is_none() {
            return;
        }
        self.after(eni_id, delay, move |emu, id| async move {
            let nic = {
                let mut st = emu.state();
                let Some(eni) = st.enis.get(&id) else {
                    return;
                };
                let Some(target) = eni.instance_id.clone() else {
                    return;
                };
                if eni.generation != generation
                    || !matches!(eni.status, EniStatus::Attaching | EniStatus::InUse)
                    || !emu.hotplug.as_ref().is_some_and(|h| h.serves(&target))
                    || st
                        .instances
                        .get(&target)
                        .is_none_or(|i| i.status != "Running")
                {
                    return;
                }
                let queues = st.effective_queue_number(eni).unwrap_or(1);
                let vswitch = st.vswitches.get(&eni.vswitch_id);
                let nic = NicSpec {
                    eni_id: id.clone(),
                    instance_id: target,
                    mac: eni.mac.clone(),
                    queues,
                    device_index: eni.device_index.unwrap_or(0),
                    primary: eni.eni_type == "Primary",
                    vswitch_id: eni.vswitch_id.clone(),
                    gateway: vswitch.map_or(std::net::Ipv4Addr::UNSPECIFIED, |v| v.cidr.gateway()),
                    prefix_len: vswitch.map_or(32, |v| v.cidr.len),
                };
                if let Some(e) = st.enis.get_mut(&id) {
                    e.link_present = true;
                }
                nic
            };
            if let Some(hp) = &emu.hotplug {
                if let Err(e) = hp.plug(&nic).await {
                    tracing::warn!(eni = %id, error = %e, "hot-plug failed");
                    if let Some(eni) = emu.state().enis.get_mut(&id) {
                        eni.link_present = false;
                    }
                }
            }
        });
    }

    /// Schedules the end of a detach started under `generation`.
    pub fn start_detach(self: &Arc<Self>, eni_id: &str, generation: u64) {
        let t = self.settings().timing;
        self.after(
            eni_id,
            Duration::from_millis(t.detach_delay_ms),
            move |emu, id| async move {
                let mut st = emu.state();
                if let Some(eni) = st.enis.get_mut(&id) {
                    if eni.generation == generation && eni.status == EniStatus::Detaching {
                        eni.status = EniStatus::Available;
                        eni.instance_id = None;
                        eni.device_index = None;
                        eni.network_card_index = None;
                        eni.metadata = None;
                        tracing::info!(eni = %id, "detached: Available");
                    }
                }
            },
        );
        let at = offset(t.detach_delay_ms, t.unplug_offset_ms);
        self.schedule_unplug(eni_id, generation, at);
    }

    /// Removes the ENI's link after `delay` unless it was re-attached.
    pub fn schedule_unplug(self: &Arc<Self>, eni_id: &str, generation: u64, delay: Duration) {
        if self.hotplug.is_none() {
            return;
        }
        self.after(eni_id, delay, move |emu, id| async move {
            {
                let mut st = emu.state();
                if let Some(eni) = st.enis.get_mut(&id) {
                    if eni.generation != generation {
                        return;
                    }
                    eni.link_present = false;
                }
            }
            if let Some(hp) = &emu.hotplug {
                if let Err(e) = hp.unplug(&id).await {
                    tracing::warn!(eni = %id, error = %e, "unplug failed");
                }
            }
        });
    }

    /// Schedules the removal of a deleting ENI.
    pub fn start_delete(self: &Arc<Self>, eni_id: &str, generation: u64) {
        let delay = Duration::from_millis(self.settings().timing.delete_delay_ms);
        self.after(eni_id, delay, move |emu, id| async move {
            let mut st = emu.state();
            if st
                .enis
                .get(&id)
                .is_some_and(|e| e.generation == generation && e.status == EniStatus::Deleting)
            {
                st.enis.remove(&id);
                tracing::info!(eni = %id, "deleted");
            }
        });
    }

    /// Schedules `Creating` → `Available`.
    pub fn start_create(self: &Arc<Self>, eni_id: &str, generation: u64) {
        let delay = Duration::from_millis(self.settings().timing.create_delay_ms);
        self.after(eni_id, delay, move |emu, id| async move {
            if let Some(eni) = emu.state().enis.get_mut(&id) {
                if eni.generation == generation && eni.status == EniStatus::Creating {
                    eni.status = EniStatus::Available;
                }
            }
        });
    }

    /// Makes the NICs in each instance namespace match its emulated
    /// instance: while it is Running every `InUse` ENI has its NIC; in any
    /// other state (Stopped, Stopping, …) it has none. Called at start-up
    /// and when the control API changes an instance's status.
    pub fn sync_links(self: &Arc<Self>) {
        let Some(hotplug) = &self.hotplug else {
            return;
        };
        let enis: Vec<(String, u64, bool, bool)> = {
            let st = self.state();
            st.enis
                .values()
                .filter(|e| e.status == EniStatus::InUse)
                .filter_map(|e| {
                    let inst = e.instance_id.as_deref().filter(|i| hotplug.serves(i))?;
                    let running = st
                        .instances
                        .get(inst)
                        .is_some_and(|i| i.status == "Running");
                    Some((e.id.clone(), e.generation, e.link_present, running))
                })
                .collect()
        };
        for (id, generation, present, running) in enis {
            if running && !present {
                self.schedule_plug(&id, generation, Duration::ZERO);
            } else if !running && present {
                self.schedule_unplug(&id, generation, Duration::ZERO);
            }
        }
    }
}

/// `base + offset` milliseconds, never negative.
fn offset(base_ms: u64, offset_ms: i64) -> Duration {
    let total = i128::from(base_ms) + i128::from(offset_ms);
    Duration::from_millis(u64::try_from(total.max(0)).unwrap_or(u64::MAX))
}
