//! Links: `ip link show` and `ip link set`.

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkUnspec};

use super::{NetlinkError, collect, dev};
use crate::plan::MacAddr;

/// What the agent needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// ifindex: the stable key (names change).
    pub index: u32,
    /// Current name.
    pub name: String,
    /// Current MAC (`IFLA_ADDRESS`).
    pub mac: Option<MacAddr>,
    /// Permanent MAC (`IFLA_PERM_ADDRESS`), where the driver reports one.
    pub perm_mac: Option<MacAddr>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// `IFLA_INFO_KIND`, like `veth`, `vlan` or `bond`.
    pub kind: Option<String>,
    /// The controller (bond, bridge, VRF) the link is enslaved to.
    pub controller: Option<u32>,
}

/// Kinds that share the MAC of a real NIC and must never be mistaken for it.
const STACKED_KINDS: &[&str] = &[
    "vlan", "bond", "bridge", "macvlan", "macvtap", "ipvlan", "ipvtap", "team",
];

impl Link {
    /// Parses a link message (dump or event).
    pub fn from_message(m: &LinkMessage) -> Self {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            mac: None,
            perm_mac: None,
            mtu: None,
            up: m.header.flags.contains(LinkFlags::Up),
            kind: None,
            controller: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name.clone_from(n),
                LinkAttribute::Address(b) => l.mac = MacAddr::from_bytes(b),
                LinkAttribute::PermAddress(b) => {
                    l.perm_mac = MacAddr::from_bytes(b).filter(|m| !m.is_zero())
                }
                LinkAttribute::Mtu(v) => l.mtu = Some(*v),
                LinkAttribute::Controller(c) if *c != 0 => l.controller = Some(*c),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let NlLinkInfo::Kind(k) = i {
                            l.kind = Some(kind_name(k));
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }

    /// Whether this link is the NIC with `mac`: the permanent address decides
    /// where the driver reports one, else the current one; VLAN, bond, bridge,
    /// macvlan, ipvlan and team devices and enslaved ports never match.
    pub fn is_nic_with_mac(&self, mac: MacAddr) -> bool {
        if self.controller.is_some() {
            return false;
        }
        if self
            .kind
            .as_deref()
            .is_some_and(|k| STACKED_KINDS.contains(&k))
        {
            return false;
        }
        match self.perm_mac {
            Some(p) => p == mac,
            None => self.mac == Some(mac),
        }
    }
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Other(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `ip link show`: every link.
pub async fn link_list(handle: &Handle) -> Result<Vec<Link>, NetlinkError> {
    let msgs = collect("ip link show", handle.link().get().execute()).await?;
    Ok(msgs.iter().map(Link::from_message).collect())
}

/// `ip link show dev <index>`; `None` if there is no such link.
pub async fn link_show(handle: &Handle, index: u32) -> Result<Option<Link>, NetlinkError> {
    let mut s = handle.link().get().match_index(index).execute();
    match s.try_next().await {
        Ok(m) => Ok(m.as_ref().map(Link::from_message)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -nix::libc::ENODEV => Ok(None),
        Err(e) => Err(NetlinkError::request(
            format!("ip link show dev {}", dev(index)),
            e,
        )),
    }
}

/// `ip link set dev <index> up`
pub async fn link_set_up(handle: &Handle, index: u32) -> Result<(), NetlinkError> {
    let msg = LinkUnspec::new_with_index(index).up().build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| NetlinkError::request(format!("ip link set dev {} up", dev(index)), e))
}

/// `ip link set dev <index> mtu <mtu>`
pub async fn link_set_mtu(handle: &Handle, index: u32, mtu: u32) -> Result<(), NetlinkError> {
    let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| NetlinkError::request(format!("ip link set dev {} mtu {mtu}", dev(index)), e))
}
