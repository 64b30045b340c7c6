//! Typed ECS calls, one file per action, and the response types they share.
//! Unknown response fields are ignored and absent ones tolerated; the fields
//! the agent acts on are checked where they are used.

mod attach;
mod describe_attribute;
mod describe_interfaces;
mod detach;
mod lenient;
mod types;

pub use attach::AttachNetworkInterface;
pub use describe_attribute::DescribeNetworkInterfaceAttribute;
pub use describe_interfaces::{
    DescribeNetworkInterfaces, DescribeNetworkInterfacesPage, TagFilter,
};
pub use detach::DetachNetworkInterface;

/// The bounds of a DescribeNetworkInterfaces listing.
pub mod describe_interfaces_limits {
    pub use super::describe_interfaces::{
        DEFAULT_MAX_ITEMS, MAX_PAGE_BYTES, MAX_PAGES, MAX_TOTAL_BYTES,
    };
}
pub use types::*;

/// The body of answers that carry nothing but a RequestId (Attach, Detach).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestIdOnly {
    pub request_id: String,
}
