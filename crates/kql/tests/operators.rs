//! Tabular operators, each test pinning a documented behaviour (kql-semantics.md § cited).

mod common;
use common::*;
use serde_json::json;

const X: &str = r#"let X = datatable(Key:string, Value1:long)["a",1, "b",2, "b",3, "c",4];"#;
const Y: &str = r#"let Y = datatable(Key:string, Value2:long)["b",10, "c",20, "c",30, "d",40];"#;

fn join(kind: &str) -> kql::Table {
    run(&format!("{X}{Y} X | join {kind} Y on Key"))
}

// §2.1: `null != 5` is true, so the null row survives; false/null predicates drop rows.
#[test]
fn where_keeps_rows_where_true_and_null_ne_is_true() {
    let t = run(r#"datatable(ival:int, sval:string)[5,"a", int(null),"b"] | where ival != 5"#);
    assert_eq!(rows(&t), vec![vec![json!(null), json!("b")]]);
    let t = run(r#"datatable(ival:int)[5, int(null)] | where ival > 3"#);
    assert_eq!(rows(&t), vec![vec![json!(5)]]);
}

// §2.2, §2.17: argument order; unnamed expressions → Column1…; a.b → a_b; duplicates error.
#[test]
fn project_orders_and_names_columns() {
    let t = run(
        r#"datatable(a:long, b:long, d:dynamic)[1, 2, dynamic({"x":{"y":3}})] | project b, a, s = a + b, a * 2, d.x.y, tostring(d.x)"#,
    );
    assert_eq!(names(&t), ["b", "a", "s", "Column1", "d_x_y", "d_x"]);
    assert_eq!(
        rows(&t),
        vec![vec![
            json!(2),
            json!(1),
            json!(3),
            json!(2),
            json!("3"),
            json!("{\"y\":3}")
        ]]
    );
    let t = run("datatable(a:long)[1] | project a, tostring(a)");
    assert_eq!(names(&t), ["a", "a1"]);
    let e = run_err("datatable(a:long)[1] | project a, a");
    assert_eq!(e.kind, kql::KqlErrorKind::Semantic);
    let e = run_err("datatable(a:long)[1] | project b");
    assert!(e.message.contains("'b'"), "{}", e.message);
}

// §2.3: project-away with wildcards keeps the rest in order; project-rename renames in place.
#[test]
fn project_away_and_rename() {
    let t = run(
        "datatable(session_id:long, session_x:long, a:long, b:long)[1,2,3,4] | project-away session*, b",
    );
    assert_eq!(names(&t), ["a"]);
    let t =
        run("print a='alpha', b='bravo', c='charlie' | project-rename new_a=a, new_b=b, new_c=c");
    assert_eq!(names(&t), ["new_a", "new_b", "new_c"]);
    assert_eq!(
        rows(&t),
        vec![vec![json!("alpha"), json!("bravo"), json!("charlie")]]
    );
    let t = run("datatable(a:long, b:long, c:long)[1,2,3] | project-keep c, a");
    assert_eq!(names(&t), ["a", "c"]);
    let t = run("datatable(a:long, b:long, c:long)[1,2,3] | project-reorder c");
    assert_eq!(names(&t), ["c", "a", "b"]);
}

// §2.4 (KL binder behaviour): an existing name is replaced in place, with a new type; later
// items see earlier ones.
#[test]
fn extend_replaces_in_place_and_chains() {
    let t =
        run("datatable(a:long, b:long)[1, 2] | extend a = tostring(a * 10), c = b + 1, d = c * 2");
    assert_eq!(names(&t), ["a", "b", "c", "d"]);
    assert_eq!(types(&t), ["string", "long", "long", "long"]);
    assert_eq!(
        rows(&t),
        vec![vec![json!("10"), json!(2), json!(3), json!(6)]]
    );
    let t = run("print x = 1 | extend x + 1, x * 3");
    assert_eq!(names(&t), ["x", "Column1", "Column2"]);
    // A derived name (§2.17: tostring(x) → x) does not overwrite x; it gets a suffix.
    let t = run("print x = 1 | extend tostring(x)");
    assert_eq!(names(&t), ["x", "x1"]);
    assert_eq!(types(&t), ["long", "string"]);
}

// §2.5: by-columns first; empty input without `by` → one row of defaults; with `by` → none.
#[test]
fn summarize_empty_input_defaults() {
    let t = run(
        "datatable(x:long, k:string)[] | summarize count(), sum(x), make_set(x), make_list(x), avg(x), max(x), dcount(x), countif(x > 1)",
    );
    assert_eq!(
        names(&t),
        [
            "count_", "sum_x", "set_x", "list_x", "avg_x", "max_x", "dcount_x", "countif_"
        ]
    );
    assert_eq!(
        rows(&t),
        vec![vec![
            json!(0),
            json!(0),
            json!("[]"),
            json!("[]"),
            json!("NaN"),
            json!(null),
            json!(0),
            json!(0)
        ]]
    );
    let t = run("datatable(x:long, k:string)[] | summarize count() by k");
    assert!(t.rows.is_empty());
}

// §2.5 worked examples: nulls skipped by sum/avg, counted by count(y); duplicate names get a
// suffix.
#[test]
fn summarize_null_handling_examples() {
    let t = run(
        "range x from 1 to 4 step 1 | extend y = iff(x == 1, real(null), real(5)) | summarize sum(y), avg(y)",
    );
    assert_eq!(rows(&t), vec![vec![json!(15), json!(5)]]);
    assert_eq!(types(&t), ["real", "real"]);
    let t = run(
        "range x from 1 to 2 step 1 | extend y = iff(x == 1, real(null), real(5)) | summarize count(y)",
    );
    assert_eq!(names(&t), ["count_y"]);
    assert_eq!(rows(&t), vec![vec![json!(2)]]);
    let t = run(
        "range x from 1 to 2 step 1 | extend y = iff(x == 1, real(null), real(5)) | summarize make_set(y), make_set(y)",
    );
    assert_eq!(names(&t), ["set_y", "set_y1"]);
    // The doc shows `[5.0]`: a real inside a dynamic keeps its fraction.
    assert_eq!(rows(&t), vec![vec![json!("[5.0]"), json!("[5.0]")]]);
}

// §2.5: summarize with only `by` is distinct; bin() keys are named after their column.
#[test]
fn summarize_by_only_and_bin_naming() {
    let t = run(r#"datatable(a:string, b:long)["x",1, "x",1, "y",2] | summarize by a, b"#);
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![vec![json!("x"), json!(1)], vec![json!("y"), json!(2)]])
    );
    let t = run(
        "datatable(StartTime:datetime, n:long)[datetime(2020-01-01 10:00), 1, datetime(2020-01-01 20:00), 2, datetime(2020-01-02 01:00), 3] | summarize sum(n) by bin(StartTime, 1d)",
    );
    assert_eq!(names(&t), ["StartTime", "sum_n"]);
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![
            vec![json!("2020-01-01T00:00:00Z"), json!(3)],
            vec![json!("2020-01-02T00:00:00Z"), json!(3)]
        ])
    );
    // null keys form one group (UNCONFIRMED in §2.16; treated as its own group).
    let t = run("datatable(k:long)[1, long(null), long(null)] | summarize c = count() by k");
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![vec![json!(1), json!(1)], vec![json!(null), json!(2)]])
    );
}

const FRUIT: &str = r#"datatable(Fruit:string, Color:string, Version:long)["Apple","Red",1, "Apple","Green",long(null), "Banana","Yellow",long(null), "Banana","Green",long(null), "Pear","Brown",1, "Pear","Green",2]"#;

// §2.7 worked example: null keys ignored, an all-null group still returns a row; columns
// `Fruit | Version | Color`.
#[test]
fn arg_max_and_arg_min_null_handling() {
    let t = run(&format!("{FRUIT} | summarize arg_max(Version, *) by Fruit"));
    assert_eq!(names(&t), ["Fruit", "Version", "Color"]);
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![
            vec![json!("Apple"), json!(1), json!("Red")],
            vec![json!("Banana"), json!(null), json!("Yellow")],
            vec![json!("Pear"), json!(2), json!("Green")],
        ])
    );
    let t = run(&format!("{FRUIT} | summarize arg_min(Version, *) by Fruit"));
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![
            vec![json!("Apple"), json!(1), json!("Red")],
            vec![json!("Banana"), json!(null), json!("Yellow")],
            vec![json!("Pear"), json!(1), json!("Brown")],
        ])
    );
}

// §2.7: explicit columns, and naming of unnamed expressions.
#[test]
fn arg_max_output_columns() {
    let t = run(&format!(
        "{FRUIT} | summarize arg_max(Version, Color) by Fruit"
    ));
    assert_eq!(names(&t), ["Fruit", "Version", "Color"]);
    let t = run(&format!(
        "{FRUIT} | summarize arg_max(Version * 2, strcat(Color, '!')) by Fruit"
    ));
    assert_eq!(names(&t), ["Fruit", "max_", "max_max__arg1"]);
    let t = run(&format!(
        "{FRUIT} | where Fruit == 'Pear' | summarize arg_max(Version, *)"
    ));
    assert_eq!(names(&t), ["Version", "Fruit", "Color"]);
    assert_eq!(
        rows(&t),
        vec![vec![json!(2), json!("Pear"), json!("Green")]]
    );
}

// §2.8: make_set flattens arrays and dedups; make_list keeps duplicates, not arrays flattened.
#[test]
fn make_set_and_make_list() {
    let t = run(
        r#"datatable(Arr1:dynamic)[dynamic(['A1','A2','A3']), dynamic(['A2','C1']), dynamic(['C2','A3']), dynamic(['C2','A1'])] | summarize s = make_set(Arr1) | extend n = array_length(s)"#,
    );
    let set: serde_json::Value =
        serde_json::from_str(rows(&t)[0][0].as_str().expect("text")).expect("json");
    let mut v: Vec<String> = set
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    assert_eq!(v, ["A1", "A2", "A3", "C1", "C2"]);
    let t = run("datatable(Val:long)[1,5,7,5] | summarize make_set(Val), make_list(Val)");
    assert_eq!(rows(&t), vec![vec![json!("[1,5,7]"), json!("[1,5,7,5]")]]);
    let t = run("datatable(Val:long)[1,5,7,5] | summarize make_list(Val, 2)");
    assert_eq!(rows(&t), vec![vec![json!("[1,5]")]]);
}

// percentile()/percentiles(): the nearest-rank value (the smallest with at least p% of the
// values at or below it), of the input's type, named percentile_<expr>_<p>; nulls ignored.
#[test]
fn percentiles_are_nearest_rank() {
    let t = run(
        r#"datatable(k:string, x:long, d:timespan)["a",1,1s, "a",2,2s, "a",3,3s, "a",4,4s, "a",long(null),timespan(null), "b",10,10s]
        | summarize percentiles(x, 0, 50, 90, 99.5), percentile(d, 50) by k"#,
    );
    assert_eq!(
        names(&t),
        [
            "k",
            "percentile_x_0",
            "percentile_x_50",
            "percentile_x_90",
            "percentile_x_99_5",
            "percentile_d_50"
        ]
    );
    assert_eq!(
        types(&t),
        ["string", "long", "long", "long", "long", "timespan"]
    );
    let r = rows_sorted(&t);
    assert_eq!(
        r[0],
        [
            json!("a"),
            json!(1),
            json!(2),
            json!(4),
            json!(4),
            json!("00:00:02")
        ]
    );
    assert_eq!(
        r[1],
        [
            json!("b"),
            json!(10),
            json!(10),
            json!(10),
            json!(10),
            json!("00:00:10")
        ]
    );
    let t = run("datatable(x:real)[] | summarize p = percentile(x, 50)");
    assert_eq!(names(&t), ["p"]);
    assert_eq!(rows_sorted(&t), [[json!(null)]]);
}

// §2.6: count/countif/dcount/sum/min/max/avg types and names.
#[test]
fn aggregate_types_and_names() {
    let t = run(
        r#"datatable(k:string, i:int, r:real, t:timespan, s:string)["a", 1, 1.5, 1h, "x", "a", 3, 2.5, 3h, "y", "b", int(null), real(null), timespan(null), ""]
        | summarize count(), countif(i > 1), dcount(s), sum(i), sum(r), sum(t), min(i), max(s), avg(i), avg(t), take_any(s) by k"#,
    );
    assert_eq!(
        names(&t),
        [
            "k", "count_", "countif_", "dcount_s", "sum_i", "sum_r", "sum_t", "min_i", "max_s",
            "avg_i", "avg_t", "s"
        ]
    );
    assert_eq!(
        types(&t),
        [
            "string", "long", "long", "long", "long", "real", "timespan", "int", "string", "real",
            "timespan", "string"
        ]
    );
    let r = rows_sorted(&t);
    assert_eq!(
        r[0][..11],
        [
            json!("a"),
            json!(2),
            json!(1),
            json!(2),
            json!(4),
            json!(4),
            json!("04:00:00"),
            json!(1),
            json!("y"),
            json!(2),
            json!("02:00:00")
        ]
    );
    assert!(r[0][11] == json!("x") || r[0][11] == json!("y"));
    assert_eq!(r[1][1], json!(1));
    assert_eq!(
        r[1][3],
        json!(1),
        "dcount counts the empty string, which is not null"
    );
    assert_eq!(r[1][9], json!("NaN"), "avg of no values is NaN");
}

// §2.9: take_any(*) returns all non-key columns of one row.
#[test]
fn take_any_star() {
    let t = run(
        r#"datatable(k:string, a:long, b:string)["x", 1, "p", "x", 2, "q"] | summarize take_any(*) by k"#,
    );
    assert_eq!(names(&t), ["k", "a", "b"]);
    let r = &rows(&t)[0];
    assert!(
        r == &vec![json!("x"), json!(1), json!("p")]
            || r == &vec![json!("x"), json!(2), json!("q")]
    );
}

// §2.10: null → one row with null; [] → no row; element order kept; other columns copied.
#[test]
fn mv_expand_basics() {
    let t = run(
        r#"datatable(id:long, a:dynamic)[1, dynamic([10, 20]), 2, dynamic([]), 3, dynamic(null), 4, dynamic(5)] | mv-expand a"#,
    );
    assert_eq!(types(&t), ["long", "dynamic"]);
    assert_eq!(
        rows(&t),
        vec![
            vec![json!(1), json!("10")],
            vec![json!(1), json!("20")],
            vec![json!(3), json!(null)],
            vec![json!(4), json!("5")],
        ]
    );
}

// §2.10: parallel expansion pads with null; bag entries become one-entry bags (kind=bag) or
// [key, value] arrays (kind=array).
#[test]
fn mv_expand_zipped_and_kinds() {
    let t = run(
        r#"print b = dynamic({"prop1":"a","prop2":"b"}), c = dynamic([5,4,3]) | mv-expand b, c"#,
    );
    assert_eq!(
        rows(&t),
        vec![
            vec![json!("{\"prop1\":\"a\"}"), json!("5")],
            vec![json!("{\"prop2\":\"b\"}"), json!("4")],
            vec![json!(null), json!("3")],
        ]
    );
    let t = run(r#"print b = dynamic({"prop1":"a"}) | mv-expand kind=array b"#);
    assert_eq!(rows(&t), vec![vec![json!("[\"prop1\",\"a\"]")]]);
}

// §2.10: `to typeof(T)` does not convert (other types → null); Name = expr; with_itemindex;
// limit.
#[test]
fn mv_expand_typed_named_indexed() {
    let t = run(r#"print a = dynamic([1, "2", 3]) | mv-expand x = a to typeof(long)"#);
    assert_eq!(names(&t), ["a", "x"]);
    assert_eq!(types(&t), ["dynamic", "long"]);
    let xs: Vec<_> = rows(&t).into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(xs, [json!(1), json!(null), json!(3)]);
    let t = run(
        r#"print a = dynamic(["x", "y", "z"]) | mv-expand with_itemindex=Idx a to typeof(string) limit 2"#,
    );
    assert_eq!(names(&t), ["a", "Idx"]);
    assert_eq!(
        rows(&t),
        vec![vec![json!("x"), json!(0)], vec![json!("y"), json!(1)]]
    );
}

// §2.11 worked examples (X, Y) for each kind; default is innerunique.
#[test]
fn join_kinds_documented_examples() {
    let t = run(&format!("{X}{Y} X | join Y on Key"));
    assert_eq!(names(&t), ["Key", "Value1", "Key1", "Value2"]);
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![
            vec![json!("b"), json!(2), json!("b"), json!(10)],
            vec![json!("c"), json!(4), json!("c"), json!(20)],
            vec![json!("c"), json!(4), json!("c"), json!(30)],
        ])
    );
    let t = join("kind=inner");
    assert_eq!(rows(&t).len(), 4, "inner keeps both b rows of X");
    let t = join("kind=leftouter");
    assert!(rows(&t).contains(&vec![json!("a"), json!(1), json!(""), json!(null)]));
    assert_eq!(rows(&t).len(), 5);
    let t = join("kind=rightouter");
    assert!(rows(&t).contains(&vec![json!(""), json!(null), json!("d"), json!(40)]));
    assert_eq!(rows(&t).len(), 5);
    assert_eq!(rows(&join("kind=fullouter")).len(), 6);
    let t = join("kind=leftsemi");
    assert_eq!(names(&t), ["Key", "Value1"]);
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![
            vec![json!("b"), json!(2)],
            vec![json!("b"), json!(3)],
            vec![json!("c"), json!(4)]
        ])
    );
    assert_eq!(
        rows(&join("kind=leftanti")),
        vec![vec![json!("a"), json!(1)]]
    );
    let t = join("kind=rightsemi");
    assert_eq!(names(&t), ["Key", "Value2"]);
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![
            vec![json!("b"), json!(10)],
            vec![json!("c"), json!(20)],
            vec![json!("c"), json!(30)]
        ])
    );
    assert_eq!(
        rows(&join("kind=rightanti")),
        vec![vec![json!("d"), json!(40)]]
    );
}

// §2.11: $left/$right keys keep both columns; null keys never match; dynamic keys refused.
#[test]
fn join_on_left_right_and_nulls() {
    let t = run(
        r#"let L = datatable(a:long, v:string)[1,"x", long(null),"n"]; let R = datatable(b:long, v:string)[1,"y", long(null),"m"];
        L | join kind=leftouter R on $left.a == $right.b"#,
    );
    assert_eq!(names(&t), ["a", "v", "b", "v1"]);
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![
            vec![json!(1), json!("x"), json!(1), json!("y")],
            vec![json!(null), json!("n"), json!(null), json!("")]
        ])
    );
    let e = run_err(r#"let L = datatable(a:dynamic)[1]; L | join (L) on a"#);
    assert!(e.message.contains("dynamic"));
    let e = run_err(
        r#"let L = datatable(a:long)[1]; let R = datatable(a:string)["1"]; L | join R on a"#,
    );
    assert_eq!(e.kind, kql::KqlErrorKind::Semantic);
}

// §2.12: outer union by default with nulls; a name with two types → name_<type>; withsource.
#[test]
fn union_outer_inner_and_types() {
    let t = run(
        "let A = datatable(x:long, a:string)[1, 'p']; let B = datatable(x:long, b:string)[2, 'q']; A | union B",
    );
    assert_eq!(names(&t), ["x", "a", "b"]);
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![
            vec![json!(1), json!("p"), json!("")],
            vec![json!(2), json!(""), json!("q")]
        ])
    );
    let t = run(
        "let A = datatable(x:long, a:string)[1, 'p']; let B = datatable(x:long, b:string)[2, 'q']; union kind=inner A, B",
    );
    assert_eq!(names(&t), ["x"]);
    let t = run(
        "let View_1 = print x = 1; let View_2 = print x = int(2); union withsource=TableName View_1, View_2",
    );
    assert_eq!(names(&t), ["TableName", "x_long", "x_int"]);
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![
            vec![json!("View_1"), json!(1), json!(null)],
            vec![json!("View_2"), json!(null), json!(2)]
        ])
    );
}

// §2.13: default desc; nulls/NaN at the nulls end: asc → null, NaN, -inf, …; desc → …, NaN, null.
#[test]
fn sort_directions_and_nulls() {
    let data = "datatable(x:real)[5, real(null), real(nan), 0, real(-inf), -5, real(+inf)]";
    let col = |t: &kql::Table| {
        rows(t)
            .into_iter()
            .map(|r| r[0].clone())
            .collect::<Vec<_>>()
    };
    let asc = run(&format!("{data} | sort by x asc"));
    assert_eq!(
        col(&asc),
        [
            json!(null),
            json!("NaN"),
            json!("-Infinity"),
            json!(-5),
            json!(0),
            json!(5),
            json!("Infinity")
        ]
    );
    let desc = run(&format!("{data} | order by x"));
    // (the doc's desc list omits -inf; it sorts below -5 as numbers do)
    assert_eq!(
        col(&desc),
        [
            json!("Infinity"),
            json!(5),
            json!(0),
            json!(-5),
            json!("-Infinity"),
            json!("NaN"),
            json!(null)
        ]
    );
    let t = run("datatable(a:string, b:long)['x',1, 'y',2, 'x',3] | sort by a asc, b desc");
    assert_eq!(
        rows(&t),
        vec![
            vec![json!("x"), json!(3)],
            vec![json!("x"), json!(1)],
            vec![json!("y"), json!(2)]
        ]
    );
    let t = run(&format!("{data} | sort by x asc nulls last"));
    assert_eq!(col(&t).last(), Some(&json!(null)));
}

// §2.13: top = sort + take (desc default); take N.
#[test]
fn top_and_take() {
    let t = run("range x from 1 to 10 step 1 | top 3 by x");
    assert_eq!(
        rows(&t),
        vec![vec![json!(10)], vec![json!(9)], vec![json!(8)]]
    );
    let t = run("range x from 1 to 10 step 1 | extend y = x % 3 | top 2 by y, x asc");
    assert_eq!(
        rows(&t),
        vec![vec![json!(2), json!(2)], vec![json!(5), json!(2)]]
    );
    let t = run("range x from 1 to 10 step 1 | top 2 by x asc");
    assert_eq!(rows(&t), vec![vec![json!(1)], vec![json!(2)]]);
    assert_eq!(run("range x from 1 to 10 step 1 | take 4").rows.len(), 4);
    assert_eq!(run("range x from 1 to 3 step 1 | limit 10").rows.len(), 3);
}

// §2.14: distinct; count → one long column `Count`; print → print_<i>; datatable fill order
// and trailing comma; as.
#[test]
fn distinct_count_print_datatable() {
    let t = run("datatable(a:long, b:long)[1,1, 1,1, 1,2] | distinct a, b");
    assert_eq!(
        rows_sorted(&t),
        sorted(vec![vec![json!(1), json!(1)], vec![json!(1), json!(2)]])
    );
    let t = run("datatable(a:long, b:long)[1,1, 1,1, 1,2] | distinct *");
    assert_eq!(t.rows.len(), 2);
    let t = run("range x from 1 to 7 step 1 | where x % 2 == 0 | count");
    assert_eq!(names(&t), ["Count"]);
    assert_eq!(types(&t), ["long"]);
    assert_eq!(rows(&t), vec![vec![json!(3)]]);
    let t = run(r#"print 0+1+2+3+4+5, x="Wow!""#);
    assert_eq!(names(&t), ["print_0", "x"]);
    assert_eq!(rows(&t), vec![vec![json!(15), json!("Wow!")]]);
    let t = run("datatable(a:int, b:string)[1, 'x', 2, 'y',]");
    assert_eq!(
        rows(&t),
        vec![vec![json!(1), json!("x")], vec![json!(2), json!("y")]]
    );
    let e = run_err("datatable(a:int, b:string)[1, 'x', 2]");
    assert!(e.message.contains("multiple"));
    let t = run("let T = print a = 1; T | as Foo | union withsource=S (print a = 2)");
    assert!(rows(&t).contains(&vec![json!("Foo"), json!(1)]));
}

// §2.15: tabular and scalar lets; an inner let shadows an outer one.
#[test]
fn let_statements() {
    let t =
        run("let n = 2; let T = range x from 1 to 5 step 1; let n = 3; T | where x > n | count");
    assert_eq!(rows(&t), vec![vec![json!(2)]]);
    let t = run("let T = datatable(a:long)[1]; let U = T; U | extend b = a + 1");
    assert_eq!(rows(&t), vec![vec![json!(1), json!(2)]]);
}

// §2.5: group keys of type dynamic are refused.
#[test]
fn summarize_by_dynamic_is_an_error() {
    let e = run_err("print d = dynamic([1]) | summarize count() by d");
    assert_eq!(e.kind, kql::KqlErrorKind::Semantic);
}

// QueryOptions.timespan restricts TimeGenerated of every table read (azure-apis.md §2.2).
#[test]
fn timespan_option_filters_time_generated() {
    use kql::{Column, ColumnType, Database, QueryOptions, Table, Value};
    let t0 = now();
    let rows: Vec<Vec<Value>> = (0..5)
        .map(|h| {
            vec![
                Value::DateTime(t0 - chrono::Duration::hours(h)),
                Value::Long(h),
            ]
        })
        .collect();
    let table = Table::from_rows(
        "T",
        vec![
            Column::new("TimeGenerated", ColumnType::DateTime),
            Column::new("h", ColumnType::Long),
        ],
        rows,
    )
    .expect("rows");
    let mut db = Database::new();
    db.insert("T", table);
    let mut opts = QueryOptions::new(t0);
    opts.timespan = Some((t0 - chrono::Duration::hours(2), t0));
    let r = kql::run("T | count", &db, &opts).expect("runs");
    assert_eq!(r.rows, vec![vec![Value::Long(2)]]);
}
