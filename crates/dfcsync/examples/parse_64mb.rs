//! Parsing benchmark: a ~64 MB Log Analytics response of the sync query's shape, read by
//! `observe::build_snapshot_combined` (docs/benchmarks.md, "Parsing a 64 MB response").
//!
//! ```sh
//! cargo build -p dfcsync --release --example parse_64mb
//! B=target/release/examples/parse_64mb
//! $B gen /tmp/la64.json 64          # writes the response (size in MB, default 64)
//! $B time /tmp/la64.json 5          # parses it 5 times, prints each time
//! /usr/bin/time -v $B parse /tmp/la64.json    # one parse, as the cycle does it: the body in memory
//! /usr/bin/time -v $B stream /tmp/la64.json   # one parse from a buffered file reader
//! /usr/bin/time -v $B read /tmp/la64.json     # only reads the body (the baseline of `parse`)
//! ```
//!
//! The response is one table: `Table` plus the incident and alert columns of
//! `observe::query::{INCIDENT_COLUMNS, ALERT_COLUMNS}`, dynamic values as JSON strings (as
//! the query API sends them), and the clock row. Each incident has 3 rows (its history) and
//! 2 alerts of 2 rows each; incidents' comments and additional data are of a realistic size.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::time::Instant;

use dfcsync::observe::query::{ALERT_COLUMNS, INCIDENT_COLUMNS};
use dfcsync::observe::{build_snapshot_combined, build_snapshot_combined_from_reader};
use serde_json::{Value, json};

fn columns() -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("Table", "string")];
    for c in INCIDENT_COLUMNS.iter().chain(ALERT_COLUMNS) {
        if out.iter().any(|(n, _)| n == c) {
            continue;
        }
        let ty = match *c {
            "TimeGenerated" | "CreatedTime" | "LastModifiedTime" => "datetime",
            "IncidentNumber" => "int",
            "Owner" | "AlertIds" | "AdditionalData" | "Comments" => "dynamic",
            _ => "string",
        };
        out.push((c, ty));
    }
    out
}

fn time(base_min: i64, sec: i64) -> String {
    let t = chrono::DateTime::parse_from_rfc3339("2026-08-01T00:00:00Z").unwrap()
        + chrono::TimeDelta::minutes(base_min)
        + chrono::TimeDelta::seconds(sec);
    t.with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S.0000000Z")
        .to_string()
}

fn guid(kind: u32, i: u64) -> String {
    format!(
        "{kind:08x}-{:04x}-4000-8000-{:012x}",
        (i >> 48) & 0xffff,
        i & 0xffff_ffff_ffff
    )
}

fn incident_rows(i: u64, cols: &[(&str, &str)]) -> Vec<Vec<Value>> {
    let name = guid(0x4f9c0d5e, i);
    let alerts = [guid(0xa1e70000, 2 * i), guid(0xa1e70000, 2 * i + 1)];
    let alert_ids = serde_json::to_string(&alerts).unwrap();
    let base = i as i64; // one incident a minute
    let statuses = ["New", "Active", "Closed"];
    let mut rows = Vec::new();
    for (k, status) in statuses.iter().enumerate() {
        let closed = *status == "Closed";
        let comments: Vec<Value> = (0..=k)
            .map(|c| {
                json!({
                    "message": format!("Analyst note {c} on incident {i}: looked at the process tree and the sign-ins of the account; nothing further for now. [dfcsync:notice:{:016x}]", i * 7 + c as u64),
                    "createdTimeUtc": time(base, 60 * c as i64),
                    "author": {"objectId": guid(0xcccccccc, c as u64), "email": "analyst@contoso.com",
                               "name": "Analyst", "userPrincipalName": "analyst@contoso.com"}
                })
            })
            .collect();
        let additional = json!({
            "alertsCount": 2, "bookmarksCount": 0, "commentsCount": k + 1,
            "alertProductNames": ["Azure Security Center"],
            "tactics": ["Execution", "Persistence"], "techniques": ["T1059", "T1053"],
            "providerIncidentUrl": format!("https://security.microsoft.com/incidents/{i}")
        });
        let owner =
            json!({"objectId": null, "email": null, "assignedTo": null, "userPrincipalName": null});
        let mut row = Vec::with_capacity(cols.len());
        for (c, _) in cols {
            row.push(match *c {
                "Table" => json!("SecurityIncident"),
                "TimeGenerated" => json!(time(base, 30 * k as i64 + 5)),
                "IncidentName" => json!(name),
                "IncidentNumber" => json!(i + 1),
                "Title" => json!(format!("Suspicious process executed on vm-{:05} (incident {i})", i % 10_000)),
                "Status" => json!(status),
                "Classification" => json!(if closed { "TruePositive" } else { "" }),
                "ClassificationReason" => json!(if closed { "SuspiciousActivity" } else { "" }),
                "ClassificationComment" => json!(if closed {
                    format!("Closed by dfcsync: the alerts of this incident are Resolved in Microsoft Defender for Cloud. [dfcsync:close:{:016x}]", i)
                } else {
                    String::new()
                }),
                "Owner" => json!(owner.to_string()),
                "AlertIds" => json!(alert_ids),
                "AdditionalData" => json!(additional.to_string()),
                "ProviderName" => json!("Azure Sentinel"),
                "CreatedTime" => json!(time(base, 0)),
                "LastModifiedTime" => json!(time(base, 30 * k as i64 + 5)),
                "ModifiedBy" => json!(if k == 0 { "Incident created from alert" } else { "analyst@contoso.com" }),
                "Comments" => json!(serde_json::to_string(&comments).unwrap()),
                _ => Value::Null,
            });
        }
        rows.push(row);
    }
    for (a, id) in alerts.iter().enumerate() {
        for (k, status) in ["New", "Resolved"].iter().enumerate() {
            let mut row = Vec::with_capacity(cols.len());
            for (c, _) in cols {
                row.push(match *c {
                    "Table" => json!("SecurityAlert"),
                    "TimeGenerated" => json!(time(base, 40 * k as i64 + a as i64)),
                    "SystemAlertId" => json!(id),
                    "Status" => json!(status),
                    "ProductName" => json!("Azure Security Center"),
                    "VendorOriginalId" => json!(format!("2517{i:014}_{}", guid(0x0e0e0e0e, 2 * i + a as u64))),
                    "DisplayName" => json!("Suspicious process executed [seen multiple times]"),
                    "AlertLink" => json!(format!("https://portal.azure.com/#blade/Microsoft_Azure_Security_AzureDefenderForData/AlertBlade/alertId/{id}/subscriptionId/00000000-0000-0000-0000-000000000002/resourceGroup/rg-app/referencedFrom/AlertDeepLink/location/westeurope")),
                    _ => Value::Null,
                });
            }
            rows.push(row);
        }
    }
    rows
}

/// The file at `path`, created (with its folder when missing); an error names the path.
fn create(path: &str) -> File {
    if let Some(dir) = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("making the folder {}: {e}", dir.display()));
    }
    File::create(path).unwrap_or_else(|e| panic!("creating {path}: {e}"))
}

/// An I/O result, or a panic naming the path it was about.
trait OrPath<T> {
    fn or_path(self, path: &str) -> T;
}

impl<T> OrPath<T> for std::io::Result<T> {
    fn or_path(self, path: &str) -> T {
        self.unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

/// Writes the response; returns (incidents, rows, bytes).
fn generate(path: &str, mb: u64) -> (u64, u64, u64) {
    let target = mb * 1024 * 1024;
    let cols = columns();
    let mut out = CountingWriter {
        inner: BufWriter::new(create(path)),
        n: 0,
    };
    let columns: Vec<Value> = cols
        .iter()
        .map(|(n, t)| json!({"name": n, "type": t}))
        .collect();
    write!(
        out,
        "{{\"tables\":[{{\"name\":\"PrimaryResult\",\"columns\":{},\"rows\":[",
        Value::Array(columns)
    )
    .unwrap();
    let (mut incidents, mut rows) = (0u64, 0u64);
    // Leave room for the clock row and the closing brackets.
    while out.n < target - 2048 {
        for r in incident_rows(incidents, &cols) {
            serde_json::to_writer(&mut out, &r).unwrap_or_else(|e| panic!("writing {path}: {e}"));
            out.write_all(b",").or_path(path);
            rows += 1;
        }
        incidents += 1;
    }
    let clock: Vec<Value> = cols
        .iter()
        .map(|(c, _)| match *c {
            "Table" => json!("Clock"),
            "TimeGenerated" => json!(time(incidents as i64 + 60, 0)),
            _ => Value::Null,
        })
        .collect();
    serde_json::to_writer(&mut out, &clock).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    rows += 1;
    out.write_all(b"]}]}").or_path(path);
    out.flush().or_path(path);
    (incidents, rows, out.n)
}

struct CountingWriter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn parse(body: &[u8]) -> f64 {
    let t = Instant::now();
    let snap = build_snapshot_combined(body).expect("parse");
    let secs = t.elapsed().as_secs_f64();
    report(&snap, secs, body.len());
    secs
}

fn report(snap: &dfcsync::model::Snapshot, secs: f64, bytes: usize) {
    println!(
        "parsed {:.1} MB in {:.3} s ({:.0} MB/s): {} incidents, {} alerts, {} unreadable, {} warnings, server_now {:?}",
        bytes as f64 / 1048576.0,
        secs,
        bytes as f64 / 1048576.0 / secs,
        snap.incidents.len(),
        snap.alerts.len(),
        snap.unreadable_incidents.len(),
        snap.warnings.len(),
        snap.server_now
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("all", String::as_str);
    let path = args.get(1).cloned().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("dfcsync-la64.json")
            .display()
            .to_string()
    });
    match mode {
        "gen" => {
            let mb = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
            let t = Instant::now();
            let (incidents, rows, bytes) = generate(&path, mb);
            println!(
                "wrote {path}: {bytes} bytes, {incidents} incidents, {rows} rows in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        "read" => {
            let body = std::fs::read(&path).or_path(&path);
            println!("read {} bytes", body.len());
        }
        "parse" => {
            let body = std::fs::read(&path).or_path(&path);
            parse(&body);
        }
        "stream" => {
            let len = std::fs::metadata(&path).or_path(&path).len();
            let t = Instant::now();
            let snap = build_snapshot_combined_from_reader(BufReader::new(
                File::open(&path).or_path(&path),
            ))
            .expect("parse");
            report(&snap, t.elapsed().as_secs_f64(), len as usize);
        }
        "time" | "all" => {
            if mode == "all" {
                let (incidents, rows, bytes) = generate(&path, 64);
                println!("wrote {path}: {bytes} bytes, {incidents} incidents, {rows} rows");
            }
            let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
            let mut body = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut body))
                .or_path(&path);
            let mut times: Vec<f64> = (0..n).map(|_| parse(&body)).collect();
            times.sort_by(f64::total_cmp);
            println!(
                "{n} runs: min {:.3} s, median {:.3} s, max {:.3} s",
                times[0],
                times[n / 2],
                times[n - 1]
            );
        }
        other => {
            eprintln!("unknown mode {other}: gen | read | parse | stream | time | all");
            std::process::exit(2);
        }
    }
}
