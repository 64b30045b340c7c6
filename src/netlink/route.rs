//! Routes: `ip route show/add/replace/del`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{NetlinkError, ROUTE_PROTOCOL, collect, dev};
use crate::plan::{IpNet, RouteSpec, Scope};

/// A unicast route as dumped from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Routing table.
    pub table: u32,
    /// Destination.
    pub dst: IpNet,
    /// Gateway.
    pub gateway: Option<IpAddr>,
    /// Preferred source.
    pub pref_src: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// Metric (0 when the kernel omits it).
    pub metric: u32,
    /// rtnetlink protocol (ours is [`ROUTE_PROTOCOL`]).
    pub protocol: u8,
    /// `scope link`.
    pub scope_link: bool,
    /// `onlink`.
    pub onlink: bool,
    message: RouteMessage,
}

impl Route {
    /// The message as dumped, to address this object in a request.
    pub(crate) fn message(&self) -> &RouteMessage {
        &self.message
    }

    /// Parses a route message; `None` for non-unicast, multipath or cloned routes.
    pub fn from_message(m: &RouteMessage) -> Option<Self> {
        if m.header.kind != RouteType::Unicast || m.header.flags.contains(RouteFlags::Cloned) {
            return None;
        }
        let mut table = u32::from(m.header.table);
        let mut dst = None;
        let (mut gateway, mut pref_src, mut oif, mut metric) = (None, None, None, 0);
        for a in &m.attributes {
            match a {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(d) => dst = ip(d),
                RouteAttribute::Gateway(g) => gateway = ip(g),
                RouteAttribute::PrefSource(s) => pref_src = ip(s),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Priority(p) => metric = *p,
                RouteAttribute::MultiPath(_) => return None,
                _ => {}
            }
        }
        let family_any = match m.header.address_family {
            rtnetlink::packet_route::AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            rtnetlink::packet_route::AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => return None,
        };
        Some(Route {
            table,
            dst: IpNet::new(
                dst.unwrap_or(family_any),
                m.header.destination_prefix_length,
            ),
            gateway,
            pref_src,
            oif,
            metric,
            protocol: u8::from(m.header.protocol),
            scope_link: m.header.scope == RouteScope::Link,
            onlink: m.header.flags.contains(RouteFlags::Onlink),
            message: m.clone(),
        })
    }

    /// Whether this is one of eni-agent's routes.
    pub fn is_ours(&self) -> bool {
        self.protocol == ROUTE_PROTOCOL
    }

    /// Same kernel identity as `spec` through `oif`: table, destination and
    /// metric (a replace would hit this route).
    pub fn same_key(&self, spec: &RouteSpec) -> bool {
        self.table == spec.table && self.dst == spec.dst && self.metric == spec.metric
    }

    /// Exactly what `spec` asks for, through `oif`, and ours.
    pub fn matches(&self, spec: &RouteSpec, oif: u32) -> bool {
        self.is_ours()
            && self.same_key(spec)
            && self.oif == Some(oif)
            && self.gateway == spec.gateway
            && self.pref_src == spec.pref_src
            && self.onlink == spec.onlink
            && (!spec.dst.is_ipv4() || self.scope_link == (spec.scope == Scope::Link))
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} table {}", self.dst, self.table)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(o) = self.oif {
            write!(f, " dev {}", dev(o))?;
        }
        write!(f, " metric {} proto {}", self.metric, self.protocol)
    }
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// `ip [-6] route show table all`: every unicast route of one family.
pub async fn route_list(handle: &Handle, ipv6: bool) -> Result<Vec<Route>, NetlinkError> {
    let cmd = if ipv6 {
        "ip -6 route show table all"
    } else {
        "ip route show table all"
    };
    let msgs = collect(cmd, handle.route().get(dump_request(ipv6)).execute()).await?;
    Ok(msgs.iter().filter_map(Route::from_message).collect())
}

/// The table of every route of the family, whatever its type (unicast,
/// unreachable, blackhole, prohibit, multipath…): what makes a table in use.
pub async fn route_tables(handle: &Handle, ipv6: bool) -> Result<Vec<u32>, NetlinkError> {
    let cmd = if ipv6 {
        "ip -6 route show table all"
    } else {
        "ip route show table all"
    };
    let msgs = collect(cmd, handle.route().get(dump_request(ipv6)).execute()).await?;
    Ok(msgs
        .iter()
        .filter(|m| !m.header.flags.contains(RouteFlags::Cloned))
        .map(|m| {
            m.attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(u32::from(m.header.table))
        })
        .collect())
}

/// `ip [-6] route show table <table> [dev <oif>]`: the kernel filters with
/// strict checking on; filtered here too. A table that does not exist yet is empty.
pub async fn route_list_table(
    handle: &Handle,
    ipv6: bool,
    table: u32,
    oif: Option<u32>,
) -> Result<Vec<Route>, NetlinkError> {
    let six = if ipv6 { "-6 " } else { "" };
    let cmd = format!("ip {six}route show table {table}");
    table_dump(handle, cmd, dump_request(ipv6), table, oif).await
}

/// `ip route show table <table> [dev <oif>]` for IPv4 and IPv6 in one dump
/// (`AF_UNSPEC`: the kernel runs each family's filtered dump in turn).
pub async fn route_list_table_both(
    handle: &Handle,
    table: u32,
    oif: Option<u32>,
) -> Result<Vec<Route>, NetlinkError> {
    let cmd = format!("ip -4 route show table {table}; ip -6 route show table {table}");
    table_dump(handle, cmd, RouteMessage::default(), table, oif).await
}

/// Dumps `req` filtered on `table` (and `oif`), in the kernel and here.
async fn table_dump(
    handle: &Handle,
    mut cmd: String,
    mut req: RouteMessage,
    table: u32,
    oif: Option<u32>,
) -> Result<Vec<Route>, NetlinkError> {
    req.attributes.push(RouteAttribute::Table(table));
    if let Some(oif) = oif {
        req.attributes.push(RouteAttribute::Oif(oif));
        cmd.push_str(&format!(" dev {}", dev(oif)));
    }
    let msgs = match collect(&cmd, handle.route().get(req).execute()).await {
        Ok(m) => m,
        // "FIB table does not exist": nothing was ever added to it.
        Err(e) if e.errno() == Some(nix::libc::ENOENT) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(msgs
        .iter()
        .filter_map(Route::from_message)
        .filter(|r| r.table == table && oif.is_none_or(|o| r.oif == Some(o)))
        .collect())
}

/// A dump request with an all-zero header: under strict checking every
/// non-zero header field is a filter (the builder's defaults would filter
/// on table main and protocol static).
fn dump_request(ipv6: bool) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = if ipv6 {
        rtnetlink::packet_route::AddressFamily::Inet6
    } else {
        rtnetlink::packet_route::AddressFamily::Inet
    };
    m
}

/// The netlink message for `spec` through `oif`, stamped with our protocol.
pub(crate) fn route_message(spec: &RouteSpec, oif: u32) -> RouteMessage {
    let proto = RouteProtocol::Other(ROUTE_PROTOCOL);
    let scope = match spec.scope {
        Scope::Link => RouteScope::Link,
        Scope::Universe => RouteScope::Universe,
    };
    match (spec.dst.addr, spec.gateway, spec.pref_src) {
        (IpAddr::V4(d), gw, src) => {
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(d, spec.dst.prefix_len)
                .output_interface(oif)
                .table_id(spec.table)
                .priority(spec.metric)
                .protocol(proto)
                .scope(scope);
            if let Some(IpAddr::V4(g)) = gw {
                b = b.gateway(g);
            }
            if let Some(IpAddr::V4(s)) = src {
                b = b.pref_source(s);
            }
            if spec.onlink {
                b = b.onlink();
            }
            b.build()
        }
        (IpAddr::V6(d), gw, src) => {
            let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(d, spec.dst.prefix_len)
                .output_interface(oif)
                .table_id(spec.table)
                .priority(spec.metric)
                .protocol(proto);
            if let Some(IpAddr::V6(g)) = gw {
                b = b.gateway(g);
            }
            if let Some(IpAddr::V6(s)) = src {
                b = b.pref_source(s);
            }
            if spec.onlink {
                b = b.onlink();
            }
            b.build()
        }
    }
}

/// `ip route del <route>` (the dumped route, matched exactly).
pub async fn route_del(handle: &Handle, route: &Route) -> Result<(), NetlinkError> {
    handle
        .route()
        .del(route.message.clone())
        .execute()
        .await
        .map_err(|e| NetlinkError::request(format!("ip route del {route}"), e))
}
