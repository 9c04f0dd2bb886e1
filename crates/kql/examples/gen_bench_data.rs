//! Writes the benchmark data set (see `benches/data.rs`) as two Log Analytics responses,
//! `SecurityIncident.json` and `SecurityAlert.json`, into the directory given (default `.`),
//! for timing the `kql` binary, and with `--ndjson` also `NAME.ndjson` (one JSON object a
//! row, dynamic values inline) for loading into other engines. The directory is made when
//! missing; every error names the path it could not use.

#[path = "../benches/data.rs"]
mod data;

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

/// A buffered file created at `path`, the error naming it.
fn create(path: &Path) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(std::io::BufWriter::new(f))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // The directory is the first argument that is not a flag.
    let dir = args
        .iter()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map_or(".", String::as_str);
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("making the directory {}", dir.display()))?;
    let small = args.iter().any(|s| s == "--small");
    let ndjson = args.iter().any(|s| s == "--ndjson");
    let sizes = if small {
        data::Sizes {
            incidents: 1_000,
            alert_rows: 10_000,
        }
    } else {
        data::FULL
    };
    let db = data::generate(&sizes);
    for name in ["SecurityIncident", "SecurityAlert"] {
        let t = db
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("missing {name}"))?;
        let path = dir.join(format!("{name}.json"));
        let mut f = create(&path)?;
        serde_json::to_writer(&mut f, &kql::response_json(std::slice::from_ref(t)))
            .and_then(|()| f.flush().map_err(serde_json::Error::io))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}: {} rows", path.display(), t.rows.len());
        if ndjson {
            let path = dir.join(format!("{name}.ndjson"));
            let mut f = create(&path)?;
            for r in &t.rows {
                let mut o = serde_json::Map::new();
                for (c, v) in t.columns.iter().zip(r) {
                    let j = match v {
                        kql::Value::Dynamic(j) => (**j).clone(),
                        other => kql::la_json::value_to_wire(other, c.ty),
                    };
                    o.insert(c.name.clone(), j);
                }
                serde_json::to_writer(&mut f, &o)
                    .map_err(std::io::Error::from)
                    .and_then(|()| f.write_all(b"\n"))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            f.flush()
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
