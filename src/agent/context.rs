//! What every ENI's flow shares: the clients, the durable state, the table
//! allocator, the converger, this instance's identity and the settings.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::apply::ConvergerHandle;
use crate::cli::{ecs_client_for_region, metadata_client};
use crate::cloud::EcsClient;
use crate::config::{AgentConfig, Config};
use crate::handoff::HandoffDirs;
use crate::metadata::MetadataClient;
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
        let identity = identity(config, &metadata).await?;
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

/// Identity from the configuration where set, else from the metadata service.
async fn identity(config: &Config, md: &MetadataClient) -> Result<Identity, SetupError> {
    let a = &config.agent;
    // Configured ids were checked when the file was read; the metadata
    // service's are parsed into their types (shape checked) by `MetadataClient::id`.
    let instance_id = match &a.instance_id {
        Some(v) => v.to_string(),
        None => md
            .id::<crate::ids::InstanceId>("instance-id")
            .await
            .map_err(|e| SetupError::Identity(e.to_string()))?
            .to_string(),
    };
    let region_id = match &config.api.region {
        Some(v) => v.to_string(),
        None => md
            .id::<crate::ids::RegionId>("region-id")
            .await
            .map_err(|e| SetupError::Identity(e.to_string()))?
            .to_string(),
    };
    let zone_id = match &a.zone_id {
        Some(v) => v.to_string(),
        None => md
            .id::<crate::ids::ZoneId>("zone-id")
            .await
            .map_err(|e| SetupError::Identity(e.to_string()))?
            .to_string(),
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
