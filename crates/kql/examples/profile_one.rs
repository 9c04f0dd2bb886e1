//! Runs one query on the benchmark data set several times (a profiling aid):
//! `profile_one 'QUERY' [N]`.

#[path = "../benches/data.rs"]
mod data;

fn main() {
    let q = std::env::args()
        .nth(1)
        .filter(|s| s != "seed")
        .unwrap_or_else(|| data::SEED_QUERY.to_string());
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let db = data::generate(&data::FULL);
    let opts = kql::QueryOptions::new(data::now());
    for _ in 0..n {
        let t0 = std::time::Instant::now();
        let r = kql::run(&q, &db, &opts).expect("runs");
        eprintln!(
            "{:.1} ms, {} rows",
            t0.elapsed().as_secs_f64() * 1e3,
            r.rows.len()
        );
    }
}
