//! Batched requests: many independent changes in one `sendmsg`, with one
//! acknowledgement for the whole batch.
//!
//! The kernel processes the messages of one datagram in order and goes on
//! past a failed one. Every message but the last is sent without `NLM_F_ACK`,
//! so a success costs nothing in user space; a failure still comes back as an
//! error carrying the message's sequence number. The last message asks for
//! an acknowledgement: once it arrives, every earlier error has arrived too.
//!
//! Acknowledgements are capped (`NETLINK_CAP_ACK`) and the receive buffer is
//! large, so even a batch that fails entirely fits; if errors were lost
//! anyway (ENOBUFS), the batch reports [`BatchError::Lost`] and the caller
//! re-reads the kernel instead of trusting it.

use std::collections::BTreeMap;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols};
use tokio::sync::Mutex;

use super::{Addr, NetlinkError, Route, Rule, addr_message, dev, route_message, rule_message};
use crate::plan::{AddressSpec, RouteSpec, RuleSpec, TABLE_MAIN};
use crate::plan::{display_addr_cmd, display_route_cmd, display_rule_cmd};

/// One change of a batch.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// `ip address add … dev <ifindex>`.
    AddAddr(u32, &'a AddressSpec),
    /// `ip address del` of a dumped address.
    DelAddr(&'a Addr),
    /// `ip route add … dev <oif>`.
    AddRoute(&'a RouteSpec, u32),
    /// `ip route replace … dev <oif>`.
    ReplaceRoute(&'a RouteSpec, u32),
    /// `ip route del` of a dumped route.
    DelRoute(&'a Route),
    /// `ip rule add …`.
    AddRule(&'a RuleSpec),
    /// `ip rule del` of a dumped rule.
    DelRule(&'a Rule),
}

impl Request<'_> {
    fn message(&self) -> (RouteNetlinkMessage, u16) {
        const ADD: u16 = NLM_F_CREATE | NLM_F_EXCL;
        match *self {
            Request::AddAddr(ix, spec) => {
                (RouteNetlinkMessage::NewAddress(addr_message(ix, spec)), ADD)
            }
            Request::DelAddr(a) => (RouteNetlinkMessage::DelAddress(a.message().clone()), 0),
            Request::AddRoute(spec, oif) => {
                (RouteNetlinkMessage::NewRoute(route_message(spec, oif)), ADD)
            }
            Request::ReplaceRoute(spec, oif) => (
                RouteNetlinkMessage::NewRoute(route_message(spec, oif)),
                NLM_F_CREATE | NLM_F_REPLACE,
            ),
            Request::DelRoute(r) => (RouteNetlinkMessage::DelRoute(r.message().clone()), 0),
            Request::AddRule(spec) => {
                // The kernel's duplicate check (NLM_F_EXCL) walks the whole
                // rule list comparing every field: with ~1 000 rules it costs
                // more than the insertion itself. A rule into one ENI's own
                // table is added only when a fresh dump lacks it, and the
                // next diff removes a duplicate of ours, so it goes without
                // the check. Rules every ENI adds (`lookup main`) keep it:
                // two ENIs applied together may both add one, and EEXIST
                // then means it is there.
                let flags = if spec.table == TABLE_MAIN {
                    ADD
                } else {
                    NLM_F_CREATE
                };
                (RouteNetlinkMessage::NewRule(rule_message(spec)), flags)
            }
            Request::DelRule(r) => (RouteNetlinkMessage::DelRule(r.message().clone()), 0),
        }
    }

    /// The equivalent `ip` command, for errors.
    pub fn cmd(&self) -> String {
        match *self {
            Request::AddAddr(ix, spec) => display_addr_cmd("add", spec, &dev(ix)),
            Request::DelAddr(a) => format!(
                "ip address del {}/{} dev {}",
                a.addr,
                a.prefix_len,
                dev(a.index)
            ),
            Request::AddRoute(spec, oif) => display_route_cmd("add", spec, &dev(oif)),
            Request::ReplaceRoute(spec, oif) => display_route_cmd("replace", spec, &dev(oif)),
            Request::DelRoute(r) => format!("ip route del {r}"),
            Request::AddRule(spec) => display_rule_cmd("add", spec),
            Request::DelRule(r) => format!("ip rule del {r}"),
        }
    }
}

/// The batch as a whole failed; which of its requests took effect is unknown.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Sending or receiving failed.
    #[error("batched netlink request failed: {0}")]
    Io(#[source] std::io::Error),
    /// Errors were lost (receive buffer overrun); re-read the kernel.
    #[error("netlink acknowledgements were lost (receive buffer overrun); the state is re-read")]
    Lost,
}

impl From<BatchError> for NetlinkError {
    fn from(e: BatchError) -> Self {
        let errno = match &e {
            BatchError::Io(io) => io.raw_os_error(),
            BatchError::Lost => Some(nix::libc::ENOBUFS),
        };
        NetlinkError::Request {
            cmd: "batched netlink requests".to_owned(),
            errno,
            detail: e.to_string(),
        }
    }
}

/// Requests per datagram: well under the socket's send buffer, and every
/// error of a fully failed batch fits the receive buffer.
const PER_DATAGRAM: usize = 256;

/// Receive buffer: a capped error is well under 1 KiB of buffer space.
const RCVBUF: usize = 1 << 20;

/// A netlink socket for batches (one batch at a time).
#[derive(Debug)]
pub struct Batcher {
    inner: Mutex<Inner>,
}

struct Inner {
    socket: TokioSocket,
    seq: u32,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("seq", &self.seq).finish()
    }
}

impl Batcher {
    /// Opens the socket (in the current network namespace; call inside the
    /// tokio runtime).
    pub fn new() -> Result<Self, NetlinkError> {
        let mut socket =
            TokioSocket::new(protocols::NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        let s = socket.socket_mut();
        s.bind_auto().map_err(NetlinkError::Socket)?;
        s.set_cap_ack(true).map_err(NetlinkError::Socket)?;
        let raw = std::os::fd::AsRawFd::as_raw_fd(&*s);
        // SAFETY: `raw` belongs to `s`, which outlives this borrow.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
        if nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBufForce, &RCVBUF)
            .is_err()
        {
            s.set_rx_buf_sz(RCVBUF).map_err(NetlinkError::Socket)?;
        }
        Ok(Self {
            inner: Mutex::new(Inner { socket, seq: 0 }),
        })
    }

    /// Sends `requests` in order and returns each one's outcome, in the
    /// same order. `Err` when the outcome of the batch is unknown.
    pub async fn send(
        &self,
        requests: &[Request<'_>],
    ) -> Result<Vec<Result<(), NetlinkError>>, BatchError> {
        let mut inner = self.inner.lock().await;
        let mut out = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(PER_DATAGRAM) {
            let errors = inner.send_chunk(chunk).await?;
            out.extend(chunk.iter().enumerate().map(|(i, r)| match errors.get(&i) {
                None => Ok(()),
                Some(&errno) => Err(NetlinkError::Request {
                    cmd: r.cmd(),
                    errno: Some(errno),
                    detail: std::io::Error::from_raw_os_error(errno).to_string(),
                }),
            }));
        }
        Ok(out)
    }
}

impl Inner {
    /// One datagram; returns the errno of each failed request by position.
    async fn send_chunk(
        &mut self,
        chunk: &[Request<'_>],
    ) -> Result<BTreeMap<usize, i32>, BatchError> {
        let first = self.seq.wrapping_add(1);
        let mut buf = Vec::new();
        for (i, req) in chunk.iter().enumerate() {
            let (payload, flags) = req.message();
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | flags;
            if i + 1 == chunk.len() {
                header.flags |= NLM_F_ACK;
            }
            self.seq = self.seq.wrapping_add(1);
            header.sequence_number = self.seq;
            let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
            msg.finalize();
            let start = buf.len();
            buf.resize(start + msg.buffer_len(), 0);
            msg.serialize(&mut buf[start..]);
        }
        let last = self.seq;
        let kernel = SocketAddr::new(0, 0);
        self.socket
            .send_to(&buf, &kernel)
            .await
            .map_err(BatchError::Io)?;

        let mut errors = BTreeMap::new();
        loop {
            let (data, _) = match self.socket.recv_from_full().await {
                Ok(d) => d,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                    self.drain_until(last).await?;
                    return Err(BatchError::Lost);
                }
                Err(e) => return Err(BatchError::Io(e)),
            };
            let mut done = false;
            for (seq, errno) in acks(&data) {
                let pos = seq.wrapping_sub(first) as usize;
                if pos < chunk.len() {
                    if let Some(errno) = errno {
                        errors.insert(pos, errno);
                    }
                    done |= seq == last;
                }
            }
            if done {
                return Ok(errors);
            }
        }
    }

    /// After an overrun: reads until the batch's last answer, so the next
    /// batch does not see this one's leftovers.
    async fn drain_until(&mut self, last: u32) -> Result<(), BatchError> {
        loop {
            match self.socket.recv_from_full().await {
                Ok((data, _)) => {
                    if acks(&data).any(|(seq, _)| seq == last) {
                        return Ok(());
                    }
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {}
                Err(e) => return Err(BatchError::Io(e)),
            }
        }
    }
}

/// The (sequence number, errno) of every acknowledgement or error in `data`;
/// errno `None` for a plain acknowledgement.
fn acks(data: &[u8]) -> impl Iterator<Item = (u32, Option<i32>)> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || {
        while offset < data.len() {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..]).ok()?;
            let len = (msg.header.length as usize).max(16);
            offset += (len + 3) & !3;
            if let NetlinkPayload::Error(e) = msg.payload {
                return Some((msg.header.sequence_number, e.code.map(|c| -c.get())));
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::ErrorMessage;

    fn error_message(seq: u32, code: i32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        let mut e = ErrorMessage::default();
        e.code = std::num::NonZeroI32::new(code);
        e.header = vec![0; 16];
        let mut msg = NetlinkMessage::<RouteNetlinkMessage>::new(header, NetlinkPayload::Error(e));
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    #[test]
    fn acks_parse_errors_and_plain_acknowledgements() {
        let mut data = error_message(7, -nix::libc::EEXIST);
        data.extend(error_message(9, 0));
        let got: Vec<_> = acks(&data).collect();
        assert_eq!(got, vec![(7, Some(nix::libc::EEXIST)), (9, None)]);
        assert_eq!(acks(&[1, 2, 3]).count(), 0, "garbage yields nothing");
    }
}
