//! eni-agent library.
pub mod plan;
pub mod tables;
