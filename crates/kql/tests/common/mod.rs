//! Helpers shared by the integration tests: run a query with a fixed clock, and read results
//! in their Log Analytics wire form for easy comparison.
#![allow(dead_code)]

pub mod seed_data;

use chrono::{DateTime, Utc};
use kql::{Database, KqlError, QueryOptions, Table};
use serde_json::Value as J;

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .expect("valid time")
}

pub fn run_db(db: &Database, q: &str) -> Table {
    match kql::run(q, db, &QueryOptions::new(now())) {
        Ok(t) => t,
        Err(e) => panic!("query failed: {e}\n{q}"),
    }
}

pub fn run(q: &str) -> Table {
    run_db(&Database::new(), q)
}

pub fn run_err(q: &str) -> KqlError {
    match kql::run(q, &Database::new(), &QueryOptions::new(now())) {
        Ok(t) => panic!("query should fail but returned {:?}\n{q}", t.rows),
        Err(e) => e,
    }
}

/// Column names.
pub fn names(t: &Table) -> Vec<String> {
    t.columns.iter().map(|c| c.name.clone()).collect()
}

/// Column types as LA spells them.
pub fn types(t: &Table) -> Vec<&'static str> {
    t.columns.iter().map(|c| c.ty.as_str()).collect()
}

/// Rows in wire form, in result order.
pub fn rows(t: &Table) -> Vec<Vec<J>> {
    let w = t.to_log_analytics_json();
    w["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_array().expect("row").clone())
        .collect()
}

/// Rows in wire form, sorted (for operators whose output order is unspecified).
pub fn rows_sorted(t: &Table) -> Vec<Vec<J>> {
    let mut r = rows(t);
    r.sort_by_key(|a| serde_json::to_string(a).unwrap_or_default());
    r
}

/// Sorts expected rows the same way.
pub fn sorted(mut r: Vec<Vec<J>>) -> Vec<Vec<J>> {
    r.sort_by_key(|a| serde_json::to_string(a).unwrap_or_default());
    r
}

/// The single value of a one-row, one-column result, in wire form.
pub fn scalar(q: &str) -> J {
    let t = run(q);
    assert_eq!(t.rows.len(), 1, "expected one row: {q}");
    rows(&t)[0][0].clone()
}

/// The values of the first row, in wire form.
pub fn row0(q: &str) -> Vec<J> {
    let t = run(q);
    assert!(!t.rows.is_empty(), "expected a row: {q}");
    rows(&t)[0].clone()
}
