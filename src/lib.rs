//! eni-agent library.
pub mod plan;
