//! The event subscription: link, address, route and rule multicast groups.
//!
//! [`subscribe`] joins the groups on its own socket; callers must subscribe
//! BEFORE dumping, so that nothing that happens between the dump and the
//! first event is missed. A receive-buffer overflow (ENOBUFS: events were
//! lost) comes out as [`Event::Overrun`], which means "resync everything".
//!
//! With [`Interest::Removals`] a socket filter drops the notifications of
//! added addresses, routes and rules in the kernel: the converger reacts only
//! to links and removals, and its own applies would otherwise echo hundreds of
//! additions back to it, each woken for and parsed.

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, SocketAddr};

use super::{Addr, Link, NetlinkError, Route, Rule, filter};

/// One kernel notification, parsed.
#[derive(Debug, Clone)]
pub enum Event {
    /// RTM_NEWLINK: a link appeared or changed (flags, MTU, name, ...).
    NewLink(Link),
    /// RTM_DELLINK: a link disappeared.
    DelLink(Link),
    /// RTM_NEWADDR.
    NewAddr(Addr),
    /// RTM_DELADDR.
    DelAddr(Addr),
    /// RTM_NEWROUTE (unicast only).
    NewRoute(Route),
    /// RTM_DELROUTE (unicast only).
    DelRoute(Route),
    /// RTM_NEWRULE.
    NewRule(Rule),
    /// RTM_DELRULE.
    DelRule(Rule),
    /// The socket overflowed and events were lost: resync everything.
    Overrun,
    /// Anything else (ignored).
    Other,
}

/// The groups the watcher needs.
const GROUPS: &[MulticastGroup] = &[
    MulticastGroup::Link,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv6Ifaddr,
    MulticastGroup::Ipv4Route,
    MulticastGroup::Ipv6Route,
    MulticastGroup::Ipv4Rule,
    MulticastGroup::Ipv6Rule,
];

/// Which notifications reach user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Every notification of the groups.
    Everything,
    /// Links (added, changed, removed) and removed addresses, routes and
    /// rules; additions of addresses, routes and rules are filtered out in
    /// the kernel.
    Removals,
}

/// The stream of parsed events.
pub struct EventStream {
    rx: BoxStream<'static, (NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventStream")
    }
}

/// Joins the link, address, route and rule groups and spawns the socket's
/// connection task. `rcvbuf` sets `SO_RCVBUF` (tests use a tiny one to force
/// an overrun).
pub fn subscribe(rcvbuf: Option<usize>, interest: Interest) -> Result<EventStream, NetlinkError> {
    let (mut conn, _handle, rx) =
        rtnetlink::new_multicast_connection(GROUPS).map_err(NetlinkError::Socket)?;
    let socket = conn.socket_mut().socket_mut();
    let raw = std::os::fd::AsRawFd::as_raw_fd(socket);
    // SAFETY: `raw` belongs to `socket`, which outlives this borrow.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    if interest == Interest::Removals {
        filter::drop_additions(&fd).map_err(NetlinkError::Socket)?;
    }
    if let Some(size) = rcvbuf {
        // SO_RCVBUFFORCE passes net.core.rmem_max (root / CAP_NET_ADMIN, which
        // the agent has); without the privilege fall back to SO_RCVBUF, which
        // the kernel caps at rmem_max.
        if nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBufForce, &size).is_err()
        {
            socket.set_rx_buf_sz(size).map_err(NetlinkError::Socket)?;
        }
    }
    tokio::spawn(conn);
    Ok(EventStream { rx: rx.boxed() })
}

impl EventStream {
    /// The next event; `None` once the socket is gone.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.next().await.map(|(m, _)| parse(m))
    }

    /// The next event if one is already queued (used to batch a burst).
    pub fn next_now(&mut self) -> Option<Event> {
        self.rx
            .next()
            .now_or_never()
            .flatten()
            .map(|(m, _)| parse(m))
    }
}

fn parse(m: NetlinkMessage<RouteNetlinkMessage>) -> Event {
    use RouteNetlinkMessage as M;
    match m.payload {
        NetlinkPayload::Overrun(_) => Event::Overrun,
        NetlinkPayload::InnerMessage(inner) => match inner {
            M::NewLink(l) => Event::NewLink(Link::from_message(&l)),
            M::DelLink(l) => Event::DelLink(Link::from_message(&l)),
            M::NewAddress(a) => Addr::from_message(&a).map_or(Event::Other, Event::NewAddr),
            M::DelAddress(a) => Addr::from_message(&a).map_or(Event::Other, Event::DelAddr),
            M::NewRoute(r) => Route::from_message(&r).map_or(Event::Other, Event::NewRoute),
            M::DelRoute(r) => Route::from_message(&r).map_or(Event::Other, Event::DelRoute),
            M::NewRule(r) => Event::NewRule(Rule::from_message(&r)),
            M::DelRule(r) => Event::DelRule(Rule::from_message(&r)),
            _ => Event::Other,
        },
        _ => Event::Other,
    }
}
