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

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: Option<&str>, mac: u8, perm: Option<u8>, controller: Option<u32>) -> Link {
        let m = |b| MacAddr([0, 0x16, 0x3e, 0, 0, b]);
        Link {
            index: 3,
            name: "x".into(),
            mac: Some(m(mac)),
            perm_mac: perm.map(m),
            mtu: None,
            up: false,
            kind: kind.map(str::to_owned),
            controller,
        }
    }

    #[test]
    fn matches_by_permanent_mac_and_skips_stacked_devices() {
        let want = MacAddr([0, 0x16, 0x3e, 0, 0, 1]);
        assert!(link(None, 1, None, None).is_nic_with_mac(want));
        assert!(link(Some("veth"), 1, None, None).is_nic_with_mac(want));
        // The permanent address decides where the driver reports one.
        assert!(link(None, 9, Some(1), None).is_nic_with_mac(want));
        assert!(!link(None, 1, Some(9), None).is_nic_with_mac(want));
        for kind in [
            "vlan", "bond", "bridge", "macvlan", "macvtap", "ipvlan", "ipvtap", "team",
        ] {
            assert!(
                !link(Some(kind), 1, None, None).is_nic_with_mac(want),
                "{kind}"
            );
        }
        // An enslaved port (bond/bridge member) is not configured either.
        assert!(!link(None, 1, None, Some(7)).is_nic_with_mac(want));
    }

    #[test]
    fn parses_a_link_message() {
        let mut m = LinkMessage::default();
        m.header.index = 4;
        m.header.flags = LinkFlags::Up;
        m.attributes = vec![
            LinkAttribute::IfName("ens6".into()),
            LinkAttribute::Address(vec![0, 0x16, 0x3e, 0, 0, 1]),
            LinkAttribute::PermAddress(vec![0; 6]),
            LinkAttribute::Mtu(9000),
            LinkAttribute::LinkInfo(vec![NlLinkInfo::Kind(InfoKind::Veth)]),
        ];
        let l = Link::from_message(&m);
        assert_eq!(
            (l.index, l.name.as_str(), l.mtu, l.up),
            (4, "ens6", Some(9000), true)
        );
        assert_eq!(l.perm_mac, None, "an all-zero permanent address means none");
        assert_eq!(l.kind.as_deref(), Some("veth"));
    }
}
