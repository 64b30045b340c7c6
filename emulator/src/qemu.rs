//! Hot-plug of ENIs into a QEMU virtual machine: the instance is a VM whose
//! QMP socket and free `pcie-root-port`s the emulator is given. Plug =
//! `netdev_add` of a multi-queue tap (QEMU creates it in the emulator's
//! network namespace, which QEMU shares), the tap joined to the bridge of the
//! ENI's vSwitch (one bridge per vSwitch, carrying the vSwitch gateway
//! address), then `device_add virtio-net-pci` with the ENI's MAC and
//! `QueueNumber` queues on a free port. Unplug = `device_del`, wait for the
//! `DEVICE_DELETED` event of that device, `netdev_del` (the tap goes with it).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rtnetlink::{Handle, LinkBridge, LinkUnspec};
use serde_json::{Value, json};

use crate::hotplug::{HotplugError, NicSpec};
use crate::qmp::Qmp;

/// How long QEMU may take to answer a QMP command.
const QMP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the guest may take to release an unplugged device.
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(30);

/// One VM: where its QMP socket is and which root ports are free for NICs.
#[derive(Debug, Clone)]
pub struct QemuVm {
    /// The QMP socket (`-qmp unix:PATH,server=on,wait=off`), used by the
    /// emulator alone.
    pub qmp_socket: PathBuf,
    /// Ids of free `pcie-root-port` devices, in the order they are used.
    pub ports: Vec<String>,
}

/// A vSwitch as a bridge in the emulator's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// The vSwitch.
    pub vswitch_id: String,
    /// Its gateway address (on the bridge).
    pub gateway: Ipv4Addr,
    /// The vSwitch prefix length.
    pub prefix_len: u8,
}

/// The bridge of vSwitch `vswitch_id`: `br-` and the id without its `vsw-`
/// prefix, cut to the 15 characters of an interface name.
pub fn bridge_name(vswitch_id: &str) -> String {
    let short = vswitch_id.strip_prefix("vsw-").unwrap_or(vswitch_id);
    format!("br-{short}").chars().take(15).collect()
}

/// The bridge's own MAC: fixed (locally administered, from the vSwitch id),
/// because a bridge without one takes the lowest MAC of its ports, so plugging
/// or unplugging an ENI's tap would change the gateway's MAC under the guest's
/// neighbour cache and cut its primary NIC off for half a minute.
pub fn bridge_mac(vswitch_id: &str) -> [u8; 6] {
    // FNV-1a: stable across runs and builds.
    let h = vswitch_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let b = h.to_be_bytes();
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

/// The tap of a NIC: `et-` and the MAC's hex digits after `00:16:3e`.
pub fn tap_name(mac: &str) -> String {
    let hex: String = mac.chars().filter(char::is_ascii_hexdigit).collect();
    let tail = hex.get(hex.len().saturating_sub(6)..).unwrap_or(&hex);
    format!("et-{tail}")
}

#[derive(Debug, Clone)]
struct Plugged {
    instance_id: String,
    port: String,
    device: String,
    netdev: String,
}

/// The QEMU side of hot-plug.
#[derive(Debug)]
pub struct QemuBackend {
    handle: Handle,
    vms: HashMap<String, QemuVm>,
    bridges: Vec<BridgeSpec>,
    /// ENI id → its plugged device. The lock also serializes QMP use.
    plugged: tokio::sync::Mutex<HashMap<String, Plugged>>,
    counter: AtomicU32,
}

fn netlink(op: &'static str) -> impl FnOnce(rtnetlink::Error) -> HotplugError {
    move |source| HotplugError::Netlink { op, source }
}

fn is_errno(e: &rtnetlink::Error, errno: nix::errno::Errno) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -(errno as i32))
}

impl QemuBackend {
    /// A backend plugging into `vms` (instance id → VM) through `handle`
    /// (a netlink connection in the namespace QEMU runs in); `bridges` are
    /// the vSwitches [`QemuBackend::prepare`] creates.
    pub fn new(
        handle: Handle,
        vms: HashMap<String, QemuVm>,
        bridges: Vec<BridgeSpec>,
    ) -> QemuBackend {
        QemuBackend {
            handle,
            vms,
            bridges,
            plugged: tokio::sync::Mutex::new(HashMap::new()),
            counter: AtomicU32::new(0),
        }
    }

    /// True if `instance_id` is a QEMU VM.
    pub fn serves(&self, instance_id: &str) -> bool {
        self.vms.contains_key(instance_id)
    }

    /// Creates every vSwitch bridge with its gateway address, up.
    pub async fn prepare(&self) -> Result<(), HotplugError> {
        for b in &self.bridges {
            self.ensure_bridge(b).await?;
        }
        Ok(())
    }

    async fn index_of(&self, name: &str) -> Result<Option<u32>, HotplugError> {
        crate::hotplug::link_index(&self.handle, name).await
    }

    async fn ensure_bridge(&self, b: &BridgeSpec) -> Result<u32, HotplugError> {
        let name = bridge_name(&b.vswitch_id);
        let index = match self.index_of(&name).await? {
            Some(i) => i,
            None => {
                self.handle
                    .link()
                    .add(
                        LinkBridge::new(&name)
                            .address(bridge_mac(&b.vswitch_id).to_vec())
                            .build(),
                    )
                    .execute()
                    .await
                    .map_err(netlink("bridge add"))?;
                self.index_of(&name)
                    .await?
                    .ok_or_else(|| HotplugError::Missing(name.clone()))?
            }
        };
        match self
            .handle
            .address()
            .add(index, b.gateway.into(), b.prefix_len)
            .execute()
            .await
        {
            Err(e) if !is_errno(&e, nix::errno::Errno::EEXIST) => {
                return Err(HotplugError::Netlink {
                    op: "gateway address add",
                    source: e,
                });
            }
            _ => {}
        }
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(netlink("bridge up"))?;
        Ok(index)
    }

    /// Plugs the NIC of `nic` into its VM (replacing a previous one of the
    /// same ENI); returns the QEMU device id. The primary ENI is the VM's
    /// boot NIC (on the QEMU command line) and is left alone.
    pub async fn plug(&self, nic: &NicSpec) -> Result<String, HotplugError> {
        let vm = self
            .vms
            .get(&nic.instance_id)
            .ok_or_else(|| HotplugError::NoNamespace(nic.instance_id.clone()))?;
        if nic.primary {
            return Ok(String::new());
        }
        let mut plugged = self.plugged.lock().await;
        if let Some(old) = plugged.remove(&nic.eni_id) {
            self.unplug_device(vm, &old).await?;
        }
        let port = vm
            .ports
            .iter()
            .find(|p| {
                !plugged
                    .values()
                    .any(|d| d.instance_id == nic.instance_id && &d.port == *p)
            })
            .ok_or_else(|| HotplugError::NoFreePort(nic.instance_id.clone()))?
            .clone();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let queues = nic.queues.max(1);
        let tap = tap_name(&nic.mac);
        let entry = Plugged {
            instance_id: nic.instance_id.clone(),
            port,
            device: format!("eni{n}"),
            netdev: format!("hn{n}"),
        };
        let bridge = self
            .ensure_bridge(&BridgeSpec {
                vswitch_id: nic.vswitch_id.clone(),
                gateway: nic.gateway,
                prefix_len: nic.prefix_len,
            })
            .await?;
        let mut qmp = Qmp::connect(&vm.qmp_socket, QMP_TIMEOUT).await?;
        qmp.execute(
            "netdev_add",
            Some(json!({
                "type": "tap", "id": entry.netdev, "ifname": tap, "script": "no",
                "downscript": "no", "queues": queues, "vhost": false,
            })),
        )
        .await?;
        let added = async {
            let index = self
                .index_of(&tap)
                .await?
                .ok_or_else(|| HotplugError::Missing(tap.clone()))?;
            self.handle
                .link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .controller(bridge)
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(netlink("tap to bridge"))?;
            let mut dev = json!({
                "driver": "virtio-net-pci", "bus": entry.port, "id": entry.device,
                "netdev": entry.netdev, "mac": nic.mac,
            });
            if queues > 1 {
                dev["mq"] = Value::from("on");
                dev["vectors"] = Value::from(2 * queues + 2);
            }
            qmp.execute("device_add", Some(dev)).await?;
            Ok::<(), HotplugError>(())
        }
        .await;
        if let Err(e) = added {
            let _ = qmp
                .execute("netdev_del", Some(json!({ "id": entry.netdev })))
                .await;
            return Err(e);
        }
        tracing::info!(eni = %nic.eni_id, instance = %nic.instance_id, device = %entry.device,
            port = %entry.port, %tap, mac = %nic.mac, queues, "NIC hot-plugged into the VM");
        let device = entry.device.clone();
        plugged.insert(nic.eni_id.clone(), entry);
        Ok(device)
    }

    /// Unplugs the NIC of `eni_id`, if plugged.
    pub async fn unplug(&self, eni_id: &str) -> Result<(), HotplugError> {
        let mut plugged = self.plugged.lock().await;
        let Some(old) = plugged.remove(eni_id) else {
            return Ok(());
        };
        let Some(vm) = self.vms.get(&old.instance_id) else {
            return Ok(());
        };
        self.unplug_device(vm, &old).await?;
        tracing::info!(eni = %eni_id, device = %old.device, "NIC unplugged from the VM");
        Ok(())
    }

    async fn unplug_device(&self, vm: &QemuVm, d: &Plugged) -> Result<(), HotplugError> {
        let mut qmp = Qmp::connect(&vm.qmp_socket, QMP_TIMEOUT).await?;
        match qmp
            .execute("device_del", Some(json!({ "id": d.device })))
            .await
        {
            Ok(_) => {
                // QEMU also reports the virtio backend child (path only):
                // wait for the device itself.
                let device = d.device.clone();
                qmp.wait_event("DEVICE_DELETED", UNPLUG_TIMEOUT, move |data| {
                    data.get("device").and_then(Value::as_str) == Some(device.as_str())
                })
                .await?;
            }
            Err(crate::qmp::QmpError::Command { class, .. }) if class == "DeviceNotFound" => {}
            Err(e) => return Err(e.into()),
        }
        qmp.execute("netdev_del", Some(json!({ "id": d.netdev })))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_macs_are_fixed_local_unicast_and_differ_per_vswitch() {
        let a = bridge_mac("vsw-vm0a");
        assert_eq!(a, bridge_mac("vsw-vm0a"));
        assert_ne!(a, bridge_mac("vsw-vm0b"));
        assert_eq!(a[0] & 0x03, 0x02, "locally administered unicast: {a:02x?}");
    }

    #[test]
    fn names_fit_an_interface_name() {
        assert_eq!(bridge_name("vsw-emu0zonei"), "br-emu0zonei");
        assert_eq!(bridge_name("vsw-a-very-long-vswitch-id").len(), 15);
        assert_eq!(tap_name("00:16:3e:10:00:02"), "et-100002");
        assert!(tap_name("00:16:3E:AB:CD:EF").len() <= 15);
    }
}
