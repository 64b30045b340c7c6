//! `ecs-emulator serve`: parse the command line, bind the listeners (in the
//! host's namespace), optionally set up hot-plug into a named namespace and
//! move into a private one, start the library, print the ready line.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ecs_emulator::scenario::Scenario;
use ecs_emulator::{Config, Listeners, netns};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Emulator of the Alibaba Cloud ECS ENI API and instance metadata service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and the metadata service; print one JSON line when ready.
    Serve {
        /// Scenario file (TOML); default: the built-in scenario.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Named network namespace of the emulated instance (hot-plug target).
        #[arg(long)]
        netns: Option<String>,
        /// Address of the ECS API.
        #[arg(long, default_value = "127.0.0.1:0")]
        api_listen: SocketAddr,
        /// Address of the metadata service.
        #[arg(long, default_value = "127.0.0.1:0")]
        metadata_listen: SocketAddr,
        /// With --netns: also serve metadata at 100.100.100.200:80 inside it.
        #[arg(long, requires = "netns")]
        metadata_in_netns: bool,
        /// With --netns: also serve the ECS API at this IPv4 address inside it
        /// (e.g. 100.100.100.201:80), so an agent in the namespace reaches it.
        #[arg(long, requires = "netns", value_name = "ADDR")]
        api_in_netns: Option<SocketAddrV4>,
    },
    /// The whole flow in a private namespace: emulated instance, eni-agent attach,
    /// the resulting configuration, detach, clean-up (root; needs iproute2).
    Demo {
        /// The ENI to attach (default: the first secondary ENI of the scenario).
        #[arg(long)]
        eni: Option<String>,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (scenario, ns, api_listen, metadata_listen, metadata_in_netns, api_in_netns) =
        match Cli::parse().command {
            Command::Serve {
                scenario,
                netns,
                api_listen,
                metadata_listen,
                metadata_in_netns,
                api_in_netns,
            } => (
                scenario,
                netns,
                api_listen,
                metadata_listen,
                metadata_in_netns,
                api_in_netns,
            ),
            Command::Demo { eni } => return ecs_emulator::demo::demo(eni).map_err(Into::into),
        };
    let scenario = match scenario {
        Some(path) => Scenario::from_toml(&std::fs::read_to_string(&path)?)?,
        None => Scenario::builtin(),
    };
    let api = std::net::TcpListener::bind(api_listen)?;
    let mut metadata = vec![std::net::TcpListener::bind(metadata_listen)?];
    let mut api_extra = Vec::new();
    let instance_netns = match &ns {
        Some(name) => {
            let fd = netns::open(name)?;
            if metadata_in_netns {
                let addr = SocketAddrV4::new(netns::METADATA_ADDR, 80);
                metadata.push(netns::bind_in(&fd, addr)?);
            }
            if let Some(addr) = api_in_netns {
                api_extra.push(netns::bind_in(&fd, addr)?);
            }
            // Veth peers live in a private namespace that dies with us.
            netns::unshare_private()?;
            Some(fd)
        }
        None => None,
    };
    for l in std::iter::once(&api).chain(&metadata).chain(&api_extra) {
        l.set_nonblocking(true)?;
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listeners = Listeners {
            api: tokio::net::TcpListener::from_std(api)?,
            api_extra: api_extra
                .into_iter()
                .map(tokio::net::TcpListener::from_std)
                .collect::<Result<_, _>>()?,
            metadata: metadata
                .into_iter()
                .map(tokio::net::TcpListener::from_std)
                .collect::<Result<_, _>>()?,
        };
        let config = Config {
            scenario,
            instance_netns,
        };
        ecs_emulator::serve(config, listeners, shutdown_signal(), |info| {
            let line = serde_json::to_string(info).unwrap_or_default();
            println!("{line}");
        })
        .await
    })?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
