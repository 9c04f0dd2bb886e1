//! Parses a generated workspace (from `generate_workspace`) and decides, printing counts and
//! nothing else: run it under `/usr/bin/time -v` for the peak memory of parse + decide.
//!
//! ```sh
//! cargo run --release -p dfcsync --example generate_workspace -- /tmp/ws 100000
//! /usr/bin/time -v target/release/examples/engine_memory /tmp/ws
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::io::BufReader;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Counts the bytes the heap holds and their peak, so that the report can say how much of
/// the process's peak is the snapshot, the plan or the parse's transient buffers.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let live =
                    LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
                PEAK.fetch_max(live, Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The time this thread has run on a CPU (Linux's schedstat), which a busy machine disturbs
/// far less than wall-clock time: waiting for a core is not counted.
fn cpu_time() -> Option<std::time::Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(nanos))
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "workspace".into()),
    );
    let open = |name: &str| {
        let path = dir.join(name);
        File::open(&path)
            .map(BufReader::new)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let incidents = open("incidents.json")?;
    let alerts = open("alerts.json")?;
    let started = std::time::Instant::now();
    let snapshot = dfcsync::observe::build_snapshot(incidents, alerts)?;
    let parsed = started.elapsed();
    let (snapshot_heap, parse_peak) = (LIVE.load(Relaxed), PEAK.load(Relaxed));
    let now = "2026-11-28T00:00:00Z".parse()?;
    // DECIDE_REPEAT=n decides n times (for profilers); the last plan is reported.
    let repeat: usize = std::env::var("DECIDE_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let policy = dfcsync::policy::Policy::default();
    let started = std::time::Instant::now();
    let cpu_started = cpu_time();
    let mut plan = dfcsync::decide::decide(&snapshot, &policy, now);
    let first = started.elapsed();
    let first_cpu = cpu_time().zip(cpu_started).map(|(end, start)| end - start);
    // On a shared machine the fastest of several runs is the engine's own time.
    let mut fastest = first;
    let mut fastest_cpu = first_cpu;
    for _ in 1..repeat {
        drop(plan);
        let started = std::time::Instant::now();
        let cpu_started = cpu_time();
        plan = dfcsync::decide::decide(&snapshot, &policy, now);
        fastest = fastest.min(started.elapsed());
        let cpu = cpu_time().zip(cpu_started).map(|(end, start)| end - start);
        fastest_cpu = fastest_cpu.zip(cpu).map(|(a, b)| a.min(b));
    }
    println!(
        "{} incidents, {} alerts: parsed in {:.2?}; {} actions, {} held, decided in {:.2?} (first run), {:.2?} (fastest of {repeat})",
        snapshot.incidents.len(),
        snapshot.alerts.len(),
        parsed,
        plan.actions.len(),
        plan.held.len(),
        first,
        fastest
    );
    if let (Some(first), Some(fastest)) = (first_cpu, fastest_cpu) {
        println!("decide on CPU: {first:.2?} (first run), {fastest:.2?} (fastest of {repeat})");
    }
    println!(
        "heap: parse peak {:.0} MiB, snapshot {:.0} MiB, plan {:.0} MiB, peak {:.0} MiB",
        mib(parse_peak),
        mib(snapshot_heap),
        mib(LIVE.load(Relaxed) - snapshot_heap),
        mib(PEAK.load(Relaxed))
    );
    Ok(())
}
