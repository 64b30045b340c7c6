//! The one planning pipeline: an ENI's facts + its vSwitch's facts (the
//! metadata service's entry for the ENI's MAC, or a sibling NIC's entry in
//! the same vSwitch) + its routing table (allocated, or only looked up) → a
//! [`Plan`]. The worker, the daemon's refresh and `eni-agent plan` all plan
//! through here.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use tracing::warn;

use super::facts;
use crate::backoff::Poll;
use crate::config::EniConfig;
use crate::mac::MacAddr;
use crate::metadata::{MetadataClient, MetadataError};
use crate::netlink::NetlinkError;
use crate::plan::{self, EniFacts, Plan, PlanError, SubnetFacts};
use crate::tables::{TableAllocator, TableError};

/// How long lagging IPv6 facts are waited for before planning IPv4 only.
const IPV6_GRACE: Duration = Duration::from_secs(10);

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanningError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{eni_id}: {source}")]
    Metadata {
        eni_id: String,
        #[source]
        source: MetadataError,
    },
    #[error(
        "{eni_id}: the metadata service has no vSwitch facts (gateway, CIDR) for MAC {mac} after {waited:?}; it usually lags the attach by seconds — check the metadata service"
    )]
    SubnetFactsMissing {
        eni_id: String,
        mac: MacAddr,
        waited: Duration,
    },
    #[error(
        "{eni_id}: no vSwitch facts (gateway, CIDR) for vSwitch {vswitch_id} yet: the metadata service has no entry for \
         MAC {mac} ({why}) and no other NIC of this instance is in that vSwitch; try again in a few seconds"
    )]
    NoSubnetFactsYet {
        eni_id: String,
        mac: MacAddr,
        vswitch_id: String,
        why: &'static str,
    },
    #[error("{eni_id}: routing table: {source}")]
    Tables {
        eni_id: String,
        #[source]
        source: TableError,
    },
    #[error("{eni_id}: listing the kernel's routing tables failed: {source}")]
    Netlink {
        eni_id: String,
        #[source]
        source: NetlinkError,
    },
}

impl PlanningError {
    /// True when trying again later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Metadata { source, .. } => source.is_transient(),
            Self::SubnetFactsMissing { .. } | Self::NoSubnetFactsYet { .. } => true,
            Self::Netlink { .. } => true,
            Self::Plan(_) | Self::Tables { .. } => false,
        }
    }

    /// True when the facts did not come in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::SubnetFactsMissing { .. })
    }
}

/// Where the routing table of a plan comes from.
#[derive(Debug)]
pub enum TablePolicy<'a> {
    /// The ENI's table, allocated (and persisted) when it has none; tables
    /// that others' routes or rules use are skipped.
    Allocate(&'a Mutex<TableAllocator>),
    /// Only look: the ENI's allocated table, else `provisional` (nothing is
    /// written).
    Look {
        allocated: Option<u32>,
        provisional: u32,
    },
}

/// Which table a plan got and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableChoice {
    /// `table = N` in the configuration.
    Configured(u32),
    /// The ENI's allocated table.
    Allocated(u32),
    /// Not allocated yet: the first of the range stands in for the one an
    /// attach will allocate.
    Provisional(u32),
}

impl TableChoice {
    /// The table number.
    pub fn table(self) -> u32 {
        match self {
            Self::Configured(t) | Self::Allocated(t) | Self::Provisional(t) => t,
        }
    }
}

/// The vSwitch facts: the metadata service and what it told about each
/// vSwitch already.
#[derive(Debug)]
pub struct Subnets<'a> {
    pub metadata: &'a MetadataClient,
    pub cache: &'a Mutex<HashMap<String, SubnetFacts>>,
}

impl Subnets<'_> {
    /// The facts of `vswitch_id` from another NIC of this instance in the
    /// same vSwitch (usually the primary), if the metadata service has them.
    /// They are there before the ENI is even attached.
    pub async fn from_sibling(&self, vswitch_id: &str, eni: &EniFacts) -> Option<SubnetFacts> {
        if vswitch_id.is_empty() {
            return None;
        }
        if let Some(s) = self.cache.lock().await.get(vswitch_id) {
            return Some(s.clone()).filter(|s| eni.ipv6.is_empty() || s.ipv6_gateway.is_some());
        }
        let own = MacAddr(eni.mac.0);
        let macs = self.metadata.macs().await.ok()?;
        for mac in macs.into_iter().filter(|m| *m != own) {
            let Ok(md) = self.metadata.interface(mac).await else {
                continue;
            };
            if md.vswitch_id.as_deref() != Some(vswitch_id) || facts::ipv6_facts_missing(eni, &md) {
                continue;
            }
            if let Some(subnet) = facts::subnet_facts(&md) {
                self.cache
                    .lock()
                    .await
                    .insert(vswitch_id.to_owned(), subnet.clone());
                return Some(subnet);
            }
        }
        None
    }

    /// The facts as they are now, without waiting: the ENI's own entry when
    /// complete, else a sibling NIC's in the same vSwitch.
    pub async fn now(
        &self,
        vswitch_id: &str,
        eni: &EniFacts,
    ) -> Result<SubnetFacts, PlanningError> {
        let mac = MacAddr(eni.mac.0);
        let why = match self.metadata.interface(mac).await {
            Ok(md) => match facts::subnet_facts(&md) {
                Some(s) if !facts::ipv6_facts_missing(eni, &md) => return Ok(s),
                Some(_) => "no IPv6 gateway listed for it yet",
                None => "no gateway or CIDR listed for it yet",
            },
            Err(source) => {
                return Err(PlanningError::Metadata {
                    eni_id: eni.eni_id.clone(),
                    source,
                });
            }
        };
        match self.from_sibling(vswitch_id, eni).await {
            Some(s) => Ok(s),
            None => Err(PlanningError::NoSubnetFactsYet {
                eni_id: eni.eni_id.clone(),
                mac,
                vswitch_id: vswitch_id.to_owned(),
                why,
            }),
        }
    }

    /// Waits for the metadata service's facts of the ENI's own MAC (they lag
    /// the attach), at most `timeout`.
    pub async fn wait_own(
        &self,
        eni: &EniFacts,
        timeout: Duration,
    ) -> Result<SubnetFacts, PlanningError> {
        let mac = MacAddr(eni.mac.0);
        let started = tokio::time::Instant::now();
        let mut schedule = Poll::new(Duration::from_millis(50), Duration::from_secs(1), timeout);
        loop {
            match self.metadata.interface(mac).await {
                Ok(md) => {
                    if let Some(subnet) = facts::subnet_facts(&md) {
                        if !facts::ipv6_facts_missing(eni, &md) || started.elapsed() > IPV6_GRACE {
                            return Ok(subnet);
                        }
                    }
                }
                // A flaky metadata service (429/5xx beyond the client's own
                // retries) is waited out like lagging facts, within the timeout.
                Err(source) if source.is_transient() => {
                    warn!(eni = %eni.eni_id, error = %source, "metadata service error; trying again");
                }
                Err(source) => {
                    return Err(PlanningError::Metadata {
                        eni_id: eni.eni_id.clone(),
                        source,
                    });
                }
            }
            if !schedule.wait().await {
                return Err(PlanningError::SubnetFactsMissing {
                    eni_id: eni.eni_id.clone(),
                    mac,
                    waited: started.elapsed(),
                });
            }
        }
    }
}

/// The ENI's routing table under `policy`.
pub async fn table(
    policy: &TablePolicy<'_>,
    entry: &EniConfig,
    eni_id: &str,
) -> Result<TableChoice, PlanningError> {
    if let Some(t) = entry.table {
        return Ok(TableChoice::Configured(t));
    }
    match policy {
        TablePolicy::Look {
            allocated,
            provisional,
        } => Ok(allocated.map_or(
            TableChoice::Provisional(*provisional),
            TableChoice::Allocated,
        )),
        TablePolicy::Allocate(tables) => {
            let mut tables = tables.lock().await;
            if let Some(t) = tables.get(eni_id) {
                return Ok(TableChoice::Allocated(t));
            }
            // One state directory at a time allocates; only an empty table.
            tables
                .hold_host_lock(std::path::Path::new(crate::tables::HOST_LOCK_DIR))
                .map_err(|source| PlanningError::Tables {
                    eni_id: eni_id.to_owned(),
                    source,
                })?;
            let in_use =
                super::context::tables_in_use()
                    .await
                    .map_err(|source| PlanningError::Netlink {
                        eni_id: eni_id.to_owned(),
                        source,
                    })?;
            let allocation =
                tables
                    .allocate(eni_id, &in_use)
                    .map_err(|source| PlanningError::Tables {
                        eni_id: eni_id.to_owned(),
                        source,
                    })?;
            if !allocation.skipped_foreign.is_empty() {
                warn!(eni = %eni_id, skipped = ?allocation.skipped_foreign, "routing tables already holding routes or rules were skipped");
            }
            Ok(TableChoice::Allocated(allocation.table))
        }
    }
}

/// The plan of `eni` configured by `entry`, with known vSwitch facts, in the
/// table `policy` gives.
pub async fn plan(
    policy: &TablePolicy<'_>,
    entry: &EniConfig,
    eni: &EniFacts,
    subnet: &SubnetFacts,
) -> Result<(Plan, TableChoice), PlanningError> {
    let choice = table(policy, entry, &eni.eni_id).await?;
    let plan = plan::plan(eni, subnet, &entry.options(), choice.table())?;
    Ok((plan, choice))
}
