//! The evaluator splits the per-row work of large frames over threads (`par.rs`): a query on a
//! table well past the threshold answers the same rows, in the same order, on one thread and
//! on four, and the answers match what is computed here without the engine.

use chrono::{TimeDelta, TimeZone, Utc};
use kql::{Column, ColumnType as T, Database, QueryOptions, Table, Value};

mod common;

const ROWS: usize = 100_000;

/// A table of `ROWS` rows, a deterministic mix: `N` (0..ROWS), `Name` (one of 997 names),
/// `Status` (one of 3), `At` (a minute apart), `Ids` (a dynamic array of 0–2 ids, each row its
/// own), `Owner` (a bag, one of 50 shared values).
fn table() -> Table {
    let base = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("a valid time");
    let statuses = ["New", "Active", "Closed"];
    // 50 owners, each one shared value (as a loaded table's equal dynamic cells are).
    let owners: Vec<Value> = (0..50)
        .map(|k| Value::dynamic(serde_json::json!({"objectId": format!("owner-{k}")})))
        .collect();
    let rows = (0..ROWS)
        .map(|i| {
            let ids: Vec<serde_json::Value> = (0..i % 3)
                .map(|k| serde_json::Value::from(format!("id-{}", (i * 7 + k) % 5_003)))
                .collect();
            vec![
                Value::Long(i as i64),
                Value::string(format!("name-{}", i * 31 % 997)),
                Value::string(statuses[i % 3]),
                Value::DateTime(base + TimeDelta::minutes(i as i64)),
                Value::dynamic(serde_json::Value::Array(ids)),
                owners[i * 7 % 50].clone(),
            ]
        })
        .collect();
    Table::from_rows(
        "T",
        vec![
            Column::new("N", T::Long),
            Column::new("Name", T::String),
            Column::new("Status", T::String),
            Column::new("At", T::DateTime),
            Column::new("Ids", T::Dynamic),
            Column::new("Owner", T::Dynamic),
        ],
        rows,
    )
    .expect("rows of the columns' width")
}

fn run_on(threads: usize, db: &Database, q: &str) -> Table {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    pool.install(|| kql::run(q, db, &QueryOptions::new(common::now())))
        .unwrap_or_else(|e| panic!("{e}\n{q}"))
}

const QUERIES: &[&str] = &[
    "T | where N % 7 == 3 and Status != 'Closed' | extend Up = toupper(Name), Next = At + 1m",
    "T | summarize n = count(), last = max(At) by Name | order by Name asc",
    "T | distinct Name, Status",
    "T | summarize arg_max(At, *) by Name",
    "T | summarize arg_min(N, Name, At) by Status, Bucket = N % 1000",
    "T | mv-expand Id = Ids to typeof(string) | join kind=inner (T | where N % 2 == 0 | project Name, N2 = N) on Name | where N2 < 2000",
    "union (T | where N < 40000), (T | where N >= 60000 | project N, Name) | extend S = strcat(Name, '/', tostring(N))",
    "T | project N, O = bag_pack('id', tostring(Owner.objectId)), First = tostring(Ids[0]), Count = array_length(Ids)",
];

#[test]
fn large_frames_answer_the_same_on_one_thread_and_on_four() {
    let mut db = Database::new();
    db.insert("T", table());
    for q in QUERIES {
        let one = run_on(1, &db, q);
        let four = run_on(4, &db, q);
        assert!(one.rows.len() > 500, "{q}: an answer too small to tell");
        assert_eq!(one, four, "{q}");
    }
}

#[test]
fn a_large_filter_and_computed_column_keep_every_row_in_order() {
    let mut db = Database::new();
    db.insert("T", table());
    let t = run_on(4, &db, QUERIES[0]);
    let expected: Vec<i64> = (0..ROWS as i64)
        .filter(|n| n % 7 == 3 && n % 3 != 2)
        .collect();
    let got: Vec<i64> = t
        .rows
        .iter()
        .map(|r| match r[0] {
            Value::Long(n) => n,
            ref v => panic!("N is not a long: {v:?}"),
        })
        .collect();
    assert_eq!(got, expected);
    for r in &t.rows {
        let (Value::String(name), Value::String(up)) = (&r[1], &r[6]) else {
            panic!("Name and Up are strings: {r:?}");
        };
        assert_eq!(up.as_ref(), name.to_uppercase());
    }
    let union = run_on(4, &db, QUERIES[6]);
    assert_eq!(union.rows.len(), 40_000 + 40_000);
}

#[test]
fn computed_columns_of_one_dynamic_cell_are_each_rows_own() {
    let mut db = Database::new();
    db.insert("T", table());
    let t = run_on(4, &db, QUERIES[7]);
    assert_eq!(t.rows.len(), ROWS);
    for (i, r) in t.rows.iter().enumerate() {
        let owner = serde_json::json!({"id": format!("owner-{}", i * 7 % 50)});
        assert_eq!(r[1].as_json(), Some(&owner), "row {i}");
        let first = if i % 3 == 0 {
            String::new()
        } else {
            format!("id-{}", i * 7 % 5_003)
        };
        assert_eq!(r[2], Value::string(first), "row {i}");
        assert_eq!(r[3], Value::Long((i % 3) as i64), "row {i}");
    }
}

#[test]
fn a_large_arg_max_picks_each_names_last_row() {
    let mut db = Database::new();
    db.insert("T", table());
    let t = run_on(4, &db, QUERIES[3]);
    // `At` grows with `N`: a name's latest row is its last one.
    let mut last = std::collections::HashMap::new();
    for i in 0..ROWS as i64 {
        last.insert(format!("name-{}", i * 31 % 997), i);
    }
    assert_eq!(t.rows.len(), last.len());
    for r in &t.rows {
        let (Value::String(name), Value::Long(n)) = (&r[0], &r[2]) else {
            panic!("Name, At, N, …: {r:?}");
        };
        assert_eq!(Some(n), last.get(name.as_ref()), "{name}");
    }
}
