//! What the agent reports to the metrics: its types (timelines, outcomes,
//! plans, converger events) turned into the plain values [`crate::metrics`]
//! records.

use super::timeline::Timeline;
use super::worker::{Configured, WorkerError};
use crate::apply::ConvergeEvent;
use crate::metrics::{EniState, global};
use crate::plan::Plan;

/// A bring-up ended: the phases it reached, and where the ENI stands.
pub fn brought_up(eni_id: &str, timeline: &Timeline, result: &Result<Configured, WorkerError>) {
    let m = global();
    for mark in timeline.marks() {
        m.phase_reached(mark.phase.label(), mark.at);
    }
    match result {
        Ok(c) => {
            m.eni_configured(eni_id, &c.facts.mac.to_string(), &c.ifname, c.plan.table);
            m.eni_converged(eni_id);
        }
        Err(e) if e.is_transient() => m.eni_state(eni_id, EniState::Attaching),
        Err(_) => m.eni_state(eni_id, EniState::Failed),
    }
}

/// The ENI is being brought up (again).
pub fn attaching(eni_id: &str) {
    global().eni_state(eni_id, EniState::Attaching);
}

/// The ENI is being unconfigured and detached.
pub fn detaching(eni_id: &str) {
    global().eni_state(eni_id, EniState::Detaching);
}

/// The ENI is no longer managed (detached, or removed from the configuration).
pub fn forget(eni_id: &str) {
    global().eni_forget(eni_id);
}

/// A plan was handed to the converger.
pub fn planned(plan: &Plan) {
    global().eni_desired_addresses(&plan.eni_id, plan.addresses.iter().map(|a| a.addr));
}

/// A converger event.
pub fn converger_event(event: &ConvergeEvent) {
    let m = global();
    match event {
        ConvergeEvent::Converged { eni_id, .. } => m.eni_converged(eni_id),
        ConvergeEvent::Failed { eni_id, .. } => m.eni_degraded(eni_id, false),
        ConvergeEvent::LinkGone { eni_id, .. } => m.eni_degraded(eni_id, true),
        ConvergeEvent::Resynced { reason } => m.netlink_resync(reason),
        _ => {}
    }
}
