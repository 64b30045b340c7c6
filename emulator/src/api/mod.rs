//! The ECS OpenAPI side: one handler for `GET`/`POST /` that merges query
//! and form parameters, authenticates (V2 or V3 signature), applies the
//! injected faults, dispatches on the action and answers JSON with a
//! `RequestId` — or the error body `{RequestId, HostId, Code, Message,
//! Recommend}` with the status the ECS documents give.
//!
//! To add an action: write `fn(&Arc<Emulator>, &Ctx) -> Result<Value,
//! ApiError>` in the module of its concern and list it in [`ACTIONS`].

mod attach;
pub mod auth;
mod describe;
pub mod error;
mod family;
mod ip_ops;
mod lifecycle;
pub mod params;
pub mod render;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use self::auth::{Identity, SignedRequest};
pub use self::error::ApiError;
use self::params::Params;
use crate::calllog::CallRecord;
use crate::engine::Emulator;
use crate::model::{Eni, EniStatus, IdempotencyRecord, Instance, State};
use crate::scenario::AccountStatus;
use crate::server::Dropped;
use crate::util;

/// What an action gets besides the emulator.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// Request parameters.
    pub params: &'a Params,
    /// The validated `RegionId`.
    pub region: String,
    /// The caller.
    pub identity: Identity,
}

type ActionFn = fn(&Arc<Emulator>, &Ctx<'_>) -> Result<Value, ApiError>;

/// Every implemented action: name, handler, whether it honours ClientToken.
pub const ACTIONS: &[(&str, ActionFn, bool)] = &[
    (
        "DescribeNetworkInterfaceAttribute",
        describe::describe_attribute,
        false,
    ),
    (
        "DescribeNetworkInterfaces",
        describe::describe_interfaces,
        false,
    ),
    ("AttachNetworkInterface", attach::attach, false),
    ("DetachNetworkInterface", attach::detach, false),
    ("CreateNetworkInterface", lifecycle::create, true),
    ("DeleteNetworkInterface", lifecycle::delete, false),
    ("ModifyNetworkInterfaceAttribute", lifecycle::modify, false),
    ("AssignPrivateIpAddresses", ip_ops::assign_private, true),
    (
        "UnassignPrivateIpAddresses",
        ip_ops::unassign_private,
        false,
    ),
    ("AssignIpv6Addresses", ip_ops::assign_ipv6, true),
    ("UnassignIpv6Addresses", ip_ops::unassign_ipv6, false),
];

/// Handles one API request. `Err(Dropped)` closes the connection without
/// an answer (injected fault).
pub async fn handle(emu: Arc<Emulator>, req: Request<Body>) -> Result<Response<Body>, Dropped> {
    let now = SystemTime::now();
    let request_id = util::request_id();
    let (parts, body) = req.into_parts();
    let host_id = format!("ecs.{}.aliyuncs.com", emu.state().region_id);
    let bytes = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => b,
        Err(_) => {
            let e = ApiError::invalid("body", "request body unreadable or larger than 1 MiB");
            return Ok(error_response(&e, &request_id, &host_id));
        }
    };
    let raw_query = parts.uri.query().unwrap_or("");
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        pairs.extend(form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }
    let params = Params::from_pairs(pairs);
    let sreq = SignedRequest {
        method: &parts.method,
        raw_query,
        headers: &parts.headers,
        body: &bytes,
        params: &params,
    };
    let (sig, action) = auth::detect(&sreq);
    let settings = emu.settings();
    let faults = settings
        .faults
        .for_action(action.as_deref().unwrap_or(""))
        .clone();
    let mut record = CallRecord {
        time: util::format_time_millis(now),
        action: action.clone().unwrap_or_default(),
        params: params.all().clone(),
        signature_version: sig.map_or("none", |s| s.as_str()).to_string(),
        access_key_id: params
            .get("AccessKeyId")
            .map(str::to_string)
            .unwrap_or_default(),
        method: parts.method.to_string(),
        code: String::new(),
        http_status: 0,
        request_id: request_id.clone(),
    };
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if util::chance(faults.drop_rate) {
        record.code = "ConnectionDropped".into();
        emu.log_call(record);
        return Err(Dropped);
    }
    let result = run(&emu, &sreq, action.as_deref(), now, &mut record);
    let response = match result {
        Ok(mut v) => {
            if util::chance(faults.drop_after_rate) {
                record.code = "ConnectionDropped".into();
                emu.log_call(record);
                return Err(Dropped);
            }
            if let Some(o) = v.as_object_mut() {
                o.insert("RequestId".into(), json!(request_id));
            }
            record.code = "Success".into();
            record.http_status = 200;
            json_response(StatusCode::OK, &v, &request_id)
        }
        Err(e) => {
            record.code.clone_from(&e.code);
            record.http_status = e.status.as_u16();
            error_response(&e, &request_id, &host_id)
        }
    };
    tracing::debug!(action = %record.action, code = %record.code, "api call");
    emu.log_call(record);
    Ok(response)
}

fn run(
    emu: &Arc<Emulator>,
    sreq: &SignedRequest<'_>,
    action: Option<&str>,
    now: SystemTime,
    record: &mut CallRecord,
) -> Result<Value, ApiError> {
    let settings = emu.settings();
    let tolerance = Duration::from_secs(settings.timing.timestamp_tolerance_secs);
    let (_, identity) = {
        let mut st = emu.state();
        auth::authenticate(&mut st, sreq, now, tolerance)?
    };
    record.access_key_id.clone_from(&identity.access_key_id);
    match identity.account_status {
        AccountStatus::Normal => {}
        AccountStatus::NotFound => {
            return Err(ApiError::new(
                403,
                "Abs.InvalidAccount.NotFound",
                "Your Alibaba Cloud account does not exist or your AccessKey pair has expired.",
            ));
        }
        AccountStatus::UnsupportedType => {
            return Err(ApiError::new(
                403,
                "InvalidUserType.NotSupported",
                "Your account does not support this operation.",
            ));
        }
    }
    if !emu.take_budget(settings.faults.requests_per_second) {
        return Err(ApiError::new(
            400,
            "Throttling.User",
            "Request was denied due to user flow control.",
        ));
    }
    let action = action
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::missing("Action"))?;
    let faults = settings.faults.for_action(action);
    if util::chance(faults.throttling_rate) {
        return Err(ApiError::new(
            400,
            "Throttling",
            "Request was denied due to request throttling, please try again after 5 minutes.",
        ));
    }
    if util::chance(faults.service_unavailable_rate) {
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        ));
    }
    if util::chance(faults.internal_error_rate) {
        return Err(ApiError::internal());
    }
    let Some((_, handler, client_token)) = ACTIONS.iter().find(|(name, _, _)| *name == action)
    else {
        return Err(ApiError::new(
            404,
            "InvalidAction.NotFound",
            format!("Specified api {action:?} is not found, please check your url and method."),
        ));
    };
    authorize(emu, &identity, action)?;
    let region = check_region(&emu.state(), sreq.params, action)?;
    let ctx = Ctx {
        params: sreq.params,
        region,
        identity,
    };
    if *client_token {
        with_client_token(emu, &ctx, action, *handler)
    } else {
        handler(emu, &ctx)
    }
}

fn authorize(emu: &Emulator, identity: &Identity, action: &str) -> Result<(), ApiError> {
    if identity.root {
        return Ok(());
    }
    if emu
        .state()
        .not_support_ram_actions
        .iter()
        .any(|a| a == action)
    {
        return Err(ApiError::new(
            403,
            "Forbidden.NotSupportRAM",
            format!("RAM users are not authorized to perform {action}."),
        ));
    }
    if let Some(allowed) = &identity.allowed_actions {
        if !allowed.iter().any(|a| a == action || a == "*") {
            return Err(ApiError::new(
                403,
                "Forbidden.SubUser",
                format!(
                    "You are not authorized to manage this resource (ecs:{action}). Contact the owner of the Alibaba Cloud account for authorization."
                ),
            ));
        }
    }
    Ok(())
}

fn check_region(st: &State, params: &Params, action: &str) -> Result<String, ApiError> {
    let region = params.require("RegionId")?;
    let well_formed = region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && region.contains('-');
    if !well_formed {
        return Err(if action == "AttachNetworkInterface" {
            ApiError::new(
                400,
                "InvalidOperation.InvalidRegion",
                format!("The specified RegionId {region:?} is invalid."),
            )
        } else {
            ApiError::new(
                400,
                "InvalidRegionId.MalFormed",
                "The specified parameter RegionId is not valid.",
            )
        });
    }
    if !st.regions.iter().any(|r| r == region) {
        return Err(ApiError::new(
            400,
            "Forbidden.RegionId",
            format!("The service is unavailable in the region {region:?}."),
        ));
    }
    Ok(region.to_string())
}

fn with_client_token(
    emu: &Arc<Emulator>,
    ctx: &Ctx<'_>,
    action: &str,
    handler: ActionFn,
) -> Result<Value, ApiError> {
    let Some(token) = ctx.params.opt("ClientToken") else {
        return handler(emu, ctx);
    };
    if token.len() > 64 || !token.is_ascii() {
        return Err(ApiError::invalid(
            "ClientToken",
            "at most 64 ASCII characters",
        ));
    }
    let fingerprint = ctx.params.fingerprint();
    if let Some(rec) = emu.state().idempotency.get(token) {
        if rec.action == action && rec.fingerprint == fingerprint {
            return Ok(rec.response.clone());
        }
        return Err(ApiError::new(
            400,
            "IdempotentParameterMismatch",
            "The request uses the same client token as a previous, but non-identical request.",
        ));
    }
    let response = handler(emu, ctx)?;
    emu.state().idempotency.insert(
        token.to_string(),
        IdempotencyRecord {
            action: action.to_string(),
            fingerprint,
            response: response.clone(),
        },
    );
    Ok(response)
}

fn json_response(status: StatusCode, v: &Value, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(v.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-acs-request-id", v);
    }
    resp
}

/// The error body with the error's status.
pub fn error_response(e: &ApiError, request_id: &str, host_id: &str) -> Response<Body> {
    let body = json!({
        "RequestId": request_id,
        "HostId": host_id,
        "Code": e.code,
        "Message": e.message,
        "Recommend": format!(
            "https://api.aliyun.com/troubleshoot?q={}&product=Ecs&requestId={request_id}",
            e.code
        ),
    });
    json_response(e.status, &body, request_id)
}

/// Shape check of an ENI id (`eni-` + lower-case alphanumerics).
pub fn eni_id_well_formed(id: &str) -> bool {
    id.strip_prefix("eni-")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Shape check of an instance id (`i-` + alphanumerics).
pub fn instance_id_well_formed(id: &str) -> bool {
    id.strip_prefix("i-")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Puts the ENI into `status` under a new generation (the one its delayed
/// task checks) and returns that generation.
pub fn enter(st: &mut State, eni_id: &str, status: EniStatus) -> Result<u64, ApiError> {
    let eni = st.enis.get_mut(eni_id).ok_or_else(ApiError::internal)?;
    eni.status = status;
    eni.generation += 1;
    Ok(eni.generation)
}

/// The ENI `id` in the caller's region, or `InvalidEniId.NotFound`.
pub fn find_eni<'s>(st: &'s State, ctx: &Ctx<'_>, id: &str) -> Result<&'s Eni, ApiError> {
    st.eni_in(id, &ctx.region)
        .ok_or_else(|| ApiError::eni_not_found(id))
}

/// The instance `id`: `InvalidEcsId.NotFound` (404) if it does not exist at
/// all, `InvalidInstanceId.NotFound` (403) if it exists in another region.
pub fn find_instance<'s>(st: &'s State, ctx: &Ctx<'_>, id: &str) -> Result<&'s Instance, ApiError> {
    match st.instances.get(id) {
        None => Err(ApiError::new(
            404,
            "InvalidEcsId.NotFound",
            format!("The specified instance ID {id:?} does not exist."),
        )),
        Some(i) if i.region_id != ctx.region => Err(ApiError::new(
            403,
            "InvalidInstanceId.NotFound",
            format!(
                "The specified instance {id:?} does not exist in region {}.",
                ctx.region
            ),
        )),
        Some(i) => Ok(i),
    }
}
