//! The `kql` command: runs a KQL query over tables loaded from JSON files and prints the result
//! as a Log Analytics query response.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::Parser;

/// Run a Kusto (KQL) query over tables exported as JSON, without Azure.
///
/// Each --table NAME=FILE loads FILE as the table NAME. FILE is either a Log Analytics query
/// response ({"tables":[{"name","columns":[{"name","type"}],"rows":[...]}]}, the first table
/// is used, cells are read by their column's type, dynamic cells may be JSON text or inline
/// JSON) or a JSON array of objects (columns in order of first appearance; types inferred:
/// bool, long, real, datetime for ISO 8601 strings, string, and dynamic for objects, arrays
/// and mixtures).
///
/// The result is printed on standard output as a Log Analytics query response,
/// {"tables":[{"name":"PrimaryResult","columns":[...],"rows":[...]}]}, with values written as
/// the service writes them: datetimes as ISO 8601 strings, timespans as [d.]hh:mm:ss[.fffffff],
/// dynamic values as JSON text.
///
/// A query error is printed on standard error, and as the service's error body
/// ({"error":{"code":"BadArgumentError",...}}) on standard output; the exit status is then 1.
/// Bad input files exit with status 2.
///
/// The engine implements the subset of KQL that dfcsync uses: let, where, project,
/// project-away/-keep/-rename/-reorder, extend, summarize (count, countif, dcount, sum, min,
/// max, avg, arg_max, arg_min, make_set, make_list, take_any), mv-expand, join (all kinds),
/// union, sort/order, top, take/limit, distinct, count, as, print, datatable, range, and the
/// common scalar functions. Anything else is reported as an error naming the construct.
///
/// Examples:
///
///   kql --table SecurityAlert=alerts.json --query 'SecurityAlert | summarize count() by Status'
///
///   kql --table SecurityIncident=incidents.json --table SecurityAlert=alerts.json \
///       --now 2026-11-27T12:00:00Z seed-query.kql
#[derive(Parser, Debug)]
#[command(name = "kql", version, verbatim_doc_comment)]
struct Cli {
    /// Load a table: NAME=FILE (repeatable).
    #[arg(long = "table", value_name = "NAME=FILE")]
    tables: Vec<String>,

    /// The instant now() and ago() use, as RFC 3339 (default: the current time).
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,

    /// Restrict every table read to rows whose TimeGenerated is in START/END (RFC 3339 each),
    /// as the Log Analytics `timespan` parameter does.
    #[arg(long, value_name = "START/END")]
    timespan: Option<String>,

    /// The query text (instead of QUERYFILE).
    #[arg(long, short = 'q', value_name = "TEXT", conflicts_with = "query_file")]
    query: Option<String>,

    /// A file holding the query ("-" for standard input).
    #[arg(value_name = "QUERYFILE")]
    query_file: Option<PathBuf>,

    /// Pretty-print the JSON output.
    #[arg(long)]
    pretty: bool,

    /// Print load and query times on standard error.
    #[arg(long)]
    stats: bool,
}

fn parse_time(s: &str, what: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    Ok(chrono::DateTime::parse_from_rfc3339(s.trim())
        .with_context(|| format!("{what}: '{s}' is not an RFC 3339 time"))?
        .with_timezone(&chrono::Utc))
}

/// A JSON array of objects, or a Log Analytics response (read as a stream).
fn load_table(file: &str) -> anyhow::Result<kql::Table> {
    use std::io::{BufRead, BufReader};
    let mut r =
        BufReader::new(std::fs::File::open(file).with_context(|| format!("opening {file}"))?);
    let first = loop {
        let buf = r.fill_buf()?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break Some(buf[i]),
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    };
    Ok(match first {
        Some(b'[') => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut r, &mut text)?;
            kql::Table::from_json_objects_str(&text)?
        }
        Some(_) => kql::Table::from_log_analytics_reader(r)?,
        None => anyhow::bail!("{file} is empty"),
    })
}

fn load(cli: &Cli) -> anyhow::Result<(kql::Database, kql::QueryOptions, String)> {
    let mut db = kql::Database::new();
    for spec in &cli.tables {
        let (name, file) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--table expects NAME=FILE, got '{spec}'"))?;
        let t0 = std::time::Instant::now();
        let table = load_table(file).with_context(|| format!("loading {file} as table {name}"))?;
        if cli.stats {
            eprintln!(
                "kql: loaded {name}: {} rows, {} columns in {:.2} s",
                table.rows.len(),
                table.columns.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        db.insert(name, table);
    }
    let now = match &cli.now {
        Some(s) => parse_time(s, "--now")?,
        None => chrono::Utc::now(),
    };
    let mut opts = kql::QueryOptions::new(now);
    if let Some(ts) = &cli.timespan {
        let (a, b) = ts
            .split_once('/')
            .ok_or_else(|| anyhow!("--timespan expects START/END"))?;
        opts.timespan = Some((parse_time(a, "--timespan")?, parse_time(b, "--timespan")?));
    }
    let query = match (&cli.query, &cli.query_file) {
        (Some(q), _) => q.clone(),
        (None, Some(p)) if p.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("reading the query from stdin")?
        }
        (None, Some(p)) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        (None, None) => return Err(anyhow!("give a QUERYFILE or --query TEXT")),
    };
    Ok((db, opts, query))
}

fn print_json(v: &serde_json::Value, pretty: bool) {
    let s = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    };
    println!("{}", s.unwrap_or_default());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (db, opts, query) = match load(&cli) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("kql: {e:#}");
            return ExitCode::from(2);
        }
    };
    let t0 = std::time::Instant::now();
    let result = kql::run(&query, &db, &opts);
    if cli.stats {
        eprintln!(
            "kql: query ran in {:.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
    match result {
        Ok(t) => {
            print_json(&kql::response_json(&[t]), cli.pretty);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kql: {e}");
            print_json(&e.to_log_analytics_error(), cli.pretty);
            ExitCode::from(1)
        }
    }
}
