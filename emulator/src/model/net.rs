//! CIDR arithmetic for the model: parsing, membership, vSwitch reserved
//! addresses and the allocation of free addresses and prefixes.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net4 {
    /// Network address (host bits zero).
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub len: u8,
}

/// An IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net6 {
    /// Network address (host bits zero).
    pub addr: Ipv6Addr,
    /// Prefix length.
    pub len: u8,
}

fn split(s: &str) -> Option<(&str, u8)> {
    let (a, l) = s.split_once('/')?;
    Some((a, l.parse().ok()?))
}

impl Net4 {
    /// Parses `a.b.c.d/len`; host bits must be zero.
    pub fn parse(s: &str) -> Option<Net4> {
        let (a, len) = split(s)?;
        let addr: Ipv4Addr = a.parse().ok()?;
        if len > 32 || u32::from(addr) & !mask4(len) != 0 {
            return None;
        }
        Some(Net4 { addr, len })
    }

    /// First address as an integer.
    pub fn first(&self) -> u32 {
        u32::from(self.addr)
    }

    /// Last address as an integer.
    pub fn last(&self) -> u32 {
        self.first() | !mask4(self.len)
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask4(self.len) == self.first()
    }

    /// Dotted netmask.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask4(self.len))
    }

    /// The vSwitch gateway: Alibaba Cloud reserves the first and the last
    /// three addresses of a vSwitch; the gateway is the third-last (`.253`).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.last().saturating_sub(2))
    }

    /// Whether `ip` is usable by an ENI (inside, not reserved).
    pub fn usable(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        self.contains(ip) && v > self.first() && v.checked_add(3).is_some_and(|x| x <= self.last())
    }
}

impl std::fmt::Display for Net4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Net6 {
    /// Parses `addr/len`; host bits must be zero.
    pub fn parse(s: &str) -> Option<Net6> {
        let (a, len) = split(s)?;
        let addr: Ipv6Addr = a.parse().ok()?;
        if len > 128 || u128::from(addr) & !mask6(len) != 0 {
            return None;
        }
        Some(Net6 { addr, len })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask6(self.len) == u128::from(self.addr)
    }

    /// The gateway the metadata service reports (`…:ffff:ffff:ffff:fff7`).
    pub fn gateway(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) | 0xffff_ffff_ffff_fff7)
    }
}

impl std::fmt::Display for Net6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

/// Picks the lowest usable address of `net` for which `used` is false.
pub fn alloc4(net: &Net4, used: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
    (net.first().saturating_add(1)..=net.last().saturating_sub(3))
        .map(Ipv4Addr::from)
        .find(|ip| !used(*ip))
}

/// Picks the highest aligned `/28` of `net` none of whose addresses is used
/// or reserved.
pub fn alloc4_prefix(net: &Net4, used: impl Fn(Ipv4Addr) -> bool) -> Option<Net4> {
    if net.len > 28 {
        return None;
    }
    let mut start = net.last().saturating_sub(2) & !0xf;
    while start >= net.first().saturating_add(16) {
        start -= 16;
        if start + 15 > net.last().saturating_sub(3) || start == net.first() {
            continue;
        }
        if (start..=start + 15).all(|v| !used(Ipv4Addr::from(v))) {
            return Some(Net4 {
                addr: Ipv4Addr::from(start),
                len: 28,
            });
        }
    }
    None
}

/// Picks an IPv6 address of `net` (a /64) not `used`, host part from 0x100.
pub fn alloc6(net: &Net6, used: impl Fn(Ipv6Addr) -> bool) -> Option<Ipv6Addr> {
    let base = u128::from(net.addr);
    (0x100u128..0x10000)
        .map(|h| Ipv6Addr::from(base | h))
        .find(|ip| !used(*ip))
}

/// Picks a `/80` of `net` (a /64) not overlapping any used address or prefix.
pub fn alloc6_prefix(net: &Net6, used: impl Fn(&Net6) -> bool) -> Option<Net6> {
    let base = u128::from(net.addr);
    (1u128..0x10000)
        .map(|k| Net6 {
            addr: Ipv6Addr::from(base | (k << 48)),
            len: 80,
        })
        .find(|p| !used(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vswitch_arithmetic() {
        let n = Net4::parse("192.168.10.0/24").expect("valid");
        assert_eq!(n.gateway(), Ipv4Addr::new(192, 168, 10, 253));
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(n.usable(Ipv4Addr::new(192, 168, 10, 1)));
        assert!(!n.usable(Ipv4Addr::new(192, 168, 10, 0)));
        assert!(!n.usable(Ipv4Addr::new(192, 168, 10, 253)));
        assert!(Net4::parse("192.168.10.1/24").is_none());
        let p = alloc4_prefix(&n, |_| false).expect("room for a prefix");
        assert_eq!(p.to_string(), "192.168.10.224/28");
        let v6 = Net6::parse("2408:4005:3a0:7101::/64").expect("valid");
        assert_eq!(
            v6.gateway().to_string(),
            "2408:4005:3a0:7101:ffff:ffff:ffff:fff7"
        );
    }
}
