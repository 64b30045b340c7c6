//! The cloud side of attaching an ENI to this instance: read the ENI, check
//! locally what ECS would refuse (zone, VPC, type, state) and explain it
//! before calling Attach, wait out transitional states, take the ENI over
//! from another instance when configured to, attach, and confirm InUse:
//! by the NIC appearing in this instance (no call at all), or else by
//! Describe polls. The netlink side (seeing the link and configuring it)
//! runs concurrently and never waits for a poll tick.

use std::future::Future;
use std::time::Duration;

use crate::backoff::Poll;

use crate::cloud::ecs::{
    AttachNetworkInterface, DescribeNetworkInterfaceAttribute, DetachNetworkInterface, EniStatus,
    NetworkInterface,
};
use crate::cloud::{CloudError, EcsClient, ErrorClass};

/// Where the ENI should go.
#[derive(Debug, Clone)]
pub struct AttachTarget {
    pub eni_id: String,
    pub instance_id: String,
    /// This instance's zone; an ENI of another zone cannot be attached.
    pub zone_id: String,
    /// This instance's VPC, when known.
    pub vpc_id: Option<String>,
    pub network_card_index: Option<u32>,
    /// Detach the ENI from another instance first (HA failover).
    pub takeover: bool,
}

/// How the status polls back off: the first after `first`, then doubling up
/// to `cap`.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    pub first: Duration,
    pub cap: Duration,
    /// Give up waiting for a state after this long.
    pub timeout: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            timeout: Duration::from_secs(120),
        }
    }
}

impl PollPolicy {
    /// Polls that only back up the NIC's appearance (see
    /// [`confirm_in_use`]): the first after 5 s, then every 10 s. They
    /// notice an attach that failed or never plugs a NIC; an attach that
    /// works is confirmed by its NIC without any call, which matters when
    /// a fleet boots at once and shares the account's request budget.
    pub fn behind_link(timeout: Duration) -> Self {
        Self {
            first: Duration::from_secs(5),
            cap: Duration::from_secs(10),
            timeout,
        }
    }
}

/// Why the ENI cannot be (or was not) attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(
        "{eni_id} is in zone {eni_zone} but this instance is in {instance_zone}; an ENI attaches only to instances \
         of its own zone — create the ENI in a vSwitch of {instance_zone}"
    )]
    ZoneMismatch {
        eni_id: String,
        eni_zone: String,
        instance_zone: String,
    },
    #[error(
        "{eni_id} is in VPC {eni_vpc} but this instance is in {instance_vpc}; use an ENI of the instance's VPC"
    )]
    VpcMismatch {
        eni_id: String,
        eni_vpc: String,
        instance_vpc: String,
    },
    #[error(
        "{eni_id} is the primary ENI of {instance}; primary ENIs cannot be attached or detached"
    )]
    PrimaryEni { eni_id: String, instance: String },
    #[error(
        "{eni_id} is attached to another instance, {other}; detach it there, or set takeover = true to move it here"
    )]
    InUseElsewhere { eni_id: String, other: String },
    #[error(
        "{eni_id} is {status}; it cannot be attached (status {status} is final or being deleted)"
    )]
    Unusable { eni_id: String, status: String },
    #[error(
        "ECS accepted the attach of {eni_id} (RequestId {request_id}) but the ENI went back to Available: the attach \
         failed. ENI facts: type {kind}, zone {zone}, vSwitch {vswitch}; check the instance type's ENI limit and \
         whether it supports hot-plug"
    )]
    AttachFailed {
        eni_id: String,
        request_id: String,
        kind: String,
        zone: String,
        vswitch: String,
    },
    #[error(
        "{eni_id} does not exist in region {region} (InvalidEniId.NotFound, RequestId {request_id}); check the ENI \
         id and the region (api.region in the configuration)"
    )]
    NotFound {
        eni_id: String,
        region: String,
        request_id: String,
    },
    #[error(
        "timed out after {waited:?} waiting for {eni_id} to become {wanted}; last status {last}"
    )]
    Timeout {
        eni_id: String,
        wanted: &'static str,
        last: String,
        waited: Duration,
    },
}

impl AttachError {
    /// True for a timeout (its own exit code in the one-shot).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}

/// Where the ENI stands after [`prepare`].
#[derive(Debug, Clone)]
pub enum Readiness {
    /// Available: call [`attach`].
    NeedsAttach(NetworkInterface),
    /// InUse on this instance already (a restart): just configure.
    AttachedHere(NetworkInterface),
}

/// The ENI as it stands, with the RequestId of the Describe.
/// An ENI that does not exist is [`AttachError::NotFound`], naming the id
/// and the region.
pub async fn describe(
    client: &EcsClient,
    eni_id: &str,
) -> Result<(NetworkInterface, String), AttachError> {
    match client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new(eni_id))
        .await
    {
        Ok(r) => Ok((r.body, r.request_id)),
        Err(e) if e.code() == Some("InvalidEniId.NotFound") => Err(AttachError::NotFound {
            eni_id: eni_id.to_owned(),
            region: client.region().to_owned(),
            request_id: e.api().map(|a| a.request_id.clone()).unwrap_or_default(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Reads the ENI and brings it to Available or attached-here: waits out
/// Attaching/Detaching/Creating, detaches it from another instance when
/// `takeover` is set, and refuses what ECS would refuse, with the reason.
pub async fn prepare(
    client: &EcsClient,
    target: &AttachTarget,
    poll: PollPolicy,
) -> Result<Readiness, AttachError> {
    let mut schedule = Poll::new(poll.first, poll.cap, poll.timeout);
    loop {
        let (ni, _request_id) = describe(client, &target.eni_id).await?;
        check_placement(target, &ni)?;
        let attached_to = ni.attached_instance().map(str::to_owned);
        match &ni.status {
            EniStatus::Available => return Ok(Readiness::NeedsAttach(ni)),
            EniStatus::InUse if attached_to.as_deref() == Some(target.instance_id.as_str()) => {
                return Ok(Readiness::AttachedHere(ni));
            }
            EniStatus::InUse => {
                let other = attached_to.unwrap_or_else(|| "an unknown instance".into());
                if !target.takeover {
                    return Err(AttachError::InUseElsewhere {
                        eni_id: target.eni_id.clone(),
                        other,
                    });
                }
                tracing::warn!(eni = %target.eni_id, from = %other, "takeover: detaching the ENI from the other instance");
                detach(client, &target.eni_id, &other).await?;
            }
            // Attaching here (an earlier run's attach) ends InUse here; any
            // other transition ends somewhere we decide again.
            EniStatus::Attaching
            | EniStatus::Detaching
            | EniStatus::Creating
            | EniStatus::Unknown => {}
            other @ (EniStatus::Deleting | EniStatus::CreateFailed | EniStatus::Other(_)) => {
                return Err(AttachError::Unusable {
                    eni_id: target.eni_id.clone(),
                    status: other.to_string(),
                });
            }
        }
        if !schedule.wait().await {
            return Err(AttachError::Timeout {
                eni_id: target.eni_id.clone(),
                wanted: "Available or InUse here",
                last: ni.status.to_string(),
                waited: schedule.elapsed(),
            });
        }
    }
}

/// What ECS would refuse, explained before calling Attach.
fn check_placement(target: &AttachTarget, ni: &NetworkInterface) -> Result<(), AttachError> {
    if ni.kind == "Primary" {
        return Err(AttachError::PrimaryEni {
            eni_id: target.eni_id.clone(),
            instance: ni
                .attached_instance()
                .unwrap_or("another instance")
                .to_owned(),
        });
    }
    if !ni.zone_id.is_empty() && !target.zone_id.is_empty() && ni.zone_id != target.zone_id {
        return Err(AttachError::ZoneMismatch {
            eni_id: target.eni_id.clone(),
            eni_zone: ni.zone_id.clone(),
            instance_zone: target.zone_id.clone(),
        });
    }
    if let Some(vpc) = &target.vpc_id {
        if !ni.vpc_id.is_empty() && ni.vpc_id != *vpc {
            return Err(AttachError::VpcMismatch {
                eni_id: target.eni_id.clone(),
                eni_vpc: ni.vpc_id.clone(),
                instance_vpc: vpc.clone(),
            });
        }
    }
    Ok(())
}

/// AttachNetworkInterface; returns its RequestId. The ENI is Attaching after.
///
/// `InvalidEniState` here usually means an earlier attempt of this very call
/// landed but its answer was lost (the client retried after a dropped
/// connection): the ENI is Attaching already, so [`confirm_in_use`] decides.
pub async fn attach(client: &EcsClient, target: &AttachTarget) -> Result<String, AttachError> {
    let result = client
        .attach_network_interface(&AttachNetworkInterface {
            network_interface_id: target.eni_id.clone(),
            instance_id: target.instance_id.clone(),
            network_card_index: target.network_card_index,
        })
        .await;
    match result {
        Ok(r) => Ok(r.request_id),
        Err(e) if e.code() == Some("InvalidOperation.InvalidEniState") => {
            tracing::warn!(eni = %target.eni_id, error = %e, "the ENI is no longer Available; an earlier attempt of this attach may have landed, Describe decides");
            Ok(e.api().map(|a| a.request_id.clone()).unwrap_or_default())
        }
        Err(e) => Err(e.into()),
    }
}

/// How an attach was confirmed.
#[derive(Debug, Clone)]
pub enum Confirmation {
    /// The NIC with the ENI's MAC appeared in this instance. ECS plugs an
    /// ENI's NIC only into the instance it is attached to, so this is the
    /// attach landing here; no Describe was needed.
    LinkSeen,
    /// A Describe found the ENI InUse here (its RequestId).
    Described(String),
}

/// Waits until the attach is confirmed: `link_seen` completing (the NIC of
/// the ENI appeared in this instance) confirms it at once, without a call;
/// meanwhile Describe polls on `poll` decide when the NIC does not come
/// (back to Available: the attach failed; InUse elsewhere; a timeout).
pub async fn confirm_in_use(
    client: &EcsClient,
    target: &AttachTarget,
    attach_request_id: &str,
    poll: PollPolicy,
    link_seen: impl Future<Output = ()>,
) -> Result<Confirmation, AttachError> {
    tokio::select! {
        biased;
        () = link_seen => Ok(Confirmation::LinkSeen),
        polled = poll_in_use(client, target, attach_request_id, poll) => {
            polled.map(|(_, request_id)| Confirmation::Described(request_id))
        }
    }
}

/// Polls until the ENI is InUse on `target.instance_id`. Back to Available
/// means the attach failed.
pub async fn poll_in_use(
    client: &EcsClient,
    target: &AttachTarget,
    attach_request_id: &str,
    poll: PollPolicy,
) -> Result<(NetworkInterface, String), AttachError> {
    let mut schedule = Poll::new(poll.first, poll.cap, poll.timeout);
    let mut last = "Attaching (not described since the attach)".to_owned();
    while schedule.wait().await {
        let (ni, request_id) = describe(client, &target.eni_id).await?;
        match &ni.status {
            EniStatus::InUse if ni.attached_instance() == Some(target.instance_id.as_str()) => {
                return Ok((ni, request_id));
            }
            EniStatus::InUse => {
                return Err(AttachError::InUseElsewhere {
                    eni_id: target.eni_id.clone(),
                    other: ni
                        .attached_instance()
                        .unwrap_or("another instance")
                        .to_owned(),
                });
            }
            EniStatus::Available => {
                return Err(AttachError::AttachFailed {
                    eni_id: target.eni_id.clone(),
                    request_id: attach_request_id.to_owned(),
                    kind: ni.kind.clone(),
                    zone: ni.zone_id.clone(),
                    vswitch: ni.vswitch_id.clone(),
                });
            }
            _ => {}
        }
        last = ni.status.to_string();
    }
    Err(AttachError::Timeout {
        eni_id: target.eni_id.clone(),
        wanted: "InUse",
        last,
        waited: schedule.elapsed(),
    })
}

/// DetachNetworkInterface from `instance_id`, then wait for Available.
/// An ENI already Available (or gone) counts as detached.
pub async fn detach(
    client: &EcsClient,
    eni_id: &str,
    instance_id: &str,
) -> Result<(), AttachError> {
    let request = DetachNetworkInterface {
        network_interface_id: eni_id.to_owned(),
        instance_id: instance_id.to_owned(),
    };
    let poll = PollPolicy::default();
    let mut schedule = Poll::new(poll.first, poll.cap, poll.timeout);
    loop {
        match client.detach_network_interface(&request).await {
            Ok(_) => break,
            // ECS refuses a Detach while the ENI is still Attaching (an
            // attach interrupted by a crash): wait for it to land, then
            // detach. Detaching already, or not attached: wait below.
            Err(e) if e.class() == ErrorClass::WaitForState => {
                let (ni, _) = describe(client, eni_id).await?;
                if ni.status != EniStatus::Attaching || !schedule.wait().await {
                    break;
                }
            }
            Err(e) if e.code() == Some("InvalidEniId.NotFound") => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    wait_available(client, eni_id, poll).await
}

/// Polls until the ENI is Available.
pub async fn wait_available(
    client: &EcsClient,
    eni_id: &str,
    poll: PollPolicy,
) -> Result<(), AttachError> {
    let mut schedule = Poll::new(poll.first, poll.cap, poll.timeout);
    loop {
        let (ni, _) = describe(client, eni_id).await?;
        if ni.status == EniStatus::Available {
            return Ok(());
        }
        if !schedule.wait().await {
            return Err(AttachError::Timeout {
                eni_id: eni_id.to_owned(),
                wanted: "Available",
                last: ni.status.to_string(),
                waited: schedule.elapsed(),
            });
        }
    }
}
