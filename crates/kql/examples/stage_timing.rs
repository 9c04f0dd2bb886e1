//! Times pieces of the seed query on the benchmark data set (a profiling aid).

#[path = "../benches/data.rs"]
mod data;

fn main() {
    let db = data::generate(&data::FULL);
    let opts = kql::QueryOptions::new(data::now());
    let queries = [
        "SecurityAlert | count",
        "SecurityAlert | summarize arg_max(TimeGenerated,*) by SystemAlertId | count",
        "SecurityAlert | summarize arg_max(TimeGenerated,*) by SystemAlertId | project SystemAlertId, Status | count",
        "SecurityIncident | where TimeGenerated > ago(30d) | count",
        "SecurityIncident | where TimeGenerated > ago(30d) | where AdditionalData.alertProductNames has \"Azure Security Center\" | count",
        "SecurityIncident | where TimeGenerated > ago(30d) | where AdditionalData.alertProductNames has \"Azure Security Center\" | summarize arg_max(TimeGenerated,*) by IncidentNumber | count",
        "SecurityIncident | summarize arg_max(TimeGenerated,*) by IncidentNumber | where Status != \"Closed\" | mv-expand AlertIds | extend SystemAlertId = tostring(AlertIds) | count",
        data::SEED_QUERY,
    ];
    for q in queries {
        let t0 = std::time::Instant::now();
        let r = kql::run(q, &db, &opts).expect("runs");
        let first = q
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{:>8.1} ms  {} rows  {}",
            t0.elapsed().as_secs_f64() * 1e3,
            r.rows.len(),
            &first[..first.len().min(150)]
        );
    }
}
