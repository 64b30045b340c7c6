//! NIC channel (queue) counts through the `SIOCETHTOOL` ioctl, the same
//! driver operations `ethtool -l/-L` use; no `ethtool` binary.
//!
//! Drivers differ: virtio_net and most cloud NICs have `combined` channels,
//! veth only separate rx and tx. [`plan_channels`] picks the right ones and
//! clamps to the driver's maximum.

use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const ETHTOOL_SCHANNELS: u32 = 0x3d;

/// `struct ethtool_channels` from `<linux/ethtool.h>`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    cmd: u32,
    /// Maximum rx-only channels.
    pub max_rx: u32,
    /// Maximum tx-only channels.
    pub max_tx: u32,
    /// Maximum other channels.
    pub max_other: u32,
    /// Maximum combined channels.
    pub max_combined: u32,
    /// Current rx-only channels.
    pub rx_count: u32,
    /// Current tx-only channels.
    pub tx_count: u32,
    /// Current other channels.
    pub other_count: u32,
    /// Current combined channels.
    pub combined_count: u32,
}

/// `struct ifreq` with the `ifr_data` member of the union.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// A channel ioctl failed.
#[derive(Debug, thiserror::Error)]
pub enum EthtoolError {
    /// The ioctl socket could not be opened.
    #[error("cannot open a socket for SIOCETHTOOL: {0}")]
    Socket(#[source] nix::Error),
    /// The name does not fit `IFNAMSIZ`.
    #[error("interface name {0:?} is too long for SIOCETHTOOL")]
    Name(String),
    /// The driver has no channel support at all.
    #[error(
        "{ifname}: the driver does not report channels (ethtool -l unsupported); queue count left as it is"
    )]
    Unsupported {
        /// The interface.
        ifname: String,
    },
    /// The ioctl failed.
    #[error("`ethtool {flag} {ifname}` failed: {errno}")]
    Ioctl {
        /// `-l` or `-L`.
        flag: &'static str,
        /// The interface.
        ifname: String,
        /// The errno.
        errno: nix::Error,
    },
}

impl EthtoolError {
    /// True when the interface no longer has this name (renamed or gone).
    pub fn is_no_device(&self) -> bool {
        matches!(
            self,
            Self::Ioctl {
                errno: nix::Error::ENODEV,
                ..
            }
        )
    }
}

fn ioctl(ifname: &str, ch: &mut Channels, flag: &'static str) -> Result<(), EthtoolError> {
    let bytes = ifname.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(EthtoolError::Name(ifname.to_owned()));
    }
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(EthtoolError::Socket)?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: std::ptr::from_mut(ch).cast(),
        _pad: [0; 16],
    };
    for (d, s) in req.name.iter_mut().zip(bytes) {
        *d = libc::c_char::from_ne_bytes([*s]);
    }
    // SAFETY: `req` is a properly laid out `struct ifreq` whose `ifr_data`
    // points at a live, exclusively borrowed `struct ethtool_channels`; both
    // outlive the call, and the kernel writes at most size_of::<Channels>().
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) };
    nix::errno::Errno::result(r).map(drop).map_err(|errno| {
        if errno == nix::Error::EOPNOTSUPP {
            EthtoolError::Unsupported {
                ifname: ifname.to_owned(),
            }
        } else {
            EthtoolError::Ioctl {
                flag,
                ifname: ifname.to_owned(),
                errno,
            }
        }
    })
}

/// `ethtool -l <ifname>`
pub fn channels_get(ifname: &str) -> Result<Channels, EthtoolError> {
    let mut ch = Channels {
        cmd: ETHTOOL_GCHANNELS,
        ..Channels::default()
    };
    ioctl(ifname, &mut ch, "-l")?;
    Ok(ch)
}

/// `ethtool -L <ifname> ...` with the counts of `want` (maximums ignored).
pub fn channels_set(ifname: &str, want: &Channels) -> Result<(), EthtoolError> {
    let mut ch = Channels {
        cmd: ETHTOOL_SCHANNELS,
        ..*want
    };
    ioctl(ifname, &mut ch, "-L")
}

/// What to set for a wanted queue count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelChange {
    /// The counts to set (equal to the current ones if nothing changes).
    pub target: Channels,
    /// Set when the wanted count exceeded the driver's maximum: the maximum used.
    pub clamped_to: Option<u32>,
}

impl ChannelChange {
    /// Whether the target differs from the current counts.
    pub fn changes(&self, current: &Channels) -> bool {
        self.target != *current
    }
}

/// `combined` where the driver has combined channels (virtio_net), else rx
/// and tx (veth); clamped to the driver's maximum. `None` if the driver has
/// neither.
pub fn plan_channels(current: &Channels, want: u32) -> Option<ChannelChange> {
    let mut target = *current;
    if current.max_combined > 0 {
        let n = want.min(current.max_combined);
        target.combined_count = n;
        Some(ChannelChange {
            target,
            clamped_to: (n < want).then_some(n),
        })
    } else if current.max_rx > 0 && current.max_tx > 0 {
        let (rx, tx) = (want.min(current.max_rx), want.min(current.max_tx));
        target.rx_count = rx;
        target.tx_count = tx;
        Some(ChannelChange {
            target,
            clamped_to: (rx < want || tx < want).then_some(rx.min(tx)),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_when_available_else_rx_tx_and_clamped() {
        let virtio = Channels {
            max_combined: 8,
            combined_count: 2,
            ..Channels::default()
        };
        let c = plan_channels(&virtio, 4).expect("combined");
        assert_eq!((c.target.combined_count, c.clamped_to), (4, None));
        assert!(c.changes(&virtio));
        let c = plan_channels(&virtio, 16).expect("combined");
        assert_eq!((c.target.combined_count, c.clamped_to), (8, Some(8)));

        let veth = Channels {
            max_rx: 4,
            max_tx: 4,
            rx_count: 4,
            tx_count: 4,
            ..Channels::default()
        };
        let c = plan_channels(&veth, 4).expect("rx/tx");
        assert!(!c.changes(&veth));
        let c = plan_channels(&veth, 6).expect("rx/tx");
        assert_eq!(
            (c.target.rx_count, c.target.tx_count, c.clamped_to),
            (4, 4, Some(4))
        );
        let c = plan_channels(&veth, 2).expect("rx/tx");
        assert_eq!(
            (
                c.target.rx_count,
                c.target.tx_count,
                c.target.combined_count
            ),
            (2, 2, 0)
        );

        assert_eq!(plan_channels(&Channels::default(), 2), None);
        assert_eq!(std::mem::size_of::<Channels>(), 36);
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }

    #[test]
    fn bad_names_are_refused_before_the_ioctl() {
        assert!(matches!(
            channels_get("a-very-long-interface-name"),
            Err(EthtoolError::Name(_))
        ));
    }
}
