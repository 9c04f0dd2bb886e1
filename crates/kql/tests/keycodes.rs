//! Grouping or joining by a column of a large part of an input table reads the table's key
//! codes (`src/keycodes.rs`) instead of hashing every row's cell, and a `where` or computed
//! column over such a string column alone is evaluated once per code. Each query here is answered
//! twice: by a plain column (the codes) and by the same key computed (`strcat(K, '')` or
//! `K + 0`, which the codes cannot serve, so grouped by hash); the answers must be the same
//! rows in the same order. The table is queried again after an append, so the codes are
//! extended.

use chrono::{TimeDelta, TimeZone, Utc};
use kql::{Column, ColumnType as T, Database, QueryOptions, Table, Value};

mod common;

const ROWS: usize = 60_000;

/// `N` (0..), `Name` (one of 997, the empty string on every 11th row), `M` (a long, null on
/// every 5th row), `At` (a minute apart).
fn rows(from: usize, to: usize) -> Vec<Vec<Value>> {
    let base = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("a valid time");
    (from..to)
        .map(|i| {
            vec![
                Value::Long(i as i64),
                Value::string(if i % 11 == 0 {
                    String::new()
                } else {
                    format!("name-{}", i * 31 % 997)
                }),
                if i % 5 == 0 {
                    Value::Null
                } else {
                    Value::Long((i % 1000) as i64)
                },
                Value::DateTime(base + TimeDelta::minutes(i as i64)),
            ]
        })
        .collect()
}

fn db(n: usize) -> Database {
    let t = Table::from_rows(
        "T",
        vec![
            Column::new("N", T::Long),
            Column::new("Name", T::String),
            Column::new("M", T::Long),
            Column::new("At", T::DateTime),
        ],
        rows(0, n),
    )
    .expect("rows of the columns' width");
    let mut db = Database::new();
    db.insert("T", t);
    db
}

fn run(db: &Database, q: &str) -> Table {
    kql::run(q, db, &QueryOptions::new(common::now())).unwrap_or_else(|e| panic!("{e}\n{q}"))
}

/// (by the codes, by hash) pairs: the same answer with the key as a column and computed.
const PAIRS: &[(&str, &str)] = &[
    (
        "T | summarize n = count(), last = max(At) by Name",
        "T | summarize n = count(), last = max(At) by Name = strcat(Name, '')",
    ),
    (
        "T | summarize n = count() by M",
        "T | summarize n = count() by M = M + 0",
    ),
    (
        "T | where N % 3 != 0 | summarize arg_max(At, N) by Name",
        "T | where N % 3 != 0 | summarize arg_max(At, N) by Name = strcat(Name, '')",
    ),
    (
        "T | where N % 2 == 0 | distinct Name",
        "T | where N % 2 == 0 | distinct Name = strcat(Name, '')",
    ),
    (
        "T | where N < 500 | join kind=inner (T | project Name, N2 = N) on Name | project N, N2",
        "T | where N < 500 | extend K = strcat(Name, '') | join kind=inner (T | project K = strcat(Name, ''), N2 = N) on K | project N, N2",
    ),
    // Null keys never match.
    (
        "T | where N < 300 | join kind=inner (T | project M, N2 = N) on M | project N, N2",
        "T | where N < 300 | extend K = M + 0 | join kind=inner (T | project K = M + 0, N2 = N) on K | project N, N2",
    ),
    (
        "T | where N < 300 | join kind=leftouter (T | project M, N2 = N) on M | project N, N2",
        "T | where N < 300 | extend K = M + 0 | join kind=leftouter (T | project K = M + 0, N2 = N) on K | project N, N2",
    ),
    // The padding of an outer join (rows of the right side that are not the table's)
    // groups with the table's own empty names.
    (
        "T | join kind=leftouter (T | where N < 20000 | project N, Name2 = Name) on N | summarize n = count() by Name2",
        "T | join kind=leftouter (T | where N < 20000 | project N, Name2 = Name) on N | summarize n = count() by Name2 = strcat(Name2, '')",
    ),
    (
        "T | join kind=leftouter (T | where N < 20000 | project N, M2 = M) on N | summarize n = count() by M2",
        "T | join kind=leftouter (T | where N < 20000 | project N, M2 = M) on N | summarize n = count() by M2 = M2 + 0",
    ),
    // A padding null where the table's column has none.
    (
        "T | join kind=leftouter (T | where N < 20000 | project N, N2 = N) on N | summarize n = count() by N2 | take 3",
        "T | join kind=leftouter (T | where N < 20000 | project N, N2 = N) on N | summarize n = count() by N2 = N2 + 0 | take 3",
    ),
    (
        "T | join kind=leftouter (T | where N < 20000 | project N, N2 = N) on N | where N >= 19990 | join kind=leftouter (T | where N >= 19995 and N < 20005 | project N2 = N, N3 = N) on N2 | project N, N2, N3",
        "T | join kind=leftouter (T | where N < 20000 | project N, N2 = N) on N | where N >= 19990 | extend N2 = N2 + 0 | join kind=leftouter (T | where N >= 19995 and N < 20005 | project N2 = N + 0, N3 = N) on N2 | project N, N2, N3",
    ),
    // The same padded column as a join key: its nulls never match.
    (
        "T | join kind=leftouter (T | where N < 20000 | project N, M2 = M) on N | join kind=inner (T | where N < 50 | project M2 = M, N3 = N) on M2 | count",
        "T | join kind=leftouter (T | where N < 20000 | project N, M2 = M) on N | extend M2 = M2 + 0 | join kind=inner (T | where N < 50 | project M2 = M + 0, N3 = N) on M2 | count",
    ),
    // A `where` or a computed column over one such string column is evaluated once per code
    // (over the number column `M`, per row); the `extend` makes the column a computed one,
    // evaluated per row.
    (
        "T | where Name in~ ('NAME-1', 'name-32', '') | project N",
        "T | extend Name = strcat(Name, '') | where Name in~ ('NAME-1', 'name-32', '') | project N",
    ),
    (
        "T | where M > 500 or isnull(M) | project N",
        "T | extend M = M + 0 | where M > 500 or isnull(M) | project N",
    ),
    (
        "T | project N, U = toupper(Name), E = isempty(Name), L = M * 2",
        "T | extend Name = strcat(Name, ''), M = M + 0 | project N, U = toupper(Name), E = isempty(Name), L = M * 2",
    ),
    (
        "T | join kind=leftouter (T | where N < 20000 | project N, N2 = N) on N | where isnull(N2) | project N, Z = coalesce(N2, -1)",
        "T | join kind=leftouter (T | where N < 20000 | project N, N2 = N) on N | extend N2 = N2 + 0 | where isnull(N2) | project N, Z = coalesce(N2, -1)",
    ),
];

fn check_pairs(db: &Database) {
    for (coded, hashed) in PAIRS {
        let a = run(db, coded);
        let b = run(db, hashed);
        assert!(!a.rows.is_empty(), "{coded}: no rows");
        assert_eq!(a.rows, b.rows, "{coded}\n{hashed}");
    }
}

#[test]
fn grouping_by_key_codes_answers_what_grouping_by_hash_answers() {
    let mut db = db(ROWS);
    check_pairs(&db);
    // The codes are extended with appended rows, new keys and old ones.
    let t = db.get_mut("T").expect("the table");
    t.rows.extend(rows(ROWS, ROWS + 30_000));
    check_pairs(&db);
}

#[test]
fn key_codes_group_case_sensitively_and_count_every_row() {
    let mut db = db(0);
    let t = db.get_mut("T").expect("the table");
    t.rows = (0..40_000)
        .map(|i| {
            vec![
                Value::Long(i),
                Value::string(if i % 2 == 0 { "a" } else { "A" }),
                Value::Null,
                Value::Null,
            ]
        })
        .collect();
    let r = run(&db, "T | summarize n = count() by Name");
    assert_eq!(
        r.rows,
        vec![
            vec![Value::string("a"), Value::Long(20_000)],
            vec![Value::string("A"), Value::Long(20_000)],
        ]
    );
}
