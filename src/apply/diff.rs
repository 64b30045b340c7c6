//! The pure diff: observed kernel state against the plan, as an ordered list
//! of operations.
//!
//! Order (no transient misroute): sysctls (accept_ra=0 before the link can
//! take an RA), MTU, channels, link up, addresses (`noprefixroute`: nothing
//! lands in main), table routes (subnet before the default route that needs
//! it), rules (the tiers in order, only after their table is filled), the
//! optional main default route; then removal of stale objects of ours, rules
//! before routes.

use crate::ethtool::{Channels, plan_channels};
use crate::netlink::{Addr, Link, Route, Rule};
use crate::plan::{Plan, SysctlSpec, TABLE_MAIN};

use super::ops::Op;

/// Kernel state relevant to one plan, as read by `observe`.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The NIC.
    pub link: Link,
    /// Its addresses.
    pub addrs: Vec<Addr>,
    /// Unicast routes of the plan's table and main's routes through the NIC (both families).
    pub routes: Vec<Route>,
    /// Every rule (both families).
    pub rules: Vec<Rule>,
    /// Current value of each planned sysctl (`None`: not available, skipped).
    pub sysctls: Vec<(SysctlSpec, Option<u32>)>,
    /// Current channels (`None`: the driver reports none).
    pub channels: Option<Channels>,
}

/// Why a plan cannot be applied to what was observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Foreign {
    /// Objects in the ENI's table that eni-agent does not own.
    Table(Vec<String>),
    /// The NIC carries addresses or routes eni-agent did not add (it is
    /// another NIC — the primary, or one someone else configures); it is
    /// never touched.
    Nic(Vec<String>),
}

/// rtnetlink protocols of routes the kernel makes by itself on any NIC
/// (`kernel`: from an address; `ra`: from a router advertisement before
/// `accept_ra=0` landed). Anything else through the NIC is someone's.
pub(super) const KERNEL_PROTOCOLS: [u8; 2] = [2, 9];

/// Addresses and main-table routes on the NIC that eni-agent did not add.
/// An address of the plan in exactly the planned shape counts as the
/// agent's (it may predate the mark, or the kernel may not keep it).
pub fn foreign_on_nic(plan: &Plan, obs: &Observed) -> Vec<String> {
    // Unmarked (someone else's, or the agent's on a kernel that drops the
    // mark): only the plan's exact shape counts as the agent's; anything
    // else is never replaced.
    let addrs = obs
        .addrs
        .iter()
        .filter(|a| !a.is_kernel_made() && !a.is_marked())
        .filter(|a| !plan.addresses.iter().any(|s| a.matches(s)))
        .map(|a| format!("address {}/{}", a.addr, a.prefix_len));
    let routes = obs
        .routes
        .iter()
        .filter(|r| r.table == TABLE_MAIN && r.oif == Some(obs.link.index))
        .filter(|r| !r.is_ours() && !KERNEL_PROTOCOLS.contains(&r.protocol))
        .map(|r| format!("route {r} (proto {})", r.protocol));
    addrs.chain(routes).collect()
}

/// What must be sent to turn `obs` into `plan`. An empty list means converged.
pub fn diff(plan: &Plan, obs: &Observed) -> Result<Vec<Op>, Foreign> {
    let index = obs.link.index;
    let nic = foreign_on_nic(plan, obs);
    if !nic.is_empty() {
        return Err(Foreign::Nic(nic));
    }
    // Every route of the ENI's table goes through its NIC: one of ours
    // through another NIC is another ENI's (a lost or second allocation).
    let foreign: Vec<String> = obs
        .routes
        .iter()
        .filter(|r| r.table == plan.table)
        .filter(|r| !r.is_ours() || r.oif.is_some_and(|o| o != index))
        .map(|r| {
            if r.is_ours() {
                format!("route {r} (another NIC's, ifindex {})", r.oif.unwrap_or(0))
            } else {
                format!("route {r}")
            }
        })
        .chain(
            obs.rules
                .iter()
                .filter(|r| r.table == plan.table && !r.is_ours())
                .map(|r| format!("rule {r}")),
        )
        .collect();
    if !foreign.is_empty() {
        return Err(Foreign::Table(foreign));
    }

    let mut ops = Vec::new();
    for (spec, current) in &obs.sysctls {
        if current.is_some_and(|v| v != spec.value) {
            ops.push(Op::Sysctl(*spec));
        }
    }
    if let Some(mtu) = plan.mtu.filter(|m| obs.link.mtu != Some(*m)) {
        ops.push(Op::SetMtu(mtu));
    }
    if let (Some(want), Some(cur)) = (plan.queues, obs.channels.as_ref()) {
        if let Some(change) = plan_channels(cur, want).filter(|c| c.changes(cur)) {
            ops.push(Op::SetChannels {
                target: change.target,
                clamped_to: change.clamped_to,
            });
        }
    }
    if !obs.link.up {
        ops.push(Op::SetUp);
    }

    // Only an address of ours in the wrong shape is replaced; anything else
    // in the way was refused above (`foreign_on_nic`).
    for spec in &plan.addresses {
        match obs.addrs.iter().find(|a| a.addr == spec.addr) {
            Some(a) if a.matches(spec) => {}
            Some(a) => {
                ops.push(Op::DelAddr(a.clone()));
                ops.push(Op::AddAddr(*spec));
            }
            None => ops.push(Op::AddAddr(*spec)),
        }
    }

    // Routes: the table's first, in plan order; main's (default_route) last.
    let (table_routes, main_routes): (Vec<_>, Vec<_>) =
        plan.routes.iter().partition(|r| r.table != TABLE_MAIN);
    let route_op = |spec: &crate::plan::RouteSpec| {
        if obs.routes.iter().any(|r| r.matches(spec, index)) {
            None
        } else if obs.routes.iter().any(|r| {
            r.is_ours() && r.same_key(spec) && (r.table != TABLE_MAIN || r.oif == Some(index))
        }) {
            Some(Op::ReplaceRoute(spec.clone()))
        } else {
            Some(Op::AddRoute(spec.clone()))
        }
    };
    ops.extend(table_routes.into_iter().filter_map(route_op));

    // Rules: each wanted rule once; extra identical copies of ours are stale.
    let mut used = vec![false; obs.rules.len()];
    for spec in &plan.rules {
        match obs
            .rules
            .iter()
            .enumerate()
            .find(|(i, r)| !used[*i] && r.matches(spec))
        {
            Some((i, _)) => used[i] = true,
            None => ops.push(Op::AddRule(spec.clone())),
        }
    }
    ops.extend(main_routes.into_iter().filter_map(route_op));

    for (i, r) in obs.rules.iter().enumerate() {
        let relevant = r.is_ours()
            && (r.table == plan.table
                || plan
                    .rules
                    .iter()
                    .any(|s| s.table == TABLE_MAIN && r.matches(s)));
        if relevant && !used[i] {
            ops.push(Op::DelRule(r.clone()));
        }
    }
    for r in &obs.routes {
        let relevant = r.is_ours()
            && (r.table == plan.table || (r.table == TABLE_MAIN && r.oif == Some(index)));
        if relevant && !plan.routes.iter().any(|s| r.same_key(s)) {
            ops.push(Op::DelRoute(r.clone()));
        }
    }
    Ok(ops)
}

/// Rules eni-agent does not own that the kernel consults before (or together
/// with) one of ours for the same sources, so traffic may not follow the plan.
/// Reported, never changed. The `local` table rule and a foreign copy of the
/// `lookup main suppress_prefixlength 0` rule are harmless and not reported.
pub fn rules_in_the_way(plan: &Plan, obs: &Observed) -> Vec<String> {
    const TABLE_LOCAL: u32 = 255;
    let overlaps = |a: Option<crate::plan::IpNet>, b: Option<crate::plan::IpNet>| match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => a.contains_net(&b) || b.contains_net(&a),
    };
    obs.rules
        .iter()
        .filter(|r| !r.is_ours() && r.lookup && !r.other_selectors && r.table != TABLE_LOCAL)
        .filter(|r| !(r.table == TABLE_MAIN && r.suppress_prefixlen == Some(0)))
        .filter(|r| {
            plan.rules.iter().any(|s| {
                s.src.is_some()
                    && s.ipv6 == r.ipv6
                    && r.priority <= s.priority
                    && overlaps(r.src, s.src)
            })
        })
        .map(|r| format!("rule `{r}` is not eni-agent's and is consulted before the ENI's rules for the same sources"))
        .collect()
}
