//! The commands of `dfcsync` and their options. Each command reads its inputs, calls the
//! library, and prints; this is the only place that turns errors into exit codes.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use dfcsync::config::Config;
use dfcsync::connect::Connection;
use dfcsync::cycle::{CycleReport, Mode, ReadMode, Syncer};
use dfcsync::decide::decide;
use dfcsync::observe::build::build_snapshot;
use dfcsync::observe::change_feed::WholeRead;
use dfcsync::report;

/// Keeps Microsoft Sentinel incidents in step with the status of their Microsoft Defender
/// for Cloud alerts.
///
/// dfcsync reads the SecurityIncident and SecurityAlert tables, decides what each incident
/// needs (close, set Active, reopen, or leave a notice), and updates incidents through the
/// Sentinel API with conditional writes and an audit comment carrying its mark.
#[derive(Debug, Parser)]
#[command(name = "dfcsync", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text for people or as JSON objects for log pipelines (to stderr;
    /// the level comes from RUST_LOG, default info).
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The exit code of a `sync` that a signal stopped before its end.
const STOPPED: u8 = 3;

#[derive(Debug, Subcommand)]
enum Command {
    /// Observe and decide, and print what a sync would do; changes nothing.
    ///
    /// Runs the sync query on each configured workspace, decides, and prints the plan. With
    /// --detailed-exitcode it exits with 2 when there is something to do (as `terraform plan`).
    Plan(PlanArgs),
    /// One sync cycle: observe, decide, and update the incidents that need it.
    ///
    /// Exits with 1 when a workspace could not be read or an update failed (the others are
    /// still done), and with 3 when SIGTERM or SIGINT stopped it before the end (the writes in
    /// flight finish; what is left is for the next run).
    Sync(SyncArgs),
    /// Sync every `interval` until SIGTERM or SIGINT, serving /healthz, /readyz and
    /// /metrics on `[sync] listen`.
    Run(ConfigArgs),
    /// Check the configuration, the credential, and every permission dfcsync needs, with a
    /// fix for each failure. Read-only.
    ///
    /// Exits with 0 when everything was verified and works, 1 when something failed, and 2
    /// when nothing failed but something could not be verified (no incident to probe a write
    /// with, no alert to learn a subscription from).
    Doctor(DoctorArgs),
    /// Start the built-in emulator of the Azure APIs with a scenario that tells the story,
    /// and run dfcsync against it: the incidents before, the plan, the incidents after.
    #[cfg(feature = "emulator")]
    Demo(DemoArgs),
    /// Serve the built-in emulator of the Azure APIs (Entra ID, ARM, Log Analytics) on
    /// 127.0.0.1 over HTTPS, for tests and trials; prints a ready dfcsync configuration.
    #[cfg(feature = "emulator")]
    Emulator(emulator::cli::EmulatorArgs),
    /// Run the decision engine on exported rows and print the plan; changes nothing anywhere.
    ///
    /// Each FILE is a Log Analytics query response ({"tables":[{"columns":…,"rows":…}]}) or a
    /// JSON array of row objects, as `az monitor log-analytics query` prints it. Use it to see
    /// what dfcsync would do on a workspace's data, or to check a policy before deploying it.
    Replay(ReplayArgs),
    /// Print the KQL query dfcsync sends to each workspace, to paste into Log Analytics.
    ///
    /// It returns the in-scope incidents with all their rows and the rows of their alerts,
    /// with only the columns the engine reads; `max_age` and the product names come from the
    /// configuration's [policy].
    Query(QueryArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// The configuration file (see dfcsync.example.toml); DFCSYNC_* variables override it.
    #[arg(long, value_name = "FILE", env = "DFCSYNC_CONFIG")]
    config: Option<PathBuf>,
}

/// Which incidents a one-shot cycle reads.
#[derive(Debug, clap::Args)]
struct ReadArgs {
    /// Read only the incidents that changed within DURATION before the service's clock
    /// (a row of theirs, or of their alerts, ingested since: the change feed), e.g. `15m`.
    /// For a frequent schedule beside a slower one without it, which reads every in-scope
    /// incident. Without it, every in-scope incident is read.
    #[arg(long, value_name = "DURATION", value_parser = parse_changed_within)]
    changed_within: Option<chrono::TimeDelta>,
    /// How a read of every in-scope incident is made: `two-phase` (a query names the
    /// incidents the engine could act on, hold or repair, and only those are read) or `full`
    /// (every in-scope incident is read: for diagnosis, to compare).
    #[arg(long, value_enum, value_name = "HOW", default_value_t = WholeRead::TwoPhase)]
    read: WholeRead,
}

impl ReadArgs {
    fn mode(&self) -> ReadMode {
        self.changed_within
            .map_or(ReadMode::Feed, ReadMode::ChangedWithin)
    }
}

fn parse_changed_within(s: &str) -> Result<chrono::TimeDelta, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("not a duration ({e}), e.g. 15m or 2h"))?;
    if d < std::time::Duration::from_secs(60) {
        return Err(
            "must be at least 1m: a row becomes visible to queries a little after it is ingested"
                .into(),
        );
    }
    chrono::TimeDelta::from_std(d).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    read: ReadArgs,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Exit with 2 when there are actions, 0 when there are none.
    #[arg(long)]
    detailed_exitcode: bool,
}

#[derive(Debug, clap::Args)]
struct SyncArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    read: ReadArgs,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, clap::Args)]
struct DoctorArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, clap::Args)]
struct QueryArgs {
    /// A dfcsync configuration file; its [policy] shapes the query.
    #[arg(long, value_name = "FILE", env = "DFCSYNC_CONFIG")]
    config: Option<PathBuf>,
    /// Print phase one of the two-phase full read instead: the query that names the
    /// incidents the engine could act on, hold or repair (the candidates).
    #[arg(long)]
    candidates: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    /// Tables for people.
    Table,
    /// The plan as JSON (a stable contract).
    Json,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// SecurityIncident rows (every row of each incident, not only the newest).
    #[arg(long, value_name = "FILE")]
    incidents: PathBuf,
    /// SecurityAlert rows of those incidents' alerts.
    #[arg(long, value_name = "FILE")]
    alerts: PathBuf,
    /// The time to decide at (RFC 3339); default: now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_now)]
    now: Option<DateTime<Utc>>,
    /// A dfcsync configuration file; only its [policy] is used here.
    #[arg(long, value_name = "FILE", env = "DFCSYNC_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Exit with 2 when the plan has actions, 0 when it has none (as `terraform plan`).
    #[arg(long)]
    detailed_exitcode: bool,
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2026-11-27T12:00:00Z"))
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let quiet =
        matches!(cli.command, Command::Replay(_) | Command::Query(_)) || is_demo(&cli.command);
    init_logs(cli.log_format, if quiet { "warn" } else { "info" });
    match cli.command {
        Command::Replay(args) => replay(args),
        Command::Plan(args) => runtime()?.block_on(plan(args)),
        Command::Sync(args) => runtime()?.block_on(sync(args)),
        Command::Run(args) => runtime()?.block_on(run_daemon(args)),
        Command::Doctor(args) => runtime()?.block_on(doctor(args)),
        #[cfg(feature = "emulator")]
        Command::Demo(args) => runtime()?.block_on(crate::demo::run(args.backend.into())),
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => {
            runtime()?.block_on(emulator::cli::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Query(args) => {
            let config = load_config(args.config.as_deref())?;
            use dfcsync::observe::query::{Partition, candidate_query, sync_query};
            if args.candidates {
                print!(
                    "{}",
                    candidate_query(&config.policy, Partition::WHOLE, false)
                );
            } else {
                print!("{}", sync_query(&config.policy));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `dfcsync demo`'s options.
#[cfg(feature = "emulator")]
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// `sentinel`: the story in a Sentinel workspace; `graph`: the Defender XDR story in a
    /// tenant without Sentinel, through Microsoft Graph.
    #[arg(long, value_enum, default_value_t = BackendArg::Sentinel)]
    pub backend: BackendArg,
}

/// `--backend`.
#[cfg(feature = "emulator")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Sentinel,
    Graph,
}

#[cfg(feature = "emulator")]
impl From<BackendArg> for dfcsync::config::Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Sentinel => Self::Sentinel,
            BackendArg::Graph => Self::Graph,
        }
    }
}

/// `demo` and `emulator` print for people: their logs stay at warnings.
#[cfg(feature = "emulator")]
fn is_demo(c: &Command) -> bool {
    matches!(c, Command::Demo(_) | Command::Emulator(_))
}

#[cfg(not(feature = "emulator"))]
fn is_demo(_: &Command) -> bool {
    false
}

fn init_logs(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The configuration of a command that talks to Azure: file, then environment.
fn load_run_config(args: &ConfigArgs) -> Result<Config> {
    let config = load_config(args.config.as_deref())?;
    // The Graph backend's target is the tenant: no workspace needed.
    if config.file.workspaces.is_empty()
        && config.sync.backend == dfcsync::config::Backend::Sentinel
    {
        anyhow::bail!(
            "{}: no workspace configured: add a [[workspaces]] block or set DFCSYNC_WORKSPACES",
            config.origin
        );
    }
    Ok(config)
}

async fn connect(config: &Config) -> Result<Connection> {
    let conn = Connection::open(config)
        .await
        .context("connecting to Azure")?;
    tracing::info!(credential = %conn.credential, cloud = %conn.cloud.name, "connected");
    Ok(conn)
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} incidents updated {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

fn print_cycle(report: &CycleReport, output: Output) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match output {
        Output::Json => {
            // Written as it is serialized: the report of a large `sync` is never a value.
            serde_json::to_writer_pretty(&mut out, &report::CycleJson(report))?;
            writeln!(out)?;
        }
        Output::Table => write!(out, "{}", report::cycle_table(report))?,
    }
    out.flush()?;
    Ok(())
}

async fn plan(args: PlanArgs) -> Result<ExitCode> {
    let config = load_run_config(&args.config)?;
    let conn = connect(&config).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let report = Syncer::new(&config, args.read.mode())
        .whole_read(args.read.read)
        .cycle(&conn, &config, Mode::Plan, &stop, &|_, _| {})
        .await;
    print_cycle(&report, args.output)?;
    Ok(if !report.succeeded() {
        ExitCode::from(1)
    } else if args.detailed_exitcode && report.has_actions() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The health sink `[health]` asks for (its rows go through `conn`'s HTTP policy).
fn health_of(config: &Config, conn: &Connection) -> Result<Option<dfcsync::health::HealthSink>> {
    let sink = dfcsync::health::HealthSink::from_config(config, &conn.http)
        .context("setting up the health rows ([health])")?;
    if let Some(s) = &sink {
        tracing::info!(
            run_id = s.run_id(),
            "health rows go to the workspace (DfcSync_CL)"
        );
    }
    Ok(sink)
}

/// The lease `config` asks for, with every write of `conn` behind its fence; a warning where
/// there is none and overlapping runs could write twice.
async fn lease_of(config: &Config, conn: &Connection) -> Result<Option<dfcsync::lease::Lease>> {
    let lease = dfcsync::lease::from_config(config, &conn.http)
        .await
        .context("setting up the lease ([lease])")?;
    match &lease {
        Some(l) => {
            conn.http.set_write_gate(l.fence());
            tracing::info!(lease = %l.describe(), holder = %l.holder_id(), "writes go behind the lease");
        }
        None if config.sync.backend == dfcsync::config::Backend::Graph
            || config.policy.writeback =>
        {
            tracing::warn!(
                "no [lease]: runs that overlap (the two scheduled jobs, a job started while the last one still runs, two replicas) can post Graph comments or DfC writebacks twice; set [lease] kind = \"azure_blob\" or \"kubernetes\" (docs/deploy.md)"
            );
        }
        None => {}
    }
    Ok(lease)
}

async fn sync(args: SyncArgs) -> Result<ExitCode> {
    let config = load_run_config(&args.config)?;
    let conn = connect(&config).await?;
    let lease = lease_of(&config, &conn).await?;
    if let Some(l) = &lease
        && let Some(holding) = l.acquire().await.context("taking the lease")?
    {
        // Another run holds it: that run syncs; this one has nothing to do.
        tracing::info!(lease = %l.describe(), "{holding}: nothing done");
        let mut out = std::io::stdout().lock();
        match args.output {
            Output::Json => {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({
                        "succeeded": true,
                        "lease": {
                            "what": l.describe(),
                            "held_by": holding.holder,
                            "until": holding.until.map(|u| u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                        },
                        "workspaces": [],
                    }),
                )?;
                writeln!(out)?;
            }
            Output::Table => writeln!(out, "sync: {holding}; nothing done by this run")?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    dfcsync::daemon::on_signals(stop.clone(), Arc::new(tokio::sync::Notify::new()));
    let bar = progress_bar();
    let health = health_of(&config, &conn)?;
    let mut syncer = Syncer::new(&config, args.read.mode());
    syncer.whole_read(args.read.read);
    if let Some(h) = &health {
        syncer.observe(Arc::new(h.clone()));
    }
    let report = syncer
        .cycle(&conn, &config, Mode::Sync, &stop, &|done, total| {
            if let Some(b) = &bar {
                b.set_length(total as u64);
                b.set_position(done as u64);
            }
        })
        .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(l) = &lease {
        l.release().await;
    }
    if let Some(h) = &health {
        h.flush(std::time::Duration::from_secs(30)).await;
    }
    report::log_cycle(&report, 1);
    print_cycle(&report, args.output)?;
    Ok(if report.stopped {
        ExitCode::from(STOPPED)
    } else if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn run_daemon(args: ConfigArgs) -> Result<ExitCode> {
    use dfcsync::daemon;
    let config = load_run_config(&args)?;
    let shared = Arc::new(daemon::Shared::new(config.sync.interval));
    let (listener, addr) = daemon::bind(config.sync.listen).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    tokio::spawn(daemon::serve(listener, shared.clone()));
    let conn = connect(&config).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    daemon::on_signals(stop.clone(), wake.clone());
    let lease = lease_of(&config, &conn).await?;
    let health = health_of(&config, &conn)?;
    daemon::run_loop(
        &conn,
        &config,
        &shared,
        daemon::Beside {
            lease: lease.as_ref(),
            health: health.as_ref(),
        },
        stop,
        wake,
    )
    .await;
    if let Some(h) = &health {
        h.flush(std::time::Duration::from_secs(10)).await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn doctor(args: DoctorArgs) -> Result<ExitCode> {
    use dfcsync::doctor as d;
    let config = load_config(args.config.config.as_deref())?;
    let mut checks = d::config_checks(&config);
    match Connection::open(&config).await {
        Ok(conn) => checks.extend(d::azure_checks(&conn, &config).await),
        Err(e) => checks.push(d::Check {
            name: "credential".into(),
            verdict: d::Verdict::Fail,
            detail: e.to_string(),
            fix: Some(dfcsync::azure::auth::AUTO_ORDER.to_owned()),
        }),
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &d::json(&checks))?;
            writeln!(out)?;
        }
        Output::Table => write!(out, "{}", d::table(&checks))?,
    }
    Ok(match d::outcome(&checks) {
        d::Outcome::Passed => ExitCode::SUCCESS,
        d::Outcome::Failed => ExitCode::from(1),
        d::Outcome::NotVerified => ExitCode::from(2),
    })
}

/// The file (if any), then the `DFCSYNC_*` variables: the same for every command.
fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(Config::load_with_env(path, &|k| std::env::var(k).ok())?)
}

fn open(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let config = load_config(args.config.as_deref())?;
    let snapshot =
        build_snapshot(open(&args.incidents)?, open(&args.alerts)?).with_context(|| {
            format!(
                "reading {} and {}",
                args.incidents.display(),
                args.alerts.display()
            )
        })?;
    for w in &snapshot.warnings {
        eprintln!("warning: {w}");
    }
    let now = args.now.unwrap_or_else(Utc::now);
    let plan = decide(&snapshot, &config.policy, now);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &report::PlanJson(&plan))?;
            writeln!(out)?;
        }
        Output::Table => write!(out, "{}", report::plan_table(&plan))?,
    }
    out.flush()?;
    Ok(if args.detailed_exitcode && !plan.actions.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
