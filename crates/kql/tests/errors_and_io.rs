//! Errors (positions, kinds, the Log Analytics error body) and data loading (LA responses,
//! JSON objects, bad input named by row and column) [azure-apis.md §2.3–2.5, kql-semantics.md
//! §4].

mod common;
use common::*;
use kql::{ColumnType, KqlErrorKind, LoadError, Table, Value};
use serde_json::json;

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = run_err("print x = 1\n| where x ==");
    assert_eq!(e.kind, KqlErrorKind::Syntax);
    assert_eq!((e.line, e.column), (2, 13), "at the end of the text");
    let e = run_err("print (1");
    assert_eq!(e.kind, KqlErrorKind::Syntax);
}

#[test]
fn semantic_errors_name_what_is_missing() {
    let e = run_err("NoSuchTable | count");
    assert_eq!(e.kind, KqlErrorKind::Semantic);
    assert!(e.message.contains("NoSuchTable"));
    assert_eq!((e.line, e.column), (1, 1));
    let e = run_err("print x = 1 | where y == 2");
    assert!(e.message.contains("'y'"));
    assert_eq!((e.line, e.column), (1, 21));
    let e = run_err("print x = 1 | extend tostrin(x)");
    assert!(e.message.contains("tostrin"));
    for q in [
        "print ago(typeof(int))",
        "print iff(true, typeof(int), 1)",
        "print extract(typeof(int), 1, 'a')",
    ] {
        assert_eq!(run_err(q).kind, KqlErrorKind::Semantic, "{q}");
    }
    let e = run_err("print x = count()");
    assert!(e.message.contains("summarize"));
}

// The issue: anything outside the scope is a clear error naming the construct and position.
#[test]
fn unsupported_constructs_are_named() {
    for (q, what) in [
        ("print x = 1 | evaluate bag_unpack(x)", "evaluate"),
        ("print x = 1 | parse x with * 'a' y", "parse"),
        ("print x = 1 | extend y = split('a,b', ',')", "split"),
        ("print x = 1 | summarize stdev(x)", "stdev"),
        (
            "let f = (a:long) { a + 1 }; print f(1)",
            "user-defined functions",
        ),
        (
            "print x = 1 | make-series count() on x step 1",
            "make-series",
        ),
        ("print x = decimal(1.5)", "decimal"),
        ("print x = 1; print y = 2", "batch"),
    ] {
        let e = run_err(q);
        assert_eq!(e.kind, KqlErrorKind::Unsupported, "{q}: {e}");
        assert!(e.message.contains(what), "{q}: {}", e.message);
    }
}

#[test]
fn log_analytics_error_body() {
    let e = run_err("print x = ");
    let v = e.to_log_analytics_error();
    assert_eq!(v["error"]["code"], json!("BadArgumentError"));
    assert_eq!(v["error"]["innererror"]["code"], json!("SyntaxError"));
    assert!(v["error"]["message"].is_string());
    let e = run_err("print x = y");
    assert_eq!(
        e.to_log_analytics_error()["error"]["innererror"]["code"],
        json!("SemanticError")
    );
    let e = run_err("print 1 | evaluate x()");
    assert_eq!(
        e.to_log_analytics_error()["error"]["innererror"]["code"],
        json!("SemanticError")
    );
}

#[test]
fn loads_the_recorded_msticpy_response() {
    let text = include_str!("data/msticpy_az_mon_raw_query_SecurityAlert.json");
    let v: serde_json::Value = serde_json::from_str(text).expect("json");
    let t = Table::from_log_analytics_json(&v).expect("loads");
    assert_eq!(t.columns.len(), 34);
    assert_eq!(t.rows.len(), 3);
    let c = t.column_index("ConfidenceScore").expect("column");
    assert_eq!(t.columns[c].ty, ColumnType::Real);
    assert_eq!(t.rows[0][c], Value::Null);
    // The streaming reader gives the same table.
    let streamed = Table::from_log_analytics_reader(text.as_bytes()).expect("streams");
    assert_eq!(streamed, t);
    // Round trip: the wire form we write reads back to the same table.
    let back = Table::from_log_analytics_json(&kql::response_json(std::slice::from_ref(&t)))
        .expect("loads");
    assert_eq!(back.rows, t.rows);
    // And a query over it works.
    let mut db = kql::Database::new();
    db.insert("SecurityAlert", t);
    let r = run_db(&db, "SecurityAlert | summarize count() by Status");
    assert_eq!(rows(&r), vec![vec![json!("New"), json!(3)]]);
}

#[test]
fn dynamic_cells_as_text_or_inline() {
    let v = json!({"tables":[{"name":"PrimaryResult","columns":[{"name":"d","type":"dynamic"}],"rows":[["[\"a\",\"b\"]"],[["c"]],["not json"],[null]]}]});
    let t = Table::from_log_analytics_json(&v).expect("loads");
    assert_eq!(t.rows[0][0], Value::dynamic(json!(["a", "b"])));
    assert_eq!(t.rows[1][0], Value::dynamic(json!(["c"])));
    assert_eq!(t.rows[2][0], Value::dynamic(json!("not json")));
    assert_eq!(t.rows[3][0], Value::Null);
}

#[test]
fn bad_cells_are_named_by_row_and_column() {
    let v = json!({"columns":[{"name":"a","type":"long"},{"name":"t","type":"datetime"}],"rows":[[1,"2020-01-01T00:00:00Z"],[2,"yesterday"]]});
    match Table::from_log_analytics_json(&v) {
        Err(LoadError::Cell { row, column, .. }) => assert_eq!((row, column.as_str()), (1, "t")),
        other => panic!("expected a cell error, got {other:?}"),
    }
    match Table::from_log_analytics_reader(v.to_string().as_bytes()) {
        Err(LoadError::Cell { row, column, .. }) => assert_eq!((row, column.as_str()), (1, "t")),
        other => panic!("expected a cell error, got {other:?}"),
    }
    let v = json!({"columns":[{"name":"a","type":"long"}],"rows":[[1, 2]]});
    assert!(matches!(
        Table::from_log_analytics_reader(v.to_string().as_bytes()),
        Err(LoadError::RowWidth { row: 0, .. })
    ));
    assert!(Table::from_log_analytics_reader(&b"{\"tables\": 5}"[..]).is_err());
    assert!(Table::from_log_analytics_reader(&b"{\"tables\": [{\"columns\": []}]} x"[..]).is_err());
    assert!(matches!(
        Table::from_log_analytics_json(&v),
        Err(LoadError::RowWidth { row: 0, .. })
    ));
    let v = json!({"columns":[{"name":"a","type":"wat"}],"rows":[]});
    assert!(matches!(
        Table::from_log_analytics_json(&v),
        Err(LoadError::Column { index: 0, .. })
    ));
    assert!(Table::from_log_analytics_json(&json!(5)).is_err());
    assert!(matches!(
        Table::from_json_objects(&json!([{"a":1}, 2])),
        Err(LoadError::Cell { row: 1, .. })
    ));
}

#[test]
fn json_objects_infer_types() {
    // Keys in order of first appearance need the text (serde_json's map sorts keys).
    let text = r#"[
        {"n": 1, "r": 1.5, "b": true, "s": "x", "t": "2020-01-01T00:00:00Z", "d": {"k": 1}, "m": 1},
        {"n": 2, "r": 2, "b": false, "s": "y", "t": "2020-01-02T00:00:00.5Z", "d": [1], "m": "one", "extra": null}
    ]"#;
    let v: serde_json::Value = serde_json::from_str(text).expect("json");
    let t = Table::from_json_objects_str(text).expect("loads");
    let tys: Vec<(&str, &str)> = t
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty.as_str()))
        .collect();
    assert_eq!(
        tys,
        [
            ("n", "long"),
            ("r", "real"),
            ("b", "bool"),
            ("s", "string"),
            ("t", "datetime"),
            ("d", "dynamic"),
            ("m", "dynamic"),
            ("extra", "dynamic")
        ]
    );
    assert_eq!(t.rows[1][1], Value::Real(2.0));
    let t2 = Table::from_json_objects(&v).expect("loads");
    assert_eq!(t2.columns.len(), 8);
    assert_eq!(t.rows[0][7], Value::Null);
}

#[test]
fn database_append() {
    let mut db = kql::Database::new();
    db.insert(
        "T",
        Table::new("T", vec![kql::Column::new("a", ColumnType::Long)]),
    );
    db.append("T", vec![vec![Value::Long(1)], vec![Value::Long(2)]])
        .expect("append");
    assert!(db.append("T", vec![vec![]]).is_err());
    assert!(db.append("U", vec![]).is_err());
    assert_eq!(rows(&run_db(&db, "T | count")), vec![vec![json!(2)]]);
}

// The emulator shares one Database between request threads.
#[test]
fn types_are_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<kql::Database>();
    shareable::<kql::Table>();
    shareable::<kql::KqlError>();
    shareable::<kql::QueryOptions>();
}
