//! What a Graph read costs at tenant scale (docs/benchmarks.md, "Graph: reads by the page"):
//! the calls of a whole read, a quiet change read and a change read, and the wall time of
//! the whole read under Graph's throttle.
//!
//! ```sh
//! BENCH_GRAPH_INCIDENTS=10000 cargo test --release -p dfcsync --test bench_graph -- --ignored --nocapture
//! # BENCH_GRAPH_PER_MINUTE=50: the Defender XDR API's 50 calls a minute (429 + Retry-After past it)
//! ```

mod proof_support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use dfcsync::azure::http::HttpOptions;
use dfcsync::config::Config;
use dfcsync::cycle::{Mode, ReadMode, Syncer};
use proof_support::*;
use serde_json::json;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: cargo test --release -p dfcsync --test bench_graph -- --ignored --nocapture"]
async fn graph_reads_at_scale() {
    let n: usize = env_or("BENCH_GRAPH_INCIDENTS", 10_000);
    let per_minute: u64 = env_or("BENCH_GRAPH_PER_MINUTE", 1_000_000);
    let t = Instant::now();
    let (mut s, _) = scenario(n, "0s", None);
    on_graph(&mut s);
    s["limits"]["graph_requests_per_minute"] = json!(per_minute);
    let emu = start(&s).await;
    let loaded = t.elapsed();
    // The scenario's stories are 20 s apart from 60 h ago: past 10,800 of them the last are
    // dated after the emulator's clock, and would look changed to every change read. The
    // clock goes past the last story first (well inside max_age).
    let ahead = (n as i64 * 20 - 60 * 3600).max(0);
    let config = Config::parse(
        &config_text(&emu, None, "\n[sync]\nbackend = \"graph\"\n"),
        "t",
    )
    .unwrap();
    let conn = connect(&config, HttpOptions::default()).await;
    let ctl = control(&conn, &emu);
    if ahead > 0 {
        let advance = format!("{}s", ahead + 3600);
        post(
            &ctl,
            &emu,
            "/_emulator/clock",
            json!({ "advance": advance }),
        )
        .await;
    }
    let mut syncer = Syncer::new(&config, ReadMode::Feed);
    let stop = Arc::new(AtomicBool::new(false));
    let graph_calls = async |ctl: &reqwest::Client| {
        request_log(ctl, &emu)
            .await
            .iter()
            .filter(|e| e["service"] == "graph" && e["status"] != 429)
            .count()
    };
    let before = graph_calls(&ctl).await;
    let t = Instant::now();
    let c = syncer
        .cycle(&conn, &config, Mode::Plan, &stop, &|_, _| {})
        .await;
    let whole_wall = t.elapsed();
    let whole = graph_calls(&ctl).await - before;
    assert!(c.succeeded(), "{}", dfcsync::report::summary_line(&c));
    let incidents = c.workspaces[0].incidents_seen;
    post(&ctl, &emu, "/_emulator/clock", json!({"advance": "15m"})).await;
    let before = graph_calls(&ctl).await;
    syncer
        .cycle(&conn, &config, Mode::Plan, &stop, &|_, _| {})
        .await;
    let quiet = graph_calls(&ctl).await - before;
    eprintln!(
        "bench_graph: {n} stories ({incidents} DfC incidents, loaded in {loaded:.1?}), limit {per_minute}/min: whole read {whole} calls in {whole_wall:.1?} (at 50/min: {:.1} min), quiet change read {quiet} calls",
        whole as f64 / 50.0
    );
}
