//! Thin rtnetlink wrappers: dumps parsed into small domain types, link
//! changes and removals one `ip` verb per function, additions batched
//! ([`Batcher`]), and the event subscription the watcher uses.
//!
//! Every route and rule created here carries [`ROUTE_PROTOCOL`]; callers use
//! the protocol of dumped objects to tell ours from everyone else's.
//! Nothing here decides *what* to change: that is `crate::apply`.

mod addr;
mod batch;
mod filter;
mod link;
mod route;
mod rule;
mod watch;

use futures_util::TryStreamExt;
use rtnetlink::Handle;

pub use crate::plan::ROUTE_PROTOCOL;
pub(crate) use addr::addr_message;
pub use addr::{
    ADDR_PROTOCOL, Addr, addr_del, addr_list, addr_list_all, addr_protocol_supported,
    wanted_flags_for,
};
pub use batch::{BatchError, Batcher, Request};
pub use link::{Link, link_list, link_set_mtu, link_set_up, link_show};
pub(crate) use route::route_message;
pub use route::{
    Route, route_del, route_list, route_list_table, route_list_table_both, route_tables,
};
pub(crate) use rule::rule_message;
pub use rule::{Rule, rule_del, rule_list};
pub use watch::{Event, EventStream, Interest, subscribe};

/// A netlink operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened or configured.
    #[error("cannot open an rtnetlink socket: {0} (eni-agent needs CAP_NET_ADMIN)")]
    Socket(#[source] std::io::Error),
    /// The kernel refused a request or a dump failed.
    #[error("`{cmd}` failed: {detail}")]
    Request {
        /// The equivalent `ip` command.
        cmd: String,
        /// The errno, if the kernel sent one.
        errno: Option<i32>,
        /// The kernel's or the library's message.
        detail: String,
    },
}

impl NetlinkError {
    /// The errno the kernel answered with, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Request { errno, .. } => *errno,
            Self::Socket(e) => e.raw_os_error(),
        }
    }

    /// The same error again (for reporting one failure to several callers).
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Socket(e) => Self::Socket(std::io::Error::new(e.kind(), e.to_string())),
            Self::Request { cmd, errno, detail } => Self::Request {
                cmd: cmd.clone(),
                errno: *errno,
                detail: detail.clone(),
            },
        }
    }

    pub(crate) fn request(cmd: impl Into<String>, e: rtnetlink::Error) -> Self {
        let (errno, detail) = match &e {
            rtnetlink::Error::NetlinkError(m) => {
                let io = m.to_io();
                (io.raw_os_error(), io.to_string())
            }
            other => (None, other.to_string()),
        };
        Self::Request {
            cmd: cmd.into(),
            errno,
            detail,
        }
    }
}

/// Opens a request socket and spawns its connection task on the current
/// tokio runtime (which must be running, and in the wanted network namespace).
///
/// The socket has `NETLINK_GET_STRICT_CHK` on where the kernel supports it
/// (4.20+), so filtered dumps ([`route_list_table`], [`addr_list`]) are
/// filtered by the kernel; results are filtered here as well, for older kernels.
pub fn connect() -> Result<Handle, NetlinkError> {
    let (conn, handle, _) = match rtnetlink::new_connection_with_strict_check() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(
                "NETLINK_GET_STRICT_CHK unavailable ({e}); dumps are filtered in user space"
            );
            rtnetlink::new_connection().map_err(NetlinkError::Socket)?
        }
    };
    tokio::spawn(conn);
    Ok(handle)
}

/// Collects a dump stream, naming `cmd` in the error.
pub(crate) async fn collect<T>(
    cmd: &str,
    stream: impl futures_util::Stream<Item = Result<T, rtnetlink::Error>>,
) -> Result<Vec<T>, NetlinkError> {
    stream
        .try_collect()
        .await
        .map_err(|e| NetlinkError::request(cmd, e))
}

/// `dev` as printed in messages and `ip` commands: the link's name as it is
/// now, else (the link is gone) `if<index>`.
pub(crate) fn dev(index: u32) -> String {
    nix::net::if_::if_indextoname(index)
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("if{index}"))
}
