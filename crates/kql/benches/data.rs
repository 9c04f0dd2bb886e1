//! Generated benchmark data: SecurityIncident (100,000 incidents × ~3 rows) and SecurityAlert
//! (1,000,000 rows), deterministic, shaped like the real tables (azure-apis.md §7), with
//! every column the seed query and dfcsync's sync query read, and an `IngestionTime` column
//! (see `ingested`).

#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use kql::{Column, ColumnType as T, Database, Table, Value};
use serde_json::json;

pub const SEED_QUERY: &str = include_str!("../tests/data/seed-query.kql");

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn guid(kind: u64, n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n.wrapping_mul(2_654_435_761) as u32,
        kind,
        n % 4096,
        (n / 4096) % 4096,
        n
    )
}

pub struct Sizes {
    pub incidents: u64,
    pub alert_rows: u64,
}

pub const FULL: Sizes = Sizes {
    incidents: 100_000,
    alert_rows: 1_000_000,
};

/// Builds both tables.
pub fn generate(sizes: &Sizes) -> Database {
    let now = now();
    let mut rng = Rng::new(42);
    let alerts_distinct = sizes.alert_rows / 3;
    let alert_status = ["New", "InProgress", "Resolved", "Dismissed"];

    // SecurityAlert: ~3 rows per alert, statuses moving forward in time.
    let alert_cols = vec![
        Column::new("TenantId", T::String),
        Column::new("TimeGenerated", T::DateTime),
        Column::new("DisplayName", T::String),
        Column::new("AlertName", T::String),
        Column::new("AlertSeverity", T::String),
        Column::new("Description", T::String),
        Column::new("ProviderName", T::String),
        Column::new("VendorName", T::String),
        Column::new("VendorOriginalId", T::String),
        Column::new("SystemAlertId", T::String),
        Column::new("ResourceId", T::String),
        Column::new("ConfidenceScore", T::Real),
        Column::new("IsIncident", T::Bool),
        Column::new("StartTime", T::DateTime),
        Column::new("EndTime", T::DateTime),
        Column::new("ExtendedProperties", T::String),
        Column::new("Entities", T::String),
        Column::new("ProductName", T::String),
        Column::new("AlertLink", T::String),
        Column::new("Status", T::String),
        Column::new("CompromisedEntity", T::String),
        Column::new("Tactics", T::String),
        Column::new("Type", T::String),
        Column::new("IngestionTime", T::DateTime),
    ];
    let tenant = Value::string("72f988bf-0000-0000-0000-000000000001");
    let product = Value::string("Azure Security Center");
    let vendor = Value::string("Microsoft");
    let provider = Value::string("Azure Security Center");
    let typ = Value::string("SecurityAlert");
    let names: Vec<Value> = (0..50)
        .map(|i| Value::string(format!("Suspicious activity {i} detected")))
        .collect();
    let sev: Vec<Value> = ["Low", "Medium", "High", "Informational"]
        .iter()
        .map(Value::string)
        .collect();
    let status_v: Vec<Value> = alert_status.iter().map(Value::string).collect();
    let desc =
        Value::string("An activity that looks suspicious was detected on the resource; review it.");
    let props = Value::string(
        r#"{"resourceType":"Virtual Machine","ReportingSystem":"Azure","OccuringDatacenter":"westeurope"}"#,
    );
    let entities = Value::string(r#"[{"$id":"2","Type":"host","HostName":"vm-01"}]"#);
    let mut alert_rows: Vec<Vec<Value>> = Vec::with_capacity(sizes.alert_rows as usize);
    let mut a = 0u64;
    while (alert_rows.len() as u64) < sizes.alert_rows {
        let id = a % alerts_distinct;
        let id_s = Value::string(guid(1, id));
        let vendor_id = Value::string(format!("2518{:015}_{}", id, guid(2, id)));
        let start = now - Duration::minutes((rng.below(25 * 24 * 60) + 60) as i64);
        let nrows = 3;
        let final_status = match rng.below(10) {
            0..=3 => 2,
            4..=5 => 3,
            6..=7 => 1,
            _ => 0,
        };
        for k in 0..nrows {
            if alert_rows.len() as u64 >= sizes.alert_rows {
                break;
            }
            let st = if k == nrows - 1 {
                final_status
            } else {
                k.min(final_status)
            };
            let tg = start + Duration::minutes((k * 30) as i64);
            alert_rows.push(vec![
                tenant.clone(),
                Value::DateTime(tg),
                names[(id % 50) as usize].clone(),
                names[(id % 50) as usize].clone(),
                sev[(id % 4) as usize].clone(),
                desc.clone(),
                provider.clone(),
                vendor.clone(),
                vendor_id.clone(),
                id_s.clone(),
                Value::string(format!("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-{}", id % 1000)),
                Value::Null,
                Value::Bool(false),
                Value::DateTime(start),
                Value::DateTime(start),
                props.clone(),
                entities.clone(),
                product.clone(),
                Value::string(format!("https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/{id}")),
                status_v[st as usize].clone(),
                Value::string(format!("vm-{}", id % 1000)),
                Value::string("Execution"),
                typ.clone(),
                Value::DateTime(ingested(tg, alert_rows.len())),
            ]);
        }
        a += 1;
    }

    // SecurityIncident: 1–4 rows per incident (about 3), alerts 1, 2, 3 or 5 per incident.
    let inc_cols = vec![
        Column::new("TenantId", T::String),
        Column::new("TimeGenerated", T::DateTime),
        Column::new("IncidentName", T::String),
        Column::new("Title", T::String),
        Column::new("Description", T::String),
        Column::new("Severity", T::String),
        Column::new("Status", T::String),
        Column::new("Classification", T::String),
        Column::new("ClassificationComment", T::String),
        Column::new("ClassificationReason", T::String),
        Column::new("Owner", T::Dynamic),
        Column::new("ProviderName", T::String),
        Column::new("ProviderIncidentId", T::String),
        Column::new("FirstActivityTime", T::DateTime),
        Column::new("LastActivityTime", T::DateTime),
        Column::new("FirstModifiedTime", T::DateTime),
        Column::new("LastModifiedTime", T::DateTime),
        Column::new("CreatedTime", T::DateTime),
        Column::new("ClosedTime", T::DateTime),
        Column::new("IncidentNumber", T::Int),
        Column::new("AlertIds", T::Dynamic),
        Column::new("Comments", T::Dynamic),
        Column::new("Labels", T::Dynamic),
        Column::new("IncidentUrl", T::String),
        Column::new("AdditionalData", T::Dynamic),
        Column::new("ModifiedBy", T::String),
        Column::new("SourceSystem", T::String),
        Column::new("Type", T::String),
        Column::new("IngestionTime", T::DateTime),
    ];
    let inc_status: Vec<Value> = ["New", "Active", "Closed"]
        .iter()
        .map(Value::string)
        .collect();
    let asc = json!({"alertsCount": 1, "bookmarksCount": 0, "commentsCount": 0, "alertProductNames": ["Azure Security Center"], "tactics": ["Execution"], "techniques": []});
    let mde = json!({"alertsCount": 1, "bookmarksCount": 0, "commentsCount": 0, "alertProductNames": ["Microsoft Defender for Endpoint"], "tactics": [], "techniques": []});
    let owner = Value::dynamic(
        json!({"objectId": null, "email": null, "assignedTo": null, "userPrincipalName": null}),
    );
    let labels = Value::dynamic(json!([]));
    let no_comments = Value::dynamic(json!([]));
    let empty = Value::string("");
    let reason = Value::string("SuspiciousActivity");
    let closing_comment = Value::string("Handled by the SOC.");
    let typ = Value::string("SecurityIncident");
    let mut inc_rows: Vec<Vec<Value>> = Vec::with_capacity(sizes.incidents as usize * 3);
    let mut next_alert = 0u64;
    for n in 0..sizes.incidents {
        let k = match rng.below(20) {
            0..=9 => 1,
            10..=14 => 2,
            15..=17 => 3,
            _ => 5,
        };
        let mut ids: Vec<serde_json::Value> = (0..k)
            .map(|j| serde_json::Value::String(guid(1, (next_alert + j) % alerts_distinct)))
            .collect();
        next_alert += k;
        if rng.below(100) == 0 {
            ids.push(serde_json::Value::String(guid(9, n)));
        }
        let alert_ids = Value::dynamic(serde_json::Value::Array(ids));
        let name = Value::string(guid(3, n));
        let add = Value::dynamic(if rng.below(10) == 0 {
            mde.clone()
        } else {
            asc.clone()
        });
        let age_days = if rng.below(20) == 0 {
            31 + rng.below(30)
        } else {
            rng.below(25)
        };
        let created =
            now - Duration::days(age_days as i64) - Duration::minutes(rng.below(1440) as i64);
        let nrows = 1 + rng.below(4) + u64::from(rng.below(2) == 0);
        let nrows = nrows.min(4);
        let closes = rng.below(10) < 4;
        for r in 0..nrows {
            let st = if r == 0 {
                0
            } else if r == nrows - 1 && closes {
                2
            } else {
                1
            };
            let tg = created + Duration::hours(r as i64 * 2);
            inc_rows.push(vec![
                tenant.clone(),
                Value::DateTime(tg),
                name.clone(),
                Value::string(format!("Suspicious activity {} detected", n % 50)),
                Value::string("An incident created from a Defender for Cloud alert."),
                Value::string("Medium"),
                inc_status[st].clone(),
                Value::string(if st == 2 { "TruePositive" } else { "" }),
                if st == 2 {
                    closing_comment.clone()
                } else {
                    empty.clone()
                },
                if st == 2 {
                    reason.clone()
                } else {
                    empty.clone()
                },
                owner.clone(),
                Value::string("Azure Sentinel"),
                Value::string(format!("{}", n + 1)),
                Value::DateTime(created),
                Value::DateTime(created),
                Value::DateTime(created),
                Value::DateTime(tg),
                Value::DateTime(created),
                if st == 2 {
                    Value::DateTime(tg)
                } else {
                    Value::Null
                },
                Value::Int(n as i32 + 1),
                alert_ids.clone(),
                if st == 2 {
                    // The analyst's comment, as the table carries it (one JSON object each).
                    Value::dynamic(json!([{
                        "message": "Closed: true positive, handled.",
                        "createdTimeUtc": tg.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "author": {"name": "alice@contoso.com"},
                    }]))
                } else {
                    no_comments.clone()
                },
                labels.clone(),
                Value::string(format!(
                    "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident/{n}"
                )),
                add.clone(),
                Value::string(if r == 0 {
                    "Incident created from alert"
                } else {
                    "alice@contoso.com"
                }),
                Value::string("Azure"),
                typ.clone(),
                Value::DateTime(ingested(tg, inc_rows.len())),
            ]);
        }
    }
    let mut db = Database::new();
    db.insert(
        "SecurityAlert",
        table("SecurityAlert", alert_cols, alert_rows),
    );
    db.insert(
        "SecurityIncident",
        table("SecurityIncident", inc_cols, inc_rows),
    );
    db
}

/// When row number `n` (of its table) of time `tg` became visible to queries: 2 to 10 minutes
/// after `tg`, a function of `n` alone so that the other columns' draws are unchanged. Written
/// as the `IngestionTime` column: the data sets are loaded into engines (duckdb-kql) that have
/// no `ingestion_time()`, so the comparison's change-feed query reads this column instead.
fn ingested(tg: DateTime<Utc>, n: usize) -> DateTime<Utc> {
    tg + Duration::minutes(2 + (n as i64 * 7_919) % 9)
}

/// A table of generated rows (all of the columns' width).
fn table(name: &str, columns: Vec<Column>, rows: Vec<Vec<Value>>) -> Table {
    let mut t = Table::new(name, columns);
    t.rows = rows;
    t
}
