//! eni-agent: attaches an Alibaba Cloud ECS elastic network interface to the
//! instance it runs on and configures the hot-plugged NIC over rtnetlink.
//!
//! Layers, each its own module with its own error type:
//! - [`cloud`]: the ECS OpenAPI client (signatures, typed calls, retries);
//! - [`metadata`]: the instance metadata service;
//! - [`credentials`]: the credential chain (environment, file, RAM role);
//! - [`plan`]: the pure planner (ENI facts → desired kernel state);
//! - [`netlink`], [`apply`], [`ethtool`], [`sysctl`], [`tables`]: the kernel
//!   side (rtnetlink wrappers, reconciler and watcher, channels, sysctls,
//!   routing-table allocation);
//! - [`agent`], [`state`], [`handoff`], [`notify`]: the daemon's pieces;
//! - [`config`], [`cli`]: configuration file and command line.

pub mod agent;
pub mod apply;
pub mod backoff;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod credentials;
pub mod ethtool;
pub mod handoff;
pub mod http;
pub mod ids;
pub mod mac;
pub mod metadata;
pub mod metrics;
pub mod netlink;
pub mod notify;
pub mod plan;
pub mod secret;
pub mod state;
pub mod sysctl;
pub mod tables;
pub mod udev;
