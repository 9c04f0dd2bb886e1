//! Writes the benchmark data set (see `benches/data.rs`) as two Log Analytics responses,
//! `SecurityIncident.json` and `SecurityAlert.json`, into the directory given (default `.`),
//! for timing the `kql` binary, and with `--ndjson` also `NAME.ndjson` (one JSON object a
//! row, dynamic values inline) for loading into other engines.

#[path = "../benches/data.rs"]
mod data;

use std::io::Write;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let args: Vec<String> = std::env::args().collect();
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
        let path = format!("{dir}/{name}.json");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        serde_json::to_writer(&mut f, &kql::response_json(std::slice::from_ref(t)))?;
        f.flush()?;
        eprintln!("wrote {path}: {} rows", t.rows.len());
        if ndjson {
            let path = format!("{dir}/{name}.ndjson");
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
            for r in &t.rows {
                let mut o = serde_json::Map::new();
                for (c, v) in t.columns.iter().zip(r) {
                    let j = match v {
                        kql::Value::Dynamic(j) => (**j).clone(),
                        other => kql::la_json::value_to_wire(other, c.ty),
                    };
                    o.insert(c.name.clone(), j);
                }
                serde_json::to_writer(&mut f, &o)?;
                f.write_all(b"\n")?;
            }
            f.flush()?;
            eprintln!("wrote {path}");
        }
    }
    Ok(())
}
