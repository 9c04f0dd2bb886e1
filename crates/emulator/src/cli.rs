//! The `emulator` command (`dfcsync emulator`, `azure-emulator`): starts the emulator with a
//! scenario, prints `listening on https://127.0.0.1:PORT`, `ca <path>` and the ready
//! configuration, and serves until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::{Emulator, Scenario, StartOptions};

/// Arguments of the emulator command.
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// The scenario file (JSON; see shared/design/emulator.md).
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Also write the ready dfcsync configuration to this file.
    #[arg(long, value_name = "FILE")]
    pub config_out: Option<PathBuf>,
    /// Where to keep the CA and the secret file (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Runs the emulator until SIGINT or SIGTERM.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let scenario = Scenario::from_file(&args.scenario)
        .with_context(|| format!("loading scenario {}", args.scenario.display()))?;
    let handle = Emulator::start(
        scenario,
        StartOptions {
            listen: args.listen,
            state_dir: args.state_dir.clone(),
        },
    )
    .await
    .context("starting the emulator")?;
    // The handlers are in place before the first line tells a caller it may send a signal
    // (otherwise an early SIGTERM takes the default action and the exit is not clean).
    let signals = Signals::new()?;
    let config = handle.config_toml();
    if let Some(path) = &args.config_out {
        std::fs::write(path, &config).with_context(|| format!("writing {}", path.display()))?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", handle.base_url())?;
        writeln!(out, "ca {}", handle.ca_pem_path().display())?;
        write!(out, "{config}")?;
        out.flush()?;
    }
    signals.wait().await?;
    handle.shutdown().await;
    Ok(())
}

/// SIGINT and SIGTERM, listened for from creation on.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {})
    }

    /// Waits for either signal.
    #[cfg(unix)]
    async fn wait(mut self) -> anyhow::Result<()> {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        Ok(())
    }

    #[cfg(not(unix))]
    async fn wait(self) -> anyhow::Result<()> {
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}
