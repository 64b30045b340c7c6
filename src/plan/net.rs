//! Small address types the planner needs: a MAC address and an IP prefix.
//!
//! They are deliberately tiny (no extra dependency): parse, print, mask and
//! test membership. Prefix lengths are plain numbers so that validation can
//! report an out-of-range length instead of the type making it unrepresentable.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

pub use crate::mac::{MacAddr, ParseMacError};

/// An IP prefix: an address and a prefix length, `10.0.0.0/24` or `2001:db8::/64`.
///
/// The length is not checked on construction; [`IpNet::len_is_valid`] tells
/// whether it fits the address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    /// The address (not necessarily the network address).
    pub addr: IpAddr,
    /// The prefix length in bits.
    pub prefix_len: u8,
}

impl IpNet {
    /// A prefix from its parts.
    pub fn new(addr: impl Into<IpAddr>, prefix_len: u8) -> Self {
        Self {
            addr: addr.into(),
            prefix_len,
        }
    }

    /// The single-address prefix (/32 or /128) of `addr`.
    pub fn host(addr: IpAddr) -> Self {
        Self::new(addr, max_len(addr))
    }

    /// The longest prefix length of this family: 32 or 128.
    pub fn max_len(&self) -> u8 {
        max_len(self.addr)
    }

    /// Whether the prefix length fits the family.
    pub fn len_is_valid(&self) -> bool {
        self.prefix_len <= self.max_len()
    }

    /// True for IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The prefix with the host bits cleared (`10.0.0.5/24` → `10.0.0.0/24`).
    pub fn network(&self) -> Self {
        Self::new(mask(self.addr, self.prefix_len), self.prefix_len)
    }

    /// The last address of the prefix (the IPv4 broadcast address).
    pub fn broadcast(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let host = u32::MAX
                    .checked_shr(u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) | host))
            }
            IpAddr::V6(a) => {
                let host = u128::MAX
                    .checked_shr(u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) | host))
            }
        }
    }

    /// Whether `addr` lies inside this prefix (false across families).
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4()
            && self.len_is_valid()
            && mask(addr, self.prefix_len) == mask(self.addr, self.prefix_len)
    }

    /// Whether the whole of `other` lies inside this prefix.
    pub fn contains_net(&self, other: &IpNet) -> bool {
        other.prefix_len >= self.prefix_len && self.contains(other.addr)
    }
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// `addr` with every bit after `len` cleared.
fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// Why `addr` cannot be a unicast address of an ENI (or its gateway), if it
/// cannot: loopback, multicast, link-local, unspecified, broadcast, class E,
/// "this network" (0/8), IPv4-mapped IPv6 and the like.
pub fn non_unicast_kind(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_unspecified() {
                Some("unspecified")
            } else if a.is_broadcast() {
                Some("broadcast")
            } else if a.is_loopback() {
                Some("loopback")
            } else if a.is_multicast() {
                Some("multicast")
            } else if a.is_link_local() {
                Some("link-local")
            } else if o[0] == 0 {
                Some("\"this network\" (0.0.0.0/8)")
            } else if o[0] >= 240 {
                Some("reserved class E (240.0.0.0/4)")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let seg0 = a.segments()[0];
            if a.is_unspecified() {
                Some("unspecified")
            } else if a.is_loopback() {
                Some("loopback")
            } else if a.is_multicast() {
                Some("multicast")
            } else if seg0 & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if a.to_ipv4_mapped().is_some() {
                Some("IPv4-mapped")
            } else {
                None
            }
        }
    }
}

/// The prefix length of a contiguous IPv4 netmask (`255.255.255.0` → 24).
pub fn netmask_len(netmask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(netmask);
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) == 0 {
        u8::try_from(ones).ok()
    } else {
        None
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// The text is not a prefix like `10.0.0.0/24`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP prefix (expected ADDRESS/LENGTH like 10.0.0.0/24)")]
pub struct ParseNetError(String);

impl FromStr for IpNet {
    type Err = ParseNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseNetError(s.to_owned());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        Ok(Self::new(
            addr.parse::<IpAddr>().map_err(|_| err())?,
            len.parse::<u8>().map_err(|_| err())?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip_and_classes() {
        let m: MacAddr = "00:16:3E:0a:0b:0c".parse().expect("valid mac");
        assert_eq!(m.to_string(), "00:16:3e:0a:0b:0c");
        assert!(!m.is_multicast() && !m.is_zero());
        assert!(
            "01:00:5e:00:00:01"
                .parse::<MacAddr>()
                .expect("mac")
                .is_multicast()
        );
        assert!(
            "00:00:00:00:00:00"
                .parse::<MacAddr>()
                .expect("mac")
                .is_zero()
        );
        assert!("00:16:3e:0a:0b".parse::<MacAddr>().is_err());
        assert!("00:16:3e:0a:0b:0c:0d".parse::<MacAddr>().is_err());
        assert!("0:16:3e:0a:0b:0c".parse::<MacAddr>().is_err());
    }

    #[test]
    fn prefixes_mask_and_contain() {
        let n: IpNet = "10.0.1.7/24".parse().expect("net");
        assert_eq!(n.network().to_string(), "10.0.1.0/24");
        assert!(n.contains("10.0.1.200".parse().expect("ip")));
        assert!(!n.contains("10.0.2.1".parse().expect("ip")));
        assert!(!n.contains("::1".parse().expect("ip")));
        let all: IpNet = "0.0.0.0/0".parse().expect("net");
        assert!(all.contains("192.0.2.1".parse().expect("ip")));
        let v6: IpNet = "2001:db8:1::/64".parse().expect("net");
        assert!(v6.contains("2001:db8:1::5".parse().expect("ip")));
        assert!(v6.contains_net(&"2001:db8:1:0:1::/80".parse().expect("net")));
        assert!(!IpNet::new(Ipv4Addr::LOCALHOST, 33).len_is_valid());
        assert_eq!(netmask_len(Ipv4Addr::new(255, 255, 240, 0)), Some(20));
        assert_eq!(netmask_len(Ipv4Addr::new(255, 0, 255, 0)), None);
        assert_eq!(netmask_len(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
    }
}
