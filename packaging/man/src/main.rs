//! Renders the eni-agent man pages from the library's clap command line
//! (`eni_agent::cli::Cli`), so the pages always match the binary:
//! `eni-agent.8` and one `eni-agent-<command>.8` per subcommand.
//!
//! Usage: `cargo run -p eni-agent-man -- OUT_DIR`. The packaging build
//! (`packaging/build.sh`) compresses the pages with `gzip -9n`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;

/// The section the unit's `Documentation=man:eni-agent(8)` points to.
const SECTION: &str = "8";

/// Extra sections of the main page, in roff. Kept short and factual; the
/// README's Install/Configure/Run/Troubleshoot sections say more.
const EXTRA: &str = r#".SH "EXIT STATUS"
.TP
.B 0
Success.
.TP
.B 1
A permanent API or configuration error; the message names the error code, the RequestId and the remedy.
.TP
.B 2
Timeout (one-shot
.BR attach ).
.TP
.B 64
Bad usage of the command line.
.SH FILES
.TP
.I /etc/eni-agent/config.toml
The configuration file (TOML; sections [api], [metadata], [credentials] and one [[eni]] table per ENI).
Check it with
.BR "eni-agent check-config" .
.TP
.I /etc/eni-agent/credentials
Optional AccessKey file (INI, mode 600 or stricter); the instance RAM role is used when absent.
.TP
.I /var/lib/eni-agent/
State: per-ENI intent records and routing table allocations.
.TP
.I /usr/lib/systemd/system/eni-agent.service
The systemd unit running
.BR "eni-agent run" .
.SH ENVIRONMENT
.TP
.B ALIBABA_CLOUD_ACCESS_KEY_ID\fR, \fBALIBABA_CLOUD_ACCESS_KEY_SECRET\fR, \fBALIBABA_CLOUD_SECURITY_TOKEN
Credentials, tried before the credentials file and the instance RAM role.
.TP
.B ENI_AGENT_ECS_ENDPOINT
Overrides the ECS API endpoint.
.TP
.B ENI_AGENT_METADATA_ENDPOINT
Overrides the instance metadata service endpoint.
.TP
.B ENI_AGENT_LOG
Log filter (tracing EnvFilter syntax), e.g. eni_agent=debug.
.SH NOTES
Stopping or restarting eni-agent never removes the configuration of a NIC.
The instance RAM role needs ecs:AttachNetworkInterface, ecs:DetachNetworkInterface,
ecs:DescribeNetworkInterfaceAttribute and ecs:DescribeNetworkInterfaces.
.SH "SEE ALSO"
.BR systemctl (1),
.BR journalctl (1),
.BR ip (8)
"#;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: eni-agent-man OUT_DIR");
        return ExitCode::from(64);
    };
    match render_all(&out) {
        Ok(pages) => {
            for page in pages {
                println!("{}", page.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("eni-agent-man: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes every page into `out`, returning their paths.
fn render_all(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    // `eni-agent help` is clap's built-in; it gets no page of its own, so the
    // SUBCOMMANDS section does not list it.
    let mut cmd = eni_agent::cli::Cli::command().disable_help_subcommand(true);
    // Building sets each subcommand's display name (eni-agent-describe) and
    // bin name (eni-agent describe), which the pages use.
    cmd.build();
    let mut pages = Vec::new();

    let main_page = out.join(format!("eni-agent.{SECTION}"));
    let mut buf = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone())
        .section(SECTION)
        .manual("eni-agent manual");
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    man.render_options_section(&mut buf)?;
    man.render_subcommands_section(&mut buf)?;
    buf.write_all(EXTRA.as_bytes())?;
    man.render_version_section(&mut buf)?;
    std::fs::write(&main_page, buf)?;
    pages.push(main_page);

    for sub in cmd.get_subcommands() {
        let name = sub
            .get_display_name()
            .map_or_else(|| format!("eni-agent-{}", sub.get_name()), str::to_owned);
        let sub = sub.clone();
        let page = out.join(format!("{name}.{SECTION}"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub)
            .section(SECTION)
            .manual("eni-agent manual")
            .render(&mut buf)?;
        buf.write_all(b".SH \"SEE ALSO\"\n.BR eni-agent (8)\n")?;
        std::fs::write(&page, buf)?;
        pages.push(page);
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_main_page_and_one_per_subcommand() {
        let dir = std::env::temp_dir().join(format!("eni-agent-man-{}", std::process::id()));
        let pages = render_all(&dir).expect("render");
        let main = std::fs::read_to_string(dir.join("eni-agent.8")).expect("main page");
        assert!(main.starts_with(".ie \\n(.g") || main.contains(".TH eni-agent 8"));
        assert!(main.contains("check\\-config"));
        assert!(main.contains("EXIT STATUS"));
        assert!(!main.contains("eni\\-agent\\-help"), "no page for help");
        assert!(pages.len() >= 2, "{pages:?}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
