//! Drift accounting: every time the converger has to put an ENI's objects
//! back after it was configured, that is a repair. Repairs are counted in the
//! state record (visible in `eni-agent status`), and when something keeps
//! removing the agent's configuration — a tug-of-war with another tool — a
//! warning with the rate is logged, at most once a minute per ENI, instead of
//! fighting silently.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;
use tracing::warn;

use super::context::Context;
use crate::apply::ConvergeEvent;

/// Repairs within this window make the rate.
const WINDOW: Duration = Duration::from_secs(60);
/// This many repairs in the window is a fight worth a warning.
const FIGHT_THRESHOLD: usize = 3;

#[derive(Default)]
struct EniDrift {
    configured: bool,
    recent: VecDeque<Instant>,
    warned_at: Option<Instant>,
}

/// Follows the converger's events until they end.
pub async fn monitor(ctx: Arc<Context>, mut events: broadcast::Receiver<ConvergeEvent>) {
    let mut enis: HashMap<String, EniDrift> = HashMap::new();
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        super::observe::converger_event(&event);
        let ConvergeEvent::Converged { eni_id, ops, .. } = event else {
            continue;
        };
        let d = enis.entry(eni_id.clone()).or_default();
        if !d.configured {
            // The first convergence is the configuration itself.
            d.configured = true;
            continue;
        }
        if ops.is_empty() {
            continue;
        }
        let now = Instant::now();
        d.recent.push_back(now);
        while d
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            d.recent.pop_front();
        }
        let rate = d.recent.len();
        crate::metrics::global().drift_repaired(&eni_id, &ops, rate >= FIGHT_THRESHOLD);
        if rate >= FIGHT_THRESHOLD && d.warned_at.is_none_or(|t| now.duration_since(t) >= WINDOW) {
            d.warned_at = Some(now);
            warn!(
                eni = %eni_id,
                repairs_last_minute = rate,
                last_repair = %ops.join("; "),
                "something keeps removing this ENI's configuration ({rate} repairs in the last minute); \
                 find the other tool (NetworkManager, networkd, a script) and stop it managing this NIC"
            );
        }
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let recorded = ctx.store.update(&eni_id, &ctx.identity.instance_id, |r| {
            r.repairs += 1;
            r.repairs_last_minute = u32::try_from(rate).unwrap_or(u32::MAX);
            r.last_repair_at = Some(epoch);
        });
        if let Err(e) = recorded {
            warn!(eni = %eni_id, error = %e, "cannot record the repair");
        }
    }
}
