//! The guard before an ENI is taken on: the primary NIC and any NIC or
//! address that is not the agent's are never touched, whatever the API says.

use std::net::IpAddr;

use crate::mac::MacAddr;
use crate::netlink::{
    Addr, Link, Route, addr_list_all, link_list, route_list_table_both, wanted_flags_for,
};
use crate::plan::TABLE_MAIN;

use super::diff::KERNEL_PROTOCOLS;
use super::{ApplyError, Reconciler};

/// What the guard is told about the ENI.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The ENI id.
    pub eni_id: &'a str,
    /// Its MAC, as the API says.
    pub mac: MacAddr,
    /// Its addresses, as the API says.
    pub addresses: &'a [IpAddr],
    /// The instance's primary MAC (metadata `mac`), when known.
    pub primary_mac: Option<MacAddr>,
}

impl Reconciler {
    /// Refuses an ENI whose MAC is the primary NIC's (metadata `mac`, or the
    /// NIC holding a default route that is not the agent's), whose NIC
    /// already carries addresses or routes the agent did not add, or whose
    /// addresses are already on another link. Reads the kernel; changes
    /// nothing.
    pub async fn guard(&self, c: &Candidate<'_>) -> Result<(), ApplyError> {
        let refuse = |reason: String| ApplyError::Untouchable {
            eni_id: c.eni_id.to_owned(),
            mac: c.mac.to_string(),
            reason,
        };
        if c.primary_mac == Some(c.mac) {
            return Err(refuse(
                "it is the instance's primary NIC (the metadata service's `mac`)".to_owned(),
            ));
        }
        let _dumping = self.dumping.lock().await;
        let links = link_list(&self.handle).await?;
        let mut main = route_list_table_both(&self.handle, TABLE_MAIN, None).await?;
        main.retain(|r| r.table == TABLE_MAIN);
        let addrs = addr_list_all(&self.handle).await?;
        check(c, &links, &main, &addrs).map_err(refuse)
    }
}

/// The pure part of [`Reconciler::guard`]: why the ENI must not be taken on.
pub fn check(
    c: &Candidate<'_>,
    links: &[Link],
    main: &[Route],
    addrs: &[Addr],
) -> Result<(), String> {
    // Any link carrying the MAC, stacked ones (bond, VLAN) included.
    let carriers: Vec<&Link> = links
        .iter()
        .filter(|l| l.mac == Some(c.mac) || l.perm_mac == Some(c.mac))
        .collect();
    for l in &carriers {
        if let Some(r) = main
            .iter()
            .find(|r| r.oif == Some(l.index) && r.dst.prefix_len == 0 && !r.is_ours())
        {
            return Err(format!(
                "its NIC {} holds the default route `{r}`: it is the instance's primary NIC",
                l.name
            ));
        }
        if let Some(r) = main.iter().find(|r| {
            r.oif == Some(l.index) && !r.is_ours() && !KERNEL_PROTOCOLS.contains(&r.protocol)
        }) {
            return Err(format!(
                "its NIC {} carries the route `{r}` (proto {}) that eni-agent did not add",
                l.name, r.protocol
            ));
        }
        // An address of the ENI in the agent's shape may predate the mark.
        let agents_shape =
            |a: &Addr| c.addresses.contains(&a.addr) && a.flags.contains(wanted_flags_for(a.addr));
        if let Some(a) = addrs.iter().find(|a| {
            a.index == l.index && !a.is_kernel_made() && !a.is_marked() && !agents_shape(a)
        }) {
            return Err(format!(
                "its NIC {} carries the address {}/{} that eni-agent did not add",
                l.name, a.addr, a.prefix_len
            ));
        }
    }
    if let Some(a) = addrs
        .iter()
        .find(|a| c.addresses.contains(&a.addr) && !carriers.iter().any(|l| l.index == a.index))
    {
        let name = links
            .iter()
            .find(|l| l.index == a.index)
            .map_or_else(|| format!("ifindex {}", a.index), |l| l.name.clone());
        return Err(format!(
            "its address {} is already on another link ({name})",
            a.addr
        ));
    }
    Ok(())
}
