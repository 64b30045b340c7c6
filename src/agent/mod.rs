//! The agent: per-ENI attach flow and the phases it goes through.
//!
//! - [`cloud_flow`]: the ECS side (describe, local checks, takeover, attach,
//!   InUse confirmation, detach);
//! - [`facts`]: ECS and metadata answers → the planner's inputs;
//! - [`preflight`]: the guard before an ENI is taken on;
//! - [`tags`]: which ENIs the configuration selects (tag lookups);
//! - [`planning`]: facts + vSwitch facts + table → the plan (one pipeline);
//! - [`worker`]: one ENI from Describe to configured;
//! - [`teardown`]: unconfigure and detach;
//! - [`daemon`]: `eni-agent run`;
//! - [`drift`]: repairs counted, tug-of-war reported;
//! - [`context`]: what all of them share;
//! - [`timeline`]: per-phase timings with RequestIds;
//! - [`observe`]: what the agent reports to the metrics.

pub mod cloud_flow;
pub mod context;
pub mod daemon;
pub mod drift;
pub mod facts;
pub mod observe;
pub mod planning;
pub mod preflight;
pub mod tags;
pub mod teardown;
pub mod timeline;
pub mod worker;

pub use cloud_flow::{AttachError, AttachTarget, Confirmation, PollPolicy, Readiness};
pub use timeline::{Mark, Phase, Timeline};
