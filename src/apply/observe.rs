//! Reading the kernel state one plan is about: netlink dumps, sysctls and
//! channel counts.

use rtnetlink::Handle;

use crate::ethtool::{self, EthtoolError};
use crate::netlink::{NetlinkError, Rule, addr_list, link_show, route_list_table_both, rule_list};
use crate::plan::{Plan, SysctlKey, TABLE_MAIN};
use crate::sysctl::Sysctl;

use super::ApplyError;
use super::diff::Observed;

/// Every rule of both families: one dump shared by the ENIs of a pass.
pub(super) async fn all_rules(handle: &Handle) -> Result<Vec<Rule>, NetlinkError> {
    let mut rules = rule_list(handle, false).await?;
    rules.extend(rule_list(handle, true).await?);
    Ok(rules)
}

/// Dumps everything `diff` needs for `plan` on ifindex `index`; `rules` is
/// [`all_rules`], of which the plan's keeps what concerns it.
pub(super) async fn observe(
    handle: &Handle,
    sysctl: &Sysctl,
    plan: &Plan,
    index: u32,
    rules: &[Rule],
) -> Result<Observed, ApplyError> {
    let link = link_show(handle, index)
        .await?
        .ok_or(ApplyError::LinkGone { index })?;
    let addrs = addr_list(handle, index).await?;
    // Only the ENI's table and main's routes through the NIC matter.
    let mut routes = route_list_table_both(handle, plan.table, None).await?;
    routes.extend(route_list_table_both(handle, TABLE_MAIN, Some(index)).await?);
    // Other ENIs' rules are none of this plan's business: keep its table's,
    // main's (the shared rule) and everything not ours (what is in the way).
    let rules = rules
        .iter()
        .filter(|r| !r.is_ours() || r.table == plan.table || r.table == TABLE_MAIN)
        .cloned()
        .collect();

    let mut sysctls = Vec::with_capacity(plan.sysctls.len());
    for spec in &plan.sysctls {
        let current = match sysctl.get(spec.key, &link.name) {
            Ok(v) => Some(v),
            // IPv6 disabled on this host: nothing to set.
            Err(e)
                if e.is_not_found()
                    && matches!(spec.key, SysctlKey::AcceptRa | SysctlKey::DisableIpv6)
                    && !sysctl.ipv6_available() =>
            {
                None
            }
            Err(e) if e.is_not_found() => {
                return Err(ApplyError::Renamed {
                    index,
                    name: link.name,
                });
            }
            Err(e) => return Err(e.into()),
        };
        sysctls.push((*spec, current));
    }

    let channels = match plan.queues {
        None => None,
        Some(_) => match ethtool::channels_get(&link.name) {
            Ok(c) => Some(c),
            Err(EthtoolError::Unsupported { .. }) => None,
            Err(e) if e.is_no_device() => {
                return Err(ApplyError::Renamed {
                    index,
                    name: link.name,
                });
            }
            Err(e) => return Err(e.into()),
        },
    };
    Ok(Observed {
        link,
        addrs,
        routes,
        rules,
        sysctls,
        channels,
    })
}
