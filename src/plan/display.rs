//! `Display` for a [`Plan`]: the equivalent shell commands.
//!
//! The output is what `eni-agent plan` prints. The agent itself never runs
//! these commands; they are a readable description of the netlink, ioctl and
//! /proc/sys operations it performs, in the same order.

use std::fmt;

use super::desired::{
    AddressSpec, Plan, ROUTE_PROTOCOL, RouteSpec, RuleSpec, Scope, SysctlSpec, TABLE_MAIN,
};

/// A plan printed for a known interface name.
#[derive(Debug, Clone, Copy)]
pub struct WithDev<'a> {
    plan: &'a Plan,
    dev: &'a str,
}

impl Plan {
    /// Prints the plan with `dev` as the interface name instead of `$DEV`.
    pub fn with_dev<'a>(&'a self, dev: &'a str) -> WithDev<'a> {
        WithDev { plan: self, dev }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.with_dev("$DEV"), f)
    }
}

impl fmt::Display for WithDev<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, dev) = (self.plan, self.dev);
        write!(
            f,
            "# {}: MAC {}, routing table {}",
            p.eni_id, p.mac, p.table
        )?;
        if let Some(card) = p.network_card_index {
            write!(f, ", NetworkCardIndex {card}")?;
        }
        writeln!(f)?;
        if dev == "$DEV" {
            writeln!(f, "# DEV is the link whose (permanent) MAC is {}", p.mac)?;
        }
        for s in &p.sysctls {
            writeln!(f, "{}", SysctlCmd(s, dev))?;
        }
        if let Some(mtu) = p.mtu {
            writeln!(f, "ip link set dev {dev} mtu {mtu}")?;
        }
        if let Some(q) = p.queues {
            writeln!(
                f,
                "ethtool -L {dev} combined {q}    # or: rx {q} tx {q}; clamped to the driver's maximum"
            )?;
        }
        writeln!(f, "ip link set dev {dev} up")?;
        for a in &p.addresses {
            writeln!(f, "{}", AddrCmd("add", a, dev))?;
        }
        for r in &p.routes {
            writeln!(f, "{}", RouteCmd("add", r, dev))?;
        }
        for r in &p.rules {
            writeln!(f, "{}", RuleCmd("add", r))?;
        }
        Ok(())
    }
}

/// `sysctl -w net.ipv4.conf.DEV.rp_filter=2`
pub(crate) struct SysctlCmd<'a>(pub &'a SysctlSpec, pub &'a str);

impl fmt::Display for SysctlCmd<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sysctl -w {}={}", self.0.key.name(self.1), self.0.value)
    }
}

/// `ip address add 10.0.0.5/24 dev DEV noprefixroute`
pub(crate) struct AddrCmd<'a>(pub &'a str, pub &'a AddressSpec, pub &'a str);

impl fmt::Display for AddrCmd<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AddrCmd(verb, a, dev) = self;
        write!(
            f,
            "ip address {verb} {}/{} dev {dev} noprefixroute",
            a.addr, a.prefix_len
        )?;
        if a.addr.is_ipv6() {
            f.write_str(" nodad")?;
        }
        Ok(())
    }
}

/// `ip route add default via 10.0.0.253 dev DEV src 10.0.0.5 table 10001 proto 237`
pub(crate) struct RouteCmd<'a>(pub &'a str, pub &'a RouteSpec, pub &'a str);

impl fmt::Display for RouteCmd<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RouteCmd(verb, r, dev) = self;
        let six = if r.dst.is_ipv4() { "" } else { "-6 " };
        write!(f, "ip {six}route {verb} ")?;
        if r.dst.prefix_len == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}", r.dst)?;
        }
        if let Some(gw) = r.gateway {
            write!(f, " via {gw}")?;
        }
        write!(f, " dev {dev}")?;
        if r.scope == Scope::Link {
            f.write_str(" scope link")?;
        }
        if let Some(src) = r.pref_src {
            write!(f, " src {src}")?;
        }
        if r.onlink {
            f.write_str(" onlink")?;
        }
        write!(f, " table {}", TableName(r.table))?;
        write!(f, " metric {} proto {ROUTE_PROTOCOL}", r.metric)
    }
}

/// `ip rule add from 10.0.0.5 lookup 10001 suppress_prefixlength 0 pref 20100 proto 237`
pub(crate) struct RuleCmd<'a>(pub &'a str, pub &'a RuleSpec);

impl fmt::Display for RuleCmd<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RuleCmd(verb, r) = self;
        let six = if r.ipv6 { "-6 " } else { "" };
        write!(f, "ip {six}rule {verb}")?;
        if let Some(src) = r.src {
            if src.prefix_len == src.max_len() {
                write!(f, " from {}", src.addr)?;
            } else {
                write!(f, " from {src}")?;
            }
        }
        write!(f, " lookup {}", TableName(r.table))?;
        if let Some(s) = r.suppress_prefixlen {
            write!(f, " suppress_prefixlength {s}")?;
        }
        write!(f, " pref {} proto {ROUTE_PROTOCOL}", r.priority)
    }
}

struct TableName(u32);

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == TABLE_MAIN {
            f.write_str("main")
        } else {
            write!(f, "{}", self.0)
        }
    }
}
