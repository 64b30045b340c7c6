//! Addresses: `ip address show/add/del`.
//!
//! Every address the agent adds carries the address protocol attribute
//! (`IFA_PROTO`) [`ADDR_PROTOCOL`]; kernels since 6.3 keep and report it, so
//! an address is the agent's when it carries the mark. Older kernels drop
//! the attribute: there the agent's addresses are the ones it recorded at
//! configure time (see [`addr_protocol_supported`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol,
};
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
    /// `IFA_PROTO`, when the kernel reports one (ours is [`ADDR_PROTOCOL`]).
    pub protocol: Option<u8>,
    message: AddressMessage,
}

/// The address protocol (`IFA_PROTO`) that marks an address as eni-agent's;
/// the same number as its routes and rules.
pub const ADDR_PROTOCOL: u8 = crate::plan::ROUTE_PROTOCOL;

/// Whether this kernel keeps `IFA_PROTO` (Linux 6.3 and later). Where it
/// does not, only the recorded list tells the agent's addresses apart.
pub fn addr_protocol_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        kernel_at_least(&release, 6, 3)
    })
}

/// Whether a kernel release string (`6.1.0-18-amd64`) is at least `major.minor`.
fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
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
        let mut protocol = None;
        for a in &m.attributes {
            match a {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Flags(f) => flags = *f,
                AddressAttribute::Protocol(p) => protocol = Some(u8::from(*p)),
                _ => {}
            }
        }
        Some(Addr {
            index: m.header.index,
            addr: local.or(address)?,
            prefix_len: m.header.prefix_len,
            flags,
            protocol,
            message: m.clone(),
        })
    }

    /// Whether it carries eni-agent's mark.
    pub fn is_marked(&self) -> bool {
        self.protocol == Some(ADDR_PROTOCOL)
    }

    /// Whether it is eni-agent's: marked, or — on a kernel that drops the
    /// mark — in `recorded`, the list the agent recorded when it added them.
    pub fn is_ours(&self, recorded: &[IpAddr]) -> bool {
        self.is_marked() || (!addr_protocol_supported() && recorded.contains(&self.addr))
    }

    /// An IPv6 link-local address (the kernel adds one to every NIC).
    pub fn is_link_local(&self) -> bool {
        matches!(self.addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
    }

    /// An address the kernel made by itself: link-local, or marked as the
    /// kernel's (loopback, router advertisement, link-local: `IFA_PROTO`
    /// 1–3) — e.g. a SLAAC address taken before `accept_ra=0` landed.
    pub fn is_kernel_made(&self) -> bool {
        self.is_link_local() || matches!(self.protocol, Some(1..=3))
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
    wanted_flags_for(spec.addr)
}

/// The flags every address of ours of `addr`'s family carries.
pub fn wanted_flags_for(addr: IpAddr) -> AddressFlags {
    if addr.is_ipv6() {
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
    msg.attributes
        .push(AddressAttribute::Protocol(AddressProtocol::from(
            ADDR_PROTOCOL,
        )));
    msg
}

/// `ip address show` (every link).
pub async fn addr_list_all(handle: &Handle) -> Result<Vec<Addr>, NetlinkError> {
    let msgs = collect("ip address show", handle.address().get().execute()).await?;
    Ok(msgs.iter().filter_map(Addr::from_message).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_compare() {
        assert!(kernel_at_least("6.3.0", 6, 3));
        assert!(kernel_at_least("6.18.44-fc-v1252", 6, 3));
        assert!(!kernel_at_least("6.1.0-18-amd64", 6, 3));
        assert!(!kernel_at_least("5.15.0", 6, 3));
        assert!(!kernel_at_least("garbage", 6, 3));
    }

    #[test]
    fn added_addresses_carry_the_mark() {
        let spec = AddressSpec {
            addr: "10.0.0.5".parse().expect("ip"),
            prefix_len: 24,
        };
        let a = Addr::from_message(&addr_message(3, &spec)).expect("address");
        assert!(a.is_marked() && a.matches(&spec));
    }
}
