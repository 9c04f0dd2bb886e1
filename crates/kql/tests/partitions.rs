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

// "row_number() function", "serialize operator": numbering from 1 (or `start`) over a
// serialized row set; `serialize` takes extend-like columns.
#[test]
fn row_number_over_serialized_rows() {
    let t = run("datatable(A:string)['x','y','z'] | serialize rn = row_number() | project A, rn");
    assert_eq!(
        rows(&t),
        vec![
            vec![json!("x"), json!(1)],
            vec![json!("y"), json!(2)],
            vec![json!("z"), json!(3)]
        ]
    );
    // sort / top / range serialize; where, extend, project, take keep it.
    let t = run(
        "datatable(A:long)[3, 1, 2] | sort by A asc | where A > 1 | extend r = row_number(10) | take 5 | project A, r",
    );
    assert_eq!(
        rows(&t),
        vec![vec![json!(2), json!(10)], vec![json!(3), json!(11)]]
    );
    let t = run("datatable(A:long)[3, 1, 2] | top 2 by A | project r = row_number()");
    assert_eq!(rows(&t), vec![vec![json!(1)], vec![json!(2)]]);
    let t = run("range i from 5 to 7 step 1 | where row_number() != 2");
    assert_eq!(rows(&t), vec![vec![json!(5)], vec![json!(7)]]);
    assert_eq!(
        types(&run("range i from 1 to 2 step 1 | extend r = row_number()"))[1],
        "long"
    );
}

// The docs' restart example: numbering restarts where the restart predicate is true.
#[test]
fn row_number_restarts() {
    let t = run(
        "datatable(K:string, V:long)['a',1, 'a',2, 'b',3, 'b',4, 'b',5, 'a',6] \
         | serialize r = row_number(1, prev(K) != K) | project K, r",
    );
    let r: Vec<i64> = rows(&t)
        .iter()
        .map(|x| x[1].as_i64().expect("long"))
        .collect();
    assert_eq!(r, vec![1, 2, 1, 2, 3, 1]);
}

// "prev() function", "next() function": offset (default 1) and default value (default null).
#[test]
fn prev_and_next() {
    let t = run("range i from 1 to 4 step 1 \
         | extend p = prev(i), p2 = prev(i, 2, -1), n = next(i), d = next(i) - i, s = prev(strcat('x', i))");
    assert_eq!(
        rows(&t),
        vec![
            vec![
                json!(1),
                json!(null),
                json!(-1),
                json!(2),
                json!(1),
                json!("")
            ],
            vec![
                json!(2),
                json!(1),
                json!(-1),
                json!(3),
                json!(1),
                json!("x1")
            ],
            vec![
                json!(3),
                json!(2),
                json!(1),
                json!(4),
                json!(1),
                json!("x2")
            ],
            vec![
                json!(4),
                json!(3),
                json!(2),
                json!(null),
                json!(null),
                json!("x3")
            ],
        ]
    );
    let e = run_err("range i from 1 to 4 step 1 | extend p = prev(i, -1)");
    assert!(e.message.contains("negative"), "{}", e.message);
    let e = run_err("range i from 1 to 4 step 1 | extend p = prev(i, 1, 'x')");
    assert!(e.message.contains("default"), "{}", e.message);
}

// Window functions on a row set that is not serialized are refused ("window functions"
// page), as are they after operators that drop serialization (summarize, join, mv-expand…).
#[test]
fn window_functions_need_a_serialized_row_set() {
    for q in [
        "datatable(A:long)[1, 2] | extend r = row_number()",
        "datatable(A:long)[1, 2] | where prev(A) > 1",
        "datatable(A:long)[1, 2] | project next(A)",
        "range i from 1 to 3 step 1 | summarize c = count() by i | extend r = row_number()",
        "range i from 1 to 3 step 1 | distinct i | extend r = row_number()",
        "range i from 1 to 3 step 1 | join (range i from 1 to 3 step 1) on i | extend r = row_number()",
        "range i from 1 to 3 step 1 | extend d = dynamic([1,2]) | mv-expand d | extend r = row_number()",
        "print r = row_number()",
        "range i from 1 to 3 step 1 | summarize max(row_number())",
    ] {
        let e = run_err(q);
        assert_eq!(e.kind, kql::KqlErrorKind::Semantic, "{q}");
        assert!(
            e.message.contains("serialized") || e.message.contains("aggregate"),
            "{q}: {}",
            e.message
        );
    }
    // Serializing again makes them valid.
    let t = run(
        "range i from 1 to 3 step 1 | summarize c = count() by i | serialize | extend r = row_number() | count",
    );
    assert_eq!(rows(&t), vec![vec![json!(3)]]);
}

/// A dynamic cell (JSON text on the wire) as JSON.
fn bag(cell: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(cell.as_str().expect("a dynamic cell is JSON text")).expect("JSON")
}

// "bag_pack() function" (deprecated aliases pack, pack_dictionary): the page's examples 1 and 2.
#[test]
fn bag_pack_builds_property_bags() {
    let t = run(
        r#"print bag_pack("Level", "Information", "ProcessID", 1234, "Data", bag_pack("url", "www.bing.com"))"#,
    );
    // Compared as JSON: this engine's bags keep their keys sorted (serde_json's map).
    assert_eq!(
        bag(&rows(&t)[0][0]),
        json!({"Level": "Information", "ProcessID": 1234, "Data": {"url": "www.bing.com"}})
    );
    assert_eq!(types(&t), ["dynamic"]);
    let t = run(
        r#"datatable(Source:int, Destination:int, Message:string)[1234, 100, "AA", 4567, 200, "BB"]
        | extend MyBag = pack("Dest", Destination, "Mesg", Message)
        | project-away Source, Destination, Message
        | extend MyBag_Dest = MyBag.Dest, MyBag_Mesg = MyBag.Mesg"#,
    );
    let r = rows(&t);
    assert_eq!(bag(&r[0][0]), json!({"Dest": 100, "Mesg": "AA"}));
    assert_eq!(bag(&r[1][0]), json!({"Dest": 200, "Mesg": "BB"}));
    // Dynamic cells travel as JSON text.
    assert_eq!(r[0][1..], [json!("100"), json!("AA")]);
    assert_eq!(r[1][1..], [json!("200"), json!("BB")]);
    let t = run(r#"print tolong(pack_dictionary("a", 1)["a"])"#);
    assert_eq!(rows(&t), vec![vec![json!(1)]]);
    let e = run_err(r#"print bag_pack("a")"#);
    assert!(e.message.contains("pairs"), "{}", e.message);
    let e = run_err(r#"print bag_pack(1, "a")"#);
    assert!(e.message.contains("keys"), "{}", e.message);
}

// "in operator": the list may be a tabular expression, here a `let`'s name; its first column.
#[test]
fn in_a_tabular_let_by_name() {
    let t = run(
        "let changed = datatable(Name:string, N:long)['b',2, 'c',3]; \
         datatable(Name:string)['a','b','c','d'] | where Name in (changed)",
    );
    assert_eq!(rows(&t), vec![vec![json!("b")], vec![json!("c")]]);
    let t = run("let changed = datatable(Name:string)['b','c']; \
         datatable(Name:string)['a','b','c','d'] | where Name !in (changed)");
    assert_eq!(rows(&t), vec![vec![json!("a")], vec![json!("d")]]);
    // Many integer ids (the hash-set path) and few (the list path) agree.
    let t = run(
        "let ids = range i from 10 to 40 step 3; range n from 1 to 50 step 1 | where n in (ids) | count",
    );
    assert_eq!(rows(&t), vec![vec![json!(11)]]);
    let t = run(
        "let ids = range i from 10 to 40 step 3; range n from 1 to 50 step 1 | where n !in (ids) | count",
    );
    assert_eq!(rows(&t), vec![vec![json!(39)]]);
    let t = run(
        "let ids = range i from 10 to 13 step 3; range n from 1 to 50 step 1 | where n in (ids) | count",
    );
    assert_eq!(rows(&t), vec![vec![json!(2)]]);
    // A column or scalar of that name is still a scalar.
    let t = run("let x = 2; datatable(n:long)[1, 2] | where n in (x)");
    assert_eq!(rows(&t), vec![vec![json!(2)]]);
    let e = run_err("datatable(n:long)[1] | where n in (nothing_named_so)");
    assert!(e.message.contains("nothing_named_so"), "{}", e.message);
}

// kql-semantics.md §2.15: materialize() gives the plain expression's result; with a `let`.
#[test]
fn materialize_in_a_let() {
    let t = run(
        "let m = materialize(datatable(A:long)[1, 2, 3] | where A > 1); \
         m | join kind=inner (m | project A, B = A * 10) on A | project A, B",
    );
    assert_eq!(
        rows_sorted(&t),
        vec![vec![json!(2), json!(20)], vec![json!(3), json!(30)]]
    );
}
