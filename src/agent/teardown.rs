//! Removing an ENI: the agent's configuration first (rules, table routes,
//! addresses — only what the agent owns), then DetachNetworkInterface and the
//! wait for Available, then the hand-off files, the table allocation and the
//! state record. The intent is recorded before the API call, so a crash in
//! the middle resumes the detach.

use tracing::info;

use super::cloud_flow;
use super::context::Context;
use super::facts;
use super::worker::WorkerError;
use crate::apply::{ConvergeError, Reconciler};
use crate::cloud::ecs::EniStatus;
use crate::plan::{AddressSpec, Plan};
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
        Err(ConvergeError::UnknownEni(_)) => cleanup_unmanaged(ctx, &ni).await?,
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
    info!(eni = %eni_id, removed = removed.len(), detached, "ENI unconfigured and detached");
    Ok(Teardown { removed, detached })
}

/// Cleanup for an ENI the converger does not manage (the one-shot detach):
/// its table comes from the allocation (or the state record), its addresses
/// from Describe; the link is found by MAC.
async fn cleanup_unmanaged(
    ctx: &Context,
    ni: &crate::cloud::ecs::NetworkInterface,
) -> Result<Vec<String>, WorkerError> {
    let eni_id = ni.network_interface_id.clone();
    let allocated = ctx.tables.lock().await.get(&eni_id);
    // An explicit `table =` from the configuration is not allocated; the
    // state record has it.
    let recorded = || ctx.store.load(&eni_id).ok().flatten().and_then(|r| r.table);
    let Some(table) = allocated.or_else(recorded) else {
        // Never allocated nor recorded: the agent never configured it.
        return Ok(Vec::new());
    };
    let f = facts::eni_facts(ni)?;
    let netlink_error = |source| WorkerError::Netlink {
        eni_id: eni_id.clone(),
        source,
    };
    let reconciler = Reconciler::connect().map_err(netlink_error)?;
    let index = crate::netlink::link_list(reconciler.handle())
        .await
        .map_err(netlink_error)?
        .into_iter()
        .find(|l| l.is_nic_with_mac(f.mac))
        .map(|l| l.index);
    let addresses = f
        .addresses()
        .into_iter()
        .map(|(_, addr)| AddressSpec {
            addr,
            prefix_len: if addr.is_ipv4() { 32 } else { 128 },
        })
        .collect();
    let plan = Plan {
        eni_id: eni_id.clone(),
        mac: f.mac,
        network_card_index: f.network_card_index,
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
            eni_id,
            source: ConvergeError::Cleanup(e),
        })
}
