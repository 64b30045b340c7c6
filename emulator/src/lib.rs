//! ecs-emulator: an emulator of the Alibaba Cloud ECS ENI OpenAPI and of the
//! instance metadata service that hot-plugs real veth NICs into the emulated
//! instance's network namespace.
//!
//! Start it in-process with [`start`] (tests bind `127.0.0.1:0` listeners)
//! or through the `ecs-emulator serve` binary. Modules: [`api`] (the RPC
//! API), [`metadata`] (the metadata service), [`engine`] (shared state and
//! the asynchronous state machine), [`hotplug`] (veth NICs), [`control`]
//! (the test control API), [`model`], [`scenario`], [`settings`].

pub mod api;
pub mod calllog;
pub mod control;
pub mod demo;
pub mod engine;
pub mod hotplug;
pub mod metadata;
pub mod model;
pub mod netns;
pub mod qemu;
pub mod qmp;
pub mod scenario;
pub mod server;
pub mod settings;
pub mod util;

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

pub use crate::engine::Emulator;
use crate::hotplug::{Hotplug, HotplugError};
use crate::model::{ScenarioError, State};
use crate::qemu::{BridgeSpec, QemuVm};
use crate::scenario::{KeyKind, Scenario};

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The scenario is inconsistent.
    #[error("invalid scenario: {0}")]
    Scenario(#[from] ScenarioError),
    /// A socket could not be used.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Hot-plug could not be set up.
    #[error("hot-plug: {0}")]
    Hotplug(#[from] HotplugError),
    /// A namespace was given for an instance the scenario does not have.
    #[error("--instance-netns names instance {0}, which is not in the scenario")]
    UnknownInstance(String),
}

/// What to emulate.
#[derive(Debug, Default)]
pub struct Config {
    /// The account.
    pub scenario: Scenario,
    /// Network namespace of the scenario's metadata instance (`serve
    /// --netns`); NICs of ENIs attached to it are hot-plugged there.
    pub instance_netns: Option<OwnedFd>,
    /// Namespaces of further instances (`serve --instance-netns ID=NS`):
    /// instance id → namespace. Without any namespace there is no hot-plug.
    pub instance_namespaces: Vec<(String, OwnedFd)>,
    /// Instances that are QEMU VMs (`serve --qemu-vm ID=QMP_SOCKET`):
    /// instance id → VM. Their NICs are hot-plugged through QMP, their taps
    /// and vSwitch bridges live in the emulator's own namespace.
    pub qemu_vms: Vec<(String, QemuVm)>,
}

/// The sockets to serve.
#[derive(Debug)]
pub struct Listeners {
    /// The ECS API (and the control API under `/_emulator/`).
    pub api: TcpListener,
    /// Further API listeners (e.g. inside the instance namespace).
    pub api_extra: Vec<TcpListener>,
    /// The metadata service of the scenario's metadata instance (several,
    /// e.g. loopback and 100.100.100.200 inside the instance namespace).
    pub metadata: Vec<TcpListener>,
    /// Metadata listeners that answer as a given instance (instance id,
    /// listener), e.g. 100.100.100.200 inside each instance's namespace.
    pub instance_metadata: Vec<(String, TcpListener)>,
}

/// One ENI in the ready line.
#[derive(Debug, Clone, Serialize)]
pub struct EniInfo {
    /// Id.
    pub id: String,
    /// `Primary`/`Secondary`.
    #[serde(rename = "type")]
    pub eni_type: String,
    /// Status at start.
    pub status: String,
    /// Zone.
    pub zone_id: String,
    /// VPC.
    pub vpc_id: String,
    /// vSwitch.
    pub vswitch_id: String,
    /// MAC.
    pub mac: String,
}

/// Where and how to reach a started emulator (the `serve` ready line).
#[derive(Debug, Clone, Serialize)]
pub struct ReadyInfo {
    /// ECS API endpoint, `http://127.0.0.1:PORT/`.
    pub api_url: String,
    /// Every API endpoint (the first is `api_url`).
    pub api_urls: Vec<String>,
    /// Metadata base URL (append `/latest/meta-data/…`): the first metadata
    /// listener.
    pub metadata_url: String,
    /// Every metadata listener (with `--metadata-in-netns` also
    /// `http://100.100.100.200:80`, reachable inside the instance namespace).
    pub metadata_urls: Vec<String>,
    /// Control API base URL (`…/_emulator`).
    pub control_url: String,
    /// Owner access key id.
    pub access_key_id: String,
    /// Owner access key secret.
    pub access_key_secret: String,
    /// Region.
    pub region_id: String,
    /// The emulated instance.
    pub instance_id: String,
    /// Its primary ENI.
    pub primary_eni_id: String,
    /// Every other ENI of the scenario, in scenario order.
    pub eni_ids: Vec<String>,
    /// Details of every ENI.
    pub enis: Vec<EniInfo>,
}

/// A started emulator.
#[derive(Debug)]
pub struct Running {
    /// Where to reach it.
    pub info: ReadyInfo,
    /// Its shared state (tests may inspect it).
    pub emulator: Arc<Emulator>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops serving and waits for the listeners to close.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn url_of(l: &TcpListener) -> Result<String, std::io::Error> {
    Ok(format!("http://{}", l.local_addr()?))
}

/// Starts the emulator on `listeners`. Must run inside a tokio runtime; with
/// `instance_netns`, the netlink socket is opened in the calling thread's
/// network namespace, which becomes the home of the veth peers.
pub fn start(config: Config, listeners: Listeners) -> Result<Running, EmulatorError> {
    let state = State::from_scenario(&config.scenario)?;
    let settings = config.scenario.settings.clone().unwrap_or_default();
    let mut targets: HashMap<String, OwnedFd> = config.instance_namespaces.into_iter().collect();
    if let Some(fd) = config.instance_netns {
        targets.insert(state.metadata_instance_id.clone(), fd);
    }
    let vms: HashMap<String, QemuVm> = config.qemu_vms.into_iter().collect();
    if let Some(id) = targets
        .keys()
        .chain(vms.keys())
        .find(|id| !state.instances.contains_key(*id))
    {
        return Err(EmulatorError::UnknownInstance(id.clone()));
    }
    let hotplug = if targets.is_empty() && vms.is_empty() {
        None
    } else {
        let bridges = vm_bridges(&state, &vms);
        Some(Hotplug::with_vms(targets, vms, bridges)?)
    };
    let (tx, rx) = watch::channel(false);
    let api_base = url_of(&listeners.api)?;
    let metadata_urls = listeners
        .metadata
        .iter()
        .map(url_of)
        .collect::<Result<Vec<_>, _>>()?;
    let mut info = ready_info(&state, &api_base, &metadata_urls);
    for l in &listeners.api_extra {
        info.api_urls.push(format!("{}/", url_of(l)?));
    }
    let emu = Emulator::new(state, settings, hotplug, rx.clone());
    emu.sync_links();

    let mut tasks = Vec::new();
    let control = control::router(Arc::clone(&emu));
    for l in std::iter::once(listeners.api).chain(listeners.api_extra) {
        let api_emu = Arc::clone(&emu);
        let control = control.clone();
        tasks.push(tokio::spawn(server::run(
            l,
            move |req: axum::http::Request<axum::body::Body>| {
                let emu = Arc::clone(&api_emu);
                let control = control.clone();
                async move {
                    if req.uri().path().starts_with("/_emulator/") {
                        match control.oneshot(req).await {
                            Ok(r) => Ok(r),
                            Err(never) => match never {},
                        }
                    } else {
                        api::handle(emu, req).await
                    }
                }
            },
            rx.clone(),
        )));
    }
    let as_instance = listeners
        .instance_metadata
        .into_iter()
        .map(|(id, l)| (Some(Arc::<str>::from(id)), l));
    for (instance, l) in listeners
        .metadata
        .into_iter()
        .map(|l| (None, l))
        .chain(as_instance)
    {
        let md_emu = Arc::clone(&emu);
        tasks.push(tokio::spawn(server::run(
            l,
            move |req| metadata::handle(Arc::clone(&md_emu), instance.clone(), req),
            rx.clone(),
        )));
    }
    tracing::info!(api = %info.api_url, metadata = %info.metadata_url, "ecs-emulator ready");
    Ok(Running {
        info,
        emulator: emu,
        shutdown: tx,
        tasks,
    })
}

/// Starts the emulator, calls `on_ready` with its ready info, serves until
/// `shutdown` completes, then stops.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(&ReadyInfo),
) -> Result<(), EmulatorError> {
    let running = start(config, listeners)?;
    if let Some(h) = &running.emulator.hotplug {
        h.prepare().await?;
    }
    on_ready(&running.info);
    shutdown.await;
    running.shutdown().await;
    Ok(())
}

/// The bridges of the VMs' vSwitches: every vSwitch of the VPCs the VMs'
/// primary vSwitches belong to.
fn vm_bridges(st: &State, vms: &HashMap<String, QemuVm>) -> Vec<BridgeSpec> {
    let vpcs: Vec<&str> = vms
        .keys()
        .filter_map(|id| st.instances.get(id))
        .filter_map(|i| st.vswitches.get(&i.vswitch_id))
        .map(|v| v.vpc_id.as_str())
        .collect();
    st.vswitches
        .values()
        .filter(|v| vpcs.contains(&v.vpc_id.as_str()))
        .map(|v| BridgeSpec {
            vswitch_id: v.id.clone(),
            gateway: v.cidr.gateway(),
            prefix_len: v.cidr.len,
        })
        .collect()
}

fn ready_info(st: &State, api_base: &str, metadata_urls: &[String]) -> ReadyInfo {
    let key = st
        .access_keys
        .values()
        .find(|k| k.kind == KeyKind::Root && k.active)
        .or_else(|| st.access_keys.values().next());
    let mut enis: Vec<_> = st.enis.values().collect();
    enis.sort_by_key(|e| e.seq);
    let primary = enis
        .iter()
        .find(|e| {
            e.eni_type == "Primary"
                && e.instance_id.as_deref() == Some(st.metadata_instance_id.as_str())
        })
        .map(|e| e.id.clone())
        .unwrap_or_default();
    ReadyInfo {
        api_url: format!("{api_base}/"),
        api_urls: vec![format!("{api_base}/")],
        metadata_url: metadata_urls.first().cloned().unwrap_or_default(),
        metadata_urls: metadata_urls.to_vec(),
        control_url: format!("{api_base}/_emulator"),
        access_key_id: key.map(|k| k.id.clone()).unwrap_or_default(),
        access_key_secret: key.map(|k| k.secret.clone()).unwrap_or_default(),
        region_id: st.region_id.clone(),
        instance_id: st.metadata_instance_id.clone(),
        eni_ids: enis
            .iter()
            .filter(|e| e.id != primary)
            .map(|e| e.id.clone())
            .collect(),
        primary_eni_id: primary,
        enis: enis
            .iter()
            .map(|e| EniInfo {
                id: e.id.clone(),
                eni_type: e.eni_type.clone(),
                status: e.status.as_str().to_string(),
                zone_id: e.zone_id.clone(),
                vpc_id: e.vpc_id.clone(),
                vswitch_id: e.vswitch_id.clone(),
                mac: e.mac.clone(),
            })
            .collect(),
    }
}
