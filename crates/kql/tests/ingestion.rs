//! Per-row ingestion times: `ingestion_time()` and the `ingested_by` visibility cut-off.
//!
//! `ingestion_time()` follows the docs page "ingestion_time() function" (learn.microsoft.com,
//! kusto/query/ingestion-time-function): a `datetime`, the approximate time the current record
//! was ingested, null when the table has no IngestionTime policy. The "IngestionTime policy"
//! page: each record has its own hidden `$IngestionTime`, null for a record ingested without
//! the policy. Which operators keep the record (and so its time) is this crate's choice,
//! written in `operators.rs`'s module doc.

mod common;
use chrono::{DateTime, Utc};
use common::*;
use kql::{Column, ColumnType, Database, QueryOptions, Table, Value};
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .expect("valid time")
}

/// `T(Name:string, N:long, Tags:dynamic)`, rows a..d ingested at 10:00, 11:00, 12:00, 13:00.
fn timed_db() -> Database {
    let cols = vec![
        Column::new("Name", ColumnType::String),
        Column::new("N", ColumnType::Long),
        Column::new("Tags", ColumnType::Dynamic),
    ];
    let rows = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            vec![
                Value::string(n),
                Value::Long(i as i64),
                Value::dynamic(json!(["x", "y"])),
            ]
        })
        .collect();
    let times = ["10", "11", "12", "13"]
        .iter()
        .map(|h| at(&format!("2026-11-27T{h}:00:00Z")))
        .collect();
    let t = Table::from_rows("T", cols, rows)
        .expect("rows fit")
        .with_ingestion_times(times)
        .expect("one time per row");
    let mut db = Database::new();
    db.insert("T", t);
    db
}

fn run_by(db: &Database, q: &str, by: &str) -> Table {
    let mut opts = QueryOptions::new(now());
    opts.ingested_by = Some(at(by));
    match kql::run(q, db, &opts) {
        Ok(t) => t,
        Err(e) => panic!("query failed: {e}\n{q}"),
    }
}

// The docs' use: filter on the record's ingestion time (a change feed's watermark).
#[test]
fn where_on_ingestion_time_selects_rows_ingested_since_a_watermark() {
    let db = timed_db();
    let t = run_db(
        &db,
        "T | where ingestion_time() > datetime(2026-11-27T11:00:00Z) | project Name",
    );
    assert_eq!(rows(&t), vec![vec![json!("c")], vec![json!("d")]]);
    assert_eq!(
        types(&run_db(&db, "T | extend i = ingestion_time()"))[3],
        "datetime"
    );
}

// The docs' example shape: `extend ingestionTime = ingestion_time() | top 10 by ingestionTime`.
#[test]
fn ingestion_time_is_each_rows_own_through_row_keeping_operators() {
    let db = timed_db();
    let t = run_db(
        &db,
        "T | extend i = ingestion_time() | top 2 by i | project Name, i",
    );
    assert_eq!(
        rows(&t),
        vec![
            vec![json!("d"), json!("2026-11-27T13:00:00Z")],
            vec![json!("c"), json!("2026-11-27T12:00:00Z")],
        ]
    );
    // where, sort, take, project, project-away, mv-expand's copies: still the row's time.
    let t = run_db(
        &db,
        "T | where N >= 1 | sort by N desc | take 2 | project Name, Tags | project-away Tags \
         | extend i = ingestion_time()",
    );
    assert_eq!(
        rows(&t),
        vec![
            vec![json!("d"), json!("2026-11-27T13:00:00Z")],
            vec![json!("c"), json!("2026-11-27T12:00:00Z")],
        ]
    );
    let t = run_db(
        &db,
        "T | where Name == 'b' | mv-expand Tags | project Tags, i = ingestion_time()",
    );
    assert_eq!(
        rows(&t),
        vec![
            vec![json!("x"), json!("2026-11-27T11:00:00Z")],
            vec![json!("y"), json!("2026-11-27T11:00:00Z")],
        ]
    );
    // An aggregate over the rows' times sees each row's; a summarized row has none.
    let t = run_db(&db, "T | summarize m = max(ingestion_time())");
    assert_eq!(rows(&t), vec![vec![json!("2026-11-27T13:00:00Z")]]);
    let t = run_db(
        &db,
        "T | summarize c = count() by Name | where Name == 'a' | extend i = ingestion_time()",
    );
    assert_eq!(rows(&t), vec![vec![json!("a"), json!(1), json!(null)]]);
}

// union keeps each leg's records (and their times); join makes rows of two records (null).
#[test]
fn union_keeps_times_and_join_has_none() {
    let db = timed_db();
    let t = run_db(
        &db,
        "union (T | where N == 0), (datatable(Name:string)['z']) | project Name, i = ingestion_time()",
    );
    assert_eq!(
        rows(&t),
        vec![
            vec![json!("a"), json!("2026-11-27T10:00:00Z")],
            vec![json!("z"), json!(null)],
        ]
    );
    let t = run_db(
        &db,
        "T | where N == 0 | join kind=inner (T) on Name | project Name, i = ingestion_time()",
    );
    assert_eq!(rows(&t), vec![vec![json!("a"), json!(null)]]);
    // A semi join returns the left rows themselves.
    let t = run_db(
        &db,
        "T | join kind=leftsemi (T | where N == 3) on Name | project i = ingestion_time()",
    );
    assert_eq!(rows(&t), vec![vec![json!("2026-11-27T13:00:00Z")]]);
}

// No IngestionTime policy: null values (docs); outside a table (print, datatable): null.
#[test]
fn ingestion_time_is_null_without_times() {
    let mut db = Database::new();
    let t = Table::from_rows(
        "U",
        vec![Column::new("A", ColumnType::Long)],
        vec![vec![Value::Long(1)]],
    )
    .expect("rows fit");
    assert!(!t.has_ingestion_times());
    db.insert("U", t);
    let r = run_db(&db, "U | extend i = ingestion_time() | where isnull(i)");
    assert_eq!(rows(&r), vec![vec![json!(1), json!(null)]]);
    let r = run("print i = ingestion_time()");
    assert_eq!(rows(&r), vec![vec![json!(null)]]);
    let e = run_err("print ingestion_time(1)");
    assert_eq!(e.kind, kql::KqlErrorKind::Semantic);
}

// The cut-off hides later rows from every read of the table, before any operator.
#[test]
fn ingested_by_hides_later_rows_before_every_operator() {
    let db = timed_db();
    let by = "2026-11-27T11:30:00Z";
    assert_eq!(rows(&run_by(&db, "T | count", by)), vec![vec![json!(2)]]);
    assert_eq!(
        rows(&run_by(&db, "T | summarize max(N), count()", by)),
        vec![vec![json!(1), json!(2)]]
    );
    let t = run_by(
        &db,
        "T | join kind=inner (T | project Name) on Name | count",
        by,
    );
    assert_eq!(rows(&t), vec![vec![json!(2)]]);
    let t = run_by(&db, "union T, T | count", by);
    assert_eq!(rows(&t), vec![vec![json!(4)]]);
    // A tabular let and an `in` list read the cut table too.
    let t = run_by(
        &db,
        "let S = T | project Name; T | where Name in (S | project Name) | count",
        by,
    );
    assert_eq!(rows(&t), vec![vec![json!(2)]]);
    // A row ingested exactly at the cut-off is visible.
    let t = run_by(&db, "T | count", "2026-11-27T11:00:00Z");
    assert_eq!(rows(&t), vec![vec![json!(2)]]);
    // Combined with the timespan (on TimeGenerated, absent here: not filtered).
    let mut opts = QueryOptions::new(now());
    opts.ingested_by = Some(at(by));
    opts.timespan = Some((at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z")));
    let t = kql::run("T | count", &db, &opts).expect("runs");
    assert_eq!(rows(&t), vec![vec![json!(2)]]);
}

#[test]
fn ingested_by_combines_with_the_timespan() {
    let mut db = Database::new();
    let mut t = Table::new(
        "L",
        vec![Column::new("TimeGenerated", ColumnType::DateTime)],
    );
    for h in ["10", "11", "12"] {
        let d = at(&format!("2026-11-27T{h}:00:00Z"));
        t.append_ingested(vec![vec![Value::DateTime(d)]], d)
            .expect("row fits");
    }
    db.insert("L", t);
    let mut opts = QueryOptions::new(now());
    opts.ingested_by = Some(at("2026-11-27T11:00:00Z"));
    opts.timespan = Some((at("2026-11-27T10:30:00Z"), at("2026-11-27T13:00:00Z")));
    let t = kql::run("L", &db, &opts).expect("runs");
    assert_eq!(rows(&t), vec![vec![json!("2026-11-27T11:00:00Z")]]);
}

// Appends: a timed append on a table without times leaves the earlier rows null; an untimed
// append on a timed table gives null times; rows without a time are never cut.
#[test]
fn appends_keep_one_time_per_row() {
    let mut db = Database::new();
    db.insert(
        "A",
        Table::from_rows(
            "A",
            vec![Column::new("X", ColumnType::Long)],
            vec![vec![Value::Long(0)]],
        )
        .expect("rows fit"),
    );
    db.append_ingested(
        "A",
        vec![vec![Value::Long(1)], vec![Value::Long(2)]],
        at("2026-11-27T10:00:00Z"),
    )
    .expect("appends");
    db.append("A", vec![vec![Value::Long(3)]]).expect("appends");
    let t = db.get("A").expect("table");
    assert!(t.has_ingestion_times());
    let times: Vec<_> = (0..5).map(|r| t.ingestion_time(r)).collect();
    let ten = Some(at("2026-11-27T10:00:00Z"));
    assert_eq!(times, vec![None, ten, ten, None, None]);
    let r = run_by(
        &db,
        "A | project X, i = ingestion_time()",
        "2026-11-27T09:00:00Z",
    );
    assert_eq!(
        rows(&r),
        vec![vec![json!(0), json!(null)], vec![json!(3), json!(null)]]
    );
    assert!(matches!(
        db.append_ingested("nope", vec![], at("2026-11-27T10:00:00Z")),
        Err(kql::LoadError::NoSuchTable(_))
    ));
    let bad = Table::new("B", vec![]).with_ingestion_times(vec![at("2026-11-27T10:00:00Z")]);
    assert!(matches!(
        bad,
        Err(kql::LoadError::IngestionTimes {
            expected: 0,
            found: 1
        })
    ));
}

// The change feed dfcsync sends, end to end: the names of records ingested since a watermark,
// then every row of those names (newest per name), under the emulator's ingestion cut-off.
#[test]
fn change_feed_query_end_to_end() {
    let mut db = timed_db();
    // A later version of "a", ingested at 12:30.
    db.append_ingested(
        "T",
        vec![vec![
            Value::string("a"),
            Value::Long(10),
            Value::dynamic(json!(["x", "z"])),
        ]],
        at("2026-11-27T12:30:00Z"),
    )
    .expect("appends");
    let q = "let changed = T | where ingestion_time() > datetime(2026-11-27T11:30:00Z) | distinct Name; \
             T | where Name in (changed) \
             | summarize arg_max(N, *) by Name \
             | extend n = array_length(Tags), z = set_has_element(Tags, 'z') \
             | project Name, N, n, z | sort by Name asc";
    let t = run_db(&db, q);
    assert_eq!(
        rows(&t),
        vec![
            vec![json!("a"), json!(10), json!(2), json!(true)],
            vec![json!("c"), json!(2), json!(2), json!(false)],
            vec![json!("d"), json!(3), json!(2), json!(false)],
        ]
    );
    // At 12:15 the emulator's workspace has seen neither "d" nor the new "a".
    let t = run_by(&db, q, "2026-11-27T12:15:00Z");
    assert_eq!(
        rows(&t),
        vec![vec![json!("c"), json!(2), json!(2), json!(false)]]
    );
}
