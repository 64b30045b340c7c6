//! `[metrics]`: the daemon's Prometheus endpoint and the one-shot's
//! node_exporter textfile.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The endpoint's default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9839";

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` the daemon serves `/metrics` on; `""` turns it off.
    pub listen: String,
    /// The node_exporter textfile the one-shot writes (e.g.
    /// `/var/lib/node_exporter/textfile_collector/eni_agent.prom`).
    pub textfile: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            textfile: None,
        }
    }
}

impl MetricsConfig {
    /// The address to listen on; `None` when the endpoint is off.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.trim().parse().ok()
    }

    /// Checks the values serde cannot.
    pub(super) fn validate(&self) -> Result<(), String> {
        let listen = self.listen.trim();
        if !listen.is_empty() && listen.parse::<SocketAddr>().is_err() {
            return Err(format!(
                "metrics.listen = {:?} is not an IP address and port (write it like \"127.0.0.1:9839\" or \"[::1]:9839\", or \"\" to turn the endpoint off)",
                self.listen
            ));
        }
        if let Some(path) = &self.textfile {
            if !path.is_absolute() {
                return Err(format!(
                    "metrics.textfile = {:?} must be an absolute path",
                    path.display()
                ));
            }
            if path.extension().and_then(|e| e.to_str()) != Some("prom") {
                return Err(format!(
                    "metrics.textfile = {:?} must end in .prom (node_exporter reads only *.prom files)",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    #[test]
    fn defaults_listen_on_loopback() {
        let c = Config::from_toml("", "t").expect("valid");
        assert_eq!(
            c.metrics.listen_addr(),
            Some("127.0.0.1:9839".parse().expect("addr"))
        );
        assert_eq!(c.metrics.textfile, None);
    }

    #[test]
    fn empty_listen_turns_it_off_and_bad_values_are_named() {
        let c = Config::from_toml("[metrics]\nlisten = \"\"\n", "t").expect("valid");
        assert_eq!(c.metrics.listen_addr(), None);
        let c = Config::from_toml("[metrics]\nlisten = \"[::]:9100\"\ntextfile = \"/var/lib/node_exporter/textfile_collector/eni_agent.prom\"\n", "t").expect("valid");
        assert!(c.metrics.listen_addr().is_some() && c.metrics.textfile.is_some());
        for (text, needle) in [
            ("[metrics]\nlisten = \"localhost:9839\"\n", "metrics.listen"),
            ("[metrics]\nlisten = \"127.0.0.1\"\n", "metrics.listen"),
            ("[metrics]\ntextfile = \"eni.prom\"\n", "absolute"),
            ("[metrics]\ntextfile = \"/tmp/eni.txt\"\n", ".prom"),
            ("[metrics]\nport = 1\n", "port"),
        ] {
            let e = Config::from_toml(text, "t").expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
