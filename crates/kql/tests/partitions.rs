//! Functions for change feeds and partitioned reads: `hash()`, `toscalar()`, the window
//! functions over a serialized row set, and the dynamic helpers those queries use. Each test
//! cites the docs page (learn.microsoft.com, kusto/query/…) or kql-semantics.md § it follows.

mod common;
use common::*;
use serde_json::json;

// "hash() function": xxhash64; the page's examples, exactly.
#[test]
fn hash_matches_the_documented_examples() {
    let t =
        run(r#"print a = hash("World"), b = hash("World", 100), c = hash(datetime("2015-01-01"))"#);
    assert_eq!(
        rows(&t),
        vec![vec![
            json!(1846988464401551951i64),
            json!(51),
            json!(1380966698541616202i64)
        ]]
    );
    assert_eq!(types(&t), ["long", "long", "long"]);
    // "hash_xxhash64() function": the same function, the same examples.
    let t = run(r#"print hash_xxhash64("World"), hash_xxhash64("World", 100)"#);
    assert_eq!(
        rows(&t),
        vec![vec![json!(1846988464401551951i64), json!(51)]]
    );
}

// With `mod`, the result lies in [0, mod): the partitions of a table are disjoint and cover it.
#[test]
fn hash_mod_partitions_rows_disjointly_and_completely() {
    let q = |k: i64| {
        format!(
            "range i from 1 to 200 step 1 | extend s = strcat('incident-', i) | where hash(s, 8) == {k} | count"
        )
    };
    let mut total = 0;
    for k in 0..8 {
        let n = rows(&run(&q(k)))[0][0].as_i64().expect("count");
        assert!(n > 0, "partition {k} is empty");
        total += n;
    }
    assert_eq!(total, 200);
    let t = run("range i from 1 to 50 step 1 | summarize min(hash(i, 5)), max(hash(i, 5))");
    assert_eq!(rows(&t), vec![vec![json!(0), json!(4)]]);
    // Equal values hash alike, whatever their type or dynamic wrapping.
    let t = run(
        r#"print a = hash(int(7)) == hash(7), b = hash(dynamic("World")) == hash("World"), c = hash(7) == hash(8)"#,
    );
    assert_eq!(rows(&t), vec![vec![json!(true), json!(true), json!(false)]]);
}

// Null in, null out; a mod that is not a positive integer is refused or null.
#[test]
fn hash_of_null_and_bad_mods() {
    let t =
        run("print a = hash(long(null)), b = hash('x', 0), c = isnull(hash(datetime(null), 3))");
    assert_eq!(rows(&t), vec![vec![json!(null), json!(null), json!(true)]]);
    let e = run_err("print hash('x', 'y')");
    assert_eq!(e.kind, kql::KqlErrorKind::Semantic);
    let e = run_err("print hash()");
    assert_eq!(e.kind, kql::KqlErrorKind::Semantic);
}

// "toscalar() function": the first column of the first row of a tabular expression, usable in a
// `let` and inside expressions; an empty result gives null.
#[test]
fn toscalar_yields_the_first_cell() {
    let t = run("let T = datatable(A:long, B:string)[3,'c', 9,'z', 5,'e']; \
         let top = toscalar(T | summarize max(A)); \
         T | where A < top | extend m = toscalar(T | summarize min(A)) | project A, m, top");
    assert_eq!(
        rows(&t),
        vec![
            vec![json!(3), json!(3), json!(9)],
            vec![json!(5), json!(3), json!(9)]
        ]
    );
    // The first column of the first row; the column's type.
    let t = run(
        "let T = datatable(A:long, B:string)[3,'c', 9,'z']; print s = toscalar(T | project B, A)",
    );
    assert_eq!(rows(&t), vec![vec![json!("c")]]);
    assert_eq!(types(&t), ["string"]);
    // No rows: null of the column's type.
    let t = run(
        "let T = datatable(A:long)[1]; print n = toscalar(T | where A > 5), b = isnull(toscalar(T | where A > 5))",
    );
    assert_eq!(rows(&t), vec![vec![json!(null), json!(true)]]);
    assert_eq!(types(&t), ["long", "bool"]);
    // A change-feed watermark: rows newer than the latest of another table.
    let t = run(
        "let Seen = datatable(At:datetime)[datetime(2026-01-02), datetime(2026-01-05)]; \
         datatable(At:datetime, N:long)[datetime(2026-01-04),1, datetime(2026-01-06),2] \
         | where At > toscalar(Seen | summarize max(At)) | project N",
    );
    assert_eq!(rows(&t), vec![vec![json!(2)]]);
}

#[test]
fn toscalar_errors_name_the_problem() {
    let e = run_err("print toscalar(NoSuchTable | count)");
    assert!(e.message.contains("NoSuchTable"), "{}", e.message);
    let e = run_err("print toscalar(1 + 2)");
    assert_eq!(e.kind, kql::KqlErrorKind::Syntax);
}
