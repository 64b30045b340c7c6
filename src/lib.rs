//! eni-agent library.
pub mod apply;
pub mod ethtool;
pub mod netlink;
pub mod plan;
pub mod sysctl;
pub mod tables;
