//! Addresses: `ip address show/add/del`.
//!
//! Addresses carry no rtnetlink protocol of ours: the agent owns exactly the
//! addresses its plan lists on the NIC's ifindex.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::{AddressMessageBuilder, Handle};

use super::{NetlinkError, collect, dev};
use crate::plan::AddressSpec;

/// An address as dumped from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    /// ifindex.
    pub index: u32,
    /// The local address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// `IFA_FLAGS` (or the header flags on kernels without it).
    pub flags: AddressFlags,
    message: AddressMessage,
}

impl Addr {
    /// The message as dumped, to address this object in a request.
    pub(crate) fn message(&self) -> &AddressMessage {
        &self.message
    }

    /// Parses an address message; `None` if it has no address.
    pub fn from_message(m: &AddressMessage) -> Option<Self> {
        let mut local = None;
        let mut address = None;
        let mut flags = AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()));
        for a in &m.attributes {
            match a {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Flags(f) => flags = *f,
                _ => {}
            }
        }
        Some(Addr {
            index: m.header.index,
            addr: local.or(address)?,
            prefix_len: m.header.prefix_len,
            flags,
            message: m.clone(),
        })
    }

    /// Whether it has exactly the shape the plan wants: same length,
    /// `noprefixroute`, and `nodad` for IPv6.
    pub fn matches(&self, spec: &AddressSpec) -> bool {
        self.addr == spec.addr
            && self.prefix_len == spec.prefix_len
            && self.flags.contains(wanted_flags(spec))
    }
}

/// The flags every address of ours carries.
pub fn wanted_flags(spec: &AddressSpec) -> AddressFlags {
    if spec.addr.is_ipv6() {
        AddressFlags::Noprefixroute | AddressFlags::Nodad
    } else {
        AddressFlags::Noprefixroute
    }
}

/// `ip address show dev <index>`
pub async fn addr_list(handle: &Handle, index: u32) -> Result<Vec<Addr>, NetlinkError> {
    let cmd = format!("ip address show dev {}", dev(index));
    let msgs = collect(
        &cmd,
        handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute(),
    )
    .await?;
    // Without strict checking the kernel ignores the filter: filter here too.
    Ok(msgs
        .iter()
        .filter(|m| m.header.index == index)
        .filter_map(Addr::from_message)
        .collect())
}

/// The netlink message for `spec` on `index`, with our flags.
pub(crate) fn addr_message(index: u32, spec: &AddressSpec) -> AddressMessage {
    let mut msg = match spec.addr {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a, spec.prefix_len)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a, spec.prefix_len)
            .build(),
    };
    msg.attributes
        .push(AddressAttribute::Flags(wanted_flags(spec)));
    msg
}

/// `ip address del <addr>/<len> dev <index>`
pub async fn addr_del(handle: &Handle, addr: &Addr) -> Result<(), NetlinkError> {
    handle
        .address()
        .del(addr.message.clone())
        .execute()
        .await
        .map_err(|e| {
            NetlinkError::request(
                format!(
                    "ip address del {}/{} dev {}",
                    addr.addr,
                    addr.prefix_len,
                    dev(addr.index)
                ),
                e,
            )
        })
}
