//! RAM-role credentials of the metadata service: issued on demand, valid
//! for `credential_ttl_secs`, replaced by new ones once less than
//! `credential_refresh_secs` remain (the old ones stay valid until they
//! expire). The API side accepts them as STS credentials.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::model::{State, StsCredential};
use crate::settings::MetadataSettings;
use crate::util;

/// The current credentials of `role`, issuing new ones when due.
pub fn current(
    st: &mut State,
    role: &str,
    cfg: &MetadataSettings,
    now: SystemTime,
) -> StsCredential {
    let refresh = Duration::from_secs(cfg.credential_refresh_secs);
    if let Some(c) = st.role_current.get(role).and_then(|id| st.sts.get(id)) {
        if c.expires > now + refresh {
            return c.clone();
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let c = StsCredential {
        access_key_id: format!("STS.NT{}", util::random_hex::<12>().to_uppercase()),
        secret: b64.encode(util::random_bytes::<30>()),
        token: format!("CAIS{}", b64.encode(util::random_bytes::<96>())),
        role: role.to_string(),
        issued: now,
        expires: now + Duration::from_secs(cfg.credential_ttl_secs.max(1)),
    };
    // Forget credentials that expired long ago.
    st.sts
        .retain(|_, old| old.expires + Duration::from_secs(3600) > now);
    st.sts.insert(c.access_key_id.clone(), c.clone());
    st.role_current
        .insert(role.to_string(), c.access_key_id.clone());
    tracing::info!(%role, key = %c.access_key_id, "issued RAM role credentials");
    c
}

/// The JSON document served at `ram/security-credentials/<role>`.
pub fn document(c: &StsCredential) -> Value {
    json!({
        "AccessKeyId": c.access_key_id,
        "AccessKeySecret": c.secret,
        "Expiration": util::format_time(c.expires),
        "SecurityToken": c.token,
        "LastUpdated": util::format_time(c.issued),
        "Code": "Success",
    })
}
