//! The hand-built SecurityIncident/SecurityAlert data set for the seed query's tests (the
//! expected rows are in `seed_query.rs`).

use chrono::Duration;
use kql::{Column, ColumnType as T, Database, Table, Value};
use serde_json::json;

use super::now;

fn days_ago(d: i64) -> Value {
    Value::DateTime(now() - Duration::days(d))
}

/// One SecurityIncident row: (days ago, number, name, status, product names, alert ids).
fn incident(
    ago: i64,
    num: i32,
    name: &str,
    status: &str,
    products: &[&str],
    alerts: &[&str],
) -> Vec<Value> {
    vec![
        days_ago(ago),
        Value::Int(num),
        Value::string(name),
        Value::string(status),
        Value::string(format!("Incident {num}")),
        Value::dynamic(json!({ "alertProductNames": products, "alertsCount": alerts.len() })),
        Value::dynamic(json!(alerts)),
    ]
}

fn alert(ago: i64, id: &str, status: &str) -> Vec<Value> {
    vec![
        days_ago(ago),
        Value::string(id),
        Value::string(status),
        Value::string("Azure Security Center"),
    ]
}

const ASC: &[&str] = &["Azure Security Center"];

pub fn seed_db() -> Database {
    let inc_cols = vec![
        Column::new("TimeGenerated", T::DateTime),
        Column::new("IncidentNumber", T::Int),
        Column::new("IncidentName", T::String),
        Column::new("Status", T::String),
        Column::new("Title", T::String),
        Column::new("AdditionalData", T::Dynamic),
        Column::new("AlertIds", T::Dynamic),
    ];
    let incidents = vec![
        // inc-1: the newest row (Active) wins over the older New one; its alert is Resolved.
        incident(3, 1, "inc-1", "New", ASC, &["a1"]),
        incident(1, 1, "inc-1", "Active", ASC, &["a1"]),
        // inc-2: one Resolved and one Dismissed alert → two rows (known fault of the query).
        incident(
            2,
            2,
            "inc-2",
            "New",
            &["Azure Security Center", "Microsoft Defender for Cloud"],
            &["a2", "a3"],
        ),
        // inc-3: alert a-missing has no SecurityAlert row; the inner join drops it and the
        // incident still comes out on the strength of a4.
        incident(2, 3, "inc-3", "Active", ASC, &["a4", "a-missing"]),
        // inc-4: closed at last → filtered by Status != "Closed".
        incident(5, 4, "inc-4", "Active", ASC, &["a11"]),
        incident(4, 4, "inc-4", "Closed", ASC, &["a11"]),
        // inc-5: Active incident whose only alert is InProgress → removed by the last where.
        incident(2, 5, "inc-5", "Active", ASC, &["a5"]),
        // inc-6: New incident with an InProgress alert → kept.
        incident(2, 6, "inc-6", "New", ASC, &["a6"]),
        // inc-7: an alert still New → removed (has_any "New").
        incident(2, 7, "inc-7", "Active", ASC, &["a7"]),
        // inc-8: Resolved + InProgress with more than one alert → removed.
        incident(2, 8, "inc-8", "Active", ASC, &["a8", "a9"]),
        // inc-9: not from Defender for Cloud → filtered by the product `has`.
        incident(
            2,
            9,
            "inc-9",
            "Active",
            &["Microsoft Defender for Endpoint"],
            &["a10"],
        ),
        // inc-10: older than 30 days → filtered by ago(30d).
        incident(40, 10, "inc-10", "Active", ASC, &["a10"]),
        // inc-11: no alerts → mv-expand of [] drops it.
        incident(2, 11, "inc-11", "Active", ASC, &[]),
        // inc-12: the product name differs in case only: `has` is case-insensitive.
        incident(
            2,
            12,
            "inc-12",
            "Active",
            &["azure security center"],
            &["a12"],
        ),
    ];
    let alert_cols = vec![
        Column::new("TimeGenerated", T::DateTime),
        Column::new("SystemAlertId", T::String),
        Column::new("Status", T::String),
        Column::new("ProductName", T::String),
    ];
    let alerts = vec![
        alert(3, "a1", "New"),
        alert(1, "a1", "Resolved"),
        alert(2, "a2", "Resolved"),
        alert(3, "a3", "New"),
        alert(2, "a3", "Dismissed"),
        alert(2, "a4", "Resolved"),
        alert(2, "a5", "InProgress"),
        alert(3, "a6", "New"),
        alert(2, "a6", "InProgress"),
        alert(2, "a7", "New"),
        alert(2, "a8", "Resolved"),
        alert(2, "a9", "InProgress"),
        alert(2, "a10", "Resolved"),
        alert(4, "a11", "Resolved"),
        alert(2, "a12", "Dismissed"),
    ];
    let mut db = Database::new();
    db.insert(
        "SecurityIncident",
        Table::from_rows("SecurityIncident", inc_cols, incidents).expect("rows fit"),
    );
    db.insert(
        "SecurityAlert",
        Table::from_rows("SecurityAlert", alert_cols, alerts).expect("rows fit"),
    );
    db
}
