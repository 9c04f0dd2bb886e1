//! The commands of `dfcsync` and their options. Each command reads its inputs, calls the
//! library, and prints; this is the only place that turns errors into exit codes.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use dfcsync::config::Config;
use dfcsync::decide::decide;
use dfcsync::observe::build::build_snapshot;
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
}

#[derive(Debug, Subcommand)]
enum Command {
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
struct QueryArgs {
    /// A dfcsync configuration file; its [policy] shapes the query.
    #[arg(long, value_name = "FILE", env = "DFCSYNC_CONFIG")]
    config: Option<PathBuf>,
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
    match cli.command {
        Command::Replay(args) => replay(args),
        Command::Query(args) => {
            let config = load_config(args.config.as_deref())?;
            print!("{}", dfcsync::observe::query::sync_query(&config.policy));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::defaults(),
    })
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
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &report::plan_json(&plan))?;
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
