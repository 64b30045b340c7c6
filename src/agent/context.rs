//! What every ENI's flow shares: the clients, the durable state, the table
//! allocator, the converger, this instance's identity and the settings.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tracing::warn;

use crate::apply::ConvergerHandle;
use crate::backoff::Poll;
use crate::cli::{ecs_client_for_region, metadata_client};
use crate::cloud::EcsClient;
use crate::config::{AgentConfig, Config};
use crate::handoff::HandoffDirs;
use crate::metadata::{MetadataClient, MetadataError};
use crate::netlink;
use crate::state::StateStore;
use crate::tables::TableAllocator;

/// This instance, as the metadata service (or the configuration) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: String,
    pub region_id: String,
    pub zone_id: String,
    pub vpc_id: Option<String>,
}

/// Shared by all ENI flows of one process.
#[derive(Debug)]
pub struct Context {
    pub ecs: EcsClient,
    pub metadata: Arc<MetadataClient>,
    pub store: StateStore,
    pub tables: Mutex<TableAllocator>,
    pub converger: ConvergerHandle,
    pub identity: Identity,
    pub handoff: Option<HandoffDirs>,
    pub agent: AgentConfig,
    /// vSwitch facts learnt from NICs already attached, by vSwitch id.
    pub subnets: Mutex<std::collections::HashMap<String, crate::plan::SubnetFacts>>,
}

/// How long the start waits for an unreachable or busy metadata service: at
/// boot the agent may start before the primary NIC has its address (`Network
/// is unreachable`), and it should come up then, not fail and be restarted.
pub const METADATA_START_WAIT: Duration = Duration::from_secs(120);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Config(String),
    #[error(
        "cannot learn this instance's identity from the metadata service: {0}; set agent.instance_id, agent.zone_id and api.region in the configuration"
    )]
    Identity(String),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Tables(#[from] crate::tables::TableError),
}

impl Context {
    /// Builds the shared pieces for `config`; `converger` is already running.
    pub async fn new(config: &Config, converger: ConvergerHandle) -> Result<Self, SetupError> {
        let metadata = metadata_client(config).map_err(SetupError::Config)?;
        let identity = identity_at_start(config, &metadata, METADATA_START_WAIT).await?;
        let ecs = ecs_client_for_region(config, metadata.clone(), &identity.region_id)
            .map_err(SetupError::Config)?;
        let store = StateStore::open(&config.agent.state_dir)?;
        let tables = TableAllocator::load(
            store.tables_path(),
            config.agent.table_min..=config.agent.table_max,
        )?;
        Ok(Self {
            ecs,
            metadata,
            store,
            tables: Mutex::new(tables),
            converger,
            identity,
            handoff: config
                .agent
                .manage_network_managers
                .then(HandoffDirs::default),
            agent: config.agent.clone(),
            subnets: Mutex::default(),
        })
    }
}

/// [`Identity`] as [`identity`] learns it, waiting (backing off, at most
/// `wait`) while the metadata service is unreachable or busy; any other
/// failure ends the wait at once.
pub async fn identity_at_start(
    config: &Config,
    md: &MetadataClient,
    wait: Duration,
) -> Result<Identity, SetupError> {
    let mut schedule = Poll::new(Duration::from_millis(200), Duration::from_secs(5), wait);
    loop {
        match identity(config, md).await {
            Ok(id) => return Ok(id),
            Err(e) if e.is_transient() => {
                warn!(error = %e, waited_s = schedule.elapsed().as_secs(), limit_s = wait.as_secs(),
                    "the metadata service is not answering yet; waiting for it");
                if !schedule.wait().await {
                    return Err(SetupError::Identity(format!(
                        "{e} (still so after waiting {} s)",
                        schedule.elapsed().as_secs()
                    )));
                }
            }
            Err(e) => return Err(SetupError::Identity(e.to_string())),
        }
    }
}

/// Identity from the configuration where set, else from the metadata service.
pub async fn identity(config: &Config, md: &MetadataClient) -> Result<Identity, MetadataError> {
    let a = &config.agent;
    // Configured ids were checked when the file was read; the metadata
    // service's are parsed into their types (shape checked) by `MetadataClient::id`.
    let instance_id = match &a.instance_id {
        Some(v) => v.to_string(),
        None => md
            .id::<crate::ids::InstanceId>("instance-id")
            .await?
            .to_string(),
    };
    let region_id = match &config.api.region {
        Some(v) => v.to_string(),
        None => md
            .id::<crate::ids::RegionId>("region-id")
            .await?
            .to_string(),
    };
    let zone_id = match &a.zone_id {
        Some(v) => v.to_string(),
        None => md.id::<crate::ids::ZoneId>("zone-id").await?.to_string(),
    };
    let vpc_id = match &a.vpc_id {
        Some(v) => Some(v.to_string()),
        // The VPC check is a courtesy (ECS checks too): absent is fine.
        None => md.vpc_id().await.ok().map(|v| v.to_string()),
    };
    Ok(Identity {
        instance_id,
        region_id,
        zone_id,
        vpc_id,
    })
}

/// Routing tables that any route or rule refers to (another ENI's included).
pub async fn tables_in_use() -> Result<BTreeSet<u32>, netlink::NetlinkError> {
    crate::apply::Reconciler::connect()?.tables_in_use().await
}
