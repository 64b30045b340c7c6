//! A classic BPF socket filter for the event socket: drops the
//! notifications of added addresses, routes and rules before they are queued,
//! so they cost neither a wake-up nor a parse, nor receive-buffer space.
//!
//! Every rtnetlink notification travels in its own skb, so looking at the
//! first message header is enough.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;

/// The message types dropped.
const DROPPED: [u16; 3] = [libc::RTM_NEWADDR, libc::RTM_NEWROUTE, libc::RTM_NEWRULE];

/// Offset of `nlmsg_type` in `struct nlmsghdr`.
const TYPE_OFFSET: u32 = 4;

/// A BPF opcode; every classic opcode fits 16 bits.
fn op(code: u32) -> u16 {
    u16::try_from(code).unwrap_or(u16::MAX)
}

/// `nlmsg_type` is in host byte order; BPF's half-word load reads network
/// (big-endian) order: compare against the bytes as BPF sees them.
fn as_loaded(ty: u16) -> u32 {
    u32::from(u16::from_be_bytes(ty.to_ne_bytes()))
}

/// The program: load the type; jump to "drop" on each dropped type; else accept.
fn program() -> Vec<libc::sock_filter> {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: op(code),
        jt: 0,
        jf: 0,
        k,
    };
    let n = DROPPED.len();
    let mut prog = vec![stmt(
        libc::BPF_LD | libc::BPF_H | libc::BPF_ABS,
        TYPE_OFFSET,
    )];
    for (i, ty) in DROPPED.iter().enumerate() {
        // Jump over the remaining comparisons and the accept to "drop".
        let to_drop = u8::try_from(n - i).unwrap_or(u8::MAX);
        prog.push(libc::sock_filter {
            code: op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K),
            jt: to_drop,
            jf: 0,
            k: as_loaded(*ty),
        });
    }
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, u32::MAX)); // accept whole
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, 0)); // drop
    prog
}

/// Attaches the filter to the netlink socket `fd`.
pub(super) fn drop_additions(fd: &BorrowedFd<'_>) -> std::io::Result<()> {
    let mut prog = program();
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).unwrap_or(u16::MAX),
        filter: prog.as_mut_ptr(),
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sock_fprog>())
        .unwrap_or(libc::socklen_t::MAX);
    // SAFETY: `fprog` points at `prog`, both alive for the call; the kernel
    // copies the program.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::from_ref(&fprog).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_drops_the_three_types_and_accepts_the_rest() {
        // A tiny interpreter of the instructions the program uses.
        let run = |ty: u16| -> u32 {
            let prog = program();
            let mut pkt = [0u8; 16];
            pkt[4..6].copy_from_slice(&ty.to_ne_bytes());
            let (mut pc, mut acc) = (0usize, 0u32);
            loop {
                let i = prog[pc];
                let code = u32::from(i.code);
                if code == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS {
                    let k = i.k as usize;
                    acc = u32::from(u16::from_be_bytes([pkt[k], pkt[k + 1]]));
                    pc += 1;
                } else if code == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K {
                    pc += 1 + usize::from(if acc == i.k { i.jt } else { i.jf });
                } else {
                    return i.k;
                }
            }
        };
        for ty in DROPPED {
            assert_eq!(run(ty), 0, "type {ty} must be dropped");
        }
        for ty in [
            libc::RTM_NEWLINK,
            libc::RTM_DELLINK,
            libc::RTM_DELADDR,
            libc::RTM_DELROUTE,
            libc::RTM_DELRULE,
            u16::try_from(libc::NLMSG_ERROR).expect("small"),
        ] {
            assert_eq!(run(ty), u32::MAX, "type {ty} must pass");
        }
    }
}
