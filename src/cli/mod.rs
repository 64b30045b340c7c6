//! The command line: argument parsing and the commands built on the library.
//! `main.rs` only parses, sets up logging and maps the outcome to an exit code.

mod agent_cmds;
mod check;
mod inspect;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::cloud::{EcsClient, EcsOptions};
use crate::config::Config;
use crate::credentials::CredentialProvider;
use crate::metadata::{MetadataClient, MetadataOptions};

/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/eni-agent/config.toml";

/// Exit code for a command line that cannot be used (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit code for an operation that failed (a permanent API or config error).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for an operation that did not finish in time.
pub const EXIT_TIMEOUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "eni-agent",
    version,
    about = "Attach an Alibaba Cloud ENI to this instance and configure it"
)]
pub struct Cli {
    /// Configuration file; a missing default file means built-in defaults.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr (under systemd logs go to the journal).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: attach and configure every ENI in the configuration, keep them so.
    Run,
    /// One-shot (cloud-init): attach ENI_ID, configure it, exit 0 once configured
    /// (1: permanent error, 2: timeout, 64: bad usage).
    Attach {
        /// The ENI id (eni-...).
        #[arg(value_parser = eni_id_arg)]
        eni_id: String,
        /// Give up after this long (e.g. 90s, 5m); default agent.attach_timeout.
        #[arg(long, value_parser = check::parse_timeout)]
        timeout: Option<std::time::Duration>,
    },
    /// Remove the agent's configuration of ENI_ID, detach it and wait until it is Available
    /// (1: permanent error, 2: timeout; a rerun resumes an interrupted detach).
    Detach {
        /// The ENI id (eni-...).
        #[arg(value_parser = eni_id_arg)]
        eni_id: String,
        /// Give up after this long (e.g. 90s, 5m); default agent.attach_timeout.
        #[arg(long, value_parser = check::parse_timeout)]
        timeout: Option<std::time::Duration>,
    },
    /// Each managed ENI: state, interface, table, last phase timings, last error.
    Status {
        /// Print the records (and what the kernel has for each NIC) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop the agent's record of ENI_ID (e.g. a detach the API refused); changes
    /// nothing in the kernel or the cloud. Refused while the daemon runs: stop it first.
    Forget {
        /// The ENI id (eni-...).
        #[arg(value_parser = eni_id_arg)]
        eni_id: String,
    },
    /// Print the kernel operations that would configure ENI_ID: only what differs from
    /// the kernel now (nothing on a configured ENI); change nothing.
    Plan {
        /// The ENI id (eni-...).
        #[arg(value_parser = eni_id_arg)]
        eni_id: String,
        /// Print the whole desired state instead of what would change.
        #[arg(long)]
        full: bool,
    },
    /// Show an ENI's facts as the ECS API reports them (DescribeNetworkInterfaceAttribute).
    Describe {
        /// The ENI id (eni-...).
        #[arg(value_parser = eni_id_arg)]
        eni_id: String,
        /// Print the facts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what the instance metadata service reports: identity and every attached ENI.
    Metadata,
    /// Check a configuration file (default: --config or /etc/eni-agent/config.toml) and print
    /// the effective configuration: every setting with its default resolved, and the credential chain.
    CheckConfig {
        /// The file to check.
        file: Option<PathBuf>,
    },
}

/// An ENI id argument, refused before anything else happens (exit 64) when
/// it does not have the documented shape.
fn eni_id_arg(value: &str) -> Result<String, String> {
    crate::ids::EniId::parse(value)
        .map(String::from)
        .map_err(|e| e.to_string())
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match &cli.command {
        Command::Run => return agent_cmds::exit(agent_cmds::run_daemon(&cli).await),
        Command::Attach { eni_id, timeout } => {
            return agent_cmds::exit(agent_cmds::attach(&cli, eni_id, *timeout).await);
        }
        Command::Detach { eni_id, timeout } => {
            return agent_cmds::exit(agent_cmds::detach(&cli, eni_id, *timeout).await);
        }
        Command::Status { json } => return agent_cmds::exit(agent_cmds::status(&cli, *json).await),
        Command::Forget { eni_id } => {
            return agent_cmds::exit(agent_cmds::forget(&cli, eni_id).await);
        }
        Command::Plan { eni_id, full } => {
            return agent_cmds::exit(agent_cmds::plan(&cli, eni_id, *full).await);
        }
        Command::Describe { eni_id, json } => inspect::describe(&cli, eni_id, *json).await,
        Command::Metadata => inspect::metadata(&cli).await,
        Command::CheckConfig { file } => check::check_config(&cli, file.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eni-agent: {}", one_line(&e));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// An error message on one line: a server's multi-line text (a canonical
/// request echoed back) must not spill over the terminal.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The configuration: the named file, else the default file if it exists,
/// else built-in defaults.
pub fn load_config(cli: &Cli) -> Result<Config, String> {
    match &cli.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => {
            let default = std::path::Path::new(DEFAULT_CONFIG);
            if default.exists() {
                Config::load(default).map_err(|e| e.to_string())
            } else {
                Ok(Config::default())
            }
        }
    }
}

/// The metadata client for `config`, honouring the environment override.
pub fn metadata_client(config: &Config) -> Result<Arc<MetadataClient>, String> {
    let options = MetadataOptions::from_config(&config.metadata, |k| std::env::var(k).ok());
    MetadataClient::new(options)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The ECS client: region from the configuration or the metadata service,
/// credentials from the chain.
pub async fn ecs_client(
    config: &Config,
    metadata: Arc<MetadataClient>,
) -> Result<EcsClient, String> {
    let region = match &config.api.region {
        Some(region) => region.to_string(),
        None => metadata.text("region-id").await.map_err(|e| {
            format!("cannot learn the region from the metadata service ({e}); set api.region in the configuration")
        })?,
    };
    ecs_client_for_region(config, metadata, &region)
}

/// The ECS client for `region`, credentials from the chain.
pub fn ecs_client_for_region(
    config: &Config,
    metadata: Arc<MetadataClient>,
    region: &str,
) -> Result<EcsClient, String> {
    let credentials =
        CredentialProvider::resolve(&config.credentials, |k| std::env::var(k).ok(), metadata)
            .map_err(|e| e.to_string())?;
    tracing::debug!(origin = %credentials.origin(), "credentials");
    let region = crate::ids::RegionId::parse(region.trim())
        .map_err(|e| format!("the region (api.region or the metadata service's region-id): {e}"))?;
    let options = EcsOptions::from_config(&config.api, &region, |k| std::env::var(k).ok());
    EcsClient::new(options, credentials).map_err(|e| e.to_string())
}
