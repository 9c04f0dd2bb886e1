//! Benchmark: the seed query over generated data (1,000,000 SecurityAlert rows, 100,000
//! incidents × ~3 rows), with the peak extra heap of one run measured by a counting allocator.

mod data;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};

/// The system allocator, counting live and peak bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn bench(c: &mut Criterion) {
    let db = data::generate(&data::FULL);
    let opts = kql::QueryOptions::new(data::now());
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let t = kql::run(data::SEED_QUERY, &db, &opts).expect("the seed query runs");
    let peak = PEAK.load(Ordering::Relaxed) - base;
    eprintln!(
        "seed query: {} result rows; data set {} MiB on the heap; peak extra heap during the query {} MiB",
        t.rows.len(),
        base / (1 << 20),
        peak / (1 << 20)
    );
    let mut g = c.benchmark_group("kql");
    g.sample_size(10);
    g.bench_function("seed_query_1M_alerts_100k_incidents", |b| {
        b.iter(|| kql::run(data::SEED_QUERY, &db, &opts).expect("runs"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
