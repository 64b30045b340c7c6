//! The configuration file (`/etc/eni-agent/config.toml`): the ECS API, the
//! metadata service, the credentials, the agent and its ENIs. Every section and key is optional;
//! unknown keys and bad values are errors that name the key and its line.
//!
//! ```toml
//! [api]
//! region = "cn-hangzhou"              # default: the metadata service's region-id
//! endpoint = "https://ecs-vpc.cn-hangzhou.aliyuncs.com"  # env ENI_AGENT_ECS_ENDPOINT wins
//! signature = "v3"                    # or "v2" (legacy RPC HMAC-SHA1)
//! connect_timeout = "3s"
//! request_timeout = "10s"
//! [api.retry]
//! base_delay = "200ms"
//! max_delay = "10s"
//! max_attempts = 8
//! deadline = "2m"
//! throttle_min_delay = "2s"          # Throttling*: wait in [min, min(max, base·2^(n-1))]
//! throttle_base_delay = "6s"
//! throttle_max_delay = "12s"
//!
//! [metadata]
//! endpoint = "http://100.100.100.200"  # env ENI_AGENT_METADATA_ENDPOINT wins
//! require_token = false                # true: never read without a hardened-mode token
//!
//! [credentials]
//! file = "/etc/eni-agent/credentials"  # INI, [default] access_key_id/access_key_secret
//! ram_role = "EniAgentRole"             # default: discovered from the metadata service
//!
//! [agent]
//! state_dir = "/var/lib/eni-agent"
//! attach_timeout = "3m"                # one ENI's attach, first Describe to configured (1s..1d)
//! describe_interval = "60s"            # re-read each ENI's IPs (jittered; 5s..1d)
//! detach_on_remove = false             # SIGHUP: detach ENIs removed from this file
//! max_tag_enis = 64                    # the most ENIs one tag entry may select
//! manage_network_managers = true       # keep NetworkManager / systemd-networkd off our NICs
//! table_min = 10001                    # routing tables the agent allocates from
//! table_max = 10999
//! instance_id = "i-bp1..."             # identity overrides; default: the metadata service
//! zone_id = "cn-hangzhou-i"
//! vpc_id = "vpc-bp1..."
//!
//! [metrics]
//! listen = "127.0.0.1:9839"            # the daemon's /metrics; "" turns it off
//! textfile = "/var/lib/node_exporter/textfile_collector/eni_agent.prom"  # one-shot
//!
//! [[eni]]
//! id = "eni-bp1..."                    # or: tag = "role=db" (every Available ENI so tagged in my zone)
//! mtu = 9000
//! takeover = true
//! ```

mod eni;

mod duration;
mod validate;

mod metrics;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backoff::{RetryPolicy, ThrottleBackoff};
use crate::cloud::SignatureVersion;
use crate::ids::{InstanceId, RegionId, VpcId, ZoneId};

pub use eni::{EniConfig, EniError, EniSelector, is_eni_id};
pub use metrics::MetricsConfig;
pub use validate::check_url;

/// Environment variable that overrides the ECS endpoint (any URL; http allowed).
pub const ENV_ECS_ENDPOINT: &str = "ENI_AGENT_ECS_ENDPOINT";
/// Environment variable that overrides the metadata endpoint.
pub const ENV_METADATA_ENDPOINT: &str = "ENI_AGENT_METADATA_ENDPOINT";

/// The most `[[eni]]` entries a file may have (each is a worker).
pub const MAX_ENI_ENTRIES: usize = 256;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub api: ApiConfig,
    pub metadata: MetadataConfig,
    pub credentials: CredentialsConfig,
    pub agent: AgentConfig,
    pub metrics: MetricsConfig,
    /// The ENIs to attach and keep configured.
    pub eni: Vec<EniConfig>,
}

/// `[agent]`: the daemon itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Intent records and routing-table allocations.
    pub state_dir: PathBuf,
    /// How often each ENI is described again to pick up IPs assigned or
    /// unassigned after the attach (jittered by ±10 %).
    #[serde(deserialize_with = "duration::deserialize")]
    pub describe_interval: Duration,
    /// How long an attach may take, from the first Describe to configured.
    #[serde(deserialize_with = "duration::deserialize")]
    pub attach_timeout: Duration,
    /// On reload, detach (and unconfigure) ENIs removed from the file.
    pub detach_on_remove: bool,
    /// Tell NetworkManager and systemd-networkd to leave our NICs alone.
    pub manage_network_managers: bool,
    /// First and last routing table number the agent may allocate.
    pub table_min: u32,
    pub table_max: u32,
    /// The most ENIs one `tag` entry may select; a listing with more is
    /// refused (and the previous selection kept).
    pub max_tag_enis: usize,
    /// Identity overrides (default: the metadata service).
    pub instance_id: Option<InstanceId>,
    pub zone_id: Option<ZoneId>,
    pub vpc_id: Option<VpcId>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            state_dir: "/var/lib/eni-agent".into(),
            describe_interval: Duration::from_secs(60),
            attach_timeout: Duration::from_secs(180),
            detach_on_remove: false,
            manage_network_managers: true,
            table_min: 10001,
            table_max: 10999,
            max_tag_enis: 64,
            instance_id: None,
            zone_id: None,
            vpc_id: None,
        }
    }
}

/// `[api]`: how to reach and call the ECS OpenAPI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Endpoint URL; default `https://ecs-vpc.<region>.aliyuncs.com`.
    pub endpoint: Option<String>,
    /// Region id; default: the metadata service's `region-id`.
    pub region: Option<RegionId>,
    pub signature: SignatureVersion,
    #[serde(deserialize_with = "duration::deserialize")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub request_timeout: Duration,
    pub retry: RetryConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            signature: SignatureVersion::V3,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            retry: RetryConfig::default(),
        }
    }
}

/// `[api.retry]`: backoff for transient API errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    #[serde(deserialize_with = "duration::deserialize")]
    pub base_delay: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_delay: Duration,
    pub max_attempts: u32,
    #[serde(deserialize_with = "duration::deserialize")]
    pub deadline: Duration,
    /// `Throttling*` answers: the shortest wait before a retry.
    #[serde(deserialize_with = "duration::deserialize")]
    pub throttle_min_delay: Duration,
    /// `Throttling*` answers: the ceiling of the first wait (doubling).
    #[serde(deserialize_with = "duration::deserialize")]
    pub throttle_base_delay: Duration,
    /// `Throttling*` answers: no ceiling is larger.
    #[serde(deserialize_with = "duration::deserialize")]
    pub throttle_max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let throttle = ThrottleBackoff::default();
        Self {
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_attempts: 8,
            deadline: Duration::from_secs(120),
            throttle_min_delay: throttle.min_delay,
            throttle_base_delay: throttle.base_delay,
            throttle_max_delay: throttle.max_delay,
        }
    }
}

impl RetryConfig {
    /// The policy the client runs with.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            max_attempts: self.max_attempts.max(1),
            deadline: self.deadline,
        }
    }

    /// The backoff after a `Throttling*` answer.
    pub fn throttle(&self) -> ThrottleBackoff {
        ThrottleBackoff {
            min_delay: self.throttle_min_delay,
            base_delay: self.throttle_base_delay,
            max_delay: self.throttle_max_delay,
        }
    }
}

/// `[metadata]`: the instance metadata service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    /// Base URL; default `http://100.100.100.200`.
    pub endpoint: Option<String>,
    /// Never read without a hardened-mode token.
    pub require_token: bool,
    /// Lifetime requested for hardened-mode tokens (1 s to 6 h).
    #[serde(deserialize_with = "duration::deserialize")]
    pub token_ttl: Duration,
    /// Per-request timeout; the service is local, so it is short.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            require_token: false,
            token_ttl: Duration::from_secs(21600),
            timeout: Duration::from_secs(2),
        }
    }
}

/// `[credentials]`: where API credentials come from when the environment has none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsConfig {
    /// An Alibaba Cloud credentials file (INI); must not be readable by group or others.
    pub file: Option<PathBuf>,
    /// The profile in that file; default `default`.
    pub profile: Option<String>,
    /// The instance RAM role; default: discovered from the metadata service.
    pub ram_role: Option<String>,
}

/// The longest duration any setting (or `--timeout`) accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Why [`Config::validate`] refused: a value, or an `[[eni]]` entry.
enum Invalid {
    Value(String),
    Eni(eni::EniError),
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration in {origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Config {
    /// The `[[eni]]` entry with `eni_id`, or one with defaults.
    pub fn entry_for(&self, eni_id: &str) -> EniConfig {
        self.eni
            .iter()
            .find(|e| e.id.as_deref() == Some(eni_id))
            .cloned()
            .unwrap_or_else(|| EniConfig::for_id(eni_id))
    }

    /// Parses TOML text; `origin` names it in errors (a path, or "built-in").
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate().map_err(|invalid| ConfigError::Invalid {
            origin: origin.to_owned(),
            message: match invalid {
                Invalid::Value(message) => message,
                Invalid::Eni(e) => e.with_line(text),
            },
        })?;
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Checks the values serde cannot.
    fn validate(&self) -> Result<(), Invalid> {
        self.validate_values().map_err(Invalid::Value)?;
        self.metrics.validate().map_err(Invalid::Value)?;
        let a = &self.agent;
        eni::validate(&self.eni, a.table_min..=a.table_max).map_err(Invalid::Eni)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("", "test").expect("empty config is valid");
        assert_eq!(c.api.signature, SignatureVersion::V3);
        assert_eq!(c.api.retry.max_attempts, 8);
        assert!(!c.metadata.require_token);
    }

    #[test]
    fn full_file_parses() {
        let c = Config::from_toml(
            r#"
            [api]
            region = "cn-shanghai"
            endpoint = "http://127.0.0.1:8080"
            signature = "v2"
            connect_timeout = "1s"
            [api.retry]
            base_delay = "10ms"
            max_delay = "1s"
            max_attempts = 3
            deadline = "5s"
            [metadata]
            require_token = true
            token_ttl = "1h"
            [credentials]
            file = "/etc/eni-agent/credentials"
            ram_role = "EniAgent"
            "#,
            "test",
        )
        .expect("valid config");
        assert_eq!(c.api.signature, SignatureVersion::V2);
        assert_eq!(c.api.retry.policy().base_delay, Duration::from_millis(10));
        assert_eq!(c.metadata.token_ttl, Duration::from_secs(3600));
        assert_eq!(c.credentials.ram_role.as_deref(), Some("EniAgent"));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::from_toml("[api]\nregion = \"cn-x\"\nretries = 3\n", "cfg.toml")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("retries"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("cfg.toml"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::from_toml("[api]\nsignature = \"v4\"\n", "t")
            .expect_err("bad")
            .to_string();
        assert!(err.contains("v4") && err.contains("line 2"), "{err}");
        let err = Config::from_toml("[api.retry]\nbase_delay = \"soon\"\n", "t")
            .expect_err("bad")
            .to_string();
        assert!(err.contains("soon"), "{err}");
        let err = Config::from_toml("[metadata]\ntoken_ttl = \"7h\"\n", "t")
            .expect_err("bad")
            .to_string();
        assert!(err.contains("metadata.token_ttl"), "{err}");
        let err = Config::from_toml("[api]\nendpoint = \"ecs.example\"\n", "t")
            .expect_err("bad")
            .to_string();
        assert!(err.contains("api.endpoint"), "{err}");
        for (text, needle) in [
            (
                "[api]\nendpoint = \"https://x@127.0.0.1:18443\"\n",
                "user name",
            ),
            (
                "[api]\nendpoint = \"https://127.0.0.1:18443/#\"\n",
                "fragment",
            ),
            ("[api]\nendpoint = \"https://127.0.0.1/?a=b\"\n", "query"),
            (
                "[metadata]\nendpoint = \"http://u:p@100.100.100.200\"\n",
                "metadata.endpoint",
            ),
            ("[api]\nregion = \"x@127.0.0.1:18443#\"\n", "region id"),
            ("[agent]\ninstance_id = \"i-a\\nb\"\n", "instance id"),
            ("[agent]\nzone_id = \"cn/zone\"\n", "zone id"),
            ("[agent]\nvpc_id = \"vsw-1\"\n", "VPC id"),
            ("[agent]\nmax_tag_enis = 0\n", "agent.max_tag_enis"),
        ] {
            let err = Config::from_toml(text, "t").expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let err = Config::from_toml("[api.retry]\nmax_attempts = 0\n", "t")
            .expect_err("bad")
            .to_string();
        assert!(err.contains("max_attempts"), "{err}");
        for (text, key) in [
            ("[agent]\nattach_timeout = \"0s\"\n", "agent.attach_timeout"),
            (
                "[agent]\nattach_timeout = \"400days\"\n",
                "agent.attach_timeout",
            ),
            ("[agent]\ndescribe_interval = \"1s\"\n", "rate limited"),
            ("[api]\nrequest_timeout = \"0s\"\n", "api.request_timeout"),
            ("[metadata]\ntimeout = \"0ms\"\n", "metadata.timeout"),
        ] {
            let err = Config::from_toml(text, "t").expect_err(text).to_string();
            assert!(
                err.contains(key) && err.contains("out of range"),
                "{text}: {err}"
            );
        }
    }
}
