//! eni-agent: attaches an Alibaba Cloud ECS elastic network interface to the
//! instance it runs on and configures the hot-plugged NIC over rtnetlink.
//!
//! Layers, each its own module with its own error type:
//! - [`cloud`]: the ECS OpenAPI client (signatures, typed calls, retries);
//! - [`metadata`]: the instance metadata service;
//! - [`credentials`]: the credential chain (environment, file, RAM role);
//! - [`config`]: the configuration file.

pub mod agent;
pub mod backoff;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod credentials;
pub mod handoff;
pub mod http;
pub mod mac;
pub mod metadata;
pub mod notify;
pub mod secret;
pub mod state;
