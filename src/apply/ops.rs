//! The operations the reconciler sends, each printable as its `ip` command.

use std::fmt;

use crate::ethtool::Channels;
use crate::netlink::{Addr, Route, Rule};
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
