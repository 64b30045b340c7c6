//! Attaching and detaching: AttachNetworkInterface and
//! DetachNetworkInterface. Preconditions and their error codes follow the
//! AttachNetworkInterface document; the state changes they start finish
//! asynchronously in [`crate::engine`].

use std::sync::Arc;

use serde_json::{Value, json};

use super::{ApiError, Ctx, eni_id_well_formed, find_eni, find_instance, instance_id_well_formed};
use crate::engine::{AttachOutcome, Emulator};
use crate::model::{Eni, EniStatus};
use crate::util;

fn ecs_state_ok(status: &str) -> bool {
    status == "Running" || status == "Stopped"
}

fn reject_trunk(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    if ctx.params.opt("TrunkNetworkInstanceId").is_some() {
        return Err(ApiError::new(
            400,
            "UnsupportedParameter",
            "The parameter TrunkNetworkInstanceId is not supported (documented as unavailable).",
        ));
    }
    Ok(())
}

/// AttachNetworkInterface.
pub fn attach(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    let eni_id = p.require("NetworkInterfaceId")?;
    let inst_id = p.require("InstanceId")?;
    reject_trunk(ctx)?;
    p.bool_opt("WaitForNetworkConfigurationReady")?;
    let card = p.u32_in("NetworkCardIndex", 0, 255)?;
    if !instance_id_well_formed(inst_id) {
        return Err(ApiError::new(
            400,
            "InvalidInstanceID.Malformed",
            format!("The specified InstanceId {inst_id:?} is invalid."),
        ));
    }
    if !eni_id_well_formed(eni_id) {
        return Err(ApiError::new(
            400,
            "InvalidParams.EniId",
            format!("The specified EniId {eni_id:?} is invalid."),
        ));
    }
    let mut st = emu.state();
    let inst = find_instance(&st, ctx, inst_id)?.clone();
    let eni = find_eni(&st, ctx, eni_id)?;
    if eni.service_managed {
        return Err(ApiError::forbidden(
            "InvalidOperation.EniServiceManaged",
            format!("The ENI {eni_id:?} is managed by another cloud service."),
        ));
    }
    if eni.status != EniStatus::Available {
        return Err(ApiError::eni_state(
            eni_id,
            eni.status.as_str(),
            "Available",
        ));
    }
    if !ecs_state_ok(&inst.status) {
        return Err(ApiError::new(
            400,
            "InvalidOperation.InvalidEcsState",
            format!(
                "The instance {inst_id:?} is {}; it must be Running or Stopped.",
                inst.status
            ),
        ));
    }
    let ty = st
        .instance_type_of(&inst)
        .cloned()
        .ok_or_else(ApiError::internal)?;
    if !ty.hotplug && inst.status == "Running" {
        return Err(ApiError::forbidden(
            "InvalidOperation.HotPlugNotSupport",
            format!(
                "Instance type {} does not support attaching ENIs while Running; stop the instance first.",
                ty.name
            ),
        ));
    }
    let inst_vsw = st
        .vswitches
        .get(&inst.vswitch_id)
        .ok_or_else(ApiError::internal)?;
    if eni.vpc_id != inst_vsw.vpc_id {
        return Err(ApiError::forbidden(
            "InvalidOperation.VpcMismatch",
            format!(
                "The ENI is in VPC {} but the instance is in VPC {}.",
                eni.vpc_id, inst_vsw.vpc_id
            ),
        ));
    }
    if eni.zone_id != inst_vsw.zone_id {
        return Err(ApiError::forbidden(
            "InvalidOperation.AvailabilityZoneMismatch",
            format!(
                "The ENI is in zone {} but the instance is in zone {}.",
                eni.zone_id, inst_vsw.zone_id
            ),
        ));
    }
    if let Some(n) = card {
        if ty.network_cards == 0 {
            return Err(ApiError::new(
                400,
                "InvalidOperation.UserNotSupportNetworkCard",
                "User not support network card.",
            ));
        }
        if n >= ty.network_cards {
            return Err(ApiError::new(
                400,
                "InvalidParameter.NetworkCardIndexInvalid",
                "The network card index is invalid or the current ECS/ENI type does not support the value.",
            ));
        }
    }
    let occupying: Vec<&Eni> = st.enis.values().filter(|e| e.occupies(inst_id)).collect();
    if occupying.len() >= ty.eni_quantity as usize {
        return Err(ApiError::forbidden(
            "EniPerInstanceLimitExceeded",
            format!(
                "The instance type {} allows {} ENIs per instance.",
                ty.name, ty.eni_quantity
            ),
        ));
    }
    let v4 = 1 + eni.secondary_ips.len() + eni.ipv4_prefixes.len();
    if v4 > ty.ipv4_per_eni as usize {
        return Err(ApiError::forbidden(
            "InvalidOperation.Ipv4CountExceeded",
            format!(
                "The ENI has {v4} IPv4 addresses; {} allows {}.",
                ty.name, ty.ipv4_per_eni
            ),
        ));
    }
    let v6 = eni.ipv6s.len() + eni.ipv6_prefixes.len();
    if v6 > ty.ipv6_per_eni as usize {
        return Err(ApiError::forbidden(
            "InvalidOperation.Ipv6CountExceeded",
            format!(
                "The ENI has {v6} IPv6 addresses; {} allows {}.",
                ty.name, ty.ipv6_per_eni
            ),
        ));
    }
    let queues = eni.queue_number.unwrap_or(ty.secondary_queue_number);
    let used_queues: u32 = occupying
        .iter()
        .map(|e| st.effective_queue_number(e).unwrap_or(1))
        .sum();
    if queues > ty.max_queues_per_eni || used_queues + queues > ty.total_queues {
        return Err(ApiError::forbidden(
            "InvalidOperation.ExceedInstanceTypeQueueNumber",
            format!(
                "Queues: {used_queues} in use + {queues} > {} for {} (at most {} per ENI).",
                ty.total_queues, ty.name, ty.max_queues_per_eni
            ),
        ));
    }
    if eni.traffic_mode == "HighPerformance" && !ty.erdma {
        return Err(ApiError::forbidden(
            "InvalidOperation.InstanceTypeNotSupportHighPerformanceTrafficMode",
            format!(
                "Instance type {} does not support HighPerformance ENIs.",
                ty.name
            ),
        ));
    }
    if eni.enable_rss && !ty.rss {
        return Err(ApiError::new(
            400,
            "InvalidOperation.InstanceTypeNotSupportRss",
            "The ECS instance type does not support Rss.",
        ));
    }
    let faults = emu.settings().faults;
    let listed = |l: &[String]| l.iter().any(|x| x == eni_id || x == "*");
    let outcome = if listed(&faults.stuck_attaching) {
        AttachOutcome::Stuck
    } else if listed(&faults.fail_attach) || util::chance(faults.fail_attach_rate) {
        AttachOutcome::Fail
    } else {
        AttachOutcome::Succeed
    };
    let device_index = st.next_device_index(inst_id);
    let eni = st.enis.get_mut(eni_id).ok_or_else(ApiError::internal)?;
    eni.status = EniStatus::Attaching;
    eni.instance_id = Some(inst_id.to_string());
    eni.device_index = Some(device_index);
    eni.network_card_index = card;
    eni.generation += 1;
    let generation = eni.generation;
    drop(st);
    tracing::info!(eni = %eni_id, instance = %inst_id, ?outcome, "attach started");
    emu.start_attach(eni_id, generation, outcome);
    Ok(json!({}))
}

/// DetachNetworkInterface.
pub fn detach(emu: &Arc<Emulator>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    let eni_id = p.require("NetworkInterfaceId")?;
    let inst_id = p.require("InstanceId")?;
    reject_trunk(ctx)?;
    if !instance_id_well_formed(inst_id) {
        return Err(ApiError::new(
            400,
            "InvalidInstanceID.Malformed",
            format!("The specified InstanceId {inst_id:?} is invalid."),
        ));
    }
    let mut st = emu.state();
    let inst = find_instance(&st, ctx, inst_id)?.clone();
    let eni = find_eni(&st, ctx, eni_id)?;
    if eni.eni_type == "Primary" {
        return Err(ApiError::forbidden(
            "InvalidOperation.DetachPrimaryEniNotAllowed",
            "The primary ENI of an instance cannot be detached.",
        ));
    }
    if eni.instance_id.as_deref() != Some(inst_id) {
        return Err(ApiError::eni_state(
            eni_id,
            eni.status.as_str(),
            &format!("attached to {inst_id}"),
        ));
    }
    if eni.status == EniStatus::Detaching {
        return Ok(json!({}));
    }
    if eni.status != EniStatus::InUse {
        return Err(ApiError::eni_state(eni_id, eni.status.as_str(), "InUse"));
    }
    if !ecs_state_ok(&inst.status) {
        return Err(ApiError::new(
            400,
            "InvalidOperation.InvalidEcsState",
            format!("The instance {inst_id:?} is {}.", inst.status),
        ));
    }
    if st.instance_type_of(&inst).is_some_and(|t| !t.hotplug) && inst.status == "Running" {
        return Err(ApiError::forbidden(
            "InvalidOperation.HotPlugNotSupport",
            "This instance type does not support detaching ENIs while Running.",
        ));
    }
    let generation = super::enter(&mut st, eni_id, EniStatus::Detaching)?;
    drop(st);
    tracing::info!(eni = %eni_id, instance = %inst_id, "detach started");
    emu.start_detach(eni_id, generation);
    Ok(json!({}))
}
