//! Whether udev is still to name a hot-plugged NIC. A NIC the kernel named
//! itself (`eth%d`, `name_assign_type` 1) on a system where udev runs gets
//! its predictable name from udev moments later, and the kernel refuses to
//! rename an interface that is up: configuring it before udev is done leaves
//! it named `ethN` for good. udev is done once its database entry
//! `/run/udev/data/n<ifindex>` exists. Only files are read.

use std::path::Path;

/// `NET_NAME_ENUM`: the kernel enumerated the name.
const NET_NAME_ENUM: &str = "1";

/// True while udev is expected to rename the NIC `name` (index `ifindex`)
/// and has not processed it yet.
pub fn pending(ifindex: u32, name: &str) -> bool {
    pending_under(Path::new("/"), ifindex, name)
}

fn pending_under(root: &Path, ifindex: u32, name: &str) -> bool {
    let udev_runs = root.join("run/udev/control").exists();
    let enumerated =
        std::fs::read_to_string(root.join(format!("sys/class/net/{name}/name_assign_type")))
            .is_ok_and(|t| t.trim() == NET_NAME_ENUM);
    let processed = root.join(format!("run/udev/data/n{ifindex}")).exists();
    udev_runs && enumerated && !processed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_only_for_a_kernel_named_nic_udev_has_not_processed() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        std::fs::create_dir_all(r.join("sys/class/net/eth1")).expect("sys");
        std::fs::write(r.join("sys/class/net/eth1/name_assign_type"), "1\n").expect("type");
        assert!(!pending_under(r, 3, "eth1"), "no udev: nothing to wait for");
        std::fs::create_dir_all(r.join("run/udev/data")).expect("run");
        std::fs::write(r.join("run/udev/control"), "").expect("control");
        assert!(pending_under(r, 3, "eth1"));
        std::fs::write(r.join("run/udev/data/n3"), "").expect("db");
        assert!(!pending_under(r, 3, "eth1"), "udev is done");
        std::fs::create_dir_all(r.join("sys/class/net/veth0")).expect("sys");
        std::fs::write(r.join("sys/class/net/veth0/name_assign_type"), "3\n").expect("type");
        assert!(
            !pending_under(r, 4, "veth0"),
            "a name given by whoever created it stays"
        );
    }
}
