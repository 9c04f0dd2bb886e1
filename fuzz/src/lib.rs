//! Shared pieces of the cargo-fuzz targets in `fuzz_targets/` (docs/reliability.md,
//! "Fuzzing"): the `dfcsync demo` workspace that the KQL and config targets query, the sync
//! query's answer as the emulator serves it, and snapshots in a form that compares.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use dfcsync::model::{AlertMap, HeldInput, IncidentState, Snapshot};
use dfcsync::observe::build_snapshot_combined;
use dfcsync::observe::query::sync_query;
use dfcsync::policy::Policy;

/// The scenario of `dfcsync demo` (one workspace whose incidents tell the stories), loaded once.
pub fn demo() -> &'static emulator::Scenario {
    static DEMO: OnceLock<emulator::Scenario> = OnceLock::new();
    DEMO.get_or_init(|| {
        emulator::Scenario::from_json_str(include_str!("../../crates/dfcsync/demo/scenario.json"))
            .expect("the demo scenario loads")
    })
}

/// The demo scenario's clock.
pub fn demo_now() -> DateTime<Utc> {
    demo().platform().start
}

/// Every row of the demo workspace's `SecurityIncident` and `SecurityAlert` tables.
pub fn demo_db() -> &'static kql::Database {
    &demo().platform().tables[0].db
}

/// The answer the emulator gives to dfcsync's sync query for `policy` over `db` at `now`:
/// the query run by the KQL engine, written as a Log Analytics response.
pub fn sync_answer(
    db: &kql::Database,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, kql::KqlError> {
    let table = kql::run(&sync_query(policy), db, &kql::QueryOptions::new(now))?;
    Ok(kql::response_json(std::slice::from_ref(&table))
        .to_string()
        .into_bytes())
}

/// The snapshot of the demo workspace with the default policy.
pub fn demo_snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let body = sync_answer(demo_db(), &Policy::default(), demo_now())
            .expect("the sync query runs on the demo workspace");
        let snapshot = build_snapshot_combined(&body[..]).expect("the answer reads");
        assert!(!snapshot.incidents.is_empty(), "the demo has incidents");
        snapshot
    })
}

/// A snapshot with its incidents, held incidents and alerts in a set order, without
/// `server_now` (the `Clock` row's time: the last such row wins, and the service sends one).
#[derive(Debug, PartialEq)]
pub struct Normalized {
    pub incidents: Vec<IncidentState>,
    pub unreadable_incidents: Vec<HeldInput>,
    /// Compares as a map: the order alerts were added in does not count.
    pub alerts: AlertMap,
    pub warnings: Vec<String>,
}

pub fn normalized(s: Snapshot) -> Normalized {
    let mut incidents = s.incidents;
    incidents.sort_by(|a, b| a.name.cmp(&b.name));
    let mut unreadable_incidents = s.unreadable_incidents;
    unreadable_incidents.sort_by(|a, b| a.incident.cmp(&b.incident));
    Normalized {
        incidents,
        unreadable_incidents,
        alerts: s.alerts,
        warnings: s.warnings,
    }
}
