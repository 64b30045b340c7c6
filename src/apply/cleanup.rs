//! Cleanup: removing an ENI's rules, its table's routes and the addresses
//! the agent added — only what carries the agent's mark, and nothing on a
//! NIC that no longer has the ENI's MAC.

use crate::netlink::{
    self, NetlinkError, addr_del, addr_list, route_del, route_list, rule_del, rule_list,
};
use crate::plan::{AddressSpec, Plan, TABLE_MAIN};

use super::{CleanupError, Reconciler};

impl Reconciler {
    /// Removes addresses a previous plan listed and the current one does
    /// not — only those the agent added (its mark, or on kernels without the
    /// mark the plan's list, which is what the agent added); an address of
    /// that IP someone else added stays.
    pub async fn remove_addresses(
        &self,
        index: u32,
        gone: &[AddressSpec],
    ) -> Result<Vec<String>, NetlinkError> {
        self.remove_marked_addresses(index, gone, true).await
    }

    /// Every address of the agent's on link `index`: those with its mark,
    /// and on kernels that drop the mark those in `recorded` (what the agent
    /// recorded it added). Nothing else, whatever its IP.
    async fn remove_own_addresses(
        &self,
        index: u32,
        recorded: &[AddressSpec],
    ) -> Result<Vec<String>, NetlinkError> {
        self.remove_marked_addresses(index, recorded, false).await
    }

    /// Deletes the agent's addresses on link `index` (see
    /// [`Addr::is_ours`](netlink::Addr::is_ours)); with `only_listed`
    /// just those whose IP is in `listed`.
    async fn remove_marked_addresses(
        &self,
        index: u32,
        listed: &[AddressSpec],
        only_listed: bool,
    ) -> Result<Vec<String>, NetlinkError> {
        let listed: Vec<std::net::IpAddr> = listed.iter().map(|g| g.addr).collect();
        let mut done = Vec::new();
        for a in addr_list(&self.handle, index).await? {
            if (!only_listed || listed.contains(&a.addr)) && a.is_ours(&listed) {
                addr_del(&self.handle, &a).await?;
                done.push(format!(
                    "ip address del {}/{} dev {}",
                    a.addr,
                    a.prefix_len,
                    netlink::dev(index)
                ));
            }
        }
        Ok(done)
    }

    /// Removes the ENI's rules, its table's routes, its main-table routes and
    /// (when `index` is given, i.e. the link still exists and is the ENI's)
    /// the addresses it added, and nothing else. The shared `lookup main
    /// suppress_prefixlength 0` rule goes with the last ENI. Sysctls and
    /// channel counts stay. Goes on past failures and reports them all.
    pub async fn cleanup(
        &self,
        plan: &Plan,
        index: Option<u32>,
    ) -> Result<Vec<String>, CleanupError> {
        let h = &self.handle;
        let mut ops = Vec::new();
        let mut errors = Vec::new();
        // The NIC is touched only while it still has the ENI's MAC.
        let index = match index {
            Some(ix) => match netlink::link_show(h, ix).await {
                Ok(Some(l)) if l.mac == Some(plan.mac) || l.perm_mac == Some(plan.mac) => Some(ix),
                Ok(Some(l)) => {
                    tracing::warn!(eni = %plan.eni_id, ifindex = ix, name = %l.name, mac = %plan.mac,
                        "the NIC no longer has the ENI's MAC; its addresses and routes are left alone");
                    None
                }
                Ok(None) => None,
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            None => None,
        };
        let mut rules = Vec::new();
        for v6 in [false, true] {
            match rule_list(h, v6).await {
                Ok(r) => rules.extend(r),
                Err(e) => errors.push(e),
            }
        }
        for r in rules
            .iter()
            .filter(|r| r.is_ours() && r.table == plan.table)
        {
            match rule_del(h, r).await {
                Ok(()) => ops.push(format!("ip rule del {r}")),
                Err(e) => errors.push(e),
            }
        }
        for v6 in [false, true] {
            let routes = match route_list(h, v6).await {
                Ok(r) => r,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let ours = routes.iter().filter(|r| {
                r.is_ours()
                    && (r.table == plan.table
                        || (r.table == TABLE_MAIN && index.is_some() && r.oif == index))
            });
            for r in ours {
                match route_del(h, r).await {
                    Ok(()) => ops.push(format!("ip route del {r}")),
                    // Gone already (removed with the link or an address).
                    Err(e) if e.errno() == Some(nix::libc::ESRCH) => {}
                    Err(e) => errors.push(e),
                }
            }
        }
        if let Some(index) = index {
            match self.remove_own_addresses(index, &plan.addresses).await {
                Ok(done) => ops.extend(done),
                Err(e) => errors.push(e),
            }
        }
        // The last ENI out removes the shared main rule of each family.
        for v6 in [false, true] {
            let others = rules.iter().any(|r| {
                r.is_ours() && r.ipv6 == v6 && r.table != TABLE_MAIN && r.table != plan.table
            });
            if others {
                continue;
            }
            for r in rules
                .iter()
                .filter(|r| r.is_ours() && r.ipv6 == v6 && r.table == TABLE_MAIN)
            {
                match rule_del(h, r).await {
                    Ok(()) => ops.push(format!("ip rule del {r}")),
                    Err(e) => errors.push(e),
                }
            }
        }
        if errors.is_empty() {
            Ok(ops)
        } else {
            Err(CleanupError {
                eni_id: plan.eni_id.clone(),
                ops,
                errors,
            })
        }
    }
}
