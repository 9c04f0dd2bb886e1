//! Inputs the fuzz tests (`fuzz_parsers.rs`) and the cargo-fuzz targets (`fuzz/`) found to
//! crash or to break a target's property, as regression tests (see docs/reliability.md,
//! "Fuzzing" and "Fuzzing (proptest)").

use dfcsync::config::Config;
use dfcsync::decide::{decide, in_scope};
use dfcsync::model::Snapshot;
use dfcsync::observe::build_snapshot_combined;
use dfcsync::observe::query::sync_query;
use dfcsync::policy::Policy;
use kql::{Database, QueryOptions};
use serde_json::{Value, json};

fn run(q: &str) -> Result<kql::Table, kql::KqlError> {
    kql::run(
        q,
        &Database::new(),
        &QueryOptions::new("2026-11-27T12:00:00Z".parse().unwrap()),
    )
}

/// Runs `KQL_QUERY` (a helper for minimising a crash by hand).
#[test]
#[ignore = "a helper: KQL_QUERY='...'"]
fn run_the_query_in_kql_query() {
    let q = std::env::var("KQL_QUERY").expect("KQL_QUERY");
    println!("{:?}", run(&q).map(|t| t.rows.len()));
}

/// Bug 3, fixed (found by `kql_mutated_queries`): comparing a dynamic array or bag with a scalar
/// (or with a dynamic scalar) recurses without end: `compare_values` turns the dynamic side
/// into a `Value` with `json_scalar_to_value`, which leaves arrays and bags dynamic, and calls
/// itself with the same pair. The stack overflows and the process aborts (in the emulator,
/// any Log Analytics query such as `SecurityIncident | where AlertIds == "x"` would take the
/// whole emulator down). Expected: a null comparison (false for `==`), never a crash.
#[test]
fn comparing_a_dynamic_array_or_bag_with_a_scalar_does_not_overflow_the_stack() {
    for q in [
        "print x = dynamic({}) == 6",
        "print x = dynamic([1]) < 6",
        "print x = 6 == dynamic({})",
        "print x = dynamic([1]) == 'a'",
        "print x = dynamic([]) == dynamic(6)",
        // The input the fuzzer found (a mutated seed query).
        "datatable(a:long, b:string, c:dynamic)[1, 'x', dynamic({\"k\": [1]})<6, 2, 'y', dynamic(null)] | extend k = c.k[0] | join kind=leftouter (datatable(a:long)[1]) on a",
    ] {
        let _ = run(q);
    }
}

/// The same pairs that do not crash today, kept so a fix does not change them.
#[test]
fn comparisons_of_dynamic_scalars_still_work() {
    for q in [
        "print x = dynamic(1) < 6",
        "print x = dynamic('a') < 6",
        "print x = dynamic([1]) < dynamic([1])",
    ] {
        run(q).unwrap_or_else(|e| panic!("{q}: {e:?}"));
    }
}

/// A snapshot of `rows` (an array of row objects), and of the same rows in reverse order.
fn both_orders(rows: Value) -> (Snapshot, Snapshot) {
    let mut reversed = rows.clone();
    reversed.as_array_mut().unwrap().reverse();
    let read = |v: &Value| build_snapshot_combined(v.to_string().as_bytes()).unwrap();
    (read(&rows), read(&reversed))
}

/// Bug 4, fixed (found by the `la_response` cargo-fuzz target): the number of a held incident
/// came from its first row that had one, so when an incident's rows disagreed on
/// `IncidentNumber` the order of the rows decided the number the plan shows. The input
/// libFuzzer minimised: two unreadable rows (no `AlertIds`) numbered 1 and 2.
#[test]
fn a_held_incident_has_the_same_number_whatever_the_order_of_its_rows() {
    let row = |n: i64, t: &str| {
        json!({"Table": "SecurityIncident", "TimeGenerated": t,
               "IncidentName": "4f9c0d5e-0000-4000-8000-000000000001", "IncidentNumber": n,
               "Title": "x", "Status": "New"})
    };
    let (a, b) = both_orders(json!([
        row(1, "2026-11-27T09:00:00.1234567Z"),
        row(2, "2026-11-27T11:00:00Z")
    ]));
    assert_eq!(a.unreadable_incidents.len(), 1, "{a:?}");
    assert_eq!(a.unreadable_incidents, b.unreadable_incidents);
    assert_eq!(a.unreadable_incidents[0].incident_number, Some(1));
}

/// Bug 5, fixed (the `la_response` target's property, on an input written after reading the
/// tie-break): rows of one incident or alert with the same `TimeGenerated` (and
/// `LastModifiedTime`) were ordered by a hash of some of their fields only, so rows that
/// differed elsewhere (the title, an alert's display name) gave a state that depended on the
/// order of the rows.
#[test]
fn rows_tied_on_their_times_give_the_same_state_whatever_their_order() {
    let t = "2026-11-27T09:00:00Z";
    let incident = |title: &str| {
        json!({"Table": "SecurityIncident", "TimeGenerated": t, "IncidentName": "i-1",
               "IncidentNumber": 1, "Title": title, "Status": "New", "AlertIds": "[\"a\"]",
               "CreatedTime": t, "LastModifiedTime": t})
    };
    let alert = |name: &str| {
        json!({"Table": "SecurityAlert", "TimeGenerated": t, "SystemAlertId": "a",
               "Status": "New", "ProductName": "Azure Security Center", "DisplayName": name})
    };
    let (a, b) = both_orders(json!([
        incident("first"),
        incident("second"),
        alert("one"),
        alert("two")
    ]));
    assert_eq!(a.incidents.len(), 1, "{a:?}");
    assert_eq!(a.incidents, b.incidents);
    assert_eq!(a.alerts, b.alerts);
}

/// Bug 6, fixed (found by the `config` cargo-fuzz target's property, on an input written by
/// hand: libFuzzer did not reach a large enough duration in its run): `max_age` was accepted up
/// to 292 million years, but from about 292 years on the sync query's `ago(…m)` did not parse
/// (bug 7), beyond Kusto's timespan (29,227 years) it cannot, and beyond about 264,000 years
/// `now - max_age` panicked in the decision engine. The configuration now refuses more
/// than 100 years, and the engine treats a window reaching before the first date as holding
/// every incident.
#[test]
fn max_age_is_at_most_100_years_and_a_larger_one_does_not_panic_the_engine() {
    for age in ["101y", "500y", "1000000y"] {
        let err = Config::parse(&format!("[policy]\nmax_age = \"{age}\"\n"), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is out of range"), "{age}: {err}");
    }
    let config = Config::parse("[policy]\nmax_age = \"100y\"\n", "x.toml").unwrap();
    assert_eq!(config.policy.max_age, chrono::TimeDelta::days(36_525));
    let now = "2026-11-27T12:00:00Z".parse().unwrap();
    let tables = emulator::table::WorkspaceTables::default();
    kql::run(
        &sync_query(&config.policy),
        &tables.db,
        &QueryOptions::new(now),
    )
    .expect("the sync query of max_age = 100y runs");

    let t = "2026-11-27T09:00:00Z";
    let snapshot = build_snapshot_combined(
        json!([{"Table": "SecurityIncident", "TimeGenerated": t, "IncidentName": "i-1",
                "IncidentNumber": 1, "Status": "New", "AlertIds": "[\"a\"]",
                "AdditionalData": "{\"alertProductNames\":[\"Azure Security Center\"]}",
                "CreatedTime": t, "LastModifiedTime": t}])
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let policy = Policy {
        max_age: chrono::TimeDelta::MAX,
        ..Policy::default()
    };
    assert!(in_scope(
        &snapshot.incidents[0],
        &snapshot.alerts,
        &policy,
        now
    ));
    let _ = decide(&snapshot, &policy, now);
}
