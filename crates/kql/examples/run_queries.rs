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
//! Standard output: one JSON object a line: `{"loaded_rss_mib"}` once the tables are loaded
//! (VmRSS), then for each query `{"query", "run", "ms", "cpu_ms", "rows"}` per run (`cpu_ms`:
//! the CPU time of all the process's threads) and `{"query", "peak_rss_mib"}`: the peak
//! resident set while its runs ran (VmHWM reset before them; one result held at a time; the
//! result's writing, after, is not counted). Memory and CPU figures are Linux's (0 elsewhere).
//! Progress goes to standard error.

use std::io::Write;

/// mimalloc rather than glibc's malloc, which spent much of a large query's time consolidating
/// freed chunks. `MIMALLOC_PURGE_DELAY=-1` (what `duckdb_kql_compare.py` sets) keeps the memory
/// a run frees for the next run instead of returning it to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// A field of `/proc/self/status` in MiB (Linux only; 0 elsewhere).
fn status_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// Resets the peak resident set (`VmHWM`) to the current one (Linux: `clear_refs` 5), so
/// that each query's peak is its own and not the previous result's writing.
fn reset_peak_rss() {
    // Best effort: where it is refused, the peak reported is the process's since its start.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time the process's threads have used, in ms (each thread's
/// `/proc/self/task/*/schedstat`, Linux; 0 elsewhere): on a shared machine it varies less
/// than the wall time, and it shows what running on several threads costs in all.
fn cpu_ms() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e6
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
    writeln!(
        std::io::stdout(),
        "{}",
        serde_json::json!({"loaded_rss_mib": status_mib("VmRSS:")})
    )?;
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")?.to_utc();
    let opts = kql::QueryOptions::new(now);
    let stdout = std::io::stdout();
    let mut o = stdout.lock();
    for (name, text) in &named {
        let mut last = None;
        reset_peak_rss();
        for run in 0..runs {
            // The previous run's result is not kept while this one runs.
            drop(last.take());
            let (t0, cpu0) = (std::time::Instant::now(), cpu_ms());
            let t = kql::run(text, &db, &opts).map_err(|e| anyhow!("{name}: {e}"))?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let cpu_ms = cpu_ms() - cpu0;
            writeln!(
                o,
                "{}",
                serde_json::json!({"query": name, "run": run, "ms": ms, "cpu_ms": cpu_ms, "rows": t.rows.len()})
            )?;
            o.flush()?;
            last = Some(t);
        }
        writeln!(
            o,
            "{}",
            serde_json::json!({"query": name, "peak_rss_mib": status_mib("VmHWM:")})
        )?;
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
    Ok(())
}
