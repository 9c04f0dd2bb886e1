//! Load benchmark: a scenario that imports 100,000 incidents and 1,000,000 `SecurityAlert`
//! rows (`rows` events), loaded, started, and queried. Prints load time, peak memory and
//! query latencies (recorded in `docs/benchmarks.md`, section "Emulator").
//!
//! `cargo bench -p emulator --bench load`; sizes with `EMU_BENCH_INCIDENTS` and
//! `EMU_BENCH_ALERT_ROWS` (defaults 100000 and 1000000).

use std::fmt::Write as _;
use std::time::Instant;

use emulator::{Emulator, Scenario, StartOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| k / 1024.0)
        .unwrap_or(f64::NAN)
}

fn guid(n: u64, tag: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        tag,
        (n >> 32) & 0xffff,
        (n >> 20) & 0xfff,
        (n >> 8) & 0xfff,
        n
    )
}

/// The scenario text: incidents with one to twenty alerts, each alert with a few rows.
fn scenario_text(incidents: usize, alert_rows: usize) -> String {
    let mut s = String::with_capacity(alert_rows * 700 + incidents * 900);
    s.push_str(r#"{"now":"2026-11-27T12:00:00Z","tenant_id":"72f988bf-0000-0000-0000-000000000001","workspaces":[{"name":"law-sentinel","subscription_id":"00000000-0000-0000-0000-000000000001","resource_group":"rg-sentinel","customer_id":"11111111-2222-3333-4444-555555555555"}],"principals":[{"name":"dfcsync","kind":"service_principal","client_id":"aaaaaaaa-0000-0000-0000-000000000001","secret":"s","roles":[{"role":"Microsoft Sentinel Responder","scope":"/subscriptions/00000000-0000-0000-0000-000000000001"}]}],"events":[{"do":"rows","table":"SecurityAlert","rows":["#);
    // Spread the alert rows over the incidents: about 4 rows per alert.
    let alerts = (alert_rows / 4).max(incidents);
    let statuses = ["New", "InProgress", "Resolved", "Dismissed"];
    let base = chrono::DateTime::parse_from_rfc3339("2026-10-01T00:00:00Z").expect("time");
    let mut row = 0usize;
    'outer: for a in 0..alerts {
        for k in 0..4 {
            if row == alert_rows {
                break 'outer;
            }
            if row > 0 {
                s.push(',');
            }
            let at = base
                + chrono::Duration::minutes((a % 30_000) as i64)
                + chrono::Duration::hours(k as i64);
            let name = format!("25171{:014}_{}", a, guid(a as u64, 0xdfc));
            let _ = write!(
                s,
                r#"{{"TimeGenerated":"{}","SystemAlertId":"{}","VendorOriginalId":"{}","AlertName":"Suspicious process executed","DisplayName":"Suspicious process executed","AlertSeverity":"High","ProductName":"Azure Security Center","ProviderName":"Azure Security Center","VendorName":"Microsoft","Status":"{}","AlertLink":"https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/{}/subscriptionId/00000000-0000-0000-0000-000000000002/resourceGroup/rg-app/referencedFrom/alertDeepLink/location/westeurope","StartTime":"2026-10-01T00:00:00Z","EndTime":"2026-10-01T00:05:00Z","Type":"SecurityAlert"}}"#,
                at.format("%Y-%m-%dT%H:%M:%SZ"),
                guid(a as u64, 0xa1e),
                name,
                statuses[k % 4],
                name
            );
            row += 1;
        }
    }
    s.push_str(r#"]},{"do":"rows","table":"SecurityIncident","rows":["#);
    for i in 0..incidents {
        if i > 0 {
            s.push(',');
        }
        let first = i * alerts / incidents;
        let last = ((i + 1) * alerts / incidents).max(first + 1);
        let ids: Vec<String> = (first..last)
            .map(|a| format!("\"{}\"", guid(a as u64, 0xa1e)))
            .collect();
        let _ = write!(
            s,
            r#"{{"TimeGenerated":"2026-10-{:02}T12:00:00Z","IncidentName":"{}","IncidentNumber":{},"Title":"Suspicious process executed","Severity":"High","Status":"{}","AlertIds":[{}],"CreatedTime":"2026-10-{:02}T12:00:00Z","LastModifiedTime":"2026-10-{:02}T12:00:00Z","ProviderName":"Azure Sentinel","ProviderIncidentId":"{}","ModifiedBy":"Incident created from alert","AdditionalData":{{"alertsCount":{},"bookmarksCount":0,"commentsCount":0,"alertProductNames":["Azure Security Center"],"tactics":[]}},"Comments":[],"Labels":[],"Owner":{{"objectId":null,"email":null,"assignedTo":null,"userPrincipalName":null}}}}"#,
            1 + i % 27,
            guid(i as u64, 0x1c1),
            i + 1,
            if i % 3 == 0 { "Closed" } else { "New" },
            ids.join(","),
            1 + i % 27,
            1 + i % 27,
            i + 1,
            last - first,
        );
    }
    s.push_str("]}]}");
    s
}

const QUERIES: &[(&str, &str)] = &[
    ("count alerts", "SecurityAlert | count"),
    (
        "newest incident rows, open",
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName | where Status != 'Closed' | count",
    ),
    (
        "newest alert row per alert",
        "SecurityAlert | where TimeGenerated > ago(90d) | summarize arg_max(TimeGenerated, Status) by SystemAlertId | summarize count() by Status",
    ),
    (
        "incidents joined to their alerts",
        "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName | where Status != 'Closed' | mv-expand AlertIds to typeof(string) | join kind=inner (SecurityAlert | summarize arg_max(TimeGenerated, Status) by SystemAlertId) on $left.AlertIds == $right.SystemAlertId | summarize count() by Status1",
    ),
];

#[tokio::main]
async fn main() {
    let incidents = env_usize("EMU_BENCH_INCIDENTS", 100_000);
    let alert_rows = env_usize("EMU_BENCH_ALERT_ROWS", 1_000_000);
    let t = Instant::now();
    let text = scenario_text(incidents, alert_rows);
    println!(
        "scenario text: {:.1} MiB, generated in {:.2?}",
        text.len() as f64 / 1048576.0,
        t.elapsed()
    );

    let t = Instant::now();
    let scenario = Scenario::from_json_str(&text).expect("scenario loads");
    let load = t.elapsed();
    drop(text);
    println!(
        "load (parse + build the model and tables): {load:.2?}, peak RSS {:.0} MiB",
        peak_rss_mib()
    );

    let t = Instant::now();
    let emu = Emulator::start(scenario, StartOptions::default())
        .await
        .expect("starts");
    println!(
        "start (TLS, copy of the initial state): {:.2?}, peak RSS {:.0} MiB",
        t.elapsed(),
        peak_rss_mib()
    );

    let (n_inc, n_rows) = emu.with_platform(|p| {
        (
            p.incidents.len(),
            p.tables[0]
                .rows(emulator::table::TableKind::SecurityAlert)
                .len(),
        )
    });
    println!("incidents: {n_inc}, SecurityAlert rows: {n_rows}");

    for (label, q) in QUERIES {
        let mut times = vec![];
        let mut result = String::new();
        for _ in 0..3 {
            let t = Instant::now();
            let r = emu.with_platform(|p| {
                let opts = kql::QueryOptions::new(p.start);
                kql::run(q, &p.tables[0].db, &opts)
            });
            times.push(t.elapsed());
            result = match r {
                Ok(t) => format!("{} rows", t.rows.len()),
                Err(e) => format!("error: {e:?}"),
            };
        }
        times.sort();
        println!(
            "query {label:?}: median {:.2?} (min {:.2?}, max {:.2?}); {result}",
            times[1], times[0], times[2]
        );
    }
    println!(
        "peak RSS {:.0} MiB, RSS now {:.0} MiB",
        peak_rss_mib(),
        rss_mib()
    );
    emu.shutdown().await;
}
