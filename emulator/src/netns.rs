//! Network-namespace plumbing for the `serve` command: open a named
//! namespace (`ip netns add NAME` creates `/var/run/netns/NAME`), bind a
//! socket inside it (the metadata service at `100.100.100.200:80` on the
//! namespace's `lo`), and move the emulator into a private namespace of its
//! own so veth peers never land in the host's namespace.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::os::fd::{AsFd, OwnedFd};

use futures_util::TryStreamExt;
use nix::sched::CloneFlags;
use rtnetlink::LinkUnspec;

/// The metadata service address inside an instance.
pub const METADATA_ADDR: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

/// Namespace set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace could not be opened.
    #[error("cannot open network namespace {name:?}: {source}")]
    Open {
        /// Name or path.
        name: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A namespace switch failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// Operation.
        op: &'static str,
        /// Cause.
        source: nix::Error,
    },
    /// Netlink or socket failure.
    #[error("{op} failed: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("netlink {op} failed: {source}")]
    Netlink {
        /// Operation.
        op: &'static str,
        /// Cause.
        source: rtnetlink::Error,
    },
    /// The helper thread died.
    #[error("namespace helper thread panicked")]
    Thread,
}

/// Opens a namespace by name (`/var/run/netns/NAME`) or by path.
pub fn open(name: &str) -> Result<OwnedFd, NetnsError> {
    let path = if name.contains('/') {
        name.to_string()
    } else {
        format!("/var/run/netns/{name}")
    };
    std::fs::File::open(&path)
        .map(OwnedFd::from)
        .map_err(|source| NetnsError::Open {
            name: name.to_string(),
            source,
        })
}

/// Moves the calling thread (and the threads it starts later) into a new,
/// private network namespace.
pub fn unshare_private() -> Result<(), NetnsError> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Sys {
        op: "unshare(CLONE_NEWNET)",
        source,
    })
}

/// Inside namespace `ns`: brings `lo` up, adds `addr`'s IPv4 address as a
/// /32 to it (unless it is a loopback address) and binds a listener on
/// `addr` (e.g. the metadata service at `100.100.100.200:80`). The socket
/// stays in that namespace whichever thread later uses it.
pub fn bind_in(ns: &OwnedFd, addr: SocketAddrV4) -> Result<TcpListener, NetnsError> {
    let fd = ns
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| NetnsError::Io { op: "dup", source })?;
    std::thread::spawn(move || -> Result<TcpListener, NetnsError> {
        nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Sys {
            op: "setns",
            source,
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| NetnsError::Io {
                op: "runtime",
                source,
            })?;
        rt.block_on(add_lo_address(*addr.ip()))?;
        let l = TcpListener::bind(SocketAddr::V4(addr)).map_err(|source| NetnsError::Io {
            op: "bind inside the namespace",
            source,
        })?;
        l.set_nonblocking(true).map_err(|source| NetnsError::Io {
            op: "set_nonblocking",
            source,
        })?;
        Ok(l)
    })
    .join()
    .map_err(|_| NetnsError::Thread)?
}

async fn add_lo_address(ip: Ipv4Addr) -> Result<(), NetnsError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| NetnsError::Io {
        op: "netlink socket",
        source,
    })?;
    tokio::spawn(conn);
    let lo = handle
        .link()
        .get()
        .match_name("lo")
        .execute()
        .try_next()
        .await
        .map_err(|source| NetnsError::Netlink {
            op: "get lo",
            source,
        })?
        .map(|l| l.header.index)
        .unwrap_or(1);
    handle
        .link()
        .set(LinkUnspec::new_with_index(lo).up().build())
        .execute()
        .await
        .map_err(|source| NetnsError::Netlink {
            op: "lo up",
            source,
        })?;
    if ip.is_loopback() {
        return Ok(());
    }
    match handle.address().add(lo, ip.into(), 32).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(m))
            if m.raw_code() == -(nix::errno::Errno::EEXIST as i32) =>
        {
            Ok(())
        }
        Err(source) => Err(NetnsError::Netlink {
            op: "add address to lo",
            source,
        }),
    }
}
