//! Scalar semantics: literals, nulls, arithmetic, string operators and functions, each test
//! pinning a documented behaviour (kql-semantics.md § cited).

mod common;
use common::*;
use serde_json::json;

// §1.3: escapes, verbatim strings with doubled quotes, adjacent literals concatenate.
#[test]
fn string_literals() {
    assert_eq!(
        scalar(r#"print @'C:\Folder\filename.txt'"#),
        json!(r"C:\Folder\filename.txt")
    );
    assert_eq!(scalar(r#"print @'it''s'"#), json!("it's"));
    assert_eq!(
        scalar(r#"print 'a\tb\n\'c\' \"d\" \u00e9'"#),
        json!("a\tb\n'c' \"d\" é")
    );
    assert_eq!(scalar(r#"print strlen("Hello"', '@"world!")"#), json!(13));
    assert_eq!(scalar("print ```multi\nline```"), json!("multi\nline"));
    assert_eq!(scalar(r#"print h'secret'"#), json!("secret"));
    let e = run_err(r#"print "a\d""#);
    assert_eq!(e.kind, kql::KqlErrorKind::Syntax);
    let e = run_err("print \"a\nb\"");
    assert_eq!(e.kind, kql::KqlErrorKind::Syntax);
}

// §1.4: integers are long, decimals real, hex long, int(…) literals.
#[test]
fn numeric_literals() {
    let t =
        run("print a = 12, b = 1.5, c = 1e3, d = 0xf, e = int(-2), f = real(nan), g = real(-inf)");
    assert_eq!(
        types(&t),
        ["long", "real", "real", "long", "int", "real", "real"]
    );
    assert_eq!(
        rows(&t)[0],
        [
            json!(12),
            json!(1.5),
            json!(1000),
            json!(15),
            json!(-2),
            json!("NaN"),
            json!("-Infinity")
        ]
    );
}

// §1.5, §1.6: datetime formats; timespan suffixes and function forms.
#[test]
fn datetime_and_timespan_literals() {
    let t = run(
        "print datetime(2015-12-31 23:59:59.9), datetime(2015-12-31), datetime(2014-05-25T08:20:03.123456Z), date(2014-11-08 15:55:55)",
    );
    assert_eq!(
        rows(&t)[0],
        [
            json!("2015-12-31T23:59:59.9Z"),
            json!("2015-12-31T00:00:00Z"),
            json!("2014-05-25T08:20:03.123456Z"),
            json!("2014-11-08T15:55:55Z")
        ]
    );
    let t = run(
        "print 2d, 1.5h, 30m, 10s, 100ms, 10microsecond, 1tick, timespan(15 seconds), timespan(2), timespan(0.12:34:56.7), 3hours",
    );
    assert_eq!(
        rows(&t)[0],
        [
            json!("2.00:00:00"),
            json!("01:30:00"),
            json!("00:30:00"),
            json!("00:00:10"),
            json!("00:00:00.1000000"),
            json!("00:00:00.0000100"),
            json!("00:00:00.0000001"),
            json!("00:00:15"),
            json!("2.00:00:00"),
            json!("12:34:56.7000000"),
            json!("03:00:00"),
        ]
    );
    assert_eq!(scalar("print datetime(null)"), json!(null));
}

// A timespan is a signed 64-bit count of 100-ns ticks (.NET's `TimeSpan`, at most
// 10675199.02:48:05.4775807), and a literal may be as long. Found by the `config` cargo-fuzz
// target (docs/reliability.md): literals of 106,751 days (292 years) and more were refused,
// so the sync query of a configuration with `max_age = "500y"` did not parse.
#[test]
fn timespan_literals_cover_the_whole_timespan_range() {
    let t = run("print 106751d, 10675199d, -10675199d, 262980000m, 15372286728m, ago(262980000m)");
    assert_eq!(
        rows(&t)[0][..5],
        [
            json!("106751.00:00:00"),
            json!("10675199.00:00:00"),
            json!("-10675199.00:00:00"),
            json!("182625.00:00:00"),
            json!("10675199.02:48:00"),
        ]
    );
    assert_eq!(types(&t)[5], "datetime");
    for q in ["print 10675200d", "print 1e30h", "print -10675200d"] {
        let e = run_err(q);
        assert_eq!(e.kind, kql::KqlErrorKind::Syntax, "{q}");
        assert!(e.message.contains("timespan literal"), "{q}: {}", e.message);
    }
}

// §1.7: dynamic literals with single quotes and nested typed literals; guid; bool.
#[test]
fn other_literals() {
    assert_eq!(
        scalar(r#"print dynamic(['a', {'b': 1}, -2, 2.5, true, null])"#),
        json!(r#"["a",{"b":1},-2,2.5,true,null]"#)
    );
    assert_eq!(
        scalar("print dynamic({\"a\": datetime(1970-05-11)})"),
        json!(r#"{"a":"1970-05-11T00:00:00Z"}"#)
    );
    assert_eq!(
        scalar("print guid(74BE27DE-1E4E-49D9-B579-FE0B331D3642)"),
        json!("74be27de-1e4e-49d9-b579-fe0b331d3642")
    );
    assert_eq!(scalar("print bool(null)"), json!(null));
    assert_eq!(scalar("print true"), json!(true));
}

// §1.2: the language is case-sensitive; §1.8: `//` comments only.
#[test]
fn case_sensitivity_and_comments() {
    assert!(
        run_err("print x = 1 | Where x == 1")
            .message
            .contains("Where")
    );
    assert_eq!(
        scalar("print x = 1 // a comment\n| where x == 1 // another"),
        json!(1)
    );
    assert_eq!(run_err("print 1 /* no */").kind, kql::KqlErrorKind::Syntax);
}

// §3.2 worked table: for val = 5 | null: `val > 3` true | null; `val > 3 or isnull(val)`
// true | true; `val == int(null)` false | null; `val != int(null)` true | null.
#[test]
fn null_propagation_table() {
    let q = "datatable(val:int)[5, int(null)] | extend a = val > 3, b = val > 3 or isnull(val), c = val == int(null), d = val != int(null), e = val + 10";
    let t = run(q);
    assert_eq!(
        rows(&t)[0][1..],
        [
            json!(true),
            json!(true),
            json!(false),
            json!(true),
            json!(15)
        ]
    );
    assert_eq!(
        rows(&t)[1][1..],
        [
            json!(null),
            json!(true),
            json!(null),
            json!(null),
            json!(null)
        ]
    );
}

// §3.2: false and null → false; true or null → true; not(null) → null; iff(null, …) → else.
#[test]
fn three_valued_logic() {
    let r = row0(
        "print a = false and bool(null), b = true or bool(null), c = true and bool(null), d = not(bool(null)), e = iff(bool(null) and true, true, false)",
    );
    assert_eq!(
        r,
        [
            json!(false),
            json!(true),
            json!(null),
            json!(null),
            json!(false)
        ]
    );
}

// §3.2: `in` is an OR of ==, `!in` an AND of != → `null !in (…)` is true; in~ ignores case.
#[test]
fn in_operators() {
    let t = run("datatable(x:long)[1, 2, long(null)] | where x !in (1)");
    assert_eq!(rows(&t), vec![vec![json!(2)], vec![json!(null)]]);
    let t = run("datatable(x:long)[1, 2, long(null)] | where x in (1, 2)");
    assert_eq!(t.rows.len(), 2);
    let r = row0(
        r#"print a = "New" in ("new"), b = "New" in~ ("new"), c = "x" !in~ ("X", "y"), d = 2 in (dynamic([1, 2])), e = "b" in ((datatable(v:string)["a","b"]))"#,
    );
    assert_eq!(
        r,
        [
            json!(false),
            json!(true),
            json!(false),
            json!(true),
            json!(true)
        ]
    );
    let r = row0(
        r#"let S = datatable(v:string)["a","b"]; print a = "b" in (S | project v), b = "z" in (S | where v != "")"#,
    );
    assert_eq!(r, [json!(true), json!(false)]);
}

// §3.2: case(), coalesce() examples.
#[test]
fn case_and_coalesce() {
    let t = run(
        r#"range Size from 1 to 15 step 2 | extend bucket = case(Size <= 3, "Small", Size <= 10, "Medium", "Large")"#,
    );
    let b: Vec<_> = rows(&t).into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(
        b,
        [
            "Small", "Small", "Medium", "Medium", "Medium", "Large", "Large", "Large"
        ]
    );
    assert_eq!(
        scalar(r#"print coalesce(tolong("not a number"), tolong("42"), 33)"#),
        json!(42)
    );
    assert_eq!(scalar(r#"print coalesce("", "b", "c")"#), json!("b"));
}

// §3.2: between is inclusive; a datetime range may end with a timespan (lo + hi).
#[test]
fn between_operator() {
    let t = run("range x from 1 to 10 step 1 | where x between (3 .. 5)");
    assert_eq!(t.rows.len(), 3);
    let t = run("range x from 1 to 10 step 1 | where x !between (3 .. 5)");
    assert_eq!(t.rows.len(), 7);
    let r = row0(
        "print datetime(2020-01-02) between (datetime(2020-01-01) .. 1d), datetime(2020-01-03) between (datetime(2020-01-01) .. 1d)",
    );
    assert_eq!(r, [json!(true), json!(false)]);
}

// §3.3: integer division truncates, modulo is never negative, real division by zero is ±inf
// or NaN, int⊕long → long.
#[test]
fn numeric_arithmetic() {
    let r = row0(
        "print 1/2, -14 % 12, 14 % -12, -14 % -12, 1.0/0.0, -1.0/0.0, 0.0/0.0, 7 / 2.0, int(2) + int(3), int(2) + 3",
    );
    assert_eq!(
        r,
        [
            json!(0),
            json!(10),
            json!(2),
            json!(10),
            json!("Infinity"),
            json!("-Infinity"),
            json!("NaN"),
            json!(3.5),
            json!(5),
            json!(5)
        ]
    );
    let t = run("print int(2) + int(3), int(2) + 3, 1 + 1.5");
    assert_eq!(types(&t), ["int", "long", "real"]);
    assert_eq!(
        scalar("print 1 / 0"),
        json!(null),
        "integer division by zero is null (UNCONFIRMED, §3.3)"
    );
}

// §3.4: datetime/timespan arithmetic.
#[test]
fn datetime_arithmetic() {
    let t = run(
        "print a = datetime(2020-01-02) - datetime(2020-01-01), b = datetime(2020-01-01) + 1h, c = 1d / 5h, d = 1h / 1s, e = 1.5 * 1h, f = 2h - 30m, g = datetime(1970-01-01) + 10 * 1sec, h = 1h / 2",
    );
    assert_eq!(
        types(&t),
        [
            "timespan", "datetime", "real", "real", "timespan", "timespan", "datetime", "timespan"
        ]
    );
    assert_eq!(
        rows(&t)[0],
        [
            json!("1.00:00:00"),
            json!("2020-01-01T01:00:00Z"),
            json!(4.8),
            json!(3600),
            json!("01:30:00"),
            json!("01:30:00"),
            json!("1970-01-01T00:00:10Z"),
            json!("00:30:00")
        ]
    );
    let e = run_err("print datetime(2020-01-01) + datetime(2020-01-01)");
    assert_eq!(e.kind, kql::KqlErrorKind::Semantic);
}

// §3.4, §1.5: ago()/now() use the evaluation's clock, one instant per query.
#[test]
fn ago_and_now_use_the_given_clock() {
    let r = row0("print now(), ago(1d), now(-2h), now() == now()");
    assert_eq!(
        r,
        [
            json!("2026-11-27T12:00:00Z"),
            json!("2026-11-26T12:00:00Z"),
            json!("2026-11-27T10:00:00Z"),
            json!(true)
        ]
    );
}

// §3.5: has matches whole terms (case-insensitive), contains substrings; _cs forms.
#[test]
fn string_predicates() {
    let s = r#"let s = "Kusto: ad67d136-c1db-4f9f-88ef-d94f3b6b0b5a;KustoExplorerQueryRun";"#;
    let r = row0(&format!(
        "{s} print s has \"KustoExplorerQueryRun\", s has \"Explorer\", s contains \"explorer\", s has \"C1DB\", s !has \"kusto\", s has_cs \"kusto\", s contains_cs \"Explorer\", s !contains \"xyz\""
    ));
    assert_eq!(
        r,
        [
            json!(true),
            json!(false),
            json!(true),
            json!(true),
            json!(false),
            json!(false),
            json!(true),
            json!(true)
        ]
    );
    let r = row0(
        r#"print "Hello" startswith "he", "Hello" startswith_cs "he", "Hello" endswith "LO", "Hello" =~ "hello", "Hello" !~ "HELLO", "Hello" == "hello", "Hello" != "hello", "abc" matches regex "b+", "a b" has "a""#,
    );
    assert_eq!(
        r,
        [
            json!(true),
            json!(false),
            json!(true),
            json!(true),
            json!(false),
            json!(false),
            json!(true),
            json!(true),
            json!(true)
        ]
    );
    let r = row0(
        r#"print "hello worldwide" hasprefix "WORLD", "helloworld x" hassuffix "world", "helloworld" hasprefix "world""#,
    );
    assert_eq!(r, [json!(true), json!(true), json!(false)]);
}

// §3.5: has / has_any / has_all on strings and on dynamic arrays (elements are terms).
#[test]
fn has_any_has_all_and_dynamic_has() {
    let r = row0(
        r#"print "south east" has_any ("north", "south"), "south east" has_all ("east", "south"), "south east" has_all ("east", "west"), "x" has_any (dynamic(["y", "x"]))"#,
    );
    assert_eq!(r, [json!(true), json!(true), json!(false), json!(true)]);
    let r = row0(
        r#"let d = dynamic(["Resolved", "InProgress"]); print d has_any ("New", "InProgress"), d has_any ("New"), d has "inprogress", dynamic({"alertProductNames": ["Azure Security Center"]}).alertProductNames has "Azure Security Center", dynamic(["Azure Security Centers"]) has "Azure Security Center""#,
    );
    assert_eq!(
        r,
        [
            json!(true),
            json!(false),
            json!(true),
            json!(true),
            json!(false)
        ]
    );
}

// §3.6: tostring of null is "", of a dynamic string the raw string, of a bag compact JSON;
// the parse_json nested example; invalid JSON → dynamic string; "" → null.
#[test]
fn conversions_and_parse_json() {
    let r = row0(
        r#"print tostring(int(null)), tostring(dynamic("abc")), tostring(dynamic({"a":123,"b":"hello","c":[1,2,3],"d":{}})), tostring(1.5), tostring(true)"#,
    );
    assert_eq!(
        r,
        [
            json!(""),
            json!("abc"),
            json!(r#"{"a":123,"b":"hello","c":[1,2,3],"d":{}}"#),
            json!("1.5"),
            json!("true")
        ]
    );
    let r = row0(
        r#"let d = '{"a":123, "b":"{\\"c\\":456}"}'; print parse_json(tostring(parse_json(d).b)).c"#,
    );
    assert_eq!(r, [json!("456")]);
    let r = row0(
        r#"print isnull(parse_json("")), tostring(parse_json("not json")), todynamic('[1,2]')[1], parse_json('{"a":1}').a"#,
    );
    assert_eq!(r, [json!(true), json!("not json"), json!("2"), json!("1")]);
    let r = row0(
        r#"print toint("12"), toint(1.9), tolong("x"), todouble("1.5"), todatetime("2020-01-01"), todatetime("bad"), toint("1e20")"#,
    );
    assert_eq!(
        r,
        [
            json!(12),
            json!(1),
            json!(null),
            json!(1.5),
            json!("2020-01-01T00:00:00Z"),
            json!(null),
            json!(null)
        ]
    );
}

// §3.6: strcat converts with tostring; tolower/toupper; extract with groups and typeof.
#[test]
fn string_functions() {
    let r = row0(
        r#"print strcat("a", 1, true, dynamic([1])), tolower("AbC"), toupper("AbC"), strlen("héllo"), substring("abcdef", 2, 3)"#,
    );
    assert_eq!(
        r,
        [
            json!("a1true[1]"),
            json!("abc"),
            json!("ABC"),
            json!(5),
            json!("cde")
        ]
    );
    let r = row0(
        r#"print extract(@"-(\d{2})-", 1, "15-12-2024", typeof(int)), extract(@"-(\d{2})-", 0, "15-12-2024"), extract("x(y)", 1, "abc"), extract("(a)", 1, "cat", typeof(long))"#,
    );
    assert_eq!(r, [json!(12), json!("-12-"), json!(""), json!(null)]);
}

// §3.7: isnull / isempty on strings, nulls, arrays and bags.
#[test]
fn null_and_empty_predicates() {
    let r = row0(
        r#"print isnull(""), isempty(""), isempty(int(null)), isnull(int(null)), isempty(parse_json("[]")), isnotempty("a"), isnotnull(1), isnull(dynamic(null)), isempty(dynamic({}).x)"#,
    );
    assert_eq!(
        r,
        [
            json!(false),
            json!(true),
            json!(true),
            json!(true),
            json!(false),
            json!(true),
            json!(true),
            json!(true),
            json!(true)
        ]
    );
}

// §3.8: member and index access, negative indexes, missing keys → null; array_length,
// bag_keys, set_has_element.
#[test]
fn dynamic_access_and_functions() {
    let r = row0(
        r#"let d = dynamic({"a": {"b": [10, 20, 30]}, "where": 1}); print d.a.b[0], d["a"]["b"][(-1)], d.missing, d.a.b[7], d['where'], array_length(d.a.b), array_length(d), bag_keys(d.a), bag_keys(dynamic([])), set_has_element(d.a.b, 20), set_has_element(d.a.b, 21)"#,
    );
    assert_eq!(
        r,
        [
            json!("10"),
            json!("30"),
            json!(null),
            json!(null),
            json!("1"),
            json!(3),
            json!(null),
            json!("[\"b\"]"),
            json!(null),
            json!(true),
            json!(false)
        ]
    );
    let r = row0(
        r#"print dynamic(["InProgress"])[0] == "InProgress", toint(dynamic([1, "2"])[1]) + 1"#,
    );
    assert_eq!(r, [json!(true), json!(3)]);
}

// §3.3: bin() floors to multiples; null or negative size → null.
#[test]
fn bin_function() {
    let r = row0(
        "print bin(4.5, 1), bin(16d, 7d), bin(datetime(1970-05-11 13:45:07), 1d), bin(7, 5), bin(4.5, -1), bin(long(null), 5), floor(-3, 2)",
    );
    assert_eq!(
        r,
        [
            json!(4),
            json!("14.00:00:00"),
            json!("1970-05-11T00:00:00Z"),
            json!(5),
            json!(null),
            json!(null),
            json!(-4)
        ]
    );
}

// §3.3: comparing a string with a number is an error; bools only compare with ==/!=.
#[test]
fn type_errors() {
    assert_eq!(
        run_err(r#"print "a" == 1"#).kind,
        kql::KqlErrorKind::Semantic
    );
    assert_eq!(
        run_err(r#"print true < false"#).kind,
        kql::KqlErrorKind::Semantic
    );
    assert_eq!(
        run_err(r#"print "a" + "b""#).kind,
        kql::KqlErrorKind::Semantic
    );
}

// §4: the recorded real response for a datatable of every type (decimal held as real).
#[test]
fn wire_serialization_matches_the_recorded_response() {
    let t = run(
        "datatable(DateTime:datetime, Bool:bool, Guid:guid, Int:int, Long:long, Double:double, String:string, Timespan:timespan, NullBool:bool)[datetime(2015-12-31 23:59:59.9), false, guid(74be27de-1e4e-49d9-b579-fe0b331d3642), 12345, 1234567890123, 12345.6789, \"string value\", 10s, bool(null)]",
    );
    assert_eq!(
        types(&t),
        [
            "datetime", "bool", "guid", "int", "long", "real", "string", "timespan", "bool"
        ]
    );
    assert_eq!(
        rows(&t)[0],
        [
            json!("2015-12-31T23:59:59.9Z"),
            json!(false),
            json!("74be27de-1e4e-49d9-b579-fe0b331d3642"),
            json!(12345),
            json!(1234567890123i64),
            json!(12345.6789),
            json!("string value"),
            json!("00:00:10"),
            json!(null)
        ]
    );
    assert_eq!(
        scalar("print timespan(1.02:03:04.5)"),
        json!("1.02:03:04.5000000")
    );
}
