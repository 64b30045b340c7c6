//! Hot-plug of ENIs as real NICs: a veth pair whose instance-side end has
//! the ENI's MAC and `QueueNumber` rx/tx queues is created directly in the
//! network namespace of the instance the ENI is attached to (one namespace
//! per emulated instance that has one; `IFLA_NET_NS_FD` on the new link,
//! like `ip link add eth1 netns X address … numtxqueues N numrxqueues N type
//! veth peer name emu-pK`); the peer stays in the emulator's own namespace,
//! out of the agent's way. Unplug deletes the peer, which removes both ends.
//! Instances that are QEMU VMs are served by [`crate::qemu`] instead.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

use crate::qemu::{BridgeSpec, QemuBackend, QemuVm};
use crate::qmp::QmpError;

/// A hot-plug failure.
#[derive(Debug, thiserror::Error)]
pub enum HotplugError {
    /// Opening the netlink socket failed.
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    /// A netlink request failed.
    #[error("netlink {op} failed: {source}")]
    Netlink {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: rtnetlink::Error,
    },
    /// The MAC could not be parsed.
    #[error("invalid MAC {0:?}")]
    Mac(String),
    /// The ENI's instance has no namespace to plug into.
    #[error(
        "instance {0} has no network namespace or VM (give it one with --instance-netns or --qemu-vm)"
    )]
    NoNamespace(String),
    /// A link the emulator just created is not there.
    #[error("link {0} is missing right after it was created")]
    Missing(String),
    /// Every root port of the VM holds a NIC.
    #[error("VM of instance {0} has no free pcie-root-port left (give more with --qemu-ports)")]
    NoFreePort(String),
    /// QEMU refused or did not answer.
    #[error("{0}")]
    Qmp(#[from] QmpError),
}

/// Creates and removes the veth pairs.
#[derive(Debug)]
pub struct Hotplug {
    handle: Handle,
    /// Instance id → its network namespace.
    targets: HashMap<String, OwnedFd>,
    counter: AtomicU32,
    /// ENI id → name of the peer end in the emulator's namespace.
    peers: Mutex<HashMap<String, String>>,
    /// Instances that are QEMU VMs.
    qemu: Option<QemuBackend>,
}

/// What a plugged NIC looks like.
#[derive(Debug, Clone)]
pub struct NicSpec {
    /// ENI id.
    pub eni_id: String,
    /// The instance it is attached to (whose namespace receives the NIC).
    pub instance_id: String,
    /// MAC `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// rx and tx queue count.
    pub queues: u32,
    /// Device index (the link is named `eth<index>` when that name is free).
    pub device_index: u32,
    /// The primary ENI (a VM's boot NIC, never hot-plugged into a VM).
    pub primary: bool,
    /// The ENI's vSwitch (a VM's NIC joins that vSwitch's bridge).
    pub vswitch_id: String,
    /// The vSwitch gateway.
    pub gateway: Ipv4Addr,
    /// The vSwitch prefix length.
    pub prefix_len: u8,
}

fn parse_mac(mac: &str) -> Result<Vec<u8>, HotplugError> {
    let bytes: Result<Vec<u8>, _> = mac.split(':').map(|o| u8::from_str_radix(o, 16)).collect();
    match bytes {
        Ok(b) if b.len() == 6 => Ok(b),
        _ => Err(HotplugError::Mac(mac.to_string())),
    }
}

impl Hotplug {
    /// Opens a netlink connection in the current network namespace (the
    /// emulator's own) that plugs the NICs of each instance of `targets`
    /// (instance id → namespace) into its namespace. Must be called inside a
    /// tokio runtime.
    pub fn new(targets: HashMap<String, OwnedFd>) -> Result<Hotplug, HotplugError> {
        Hotplug::with_vms(targets, HashMap::new(), Vec::new())
    }

    /// Like [`Hotplug::new`], and the instances of `vms` are QEMU VMs whose
    /// NICs join the vSwitch bridges of `bridges` in the current namespace
    /// (the one QEMU runs in).
    pub fn with_vms(
        targets: HashMap<String, OwnedFd>,
        vms: HashMap<String, QemuVm>,
        bridges: Vec<BridgeSpec>,
    ) -> Result<Hotplug, HotplugError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        let qemu = (!vms.is_empty()).then(|| QemuBackend::new(handle.clone(), vms, bridges));
        Ok(Hotplug {
            handle,
            targets,
            counter: AtomicU32::new(0),
            peers: Mutex::new(HashMap::new()),
            qemu,
        })
    }

    /// True if NICs of `instance_id` are plugged (it has a namespace or is
    /// a VM).
    pub fn serves(&self, instance_id: &str) -> bool {
        self.targets.contains_key(instance_id)
            || self.qemu.as_ref().is_some_and(|q| q.serves(instance_id))
    }

    /// Creates the vSwitch bridges of the VMs (nothing without VMs).
    pub async fn prepare(&self) -> Result<(), HotplugError> {
        match &self.qemu {
            Some(q) => q.prepare().await,
            None => Ok(()),
        }
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the NIC of `nic` appear in its instance's namespace (replacing
    /// a previous one of the same ENI).
    pub async fn plug(&self, nic: &NicSpec) -> Result<String, HotplugError> {
        if let Some(q) = self.qemu.as_ref().filter(|q| q.serves(&nic.instance_id)) {
            return q.plug(nic).await;
        }
        let target = self
            .targets
            .get(&nic.instance_id)
            .ok_or_else(|| HotplugError::NoNamespace(nic.instance_id.clone()))?;
        self.unplug(&nic.eni_id).await?;
        let mac = parse_mac(&nic.mac)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let peer = format!("emu-p{n}");
        let queues = nic.queues.max(1);
        let mut name = format!("eth{}", nic.device_index);
        let build = |name: &str| {
            LinkVeth::new(name, &peer)
                .address(mac.clone())
                .setns_by_fd(target.as_raw_fd())
                .append_extra_attribute(LinkAttribute::NumTxQueues(queues))
                .append_extra_attribute(LinkAttribute::NumRxQueues(queues))
                .build()
        };
        if let Err(e) = self.handle.link().add(build(&name)).execute().await {
            // The conventional name may be taken in the instance namespace
            // (a renamed NIC, a leftover): fall back to a unique one.
            tracing::debug!(%name, error = %e, "veth name taken, using a unique one");
            name = format!("emu-n{n}");
            self.handle
                .link()
                .add(build(&name))
                .execute()
                .await
                .map_err(|source| HotplugError::Netlink {
                    op: "veth add",
                    source,
                })?;
        }
        self.peers().insert(nic.eni_id.clone(), peer.clone());
        if let Some(index) = self.index_of(&peer).await? {
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
                .map_err(|source| HotplugError::Netlink {
                    op: "peer up",
                    source,
                })?;
        }
        tracing::info!(eni = %nic.eni_id, instance = %nic.instance_id, %name, %peer, mac = %nic.mac, queues, "NIC hot-plugged");
        Ok(name)
    }

    async fn index_of(&self, name: &str) -> Result<Option<u32>, HotplugError> {
        link_index(&self.handle, name).await
    }

    /// Removes the NIC of `eni_id`, if plugged.
    pub async fn unplug(&self, eni_id: &str) -> Result<(), HotplugError> {
        if let Some(q) = &self.qemu {
            q.unplug(eni_id).await?;
        }
        let Some(peer) = self.peers().remove(eni_id) else {
            return Ok(());
        };
        if let Some(index) = self.index_of(&peer).await? {
            self.handle
                .link()
                .del(index)
                .execute()
                .await
                .map_err(|source| HotplugError::Netlink {
                    op: "veth del",
                    source,
                })?;
            tracing::info!(eni = %eni_id, %peer, "NIC unplugged");
        }
        Ok(())
    }
}

/// The index of the link called `name` in `handle`'s namespace, if any.
pub(crate) async fn link_index(
    handle: &rtnetlink::Handle,
    name: &str,
) -> Result<Option<u32>, HotplugError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(l) => Ok(l.map(|l| l.header.index)),
        Err(rtnetlink::Error::NetlinkError(m))
            if m.raw_code() == -(nix::errno::Errno::ENODEV as i32) =>
        {
            Ok(None)
        }
        Err(source) => Err(HotplugError::Netlink {
            op: "link get",
            source,
        }),
    }
}
