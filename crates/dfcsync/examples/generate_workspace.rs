//! Writes a generated workspace (`incidents.json`, `alerts.json`) for measuring `dfcsync
//! replay` as a whole, e.g. its peak memory with `/usr/bin/time -v`:
//!
//! ```sh
//! cargo run --release -p dfcsync --example generate_workspace -- /tmp/ws 100000
//! /usr/bin/time -v target/release/dfcsync replay --incidents /tmp/ws/incidents.json \
//!     --alerts /tmp/ws/alerts.json --now 2026-11-28T00:00:00Z --output json > /dev/null
//! ```

#[path = "../benches/workspace_gen.rs"]
mod workspace_gen;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "workspace".into()));
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("making the folder {}: {e}", dir.display()))?;
    let (incidents, alerts) = workspace_gen::generate(n);
    for (name, text) in [("incidents.json", incidents), ("alerts.json", alerts)] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    println!("wrote {n} incidents to {}", dir.display());
    Ok(())
}
