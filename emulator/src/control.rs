//! The control API for tests, under `/_emulator/` on the API listener:
//! read the call log, read and change settings (faults, timing, metadata
//! options) at run time, seed resources, change instance state, dump the
//! model. Nothing here is part of ECS.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::Emulator;
use crate::model::instance_data::{self, InstanceDataPatch};
use crate::scenario::Scenario;
use crate::settings::{Settings, merge_patch};

/// The control router (its paths start with `/_emulator/`).
pub fn router(emu: Arc<Emulator>) -> Router {
    Router::new()
        .route("/_emulator/calls", get(calls).delete(clear_calls))
        .route(
            "/_emulator/settings",
            get(get_settings).put(put_settings).patch(patch_settings),
        )
        .route("/_emulator/state", get(state))
        .route("/_emulator/seed", post(seed))
        .route("/_emulator/instances/{id}", patch(patch_instance))
        .with_state(emu)
}

fn bad_request(msg: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": msg.to_string()})),
    )
        .into_response()
}

async fn calls(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    Json(json!(emu.calls()))
}

async fn clear_calls(State(emu): State<Arc<Emulator>>) -> StatusCode {
    emu.clear_calls();
    StatusCode::NO_CONTENT
}

async fn get_settings(State(emu): State<Arc<Emulator>>) -> Json<Settings> {
    Json(emu.settings())
}

async fn put_settings(State(emu): State<Arc<Emulator>>, Json(s): Json<Settings>) -> Json<Settings> {
    emu.set_settings(s);
    Json(emu.settings())
}

async fn patch_settings(State(emu): State<Arc<Emulator>>, Json(patch): Json<Value>) -> Response {
    let mut v = match serde_json::to_value(emu.settings()) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    merge_patch(&mut v, &patch);
    match serde_json::from_value::<Settings>(v) {
        Ok(s) => {
            emu.set_settings(s);
            Json(emu.settings()).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn state(State(emu): State<Arc<Emulator>>) -> Json<Value> {
    let st = emu.state();
    let mut enis: Vec<_> = st.enis.values().collect();
    enis.sort_by_key(|e| e.seq);
    Json(json!({
        "region_id": st.region_id,
        "metadata_instance_id": st.metadata_instance_id,
        "instances": st.instances,
        "enis": enis,
    }))
}

async fn seed(State(emu): State<Arc<Emulator>>, Json(s): Json<Scenario>) -> Response {
    let result = emu.state().seed(&s);
    match result {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => bad_request(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstancePatch {
    status: Option<String>,
    /// The instance's region as its metadata `region-id` says (no check:
    /// a test may seed a hostile one).
    region_id: Option<String>,
    key_pairs: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "instance_data::present")]
    user_data: Option<Option<String>>,
    #[serde(default, deserialize_with = "instance_data::present")]
    vendor_data: Option<Option<String>>,
}

async fn patch_instance(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Json(p): Json<InstancePatch>,
) -> Response {
    let mut st = emu.state();
    let Some(inst) = st.instances.get_mut(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such instance"})),
        )
            .into_response();
    };
    let data = InstanceDataPatch {
        key_pairs: p.key_pairs,
        user_data: p.user_data,
        vendor_data: p.vendor_data,
    };
    if let Err(e) = data.apply(inst) {
        return bad_request(e);
    }
    if let Some(s) = p.status {
        inst.status = s;
    }
    if let Some(r) = p.region_id {
        inst.region_id = r;
    }
    let body = json!(inst);
    drop(st);
    // A stopped instance has no NICs; a started one gets them back.
    emu.sync_links();
    Json(body).into_response()
}
