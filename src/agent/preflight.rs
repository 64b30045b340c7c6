//! Before an ENI is taken on: the guard — never the primary NIC, never a NIC
//! or an address that is not the agent's — and what the state records of it.

use tracing::warn;

use super::context::Context;
use super::worker::WorkerError;
use crate::mac::MacAddr;
use crate::plan::{EniFacts, Plan};

/// Refuses an ENI whose MAC is the primary NIC's, whose NIC carries what
/// the agent did not add, or whose addresses are on another link.
pub async fn guard(ctx: &Context, eni: &EniFacts) -> Result<(), WorkerError> {
    let primary_mac = match ctx.metadata.primary_mac().await {
        Ok(m) => Some(m),
        Err(e) => {
            warn!(eni = %eni.eni_id, error = %e, "cannot read the primary MAC from the metadata service; checking the NIC holding the default route only");
            None
        }
    };
    let addresses: Vec<std::net::IpAddr> = eni.addresses().into_iter().map(|(_, a)| a).collect();
    let reconciler =
        crate::apply::Reconciler::connect().map_err(|source| WorkerError::Netlink {
            eni_id: eni.eni_id.clone(),
            source,
        })?;
    reconciler
        .guard(&crate::apply::Candidate {
            eni_id: &eni.eni_id,
            mac: MacAddr(eni.mac.0),
            addresses: &addresses,
            primary_mac,
        })
        .await
        .map_err(WorkerError::Guard)
}

/// The plan's addresses as the state records them (`ADDRESS/LEN`).
pub fn recorded_addresses(plan: &Plan) -> Vec<String> {
    plan.addresses
        .iter()
        .map(|a| format!("{}/{}", a.addr, a.prefix_len))
        .collect()
}
