//! Parses a generated workspace (from `generate_workspace`) and decides, printing counts and
//! nothing else: run it under `/usr/bin/time -v` for the peak memory of parse + decide.
//!
//! ```sh
//! cargo run --release -p dfcsync --example generate_workspace -- /tmp/ws 100000
//! /usr/bin/time -v target/release/examples/engine_memory /tmp/ws
//! ```

use std::fs::File;
use std::io::BufReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "workspace".into()),
    );
    let incidents = BufReader::new(File::open(dir.join("incidents.json"))?);
    let alerts = BufReader::new(File::open(dir.join("alerts.json"))?);
    let started = std::time::Instant::now();
    let snapshot = dfcsync::observe::build_snapshot(incidents, alerts)?;
    let parsed = started.elapsed();
    let now = "2026-11-28T00:00:00Z".parse()?;
    // DECIDE_REPEAT=n decides n times (for profilers); the last plan is reported.
    let repeat: usize = std::env::var("DECIDE_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let policy = dfcsync::policy::Policy::default();
    let mut started = std::time::Instant::now();
    let mut plan = dfcsync::decide::decide(&snapshot, &policy, now);
    for _ in 1..repeat {
        drop(plan);
        started = std::time::Instant::now();
        plan = dfcsync::decide::decide(&snapshot, &policy, now);
    }
    println!(
        "{} incidents, {} alerts: parsed in {:.2?}; {} actions, {} held, decided in {:.2?}",
        snapshot.incidents.len(),
        snapshot.alerts.len(),
        parsed,
        plan.actions.len(),
        plan.held.len(),
        started.elapsed()
    );
    Ok(())
}
