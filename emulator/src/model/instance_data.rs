//! Per-instance data the metadata service hands out as given: key pairs
//! (`public-keys/`), user data and vendor data. Their checks, shared by the
//! scenario and the control API, and the run-time change of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::Instance;

/// Checks key pairs (id → OpenSSH public key): an id is a non-empty path
/// segment, a key one non-empty line. Returns what is wrong.
pub fn check_key_pairs(pairs: &BTreeMap<String, String>) -> Result<(), String> {
    for (id, key) in pairs {
        if id.is_empty() || id.contains('/') || id.chars().any(char::is_whitespace) {
            return Err(format!(
                "key pair id {id:?} must be non-empty, without '/' or spaces (it is a metadata path segment)"
            ));
        }
        let k = key.trim();
        if k.is_empty() || k.contains('\n') {
            return Err(format!(
                "key pair {id:?}: the public key must be one non-empty line (`ssh-ed25519 AAAA… comment`)"
            ));
        }
    }
    Ok(())
}

/// A change of an instance's data: `None` fields stay as they are.
#[derive(Debug, Default)]
pub struct InstanceDataPatch {
    /// New key pairs (replace the old ones).
    pub key_pairs: Option<BTreeMap<String, String>>,
    /// New user data; `Some(None)` removes it.
    pub user_data: Option<Option<String>>,
    /// New vendor data; `Some(None)` removes it.
    pub vendor_data: Option<Option<String>>,
}

/// Serde helper: a field that is present (possibly `null`) becomes
/// `Some(…)`, so that `null` can mean "remove".
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl InstanceDataPatch {
    /// Checks the patch and applies it to `inst` (nothing when it is bad).
    pub fn apply(self, inst: &mut Instance) -> Result<(), String> {
        if let Some(pairs) = &self.key_pairs {
            check_key_pairs(pairs)?;
        }
        if let Some(pairs) = self.key_pairs {
            inst.key_pairs = pairs;
        }
        if let Some(u) = self.user_data {
            inst.user_data = u;
        }
        if let Some(v) = self.vendor_data {
            inst.vendor_data = v;
        }
        Ok(())
    }
}
