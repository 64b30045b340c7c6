//! The operations the reconciler sends, each printable as its `ip` command.

use std::fmt;

use crate::ethtool::Channels;
use crate::netlink::{Addr, Request, Route, Rule};
use crate::plan::{
    AddressSpec, RouteSpec, RuleSpec, SysctlSpec, display_addr_cmd, display_route_cmd,
    display_rule_cmd, display_sysctl_cmd,
};

/// One change to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write a sysctl.
    Sysctl(SysctlSpec),
    /// Set the MTU.
    SetMtu(u32),
    /// Set the channel counts.
    SetChannels {
        /// The counts.
        target: Channels,
        /// The driver maximum the wanted count was clamped to, if it was.
        clamped_to: Option<u32>,
    },
    /// Bring the link up.
    SetUp,
    /// Add an address.
    AddAddr(AddressSpec),
    /// Delete an address (one of ours with the wrong shape).
    DelAddr(Addr),
    /// Add a route.
    AddRoute(RouteSpec),
    /// Replace a route of ours whose attributes drifted.
    ReplaceRoute(RouteSpec),
    /// Delete a stale route of ours.
    DelRoute(Route),
    /// Add a rule.
    AddRule(RuleSpec),
    /// Delete a stale or duplicate rule of ours.
    DelRule(Rule),
}

impl Op {
    /// The batched netlink request of a pipelined op on link `index`;
    /// `None` for the link-level ops, which run one at a time.
    pub(super) fn request(&self, index: u32) -> Option<Request<'_>> {
        Some(match self {
            Op::Sysctl(_) | Op::SetMtu(_) | Op::SetChannels { .. } | Op::SetUp => return None,
            Op::AddAddr(a) => Request::AddAddr(index, a),
            Op::DelAddr(a) => Request::DelAddr(a),
            Op::AddRoute(r) => Request::AddRoute(r, index),
            Op::ReplaceRoute(r) => Request::ReplaceRoute(r, index),
            Op::DelRoute(r) => Request::DelRoute(r),
            Op::AddRule(r) => Request::AddRule(r),
            Op::DelRule(r) => Request::DelRule(r),
        })
    }
}

/// An [`Op`] printed for interface `dev`.
#[derive(Debug)]
pub struct OpCmd<'a>(pub &'a Op, pub &'a str);

impl fmt::Display for OpCmd<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dev = self.1;
        match self.0 {
            Op::Sysctl(s) => f.write_str(&display_sysctl_cmd(s, dev)),
            Op::SetMtu(m) => write!(f, "ip link set dev {dev} mtu {m}"),
            Op::SetChannels { target: t, .. } if t.max_combined > 0 => {
                write!(f, "ethtool -L {dev} combined {}", t.combined_count)
            }
            Op::SetChannels { target: t, .. } => {
                write!(f, "ethtool -L {dev} rx {} tx {}", t.rx_count, t.tx_count)
            }
            Op::SetUp => write!(f, "ip link set dev {dev} up"),
            Op::AddAddr(a) => f.write_str(&display_addr_cmd("add", a, dev)),
            Op::DelAddr(a) => write!(f, "ip address del {}/{} dev {dev}", a.addr, a.prefix_len),
            Op::AddRoute(r) => f.write_str(&display_route_cmd("add", r, dev)),
            Op::ReplaceRoute(r) => f.write_str(&display_route_cmd("replace", r, dev)),
            Op::DelRoute(r) => write!(f, "ip route del {r}"),
            Op::AddRule(r) => f.write_str(&display_rule_cmd("add", r)),
            Op::DelRule(r) => write!(f, "ip rule del {r}"),
        }
    }
}

/// Where an [`Op`] runs in an apply. Stages run one after another; the
/// operations inside a pipelined stage are independent of each other and are
/// sent together, without waiting for each acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stage {
    /// Sysctls, MTU, channels, link up: before any address (accept_ra=0 and
    /// the link up first), one at a time.
    Link,
    /// Our addresses with the wrong shape go before they are re-added.
    DelAddr,
    /// Addresses, in plan order (the kernel processes one socket's requests
    /// in order, so the primary address is still added first).
    AddAddr,
    /// Routes of the ENI's table without a gateway: the subnet routes a
    /// gateway needs.
    TableRoutes,
    /// Routes of the ENI's table through a gateway.
    TableGatewayRoutes,
    /// Rules, once their table is filled.
    AddRule,
    /// The optional main-table default route.
    MainRoutes,
    /// Stale rules of ours, before the routes they point at.
    DelRule,
    /// Stale routes of ours.
    DelRoute,
}

impl Stage {
    /// The stage `op` belongs to.
    pub(super) fn of(op: &Op) -> Stage {
        match op {
            Op::Sysctl(_) | Op::SetMtu(_) | Op::SetChannels { .. } | Op::SetUp => Stage::Link,
            Op::DelAddr(_) => Stage::DelAddr,
            Op::AddAddr(_) => Stage::AddAddr,
            Op::AddRoute(r) | Op::ReplaceRoute(r) if r.table == crate::plan::TABLE_MAIN => {
                Stage::MainRoutes
            }
            Op::AddRoute(r) | Op::ReplaceRoute(r) if r.gateway.is_none() => Stage::TableRoutes,
            Op::AddRoute(_) | Op::ReplaceRoute(_) => Stage::TableGatewayRoutes,
            Op::AddRule(_) => Stage::AddRule,
            Op::DelRule(_) => Stage::DelRule,
            Op::DelRoute(_) => Stage::DelRoute,
        }
    }

    /// Whether the stage's operations must run one at a time.
    pub(super) fn sequential(self) -> bool {
        self == Stage::Link
    }
}

/// `ops` (in the diff's order) grouped into stages, in stage order; the
/// order inside each stage is kept.
pub(super) fn stages(ops: &[Op]) -> Vec<(Stage, Vec<&Op>)> {
    let mut sorted: Vec<&Op> = ops.iter().collect();
    sorted.sort_by_key(|op| Stage::of(op)); // stable
    let mut out: Vec<(Stage, Vec<&Op>)> = Vec::new();
    for op in sorted {
        let stage = Stage::of(op);
        match out.last_mut() {
            Some((s, group)) if *s == stage => group.push(op),
            _ => out.push((stage, vec![op])),
        }
    }
    out
}
