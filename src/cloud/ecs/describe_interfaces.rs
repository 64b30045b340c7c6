//! DescribeNetworkInterfaces: list ENIs by filters, following `NextToken`
//! until the last page. A listing is bounded — pages, bytes per page (the
//! client reads a body with a limit), bytes in all and ENIs in all — so a
//! looping or hostile service cannot make the agent buffer without end, and
//! every ENI id in the answer is checked against its documented shape before
//! it goes anywhere.

use serde::Deserialize;

use super::lenient;
use super::types::NetworkInterface;
use crate::cloud::{CloudError, EcsClient, Params};
use crate::ids::EniId;

/// A `Tag.N.Key` / `Tag.N.Value` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    pub key: String,
    pub value: Option<String>,
}

/// The filters; empty ones are not sent.
#[derive(Debug, Clone, Default)]
pub struct DescribeNetworkInterfaces {
    pub instance_id: Option<String>,
    pub status: Option<String>,
    pub vpc_id: Option<String>,
    pub vswitch_id: Option<String>,
    pub network_interface_ids: Vec<String>,
    pub tags: Vec<TagFilter>,
    /// Page size, 1–500; default 100.
    pub max_results: Option<u32>,
    /// The most ENIs the listing may return; more is an error
    /// ([`DEFAULT_MAX_ITEMS`] when unset).
    pub max_items: Option<usize>,
}

/// One page of the answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeNetworkInterfacesPage {
    pub request_id: String,
    pub next_token: String,
    #[serde(deserialize_with = "lenient::opt_u64")]
    pub total_count: Option<u64>,
    pub network_interface_sets: NetworkInterfaceSets,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NetworkInterfaceSets {
    #[serde(rename = "NetworkInterfaceSet")]
    pub items: Vec<NetworkInterface>,
}

/// No listing needs more pages than this; more means the service is looping.
pub const MAX_PAGES: usize = 100;
/// The most bytes one page may have (the client's per-call body limit
/// applies too).
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;
/// The most bytes all pages together may have.
pub const MAX_TOTAL_BYTES: usize = 8 * 1024 * 1024;
/// The most ENIs one listing returns unless the caller says otherwise.
pub const DEFAULT_MAX_ITEMS: usize = 1000;

impl DescribeNetworkInterfaces {
    pub const ACTION: &'static str = "DescribeNetworkInterfaces";

    pub fn params(&self, next_token: Option<&str>) -> Params {
        let mut p = Params::new()
            .set_opt("InstanceId", self.instance_id.as_deref())
            .set_opt("Status", self.status.as_deref())
            .set_opt("VpcId", self.vpc_id.as_deref())
            .set_opt("VSwitchId", self.vswitch_id.as_deref())
            .set_list("NetworkInterfaceId", &self.network_interface_ids)
            .set(
                "MaxResults",
                self.max_results.unwrap_or(100).clamp(1, 500).to_string(),
            )
            .set_opt("NextToken", next_token.filter(|t| !t.is_empty()));
        for (i, tag) in self.tags.iter().enumerate() {
            p = p.set(format!("Tag.{}.Key", i + 1), &tag.key);
            if let Some(v) = &tag.value {
                p = p.set(format!("Tag.{}.Value", i + 1), v);
            }
        }
        p
    }
}

impl EcsClient {
    /// Every ENI matching the filters, all pages. Returns the ENIs and the
    /// RequestIds of the pages.
    pub async fn describe_network_interfaces(
        &self,
        request: &DescribeNetworkInterfaces,
    ) -> Result<(Vec<NetworkInterface>, Vec<String>), CloudError> {
        let max_items = request.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
        let mut all = Vec::new();
        let mut request_ids = Vec::new();
        let mut token: Option<String> = None;
        let mut total_bytes = 0usize;
        let invalid = |request_id: &str, reason: String| CloudError::InvalidResponse {
            action: DescribeNetworkInterfaces::ACTION,
            request_id: request_id.to_owned(),
            reason,
        };
        for _ in 0..MAX_PAGES {
            let page = self
                .call_limited::<DescribeNetworkInterfacesPage>(
                    DescribeNetworkInterfaces::ACTION,
                    request.params(token.as_deref()),
                    MAX_PAGE_BYTES,
                )
                .await?;
            total_bytes += page.body_len;
            let body = page.body;
            if total_bytes > MAX_TOTAL_BYTES {
                return Err(invalid(
                    &page.request_id,
                    format!("the pages together are larger than {MAX_TOTAL_BYTES} bytes"),
                ));
            }
            if all.len() + body.network_interface_sets.items.len() > max_items {
                return Err(invalid(
                    &page.request_id,
                    format!(
                        "more than {max_items} network interfaces match; narrow the filter or raise the limit (agent.max_tag_enis)"
                    ),
                ));
            }
            for ni in &body.network_interface_sets.items {
                if let Err(e) = EniId::parse(&ni.network_interface_id) {
                    return Err(invalid(
                        &page.request_id,
                        format!("NetworkInterfaceId: {e}"),
                    ));
                }
            }
            if body.next_token.len() > 1024 {
                return Err(invalid(
                    &page.request_id,
                    "NextToken is longer than 1024 characters".into(),
                ));
            }
            request_ids.push(page.request_id.clone());
            all.extend(body.network_interface_sets.items);
            if body.next_token.is_empty() {
                return Ok((all, request_ids));
            }
            if token.as_deref() == Some(body.next_token.as_str()) {
                return Err(invalid(
                    &page.request_id,
                    "the service returned the same NextToken twice".into(),
                ));
            }
            token = Some(body.next_token);
        }
        Err(invalid(
            request_ids.last().map_or("", String::as_str),
            format!("more than {MAX_PAGES} pages"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_flattened() {
        let r = DescribeNetworkInterfaces {
            instance_id: Some("i-1".into()),
            status: Some("Available".into()),
            network_interface_ids: vec!["eni-a".into(), "eni-b".into()],
            tags: vec![
                TagFilter {
                    key: "role".into(),
                    value: Some("db".into()),
                },
                TagFilter {
                    key: "k".into(),
                    value: None,
                },
            ],
            ..Default::default()
        };
        let p = r.params(Some("tok"));
        for (k, v) in [
            ("InstanceId", "i-1"),
            ("Status", "Available"),
            ("NetworkInterfaceId.1", "eni-a"),
            ("NetworkInterfaceId.2", "eni-b"),
            ("Tag.1.Key", "role"),
            ("Tag.1.Value", "db"),
            ("Tag.2.Key", "k"),
            ("NextToken", "tok"),
            ("MaxResults", "100"),
        ] {
            assert_eq!(p.get(k), Some(v), "{k}");
        }
        assert_eq!(p.get("Tag.2.Value"), None);
        assert_eq!(r.params(None).get("NextToken"), None);
    }
}
