//! The call log: one record per API request (authenticated or not), which
//! tests read through the control API to check what a client sent and what
//! it got back.

use std::collections::BTreeMap;

use serde::Serialize;

/// One API request.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    /// When it arrived (RFC 3339, milliseconds).
    pub time: String,
    /// Action name (empty if none could be told).
    pub action: String,
    /// All query and form parameters.
    pub params: BTreeMap<String, String>,
    /// `v2`, `v3` or `none`.
    pub signature_version: String,
    /// AccessKeyId, if any.
    pub access_key_id: String,
    /// HTTP method.
    pub method: String,
    /// `Success`, the error code, or `ConnectionDropped`.
    pub code: String,
    /// HTTP status (0 for a dropped connection).
    pub http_status: u16,
    /// RequestId of the answer.
    pub request_id: String,
}
