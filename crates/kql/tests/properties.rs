//! Property tests: `where p` and `where not(p)` partition a table, `arg_max` picks one
//! maximal real row per key, every join kind agrees with a naive nested-loop reference, the
//! parser never panics, and the wire format round-trips.

mod common;
use common::now;
use kql::{Column, ColumnType as T, Database, QueryOptions, Table, Value};
use proptest::prelude::*;

fn cfg() -> ProptestConfig {
    ProptestConfig {
        // Modest by default (CI budget); PROPTEST_CASES raises it for a longer fuzzing run.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(192),
        ..ProptestConfig::default()
    }
}

fn run(db: &Database, q: &str) -> Table {
    match kql::run(q, db, &QueryOptions::new(now())) {
        Ok(t) => t,
        Err(e) => panic!("{e}\n{q}"),
    }
}

fn count(db: &Database, q: &str) -> i64 {
    match run(db, q).rows.first().and_then(|r| r.first()) {
        Some(Value::Long(n)) => *n,
        other => panic!("not a count: {other:?}"),
    }
}

const WORDS: &[&str] = &["New", "Active", "Closed", "in progress", "new-alert", ""];

fn table_strategy() -> impl Strategy<Value = Vec<(i64, usize, i64)>> {
    prop::collection::vec((-5i64..5, 0..WORDS.len(), 0i64..3), 0..40)
}

fn db_of(rows: &[(i64, usize, i64)]) -> Database {
    let cols = vec![
        Column::new("a", T::Long),
        Column::new("s", T::String),
        Column::new("g", T::Long),
    ];
    let rows = rows
        .iter()
        .map(|(a, s, g)| vec![Value::Long(*a), Value::string(WORDS[*s]), Value::Long(*g)])
        .collect();
    let mut db = Database::new();
    db.insert("T", Table::from_rows("T", cols, rows).expect("rows"));
    db
}

/// Predicates over non-null columns (so never null).
fn predicate() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (-6i64..6).prop_map(|k| format!("a > {k}")),
        (-6i64..6).prop_map(|k| format!("a == {k}")),
        (-6i64..6).prop_map(|k| format!("a between ({k} .. {})", k + 2)),
        (0..WORDS.len()).prop_map(|i| format!("s == \"{}\"", WORDS[i])),
        (0..WORDS.len()).prop_map(|i| format!("s =~ \"{}\"", WORDS[i].to_uppercase())),
        Just("s has \"new\"".to_string()),
        Just("s contains \"e\"".to_string()),
        Just("s startswith \"n\"".to_string()),
        Just("s in (\"New\", \"Closed\")".to_string()),
        Just("s has_any (\"progress\", \"alert\")".to_string()),
        Just("isempty(s)".to_string()),
        Just("a % 2 == 0".to_string()),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(x, y)| format!("({x} and {y})")),
            (inner.clone(), inner.clone()).prop_map(|(x, y)| format!("({x} or {y})")),
            inner.prop_map(|x| format!("not({x})")),
        ]
    })
}

proptest! {
    #![proptest_config(cfg())]

    // §2.1: for a non-null predicate, where p and where not(p) split the table.
    #[test]
    fn where_partitions(rows in table_strategy(), p in predicate()) {
        let db = db_of(&rows);
        let yes = count(&db, &format!("T | where {p} | count"));
        let no = count(&db, &format!("T | where not({p}) | count"));
        prop_assert_eq!(yes + no, rows.len() as i64);
    }

    // §2.7: one row per key, holding the key's maximum and coming from a real input row.
    #[test]
    fn arg_max_picks_one_maximal_row_per_key(rows in table_strategy()) {
        let db = db_of(&rows);
        let t = run(&db, "T | summarize arg_max(a, *) by g");
        let mut keys: Vec<i64> = rows.iter().map(|r| r.2).collect();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(t.rows.len(), keys.len());
        for r in &t.rows {
            let (Value::Long(g), Value::Long(a), Value::String(s)) = (&r[0], &r[1], &r[2]) else {
                panic!("unexpected row {r:?}");
            };
            let max = rows.iter().filter(|x| x.2 == *g).map(|x| x.0).max();
            prop_assert_eq!(Some(*a), max);
            prop_assert!(rows.iter().any(|x| x.2 == *g && x.0 == *a && WORDS[x.1] == &**s));
        }
    }
}

type Side = Vec<(Option<i64>, i64)>;

fn side() -> impl Strategy<Value = Side> {
    prop::collection::vec((prop::option::weighted(0.85, 0i64..4), 0i64..100), 0..12)
}

fn join_db(l: &Side, r: &Side) -> Database {
    let mk = |name: &str, v: &str, rows: &Side| {
        let cols = vec![Column::new("k", T::Long), Column::new(v, T::Long)];
        let rows = rows
            .iter()
            .map(|(k, x)| vec![k.map_or(Value::Null, Value::Long), Value::Long(*x)])
            .collect();
        Table::from_rows(name, cols, rows).expect("rows")
    };
    let mut db = Database::new();
    db.insert("L", mk("L", "lv", l));
    db.insert("R", mk("R", "rv", r));
    db
}

type Row = Vec<Option<i64>>;

fn as_rows(t: &Table) -> Vec<Row> {
    let mut v: Vec<Row> = t
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|x| match x {
                    Value::Long(n) => Some(*n),
                    _ => None,
                })
                .collect()
        })
        .collect();
    v.sort();
    v
}

/// The nested-loop reference of §2.11 (null keys never match).
fn reference(kind: &str, l: &Side, r: &Side) -> Vec<Row> {
    let m = |a: &Option<i64>, b: &Option<i64>| a.is_some() && a == b;
    let mut out: Vec<Row> = Vec::new();
    let pair =
        |x: &(Option<i64>, i64), y: &(Option<i64>, i64)| vec![x.0, Some(x.1), y.0, Some(y.1)];
    let lrow = |x: &(Option<i64>, i64)| vec![x.0, Some(x.1)];
    match kind {
        "inner" | "leftouter" | "rightouter" | "fullouter" => {
            for x in l {
                for y in r {
                    if m(&x.0, &y.0) {
                        out.push(pair(x, y));
                    }
                }
            }
            if kind == "leftouter" || kind == "fullouter" {
                for x in l.iter().filter(|x| !r.iter().any(|y| m(&x.0, &y.0))) {
                    out.push(vec![x.0, Some(x.1), None, None]);
                }
            }
            if kind == "rightouter" || kind == "fullouter" {
                for y in r.iter().filter(|y| !l.iter().any(|x| m(&x.0, &y.0))) {
                    out.push(vec![None, None, y.0, Some(y.1)]);
                }
            }
        }
        "leftsemi" => out.extend(
            l.iter()
                .filter(|x| r.iter().any(|y| m(&x.0, &y.0)))
                .map(lrow),
        ),
        "leftanti" => out.extend(
            l.iter()
                .filter(|x| !r.iter().any(|y| m(&x.0, &y.0)))
                .map(lrow),
        ),
        "rightsemi" => out.extend(
            r.iter()
                .filter(|y| l.iter().any(|x| m(&x.0, &y.0)))
                .map(lrow),
        ),
        "rightanti" => out.extend(
            r.iter()
                .filter(|y| !l.iter().any(|x| m(&x.0, &y.0)))
                .map(lrow),
        ),
        _ => unreachable!("kind"),
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(cfg())]

    // §2.11: each kind against the nested-loop reference.
    #[test]
    fn join_kinds_match_nested_loops(l in side(), r in side()) {
        let db = join_db(&l, &r);
        for kind in ["inner", "leftouter", "rightouter", "fullouter", "leftsemi", "leftanti", "rightsemi", "rightanti"] {
            let t = run(&db, &format!("L | join kind={kind} R on k"));
            prop_assert_eq!(as_rows(&t), reference(kind, &l, &r), "kind={}", kind);
        }
        // innerunique: one (any) left row per key, joined with every matching right row.
        let t = run(&db, "L | join R on $left.k == $right.k");
        let got = as_rows(&t);
        let mut keys: Vec<i64> = l.iter().filter_map(|x| x.0).filter(|k| r.iter().any(|y| y.0 == Some(*k))).collect();
        keys.sort();
        keys.dedup();
        let mut expected_len = 0;
        for k in keys {
            let rights: Vec<i64> = r.iter().filter(|y| y.0 == Some(k)).map(|y| y.1).collect();
            expected_len += rights.len();
            let mine: Vec<&Row> = got.iter().filter(|row| row[0] == Some(k)).collect();
            prop_assert_eq!(mine.len(), rights.len());
            let lv = mine[0][1];
            prop_assert!(mine.iter().all(|row| row[1] == lv), "one left row per key");
            prop_assert!(l.iter().any(|x| x.0 == Some(k) && Some(x.1) == lv));
        }
        prop_assert_eq!(got.len(), expected_len);
    }
}

fn token_soup() -> impl Strategy<Value = String> {
    let tok = prop::sample::select(vec![
        "T",
        "|",
        "where",
        "project",
        "extend",
        "summarize",
        "by",
        "join",
        "kind=inner",
        "on",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ";",
        "let",
        "=",
        "==",
        "!=",
        "and",
        "or",
        "not",
        "count()",
        "arg_max",
        "*",
        "mv-expand",
        "a",
        "s",
        "g",
        "1",
        "1.5",
        "2d",
        "\"x\"",
        "'y'",
        "@'z'",
        "dynamic",
        "datetime(2020-01-01)",
        "has",
        "has_any",
        "in",
        "!in",
        "between",
        "..",
        "-",
        "+",
        "/",
        "%",
        ".",
        "$left",
        "$right",
        "datatable",
        "print",
        "union",
        "sort",
        "top",
        "take",
        "distinct",
        "as",
        "//c\n",
        "tostring",
        "typeof",
        "to",
        "int(null)",
        "typeof(int)",
        "extract",
        "strcat",
        "array_length",
        "(1)",
        "(a, *)",
        "dynamic([1])",
        "x:long",
        ":",
        "<",
        ">=",
        "iff",
        "case",
        "bin",
        "ago",
        "now()",
        "```",
        "h'",
        "\\",
    ]);
    prop::collection::vec(tok, 0..30).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(cfg())]

    // The issue: the parser (and evaluator) never panics, whatever the text.
    #[test]
    fn never_panics_on_arbitrary_text(s in "\\PC{0,80}") {
        let db = db_of(&[(1, 0, 0), (2, 1, 1)]);
        let _ = kql::run(&s, &db, &QueryOptions::new(now()));
    }

    #[test]
    fn never_panics_on_token_soup(s in token_soup()) {
        let db = db_of(&[(1, 0, 0), (2, 1, 1)]);
        let _ = kql::run(&s, &db, &QueryOptions::new(now()));
    }

    // §4: what we write as a Log Analytics response reads back to the same values.
    #[test]
    fn wire_format_round_trips(
        n in any::<i64>(), r in -1e12f64..1e12, s in "\\PC{0,12}", secs in -1_000_000_000i64..4_000_000_000, ns in 0u32..10_000_000,
        ticks in -10_000_000_000_000i64..10_000_000_000_000,
    ) {
        let dt = chrono::DateTime::from_timestamp(secs, ns * 100).expect("in range");
        let row = vec![
            Value::Long(n),
            Value::Real(r),
            Value::string(&s),
            Value::DateTime(dt),
            Value::TimeSpan(chrono::TimeDelta::nanoseconds(ticks * 100)),
            Value::dynamic(serde_json::json!({"s": s, "n": n})),
        ];
        let cols = vec![
            Column::new("n", T::Long), Column::new("r", T::Real), Column::new("s", T::String),
            Column::new("d", T::DateTime), Column::new("t", T::TimeSpan), Column::new("j", T::Dynamic),
        ];
        let t = Table::from_rows("x", cols, vec![row]).expect("rows");
        let wire = kql::response_json(std::slice::from_ref(&t));
        let back = Table::from_log_analytics_json(&wire).expect("loads");
        prop_assert_eq!(&back.rows, &t.rows);
        let streamed = Table::from_log_analytics_reader(wire.to_string().as_bytes()).expect("streams");
        prop_assert_eq!(streamed.rows, t.rows);
    }
}

// The issue: no panic (or stack overflow) on deeply nested or very long expressions.
#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let db = Database::new();
    let opts = QueryOptions::new(now());
    for q in [
        format!("print {}1{}", "(".repeat(5000), ")".repeat(5000)),
        format!("print {}1", "-".repeat(5000)),
        format!("print x = 1{}", " + 1".repeat(20000)),
        format!(
            "print x = dynamic({}{})",
            "[".repeat(5000),
            "]".repeat(5000)
        ),
        format!("print x = true{}", " and true".repeat(20000)),
        format!("print x = {}1{}", "not(".repeat(3000), ")".repeat(3000)),
    ] {
        let _ = kql::run(&q, &db, &opts);
    }
    // A long but reasonable chain still works.
    let t = kql::run(&format!("print x = 1{}", " + 1".repeat(100)), &db, &opts).expect("runs");
    assert_eq!(t.rows[0][0], Value::Long(101));
}

/// Found by dfcsync's proptest fuzzing: comparing a dynamic array or bag with a scalar
/// recursed without end (a stack overflow). [kql-semantics.md §3.2: a comparison without a
/// defined order is null.]
#[test]
fn comparing_a_dynamic_array_or_bag_with_a_scalar_is_null_not_a_crash() {
    let db = kql::Database::new();
    let opts = kql::QueryOptions::new(chrono::Utc::now());
    for q in [
        "print x = dynamic({}) == 6",
        "print x = dynamic([1]) < 6",
        "print x = 6 == dynamic({})",
        "print x = dynamic([1]) == 'a'",
    ] {
        let t = kql::run(q, &db, &opts).unwrap_or_else(|e| panic!("{q}: {e:?}"));
        assert!(
            matches!(t.rows[0][0], kql::Value::Null | kql::Value::Bool(false)),
            "{q}: {:?}",
            t.rows[0][0]
        );
    }
}

/// Left rows for the semi-join reduction: a string key, a dynamic array of keys (strings,
/// numbers, empty strings) and a number.
type SemiRow = (usize, Vec<(bool, usize)>, i64);

fn semi_db(l: &[SemiRow], r: &[usize]) -> Database {
    let cols = vec![
        Column::new("s", T::String),
        Column::new("ids", T::Dynamic),
        Column::new("a", T::Long),
    ];
    let rows = l
        .iter()
        .map(|(s, ids, a)| {
            let ids: Vec<serde_json::Value> = ids
                .iter()
                .map(|(num, w)| {
                    if *num {
                        serde_json::json!(*w)
                    } else {
                        serde_json::json!(WORDS[*w])
                    }
                })
                .collect();
            vec![
                Value::string(WORDS[*s]),
                Value::dynamic(serde_json::Value::Array(ids)),
                Value::Long(*a),
            ]
        })
        .collect();
    let right = r.iter().map(|k| vec![Value::string(WORDS[*k])]).collect();
    let mut db = Database::new();
    db.insert("L", Table::from_rows("L", cols, rows).expect("rows"));
    db.insert(
        "R",
        Table::from_rows("R", vec![Column::new("k", T::String)], right).expect("rows"),
    );
    db
}

proptest! {
    #![proptest_config(cfg())]

    /// A join that keeps only matched left rows gives the same rows, in the same order, with
    /// the semi-join reduction (the left rows the right side cannot match dropped early, at
    /// the source or at the `mv-expand` that makes the key) as without it (`as` stops it).
    #[test]
    fn semi_join_reduction_keeps_the_result(
        l in prop::collection::vec(
            (0..WORDS.len(), prop::collection::vec((any::<bool>(), 0..WORDS.len()), 0..4), -3i64..3),
            // Left sides (and their first halves) at least 8 times the right ones, so that
            // the reduction applies.
            64..100,
        ),
        r in prop::collection::vec(0..WORDS.len() - 1, 0..4),
        with_empty in any::<bool>(),
        k in -3i64..3,
        kind in prop::sample::select(vec!["inner", "innerunique", "leftsemi", "rightsemi"]),
    ) {
        let mut r = r;
        if with_empty {
            r.push(WORDS.len() - 1);
        }
        // The left table first holds half its rows, then grows: the reduction reads the
        // table's key index (built by the first query, extended after the append).
        let half = l.len() / 2;
        let mut db = semi_db(&l[..half], &r);
        let more = semi_db(&l[half..], &r);
        let queries = [
            format!("L | where a > {k} | distinct s, a | join kind={kind} (R) on $left.s == $right.k"),
            format!("L | mv-expand x = ids to typeof(string) | where a > {k} | join kind={kind} (R | distinct k) on $left.x == $right.k"),
            format!("L | mv-expand ids to typeof(string) | distinct ids | join kind={kind} (R) on $left.ids == $right.k"),
            format!("L | join kind={kind} (R | where k != \"Closed\") on $left.s == $right.k"),
            // A `let` of the table filtered (a selection in table order) and one expanded
            // (a selection repeating rows: no index).
            format!("let W = L | where a > {k}; W | mv-expand x = ids to typeof(string) | join kind={kind} (R) on $left.x == $right.k"),
            format!("let W = L | where a > {k}; W | join kind={kind} (R) on $left.s == $right.k"),
            format!("let W = L | mv-expand y = ids; W | join kind={kind} (R) on $left.s == $right.k"),
        ];
        for grown in [false, true] {
            if grown {
                let rows = more.get("L").expect("L").rows.clone();
                db.append("L", rows).expect("same columns");
            }
            for q in &queries {
                let blocked = q.replacen(" | join", " | as B | join", 1);
                let (a, b) = (run(&db, q), run(&db, &blocked));
                prop_assert_eq!(&a.rows, &b.rows, "{}", q);
            }
        }
    }

    /// A `where` comparing a datetime column or `ingestion_time()` with a constant (answered
    /// from the table's time columns) keeps the rows, in the order, that the row-by-row
    /// evaluation keeps (`+ 0s` stops the shortcut), before and after the table grows.
    #[test]
    fn time_column_where_keeps_the_rows(
        batches in prop::collection::vec(
            (prop::collection::vec((prop::option::of(0i64..8), -3i64..3), 0..12), 0i64..8),
            1..4,
        ),
        k in 0i64..8,
        j in 0i64..8,
        m in -3i64..3,
        op in prop::sample::select(vec!["<", "<=", ">", ">=", "==", "!="]),
    ) {
        let at = |h: i64| now() - chrono::TimeDelta::hours(h);
        let time = |h: i64| format!("datetime({})", at(h).to_rfc3339());
        let cols = vec![Column::new("t", T::DateTime), Column::new("a", T::Long)];
        let mut db = Database::new();
        db.insert("T", Table::new("T", cols));
        let queries = [
            format!("T | where t {op} {}", time(k)),
            format!("T | where {} {op} t and a > {m}", time(k)),
            format!("T | where ingestion_time() {op} {} and t >= {}", time(j), time(k)),
            format!("let W = T | where a != {m}; W | where t {op} {} and ingestion_time() < {}", time(k), time(j)),
            format!("T | sort by a asc | where t {op} {} | project t, a, i = ingestion_time()", time(k)),
        ];
        for (rows, ingested) in &batches {
            let rows = rows
                .iter()
                .map(|(t, a)| vec![t.map_or(Value::Null, |h| Value::DateTime(at(h))), Value::Long(*a)])
                .collect();
            db.append_ingested("T", rows, at(*ingested)).expect("rows");
            for q in &queries {
                let blocked = q
                    .replace("where t ", "where t + 0s ")
                    .replace(" t and", " t + 0s and")
                    .replace("and t ", "and t + 0s ")
                    .replace("ingestion_time() ", "ingestion_time() + 0s ");
                prop_assert_ne!(q, &blocked);
                let (a, b) = (run(&db, q), run(&db, &blocked));
                prop_assert_eq!(&a.rows, &b.rows, "{}", q);
            }
        }
    }
}
