//! Row parsing and decide on a generated workspace of 100,000 in-scope incidents and about
//! 250,000 alert rows (the target: decide ≤ 100 ms, peak ≤ 200 MB on one core).
//! Run with `cargo bench -p dfcsync --bench engine`; figures in docs/benchmarks.md.

#[path = "workspace_gen.rs"]
mod workspace_gen;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

use dfcsync::decide::decide;
use dfcsync::observe::build_snapshot;
use dfcsync::policy::Policy;

fn engine(c: &mut Criterion) {
    let (incidents, alerts) = workspace_gen::generate(100_000);
    let now: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().unwrap();
    let policy = Policy::default();
    let snapshot = build_snapshot(incidents.as_bytes(), alerts.as_bytes()).unwrap();
    assert_eq!(snapshot.incidents.len(), 100_000);
    let plan = decide(&snapshot, &policy, now);
    eprintln!(
        "workspace: {} incidents, {} alerts, {} MB of rows; plan: {} actions, {} held",
        snapshot.incidents.len(),
        snapshot.alerts.len(),
        (incidents.len() + alerts.len()) / 1_000_000,
        plan.actions.len(),
        plan.held.len()
    );

    let mut group = c.benchmark_group("engine_100k");
    group.sample_size(10);
    group.bench_function("parse_rows", |b| {
        b.iter(|| build_snapshot(incidents.as_bytes(), alerts.as_bytes()).unwrap())
    });
    // The plan is dropped outside the timing: freeing it is not deciding.
    group.bench_function("decide", |b| {
        b.iter_with_large_drop(|| decide(&snapshot, &policy, now))
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
