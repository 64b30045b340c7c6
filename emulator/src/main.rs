//! `ecs-emulator serve`: parse the command line, bind the listeners (in the
//! host's namespace and, optionally, in each instance namespace), set up
//! hot-plug into the named namespaces (and move into a private one) or into
//! QEMU VMs, start the library, print the ready line.

use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use ecs_emulator::qemu::QemuVm;
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
    Serve(ServeArgs),
    /// The whole flow in a private namespace: emulated instance, eni-agent attach,
    /// the resulting configuration, detach, clean-up (root; needs iproute2).
    Demo {
        /// The ENI to attach (default: the first secondary ENI of the scenario).
        #[arg(long)]
        eni: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("namespaces").multiple(true).args(["netns", "instance_netns"])))]
struct ServeArgs {
    /// Scenario file (TOML); default: the built-in scenario.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Named network namespace of the emulated instance (hot-plug target).
    #[arg(long)]
    netns: Option<String>,
    /// Namespace of a further instance, `INSTANCE_ID=NAME` (repeatable): NICs
    /// of ENIs attached to that instance are hot-plugged into NAME, and the
    /// in-namespace listeners below are bound there too, the metadata
    /// service answering as that instance.
    #[arg(long, value_name = "ID=NAME", value_parser = parse_instance_netns)]
    instance_netns: Vec<(String, String)>,
    /// Address of the ECS API.
    #[arg(long, default_value = "127.0.0.1:0")]
    api_listen: SocketAddr,
    /// Address of the metadata service.
    #[arg(long, default_value = "127.0.0.1:0")]
    metadata_listen: SocketAddr,
    /// With --netns/--instance-netns: also serve metadata at
    /// 100.100.100.200:80 inside each instance namespace.
    #[arg(long, requires = "namespaces")]
    metadata_in_netns: bool,
    /// With --netns/--instance-netns: also serve the ECS API at this IPv4
    /// address inside each instance namespace (e.g. 100.100.100.201:80), so
    /// an agent in the namespace reaches it.
    #[arg(long, requires = "namespaces", value_name = "ADDR")]
    api_in_netns: Option<SocketAddrV4>,
    /// An instance that is a QEMU VM, `INSTANCE_ID=QMP_SOCKET` (repeatable):
    /// its ENIs are hot-plugged as virtio-net PCI NICs through that QMP
    /// socket (the emulator's alone), their multi-queue taps on a bridge per
    /// vSwitch in the emulator's namespace, which QEMU must share (start
    /// both with `ip netns exec NS`).
    #[arg(long, value_name = "ID=SOCKET", value_parser = parse_instance_netns, requires = "qemu_ports")]
    qemu_vm: Vec<(String, String)>,
    /// The free `pcie-root-port` ids of every --qemu-vm, comma-separated
    /// (e.g. rp1,rp2,rp3,rp4).
    #[arg(long, value_name = "ID,ID,…", value_delimiter = ',')]
    qemu_ports: Vec<String>,
}

fn parse_instance_netns(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((id, ns)) if !id.is_empty() && !ns.is_empty() => Ok((id.to_owned(), ns.to_owned())),
        _ => Err(format!(
            "{v:?} is not INSTANCE_ID=NAME (e.g. i-bench0001=ebench-1)"
        )),
    }
}

/// The in-namespace listeners of one instance namespace.
struct InNamespace {
    metadata: Option<std::net::TcpListener>,
    api: Option<std::net::TcpListener>,
}

fn bind_in_namespace(fd: &OwnedFd, args: &ServeArgs) -> Result<InNamespace, netns::NetnsError> {
    let metadata = if args.metadata_in_netns {
        let addr = SocketAddrV4::new(netns::METADATA_ADDR, 80);
        Some(netns::bind_in(fd, addr)?)
    } else {
        None
    };
    let api = match args.api_in_netns {
        Some(addr) => Some(netns::bind_in(fd, addr)?),
        None => None,
    };
    Ok(InNamespace { metadata, api })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = match Cli::parse().command {
        Command::Serve(args) => args,
        Command::Demo { eni } => return ecs_emulator::demo::demo(eni).map_err(Into::into),
    };
    let scenario = match &args.scenario {
        Some(path) => Scenario::from_toml(&std::fs::read_to_string(path)?)?,
        None => Scenario::builtin(),
    };
    let api = std::net::TcpListener::bind(args.api_listen)?;
    let mut metadata = vec![std::net::TcpListener::bind(args.metadata_listen)?];
    let mut api_extra = Vec::new();
    let mut instance_metadata = Vec::new();
    let instance_netns = match &args.netns {
        Some(name) => {
            let fd = netns::open(name)?;
            let bound = bind_in_namespace(&fd, &args)?;
            metadata.extend(bound.metadata);
            api_extra.extend(bound.api);
            Some(fd)
        }
        None => None,
    };
    let mut instance_namespaces = Vec::new();
    for (id, name) in &args.instance_netns {
        let fd = netns::open(name)?;
        let bound = bind_in_namespace(&fd, &args)?;
        instance_metadata.extend(bound.metadata.map(|l| (id.clone(), l)));
        api_extra.extend(bound.api);
        instance_namespaces.push((id.clone(), fd));
    }
    let qemu_vms: Vec<(String, QemuVm)> = args
        .qemu_vm
        .iter()
        .map(|(id, socket)| {
            let vm = QemuVm {
                qmp_socket: PathBuf::from(socket),
                ports: args.qemu_ports.clone(),
            };
            (id.clone(), vm)
        })
        .collect();
    if !qemu_vms.is_empty() && in_initial_netns() {
        return Err(
            "--qemu-vm creates vSwitch bridges and taps in the current network namespace: \
            run the emulator inside the VM's named namespace (ip netns exec NS ecs-emulator serve …), \
            never in the host's"
                .into(),
        );
    }
    if instance_netns.is_some() || !instance_namespaces.is_empty() {
        // Veth peers live in a private namespace that dies with us.
        netns::unshare_private()?;
    }
    let all = std::iter::once(&api)
        .chain(&metadata)
        .chain(&api_extra)
        .chain(instance_metadata.iter().map(|(_, l)| l));
    for l in all {
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
            instance_metadata: instance_metadata
                .into_iter()
                .map(|(id, l)| Ok::<_, std::io::Error>((id, tokio::net::TcpListener::from_std(l)?)))
                .collect::<Result<_, _>>()?,
        };
        let config = Config {
            scenario,
            instance_netns,
            instance_namespaces,
            qemu_vms,
        };
        ecs_emulator::serve(config, listeners, shutdown_signal(), |info| {
            let line = serde_json::to_string(info).unwrap_or_default();
            println!("{line}");
        })
        .await
    })?;
    Ok(())
}

/// True unless this process runs in a named network namespace (one of
/// `/var/run/netns/*`, as `ip netns exec` sets up): the host's, as far as
/// the emulator can tell.
fn in_initial_netns() -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &std::path::Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let Some(own) = id(std::path::Path::new("/proc/self/ns/net")) else {
        return true;
    };
    let named = std::fs::read_dir("/var/run/netns")
        .into_iter()
        .flatten()
        .flatten();
    !named.into_iter().any(|e| id(&e.path()) == Some(own))
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
