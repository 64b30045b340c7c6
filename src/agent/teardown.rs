//! Removing an ENI: the agent's configuration first (rules, table routes,
//! addresses — only what the agent owns), then DetachNetworkInterface and the
//! wait for Available, then the hand-off files, the table allocation and the
//! state record. The intent is recorded before the API call, so a crash in
//! the middle resumes the detach. What is removed comes from what was
//! recorded at configure time, never from a later API answer.

use tracing::{info, warn};

use super::cloud_flow;
use super::context::Context;
use super::worker::WorkerError;
use crate::apply::{ConvergeError, Reconciler};
use crate::cloud::ecs::EniStatus;
use crate::plan::{AddressSpec, MacAddr, Plan};
use crate::state::{Intent, Progress};

/// What a teardown did.
#[derive(Debug, Clone, Default)]
pub struct Teardown {
    /// Kernel objects removed, as `ip` commands.
    pub removed: Vec<String>,
    /// Whether DetachNetworkInterface was sent.
    pub detached: bool,
}

/// Unconfigures and detaches `eni_id`. A permanent failure (the API refuses
/// the detach, the ENI does not exist) ends the intent: the record says
/// Detach/Failed with the error, and no daemon start resumes it; a transient
/// one (a timeout, throttling) leaves it to be resumed.
pub async fn teardown(ctx: &Context, eni_id: &str) -> Result<Teardown, WorkerError> {
    super::observe::detaching(eni_id);
    ctx.store.update(eni_id, &ctx.identity.instance_id, |r| {
        r.intent = Intent::Detach;
        r.progress = Progress::DetachRequested;
        r.last_error = None;
    })?;
    let result = unconfigure_and_detach(ctx, eni_id).await;
    if let Err(e) = &result {
        if !e.is_transient() {
            ctx.store.update(eni_id, &ctx.identity.instance_id, |r| {
                r.progress = Progress::Failed;
                r.last_error = Some(e.to_string());
            })?;
        }
    }
    result
}

async fn unconfigure_and_detach(ctx: &Context, eni_id: &str) -> Result<Teardown, WorkerError> {
    let (ni, _) = cloud_flow::describe(&ctx.ecs, eni_id).await?;
    let removed = match ctx.converger.release(eni_id).await {
        Ok(ops) => ops,
        Err(ConvergeError::UnknownEni(_)) => cleanup_recorded(ctx, eni_id).await?,
        Err(source) => {
            return Err(WorkerError::Converger {
                eni_id: eni_id.to_owned(),
                source,
            });
        }
    };
    let here = ni.attached_instance() == Some(ctx.identity.instance_id.as_str());
    let detached = here
        && matches!(
            ni.status,
            EniStatus::InUse | EniStatus::Attaching | EniStatus::Detaching
        );
    if detached {
        cloud_flow::detach(&ctx.ecs, eni_id, &ctx.identity.instance_id).await?;
    }
    if let Some(dirs) = &ctx.handoff {
        dirs.remove(eni_id)?;
    }
    ctx.tables
        .lock()
        .await
        .release(eni_id)
        .map_err(|source| WorkerError::Tables {
            eni_id: eni_id.to_owned(),
            source,
        })?;
    ctx.store.remove(eni_id)?;
    super::observe::forget(eni_id);
    info!(eni = %eni_id, removed = removed.len(), detached, "ENI unconfigured and detached");
    Ok(Teardown { removed, detached })
}

/// Cleanup for an ENI the converger does not manage (the one-shot detach),
/// from what was recorded when it was configured — never from a later
/// Describe answer: its table (the allocation or the record), its MAC,
/// ifindex and the addresses the agent added. A NIC whose MAC is no longer
/// the recorded one is not touched (its addresses and main-table routes
/// stay); the rules and routes of the ENI's own table still go.
async fn cleanup_recorded(ctx: &Context, eni_id: &str) -> Result<Vec<String>, WorkerError> {
    let record = ctx.store.load(eni_id)?;
    let allocated = ctx.tables.lock().await.get(eni_id);
    // An explicit `table =` from the configuration is not allocated; the
    // state record has it.
    let Some(table) = allocated.or_else(|| record.as_ref().and_then(|r| r.table)) else {
        // Never allocated nor recorded: the agent never configured it.
        return Ok(Vec::new());
    };
    let netlink_error = |source| WorkerError::Netlink {
        eni_id: eni_id.to_owned(),
        source,
    };
    let reconciler = Reconciler::connect().map_err(netlink_error)?;
    let links = crate::netlink::link_list(reconciler.handle())
        .await
        .map_err(netlink_error)?;
    let mac: Option<MacAddr> = record
        .as_ref()
        .and_then(|r| r.mac.as_deref())
        .and_then(|m| m.parse().ok());
    let recorded_index = record.as_ref().and_then(|r| r.ifindex);
    let index = match (mac, recorded_index) {
        (None, _) => None,
        (Some(mac), Some(ix)) => match links.iter().find(|l| l.index == ix) {
            Some(l) if l.is_nic_with_mac(mac) => Some(ix),
            Some(l) => {
                warn!(eni = %eni_id, ifindex = ix, name = %l.name, recorded = %mac,
                      now = %l.mac.map(|m| m.to_string()).unwrap_or_default(),
                      "the NIC recorded for this ENI has another MAC now; not touching it");
                None
            }
            // Re-plugged since: the same MAC under a new ifindex.
            None => links
                .iter()
                .find(|l| l.is_nic_with_mac(mac))
                .map(|l| l.index),
        },
        (Some(mac), None) => links
            .iter()
            .find(|l| l.is_nic_with_mac(mac))
            .map(|l| l.index),
    };
    let addresses = record
        .as_ref()
        .map(|r| {
            r.addresses
                .iter()
                .filter_map(|a| parse_recorded(a))
                .collect()
        })
        .unwrap_or_default();
    let plan = Plan {
        eni_id: eni_id.to_owned(),
        mac: mac.unwrap_or(MacAddr([0; 6])),
        network_card_index: None,
        table,
        mtu: None,
        sysctls: Vec::new(),
        queues: None,
        addresses,
        routes: Vec::new(),
        rules: Vec::new(),
    };
    reconciler
        .cleanup(&plan, index)
        .await
        .map_err(|e| WorkerError::Converger {
            eni_id: eni_id.to_owned(),
            source: ConvergeError::Cleanup(e),
        })
}

/// A recorded `ADDRESS/LEN`.
fn parse_recorded(text: &str) -> Option<AddressSpec> {
    let net: crate::plan::IpNet = text.parse().ok()?;
    net.len_is_valid().then_some(AddressSpec {
        addr: net.addr,
        prefix_len: net.prefix_len,
    })
}
