//! The agent's commands: the daemon, the one-shot attach and detach, status
//! and plan.

use std::process::ExitCode;
use std::time::Duration;

use super::{Cli, EXIT_FAILURE, EXIT_TIMEOUT, load_config};
use crate::agent::context::Context;
use crate::agent::{cloud_flow, daemon, facts, planning, teardown, worker};
use crate::apply::{Converger, ConvergerConfig, ConvergerHandle};
use crate::config::Config;
use crate::state::StateStore;

/// An error with the exit code it maps to.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    fn permanent(message: impl ToString) -> Self {
        Self {
            message: message.to_string(),
            code: EXIT_FAILURE,
        }
    }
}

/// Starts a converger in the background for a one-shot command; dropping the
/// returned sender stops it (the configuration it applied stays).
fn start_converger() -> Result<(ConvergerHandle, tokio::sync::oneshot::Sender<()>), Failure> {
    let (converger, handle) = Converger::new(ConvergerConfig::default()).map_err(|e| {
        Failure::permanent(format!("cannot open rtnetlink (is this run as root?): {e}"))
    })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(converger.run(async move {
        let _ = rx.await;
    }));
    Ok((handle, tx))
}

async fn context(config: &Config) -> Result<(Context, tokio::sync::oneshot::Sender<()>), Failure> {
    let (handle, stop) = start_converger()?;
    let ctx = Context::new(config, handle)
        .await
        .map_err(Failure::permanent)?;
    Ok((ctx, stop))
}

/// `eni-agent run`.
pub async fn run_daemon(cli: &Cli) -> Result<(), Failure> {
    let config = load_config(cli).map_err(Failure::permanent)?;
    daemon::run(config, cli.config.clone())
        .await
        .map_err(Failure::permanent)
}

/// `eni-agent attach ENI_ID [--timeout]`.
pub async fn attach(cli: &Cli, eni_id: &str, timeout: Option<Duration>) -> Result<(), Failure> {
    if !crate::config::is_eni_id(eni_id) {
        return Err(Failure {
            message: format!("{eni_id:?} is not an ENI id (they look like eni-bp1abc...)"),
            code: super::EXIT_USAGE,
        });
    }
    let mut config = load_config(cli).map_err(Failure::permanent)?;
    if let Some(t) = timeout {
        config.agent.attach_timeout = t;
    }
    let store = StateStore::open(&config.agent.state_dir).map_err(Failure::permanent)?;
    let _lock = store
        .lock_one_shot(config.agent.attach_timeout)
        .await
        .map_err(Failure::permanent)?;
    let entry = config.entry_for(eni_id);
    let (ctx, _stop) = context(&config).await?;
    let result = worker::bring_up(&ctx, &entry, eni_id).await;
    crate::metrics::after_one_shot(config.metrics.textfile.as_deref());
    match result {
        Ok(done) => {
            println!(
                "{eni_id} configured as {} (ifindex {}, table {})",
                done.ifname, done.ifindex, done.plan.table
            );
            println!("timeline: {}", done.timeline);
            Ok(())
        }
        Err(e) => Err(Failure {
            code: if e.is_timeout() {
                EXIT_TIMEOUT
            } else {
                EXIT_FAILURE
            },
            message: e.to_string(),
        }),
    }
}

/// `eni-agent detach ENI_ID`.
pub async fn detach(cli: &Cli, eni_id: &str, timeout: Option<Duration>) -> Result<(), Failure> {
    let config = load_config(cli).map_err(Failure::permanent)?;
    let timeout = timeout.unwrap_or(config.agent.attach_timeout);
    let store = StateStore::open(&config.agent.state_dir).map_err(Failure::permanent)?;
    let _lock = store
        .lock_one_shot(timeout)
        .await
        .map_err(Failure::permanent)?;
    let (ctx, _stop) = context(&config).await?;
    let t = tokio::time::timeout(timeout, teardown::teardown(&ctx, eni_id))
        .await
        .map_err(|_| Failure {
            code: EXIT_TIMEOUT,
            message: format!(
                "{eni_id}: not detached within {}; the intent is recorded, run the detach again to resume",
                humantime::format_duration(timeout)
            ),
        })?
        .map_err(|e| Failure {
            code: if e.is_timeout() { EXIT_TIMEOUT } else { EXIT_FAILURE },
            message: e.to_string(),
        })?;
    for op in &t.removed {
        println!("{op}");
    }
    println!(
        "{eni_id}: {} kernel objects removed; {}",
        t.removed.len(),
        if t.detached {
            "detached (Available)"
        } else {
            "was not attached here"
        }
    );
    Ok(())
}

/// How long `forget` waits while another one-shot holds the lock.
const FORGET_LOCK_WAIT: Duration = Duration::from_secs(10);

/// `eni-agent forget ENI_ID`: removes the ENI's state record and nothing
/// else — no kernel object, no API call; its table stays reserved so that a
/// later attach of the ENI reuses it. Takes the one-shot lock without
/// waiting for a daemon, so it refuses while the daemon runs.
pub async fn forget(cli: &Cli, eni_id: &str) -> Result<(), Failure> {
    let config = load_config(cli).map_err(Failure::permanent)?;
    let dir = &config.agent.state_dir;
    let store = if dir.exists() {
        StateStore::open(dir).map_err(Failure::permanent)?
    } else {
        return Err(Failure::permanent(format!(
            "{eni_id}: no record to forget (no state in {})",
            dir.display()
        )));
    };
    let _lock = store.lock_one_shot(FORGET_LOCK_WAIT).await.map_err(|e| {
        Failure::permanent(format!(
            "{e}; `forget` changes the state only while no daemon runs"
        ))
    })?;
    let Some(record) = store.load(eni_id).map_err(Failure::permanent)? else {
        return Err(Failure::permanent(format!(
            "{eni_id}: no record to forget in {}",
            store.dir().display()
        )));
    };
    store.remove(eni_id).map_err(Failure::permanent)?;
    println!(
        "{eni_id}: record forgotten (was {:?}/{:?}); nothing changed in the kernel or the cloud",
        record.intent, record.progress
    );
    Ok(())
}

/// What the kernel has for a managed NIC right now.
#[derive(Debug, Default, serde::Serialize)]
struct Live {
    /// Current name (it may have been renamed since the record was written).
    name: Option<String>,
    up: bool,
    addresses: Vec<String>,
    /// `combined N` or `rx N tx N`.
    queues: Option<String>,
}

/// Reads the live state of `ifindex`; `None` when the link is gone or
/// netlink is not available (not root).
async fn live(handle: &rtnetlink::Handle, ifindex: u32) -> Option<Live> {
    let link = crate::netlink::link_show(handle, ifindex).await.ok()??;
    let addresses = crate::netlink::addr_list(handle, ifindex)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(
            |a| !matches!(a.addr, std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80),
        )
        .map(|a| format!("{}/{}", a.addr, a.prefix_len))
        .collect();
    let queues = crate::ethtool::channels_get(&link.name).ok().map(|c| {
        if c.combined_count > 0 {
            format!("combined {}", c.combined_count)
        } else {
            format!("rx {} tx {}", c.rx_count, c.tx_count)
        }
    });
    Some(Live {
        name: Some(link.name),
        up: link.up,
        addresses,
        queues,
    })
}

/// `eni-agent status [--json]`: the state records, with what the kernel has
/// for each NIC now.
pub async fn status(cli: &Cli, json: bool) -> Result<(), Failure> {
    let config = load_config(cli).map_err(Failure::permanent)?;
    let dir = &config.agent.state_dir;
    // Reading must not create the state directory.
    if !dir.exists() {
        if json {
            println!("[]");
        } else {
            println!("no ENI managed (no state in {})", dir.display());
        }
        return Ok(());
    }
    let store = StateStore::open(dir).map_err(Failure::permanent)?;
    let (records, bad) = store.load_all().map_err(Failure::permanent)?;
    // One unreadable record is reported; the others are still shown.
    for e in &bad {
        eprintln!("warning: {e}");
    }
    let handle = crate::netlink::connect().ok();
    let mut rows = Vec::new();
    for r in records {
        let live = match (&handle, r.ifindex) {
            (Some(h), Some(ix)) => live(h, ix).await,
            _ => None,
        };
        rows.push((r, live));
    }
    if json {
        let value: Vec<serde_json::Value> = rows
            .iter()
            .map(|(r, live)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["live"] = serde_json::to_value(live).unwrap_or_default();
                v
            })
            .collect();
        let text = serde_json::to_string_pretty(&value).map_err(Failure::permanent)?;
        println!("{text}");
        return Ok(());
    }
    if rows.is_empty() {
        println!("no ENI managed (state in {})", store.dir().display());
    }
    for (r, live) in rows {
        let name = live
            .as_ref()
            .and_then(|l| l.name.clone())
            .or_else(|| r.ifname.clone());
        println!(
            "{}  {:?}/{:?}  {} ifindex {}  MAC {}  table {}",
            r.eni_id,
            r.intent,
            r.progress,
            name.as_deref().unwrap_or("-"),
            r.ifindex.map_or("-".into(), |i| i.to_string()),
            r.mac.as_deref().unwrap_or("-"),
            r.table.map_or("-".into(), |t| t.to_string()),
        );
        match &live {
            Some(l) => {
                println!(
                    "    link {}  queues {}",
                    if l.up { "up" } else { "DOWN" },
                    l.queues.as_deref().unwrap_or("-")
                );
                println!(
                    "    addresses {}",
                    if l.addresses.is_empty() {
                        "-".to_owned()
                    } else {
                        l.addresses.join(" ")
                    }
                );
            }
            None if r.ifindex.is_some() => {
                println!("    the NIC is not present (or netlink is not readable here)")
            }
            None => {}
        }
        if !r.timeline.is_empty() {
            let marks: Vec<String> = r
                .timeline
                .iter()
                .map(|m| format!("{} +{}ms", m.phase.name(), m.at.as_millis()))
                .collect();
            println!("    last timings: {}", marks.join(", "));
        }
        if r.repairs > 0 {
            println!(
                "    drift repairs: {} in all, {} in the last minute as last counted",
                r.repairs, r.repairs_last_minute
            );
        }
        if let Some(e) = &r.last_error {
            println!("    last error: {e}");
        }
    }
    Ok(())
}

/// `eni-agent plan ENI_ID [--full]`: what would change in the kernel to
/// configure the ENI (the diff against what is there; nothing on an ENI
/// already configured), or with `full` the whole desired state. Changes
/// nothing, allocates nothing.
pub async fn plan(cli: &Cli, eni_id: &str, full: bool) -> Result<(), Failure> {
    let config = load_config(cli).map_err(Failure::permanent)?;
    let metadata = super::metadata_client(&config).map_err(Failure::permanent)?;
    let client = super::ecs_client(&config, metadata.clone())
        .await
        .map_err(Failure::permanent)?;
    let (ni, request_id) = cloud_flow::describe(&client, eni_id)
        .await
        .map_err(Failure::permanent)?;
    let eni = facts::eni_facts(&ni, eni_id).map_err(Failure::permanent)?;
    let cache = tokio::sync::Mutex::default();
    let subnets = planning::Subnets {
        metadata: &metadata,
        cache: &cache,
    };
    let subnet = subnets
        .now(&ni.vswitch_id, &eni)
        .await
        .map_err(Failure::permanent)?;
    let entry = config.entry_for(eni_id);
    // Read the allocation without creating the state directory or a file.
    let tables_path = config.agent.state_dir.join("tables.json");
    let allocated = crate::tables::TableAllocator::load(
        tables_path,
        config.agent.table_min..=config.agent.table_max,
    )
    .map_err(Failure::permanent)?
    .get(eni_id);
    let policy = planning::TablePolicy::Look {
        allocated,
        provisional: config.agent.table_min,
    };
    let (plan, choice) = planning::plan(&policy, &entry, &eni, &subnet)
        .await
        .map_err(Failure::permanent)?;
    println!(
        "# DescribeNetworkInterfaceAttribute RequestId {request_id}; status {}",
        ni.status
    );
    if let planning::TableChoice::Provisional(t) = choice {
        println!("# table {t} is the first of the range; the real one is allocated at attach time");
    }
    let nic = match crate::netlink::connect() {
        Ok(handle) => crate::netlink::link_list(&handle)
            .await
            .ok()
            .and_then(|links| links.into_iter().find(|l| l.is_nic_with_mac(eni.mac))),
        Err(_) => None,
    };
    let nic = match nic {
        Some(nic) if !full => nic,
        nic => {
            if nic.is_none() {
                println!(
                    "# no NIC with MAC {} in this instance yet: all of it would be added",
                    eni.mac
                );
            }
            let dev = nic.map_or_else(|| "$DEV".to_owned(), |l| l.name);
            print!("{}", plan.with_dev(&dev));
            return Ok(());
        }
    };
    let reconciler = crate::apply::Reconciler::connect().map_err(|e| {
        Failure::permanent(format!("cannot open rtnetlink (is this run as root?): {e}"))
    })?;
    let observed = reconciler
        .observe(&plan, nic.index)
        .await
        .map_err(Failure::permanent)?;
    let ops = crate::apply::diff(&plan, &observed).map_err(|refusal| match refusal {
        crate::apply::Foreign::Table(foreign) => Failure::permanent(format!(
            "table {} holds objects that are not this ENI's ({}); choose another table (table = N) or remove them",
            plan.table,
            foreign.join("; ")
        )),
        crate::apply::Foreign::Nic(foreign) => Failure::permanent(format!(
            "{} (MAC {}) carries objects eni-agent did not add ({}); the agent would refuse to configure it",
            nic.name,
            plan.mac,
            foreign.join("; ")
        )),
    })?;
    println!(
        "# {} change{} on {} (ifindex {}); --full prints the whole desired state",
        ops.len(),
        if ops.len() == 1 { "" } else { "s" },
        nic.name,
        nic.index
    );
    for op in &ops {
        println!("{}", crate::apply::OpCmd(op, &nic.name));
    }
    Ok(())
}

/// Maps a command outcome to the process exit code, printing the error.
pub fn exit(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("eni-agent: {}", super::one_line(&f.message));
            ExitCode::from(f.code)
        }
    }
}
