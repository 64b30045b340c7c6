//! The agent: per-ENI attach flow and the phases it goes through.
//!
//! - [`cloud_flow`]: the ECS side (describe, local checks, takeover, attach,
//!   InUse confirmation, detach);
//! - [`timeline`]: per-phase timings with RequestIds.

pub mod cloud_flow;
pub mod timeline;

pub use cloud_flow::{AttachError, AttachTarget, PollPolicy, Readiness};
pub use timeline::{Mark, Phase, Timeline};
