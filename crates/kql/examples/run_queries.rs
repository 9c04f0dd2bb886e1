//! The kql engine's half of `benches/duckdb_kql_compare.py`: loads the benchmark data set
//! that `gen_bench_data` wrote (`DIR/SecurityIncident.json`, `DIR/SecurityAlert.json`, Log
//! Analytics responses), runs each query RUNS times on the loaded tables (warm, in one
//! process, `now()` = 2026-11-27T12:00:00Z), and writes each query's result as a Log
//! Analytics response to `OUT/NAME.json`, so that the script can compare it with duckdb-kql's.
//!
//! ```sh
//! run_queries DIR RUNS OUT NAME=QUERYFILE [NAME=QUERYFILE …]
//! ```
//!
//! Standard output: one JSON object a line, `{"query", "run", "ms", "cpu_ms", "rows"}` per
//! run (`cpu_ms`: the main thread's CPU time, Linux), then
//! `{"peak_rss_mib"}` (VmHWM, Linux). Progress goes to standard error.

use std::io::Write;

use anyhow::{Context, anyhow};

fn load(path: &str) -> anyhow::Result<kql::Table> {
    let t0 = std::time::Instant::now();
    let f = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let t = kql::Table::from_log_analytics_reader(std::io::BufReader::new(f))
        .with_context(|| format!("reading {path}"))?;
    eprintln!(
        "kql: loaded {path}: {} rows in {:.1} s",
        t.rows.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(t)
}

/// The peak resident set of this process in MiB (Linux only; 0 elsewhere).
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// CPU time this thread has used, in ms (`/proc/thread-self/schedstat`, Linux; 0 elsewhere):
/// on a shared machine it varies less than the wall time.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e6)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, runs, out, queries @ ..] = args.as_slice() else {
        return Err(anyhow!(
            "usage: run_queries DIR RUNS OUT NAME=QUERYFILE [NAME=QUERYFILE …]"
        ));
    };
    let runs: usize = runs.parse().context("RUNS")?;
    let mut named = Vec::new();
    for q in queries {
        let (name, file) = q
            .split_once('=')
            .ok_or_else(|| anyhow!("expected NAME=QUERYFILE, got {q}"))?;
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        named.push((name.to_owned(), text));
    }
    let mut db = kql::Database::new();
    for name in ["SecurityIncident", "SecurityAlert"] {
        db.insert(name, load(&format!("{dir}/{name}.json"))?);
    }
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")?.to_utc();
    let opts = kql::QueryOptions::new(now);
    let stdout = std::io::stdout();
    let mut o = stdout.lock();
    for (name, text) in &named {
        let mut last = None;
        for run in 0..runs {
            let (t0, cpu0) = (std::time::Instant::now(), thread_cpu_ms());
            let t = kql::run(text, &db, &opts).map_err(|e| anyhow!("{name}: {e}"))?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let cpu_ms = thread_cpu_ms() - cpu0;
            writeln!(
                o,
                "{}",
                serde_json::json!({"query": name, "run": run, "ms": ms, "cpu_ms": cpu_ms, "rows": t.rows.len()})
            )?;
            o.flush()?;
            last = Some(t);
        }
        if let Some(t) = last {
            let path = format!("{out}/{name}.json");
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&path).with_context(|| format!("creating {path}"))?,
            );
            serde_json::to_writer(&mut f, &kql::response_json(std::slice::from_ref(&t)))?;
            f.flush()?;
            eprintln!("kql: wrote {path}");
        }
    }
    writeln!(o, "{}", serde_json::json!({"peak_rss_mib": peak_rss_mib()}))?;
    Ok(())
}
