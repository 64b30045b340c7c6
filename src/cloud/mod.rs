//! The ECS OpenAPI client: both signature algorithms, typed calls for the ENI
//! actions the agent needs, error classification with remedies, and retries
//! with jittered backoff.
//!
//! Every call is `POST /` with the parameters in the query string and API
//! version `2014-05-26`, the ECS RPC-style API. Signature V3
//! (`ACS3-HMAC-SHA256`, headers) is the default; the legacy RPC V2
//! (`HMAC-SHA1`, query) can be chosen in the configuration.

mod client;
pub mod codes;
pub mod ecs;
pub mod encode;
mod error;
mod request;
pub mod sign_v2;
pub mod sign_v3;

pub use client::{ApiResponse, EcsClient, EcsOptions, default_endpoint};
pub use codes::ErrorClass;
pub use error::{ApiError, CloudError};
pub use request::{Params, SignatureVersion};

/// The ECS API version every call names.
pub const API_VERSION: &str = "2014-05-26";
