//! The API's error answer: an ECS error code with its HTTP status and
//! message, rendered as `{RequestId, HostId, Code, Message, Recommend}`.

use axum::http::StatusCode;

/// An error answer of the ECS API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// ECS error code, e.g. `InvalidEniId.NotFound`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// `MissingParameter` (400) for `name`.
    pub fn missing(name: &str) -> ApiError {
        ApiError::new(
            400,
            "MissingParameter",
            format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }

    /// `InvalidParameter` (400) for `name`.
    pub fn invalid(name: &str, why: &str) -> ApiError {
        ApiError::new(
            400,
            "InvalidParameter",
            format!("The specified parameter \"{name}\" is not valid: {why}"),
        )
    }

    /// `InvalidEniId.NotFound` (404).
    pub fn eni_not_found(id: &str) -> ApiError {
        ApiError::new(
            404,
            "InvalidEniId.NotFound",
            format!("The specified NetworkInterfaceId \"{id}\" does not exist."),
        )
    }

    /// `InvalidOperation.InvalidEniState` (400).
    pub fn eni_state(id: &str, state: &str, wanted: &str) -> ApiError {
        ApiError::new(
            400,
            "InvalidOperation.InvalidEniState",
            format!("The ENI \"{id}\" is {state}; this operation needs it {wanted}."),
        )
    }

    /// An error with status 403.
    pub fn forbidden(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(403, code, message)
    }

    /// `InternalError` (500).
    pub fn internal() -> ApiError {
        ApiError::new(
            500,
            "InternalError",
            "The request processing has failed due to some unknown error, exception or failure.",
        )
    }
}
