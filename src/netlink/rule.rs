//! Policy routing rules: `ip rule show/add/del`.
//!
//! Every rule is added with an explicit `action to_tbl`: rtnetlink's default
//! (`Unspec`) makes the kernel accept a rule that breaks every lookup it
//! matches (`ip route get` answers EINVAL).

use std::net::IpAddr;

use rtnetlink::Handle;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};

use super::{NetlinkError, ROUTE_PROTOCOL, collect};
use crate::plan::{IpNet, RuleSpec};

/// A rule as dumped from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// IPv6 rule.
    pub ipv6: bool,
    /// Priority.
    pub priority: u32,
    /// Source selector.
    pub src: Option<IpNet>,
    /// Table looked up (0 for non-lookup actions).
    pub table: u32,
    /// `suppress_prefixlength`, if set.
    pub suppress_prefixlen: Option<u32>,
    /// rtnetlink protocol (ours is [`ROUTE_PROTOCOL`]).
    pub protocol: u8,
    /// `action to_tbl` (a lookup).
    pub lookup: bool,
    /// Any selector besides the source (destination, iif, oif, fwmark, ...).
    pub other_selectors: bool,
    message: RuleMessage,
}

impl Rule {
    /// The message as dumped, to address this object in a request.
    pub(crate) fn message(&self) -> &RuleMessage {
        &self.message
    }

    /// Parses a rule message.
    pub fn from_message(m: &RuleMessage) -> Self {
        let mut r = Rule {
            ipv6: m.header.family == AddressFamily::Inet6,
            priority: 0,
            src: None,
            table: u32::from(m.header.table),
            suppress_prefixlen: None,
            protocol: 0,
            lookup: m.header.action == RuleAction::ToTable,
            other_selectors: m.header.tos != 0 || m.header.dst_len != 0,
            message: m.clone(),
        };
        let mut src: Option<IpAddr> = None;
        for a in &m.attributes {
            match a {
                RuleAttribute::Priority(p) => r.priority = *p,
                RuleAttribute::Source(s) => src = Some(*s),
                RuleAttribute::Table(t) => r.table = *t,
                RuleAttribute::SuppressPrefixLen(s) if *s != u32::MAX => {
                    r.suppress_prefixlen = Some(*s)
                }
                RuleAttribute::Protocol(p) => r.protocol = u8::from(*p),
                RuleAttribute::Destination(_)
                | RuleAttribute::Iifname(_)
                | RuleAttribute::Oifname(_)
                | RuleAttribute::FwMark(_)
                | RuleAttribute::UidRange(_)
                | RuleAttribute::IpProtocol(_)
                | RuleAttribute::SourcePortRange(_)
                | RuleAttribute::DestinationPortRange(_)
                | RuleAttribute::TunId(_)
                | RuleAttribute::L3MDev(true) => r.other_selectors = true,
                RuleAttribute::SuppressIfGroup(g) if *g != u32::MAX => r.other_selectors = true,
                _ => {}
            }
        }
        r.src = src.map(|a| IpNet::new(a, m.header.src_len));
        r
    }

    /// Whether this is one of eni-agent's rules.
    pub fn is_ours(&self) -> bool {
        self.protocol == ROUTE_PROTOCOL
    }

    /// Exactly what `spec` asks for, and ours.
    pub fn matches(&self, spec: &RuleSpec) -> bool {
        self.is_ours()
            && self.lookup
            && !self.other_selectors
            && self.ipv6 == spec.ipv6
            && self.priority == spec.priority
            && self.src == spec.src
            && self.table == spec.table
            && self.suppress_prefixlen == spec.suppress_prefixlen
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `ip rule` syntax: `priority N`, and a source that tells the
        // family (`ip rule del` reads IPv4 unless told otherwise).
        write!(f, "priority {} ", self.priority)?;
        match self.src {
            Some(s) => write!(f, "from {s}")?,
            None if self.ipv6 => f.write_str("from ::/0")?,
            None => f.write_str("from all")?,
        }
        write!(f, " lookup {}", self.table)?;
        if let Some(s) = self.suppress_prefixlen {
            write!(f, " suppress_prefixlength {s}")?;
        }
        write!(f, " proto {}", self.protocol)
    }
}

/// `ip [-6] rule show`
pub async fn rule_list(handle: &Handle, ipv6: bool) -> Result<Vec<Rule>, NetlinkError> {
    let (cmd, v) = if ipv6 {
        ("ip -6 rule show", rtnetlink::IpVersion::V6)
    } else {
        ("ip rule show", rtnetlink::IpVersion::V4)
    };
    let msgs = collect(cmd, handle.rule().get(v).execute()).await?;
    Ok(msgs.iter().map(Rule::from_message).collect())
}

/// The netlink message for `spec`: `action to_tbl`, stamped with our protocol.
pub(crate) fn rule_message(spec: &RuleSpec) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = if spec.ipv6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    m.header.action = RuleAction::ToTable;
    // Tables above 255 only fit FRA_TABLE, which the kernel prefers anyway.
    m.header.table = u8::try_from(spec.table).unwrap_or(0);
    m.attributes.push(RuleAttribute::Table(spec.table));
    m.attributes.push(RuleAttribute::Priority(spec.priority));
    m.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::Other(
            ROUTE_PROTOCOL,
        )));
    if let Some(src) = spec.src {
        m.header.src_len = src.prefix_len;
        m.attributes.push(RuleAttribute::Source(src.addr));
    }
    if let Some(s) = spec.suppress_prefixlen {
        m.attributes.push(RuleAttribute::SuppressPrefixLen(s));
    }
    m
}

/// `ip rule del <rule>` (the dumped rule, matched exactly).
pub async fn rule_del(handle: &Handle, rule: &Rule) -> Result<(), NetlinkError> {
    handle
        .rule()
        .del(rule.message.clone())
        .execute()
        .await
        .map_err(|e| NetlinkError::request(format!("ip rule del {rule}"), e))
}
