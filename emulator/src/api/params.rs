//! Request parameters of an RPC call: the query string merged with a form
//! body, with typed accessors that produce the ECS error for bad input
//! (`MissingParameter`, `InvalidParameter`) and helpers for the repeated
//! `Name.N` / `Tag.N.Key` forms.

use std::collections::BTreeMap;

use super::error::ApiError;

/// Merged request parameters (a later duplicate overrides an earlier one).
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Builds from decoded pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Params {
        Params {
            map: pairs.into_iter().collect(),
        }
    }

    /// All parameters.
    pub fn all(&self) -> &BTreeMap<String, String> {
        &self.map
    }

    /// A parameter, if present (empty values count as present).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// A non-empty parameter, if present.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// A mandatory parameter (`MissingParameter` if absent or empty).
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.opt(name).ok_or_else(|| ApiError::missing(name))
    }

    /// An optional integer parameter within `min..=max`.
    pub fn u32_in(&self, name: &str, min: u32, max: u32) -> Result<Option<u32>, ApiError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::invalid(
                    name,
                    &format!("expected an integer from {min} to {max}, got {v:?}"),
                )),
            },
        }
    }

    /// An optional boolean parameter (`true`/`false`).
    pub fn bool_opt(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid(
                name,
                &format!("expected true or false, got {v:?}"),
            )),
        }
    }

    /// The values of a repeated parameter `name.1`, `name.2`, … in index
    /// order (at most `max`; more → `InvalidParameter`).
    pub fn list(&self, name: &str, max: usize) -> Result<Vec<String>, ApiError> {
        let prefix = format!("{name}.");
        let mut items: Vec<(u32, String)> = Vec::new();
        for (k, v) in &self.map {
            if let Some(rest) = k.strip_prefix(&prefix) {
                if let Ok(n) = rest.parse::<u32>() {
                    if n == 0 {
                        return Err(ApiError::invalid(k, "indexes start at 1"));
                    }
                    if !v.is_empty() {
                        items.push((n, v.clone()));
                    }
                }
            }
        }
        items.sort_by_key(|(n, _)| *n);
        if items.len() > max {
            return Err(ApiError::invalid(name, &format!("at most {max} values")));
        }
        Ok(items.into_iter().map(|(_, v)| v).collect())
    }

    /// `Tag.N.Key` / `Tag.N.Value` pairs in index order.
    pub fn tags(&self, max: usize) -> Result<Vec<(String, Option<String>)>, ApiError> {
        let mut by_index: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
        for (k, v) in &self.map {
            let Some(rest) = k.strip_prefix("Tag.") else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else {
                continue;
            };
            let e = by_index.entry(n).or_default();
            match field {
                "Key" => e.0 = Some(v.clone()),
                "Value" => e.1 = Some(v.clone()),
                _ => {}
            }
        }
        if by_index.len() > max {
            return Err(ApiError::invalid("Tag", &format!("at most {max} tags")));
        }
        by_index
            .into_iter()
            .map(|(n, (k, v))| match k {
                Some(k) if !k.is_empty() => Ok((k, v)),
                _ => Err(ApiError::missing(&format!("Tag.{n}.Key"))),
            })
            .collect()
    }

    /// Business parameters for idempotency comparison: everything except
    /// the common and signature parameters and the ClientToken itself.
    pub fn fingerprint(&self) -> Vec<(String, String)> {
        const COMMON: &[&str] = &[
            "AccessKeyId",
            "Action",
            "ClientToken",
            "Format",
            "SecurityToken",
            "Signature",
            "SignatureMethod",
            "SignatureNonce",
            "SignatureType",
            "SignatureVersion",
            "Timestamp",
            "Version",
        ];
        self.map
            .iter()
            .filter(|(k, _)| !COMMON.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn repeated_parameters_come_back_in_index_order() {
        let params = p(&[("Id.10", "c"), ("Id.2", "b"), ("Id.1", "a"), ("Idx", "z")]);
        assert_eq!(params.list("Id", 100).expect("valid"), vec!["a", "b", "c"]);
        assert!(params.list("Id", 2).is_err());
    }

    #[test]
    fn tags_need_keys() {
        let params = p(&[
            ("Tag.1.Key", "k"),
            ("Tag.1.Value", "v"),
            ("Tag.2.Value", "x"),
        ]);
        let err = params.tags(20).expect_err("Tag.2.Key missing");
        assert_eq!(err.code, "MissingParameter");
    }

    #[test]
    fn integers_are_range_checked() {
        let params = p(&[("N", "0"), ("M", "abc"), ("O", "5")]);
        assert!(params.u32_in("N", 1, 10).is_err());
        assert!(params.u32_in("M", 1, 10).is_err());
        assert_eq!(params.u32_in("O", 1, 10).expect("valid"), Some(5));
        assert_eq!(params.u32_in("P", 1, 10).expect("absent"), None);
    }
}
