//! Fuzzing with proptest, on stable and in CI (docs/reliability.md, "Fuzzing (proptest)"; the
//! cargo-fuzz targets in `fuzz/`, which need nightly, are in "Fuzzing"): every parser that
//! reads input from outside must answer any input with a value or an error, never a panic.
//!
//! Targets: the KQL engine (`kql::run`, lexer, parser, binder and evaluator) over a small
//! database; `observe::build_snapshot_combined` (a Log Analytics response);
//! `emulator::Scenario::from_json_str`; `config::Config::parse`.
//!
//! Inputs of three sorts: arbitrary bytes or strings; valid inputs with random byte edits
//! (insert, delete, replace, duplicate a span, truncate); and for JSON inputs, valid documents
//! with random values of their tree replaced, removed or duplicated (which gets past the JSON
//! syntax to the checks behind it).
//!
//! `FUZZ_CASES` sets the number of cases per property (default 500, so the file runs in a few
//! seconds in debug); e.g. `FUZZ_CASES=20000 cargo test -p dfcsync --release --test
//! fuzz_parsers`.

mod proof_support;

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config as PropConfig;
use serde_json::{Value, json};

use dfcsync::config::Config;
use dfcsync::observe::build_snapshot_combined;
use dfcsync::observe::query::{ALERT_COLUMNS, INCIDENT_COLUMNS, WORKSPACE_COLUMN, sync_query};
use dfcsync::policy::Policy;
use kql::{Database, QueryOptions, Table};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
}

fn config() -> PropConfig {
    PropConfig {
        cases: cases(),
        // Failures are minimised and reported; no regression file is written for them.
        failure_persistence: None,
        ..PropConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Mutations

/// One edit of a byte string; positions are fractions of the current length.
#[derive(Debug, Clone)]
enum Edit {
    Insert(f64, Vec<u8>),
    Delete(f64, usize),
    Replace(f64, u8),
    /// Copies a span somewhere else (repeats structure: brackets, keys, operators).
    Duplicate(f64, usize, f64),
    Truncate(f64),
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(
            b"{}[]()\"'\\:,.|=<>!~-+*/%0123456789eE \n\t$@#;_aZ\x00\xff\xc3".to_vec()
        ),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    let pos = 0.0..1.0f64;
    prop_oneof![
        (pos.clone(), prop::collection::vec(interesting_byte(), 1..8))
            .prop_map(|(p, b)| Edit::Insert(p, b)),
        (pos.clone(), 1..16usize).prop_map(|(p, n)| Edit::Delete(p, n)),
        (pos.clone(), interesting_byte()).prop_map(|(p, b)| Edit::Replace(p, b)),
        (pos.clone(), 1..64usize, pos.clone()).prop_map(|(p, n, q)| Edit::Duplicate(p, n, q)),
        (0.0..1.0f64).prop_map(Edit::Truncate),
    ]
}

fn at(p: f64, len: usize) -> usize {
    ((p * len as f64) as usize).min(len)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Insert(p, b) => {
                let i = at(*p, len);
                bytes.splice(i..i, b.iter().copied());
            }
            Edit::Delete(p, n) => {
                let i = at(*p, len);
                let j = (i + n).min(len);
                bytes.drain(i..j);
            }
            Edit::Replace(p, b) => {
                if len > 0 {
                    let i = at(*p, len - 1);
                    bytes[i] = *b;
                }
            }
            Edit::Duplicate(p, n, q) => {
                let i = at(*p, len);
                let j = (i + n).min(len);
                let span = bytes[i..j].to_vec();
                let k = at(*q, len);
                bytes.splice(k..k, span);
            }
            Edit::Truncate(p) => {
                // Truncations near the end keep most of the structure.
                let keep = at(0.5 + p / 2.0, len);
                bytes.truncate(keep);
            }
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..6)
}

/// A JSON value that stresses the readers behind the syntax.
fn odd_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec![
            0i64,
            -1,
            1,
            i64::MAX,
            i64::MIN,
            i32::MAX as i64 + 1,
            253402300799,
        ])
        .prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![0.5f64, -0.0, 1e308, -1e308, 1e-308, 3.5e9])
            .prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "",
            " ",
            "null",
            "[]",
            "{}",
            "[\"a1\"]",
            "[1,2]",
            "[{\"message\":null}]",
            "[{\"message\":\"[dfcsync:close:\",\"createdTimeUtc\":\"x\"}]",
            "{\"alertProductNames\":\"Azure Security Center\"}",
            "{\"alertProductNames\":[1,null]}",
            "2026-11-27T10:00:00Z",
            "2026-02-30T25:61:61Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.9999999Z",
            "-262144-01-01T00:00:00Z",
            "1e999",
            "90d",
            "0s",
            "18446744073709551616d",
            "99999999999999999999m",
            "New",
            "Closed",
            "Resolved",
            "Dismissed",
            "InProgress",
            "Active",
            "SecurityIncident",
            "SecurityAlert",
            "Clock",
            "[dfcsync:close:0000000000000000]",
            "é\u{0}\u{feff}\u{10ffff}",
        ])
        .prop_map(|s| json!(s)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[A-Za-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum TreeEdit {
    /// Replaces the n-th node (pre-order, modulo the count) with a value.
    Set(usize, Value),
    /// Removes the n-th node from its parent.
    Remove(usize),
    /// Copies the n-th node in place of the m-th.
    Copy(usize, usize),
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    prop_oneof![
        3 => (any::<usize>(), odd_json()).prop_map(|(n, v)| TreeEdit::Set(n, v)),
        1 => any::<usize>().prop_map(TreeEdit::Remove),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(n, m)| TreeEdit::Copy(n, m)),
    ]
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// The n-th node in pre-order (n < count(v)).
fn nth(v: &mut Value, n: usize) -> &mut Value {
    if n == 0 {
        return v;
    }
    let mut n = n - 1;
    let children: Vec<&mut Value> = match v {
        Value::Array(a) => a.iter_mut().collect(),
        Value::Object(o) => o.values_mut().collect(),
        _ => unreachable!("n < count"),
    };
    for c in children {
        let k = count(c);
        if n < k {
            return nth(c, n);
        }
        n -= k;
    }
    unreachable!("n < count")
}

/// Removes the n-th node (n ≥ 1) from its parent.
fn remove_nth(v: &mut Value, n: usize) {
    let mut n = n - 1;
    match v {
        Value::Array(a) => {
            for i in 0..a.len() {
                let k = count(&a[i]);
                if n == 0 {
                    a.remove(i);
                    return;
                }
                if n < k {
                    return remove_nth(&mut a[i], n);
                }
                n -= k;
            }
        }
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for key in keys {
                let k = count(&o[&key]);
                if n == 0 {
                    o.remove(&key);
                    return;
                }
                if n < k {
                    return remove_nth(o.get_mut(&key).unwrap(), n);
                }
                n -= k;
            }
        }
        _ => {}
    }
}

fn apply_tree(mut v: Value, edits: &[TreeEdit]) -> Value {
    for e in edits {
        let total = count(&v);
        match e {
            TreeEdit::Set(n, x) => *nth(&mut v, n % total) = x.clone(),
            TreeEdit::Remove(n) => {
                if total > 1 {
                    remove_nth(&mut v, 1 + n % (total - 1));
                }
            }
            TreeEdit::Copy(n, m) => {
                let x = nth(&mut v, n % total).clone();
                // Bound the growth: a copy never makes the document more than twice as big.
                if count(&x) * 2 <= total.max(64) {
                    *nth(&mut v, m % total) = x;
                }
            }
        }
    }
    v
}

fn tree_edits() -> impl Strategy<Value = Vec<TreeEdit>> {
    prop::collection::vec(tree_edit(), 1..6)
}

// ---------------------------------------------------------------------------------------
// Seeds

/// A small Log Analytics response of the sync query's shape: `Table` plus the incident
/// and alert columns, dynamic values as JSON strings, and the clock row.
fn la_response() -> &'static Value {
    static SEED: OnceLock<Value> = OnceLock::new();
    SEED.get_or_init(|| {
        let mut columns = vec![
            json!({"name": "Table", "type": "string"}),
            json!({"name": WORKSPACE_COLUMN, "type": "string"}),
        ];
        let mut names: Vec<&str> = vec!["Table", WORKSPACE_COLUMN];
        for c in INCIDENT_COLUMNS.iter().chain(ALERT_COLUMNS) {
            if names.contains(c) {
                continue;
            }
            names.push(c);
            let ty = match *c {
                "TimeGenerated" | "CreatedTime" | "LastModifiedTime" => "datetime",
                "IncidentNumber" => "int",
                "Owner" | "AlertIds" | "AdditionalData" | "Comments" => "dynamic",
                _ => "string",
            };
            columns.push(json!({"name": c, "type": ty}));
        }
        let mut rows = Vec::new();
        let statuses = ["New", "InProgress", "Resolved", "Dismissed"];
        for i in 0..4 {
            let mut r: serde_json::Map<String, Value> = names.iter().map(|n| (n.to_string(), Value::Null)).collect();
            r["Table"] = json!("SecurityIncident");
            r["TimeGenerated"] = json!(format!("2026-11-27T10:0{i}:00.1234567Z"));
            r["IncidentName"] = json!(format!("4f9c0d5e-0000-0000-0000-00000000000{i}"));
            r["IncidentNumber"] = json!(i + 1);
            r["Title"] = json!(format!("Incident {i}"));
            r["Status"] = json!(if i == 3 { "Closed" } else { "New" });
            r["Classification"] = json!(if i == 3 { "TruePositive" } else { "" });
            r["ClassificationComment"] =
                json!(if i == 3 { "closed [dfcsync:close:0123456789abcdef]" } else { "" });
            r["Owner"] = json!("{\"objectId\":null,\"email\":null,\"assignedTo\":null,\"userPrincipalName\":null}");
            r["AlertIds"] = json!(format!("[\"alert-{i}\",\"alert-{i}b\"]"));
            r["AdditionalData"] =
                json!("{\"alertsCount\":2,\"alertProductNames\":[\"Azure Security Center\"]}");
            r.insert("ProviderName".into(), json!("Azure Sentinel"));
            r["CreatedTime"] = json!("2026-11-27T09:00:00Z");
            r["LastModifiedTime"] = json!(format!("2026-11-27T10:0{i}:00Z"));
            r["ModifiedBy"] = json!("Incident created from alert");
            r["Comments"] = json!("[{\"message\":\"hi [dfcsync:notice:00ff00ff00ff00ff]\",\"createdTimeUtc\":\"2026-11-27T10:00:00Z\",\"author\":{}}]");
            rows.push(r);
            for (k, suffix) in ["", "b"].iter().enumerate() {
                let mut a: serde_json::Map<String, Value> = names.iter().map(|n| (n.to_string(), Value::Null)).collect();
                a["Table"] = json!("SecurityAlert");
                a["TimeGenerated"] = json!(format!("2026-11-27T10:0{i}:3{k}Z"));
                a["SystemAlertId"] = json!(format!("alert-{i}{suffix}"));
                a["Status"] = json!(statuses[(i + k) % 4]);
                a["ProductName"] = json!("Azure Security Center");
                a["VendorOriginalId"] = json!(format!("vendor-{i}{suffix}"));
                a["DisplayName"] = json!(format!("Alert {i}{suffix}"));
                a["AlertLink"] = json!("https://portal.azure.com/#blade/x");
                rows.push(a);
            }
        }
        let mut clock: serde_json::Map<String, Value> = names.iter().map(|n| (n.to_string(), Value::Null)).collect();
        clock["Table"] = json!("Clock");
        clock["TimeGenerated"] = json!("2026-11-27T12:00:00Z");
        rows.push(clock);
        let rows: Vec<Value> = rows
            .into_iter()
            .map(|r| Value::Array(names.iter().map(|n| r[*n].clone()).collect()))
            .collect();
        json!({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]})
    })
}

/// The same rows as an array of objects (the other shape `read_rows` accepts).
fn la_objects() -> Value {
    let t = &la_response()["tables"][0];
    let names: Vec<&str> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    Value::Array(
        t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                Value::Object(
                    names
                        .iter()
                        .zip(r.as_array().unwrap())
                        .map(|(n, v)| (n.to_string(), v.clone()))
                        .collect(),
                )
            })
            .collect(),
    )
}

fn scenarios() -> &'static [Value] {
    static SEEDS: OnceLock<Vec<Value>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        let mut limits = proof_support::scenario(1, "0m", None).0["limits"].clone();
        limits["arm_writes"] = json!({"bucket": 20, "per_second": 20});
        vec![
            parse(include_str!("../../emulator/scenarios/demo.json")),
            parse(include_str!("../demo/scenario.json")),
            proof_support::scenario(12, "2m", None).0,
            proof_support::scenario(3, "0m", Some(limits)).0,
        ]
    })
}

const EXAMPLE_CONFIG: &str = include_str!("../../../dfcsync.example.toml");

fn configs() -> Vec<String> {
    let ws = "\n[[workspaces]]\nsubscription_id = \"00000000-0000-0000-0000-000000000001\"\n\
              resource_group = \"rg-sentinel\"\nname = \"law-sentinel\"\n";
    vec![
        EXAMPLE_CONFIG.to_owned(),
        format!("{EXAMPLE_CONFIG}{ws}"),
        format!(
            "[azure]\ncloud = \"custom\"\ntenant_id = \"72f988bf-0000-0000-0000-000000000001\"\n\
             tls_ca_file = \"/nonexistent/ca.pem\"\n\n[azure.endpoints]\n\
             authority = \"https://127.0.0.1:1\"\narm = \"https://127.0.0.1:1\"\n\
             arm_scope = \"https://management.azure.com/.default\"\n\
             log_analytics = \"https://127.0.0.1:1\"\n\
             log_analytics_scope = \"https://api.loganalytics.io/.default\"\n\n\
             [auth]\nmethod = \"client_secret\"\nclient_id = \"aaaaaaaa-0000-0000-0000-000000000001\"\n\
             client_secret_file = \"/nonexistent/secret\"\n\n\
             [policy]\nmax_age = \"90d\"\nreopen = \"own\"\n\n[sync]\nconcurrency = 8\n{ws}"
        ),
    ]
}

fn queries() -> Vec<String> {
    let mut q = vec![
        sync_query(&Policy::default()),
        "print x = 1 + 2, y = strcat('a', \"b\"), z = todynamic('[1,2]')[1]".to_owned(),
        "SecurityIncident | where Status == 'New' and TimeGenerated > ago(1d) | summarize n = count(), arg_max(TimeGenerated, *) by IncidentName | order by n desc | take 3".to_owned(),
        "SecurityAlert | extend d = parse_json(AlertLink) | mv-expand d | project SystemAlertId, d, s = tolower(Status)".to_owned(),
        "range x from 1 to 20 step 3 | extend y = x * 2, z = iff(x % 2 == 0, 'even', 'odd') | summarize make_list(y), dcount(z) by bin(x, 5)".to_owned(),
        "datatable(a:long, b:string, c:dynamic)[1, 'x', dynamic({\"k\": [1]}), 2, 'y', dynamic(null)] | extend k = c.k[0] | join kind=leftouter (datatable(a:long)[1]) on a".to_owned(),
        "let t = SecurityIncident | mv-expand AlertId = AlertIds to typeof(string) | distinct IncidentName, AlertId; t | join kind=inner (SecurityAlert) on $left.AlertId == $right.SystemAlertId | project-away AlertId".to_owned(),
        "union SecurityIncident, SecurityAlert | where isnotempty(Status) | extend t = bin(TimeGenerated, 1d) | summarize min(TimeGenerated), max(TimeGenerated) by t, Status".to_owned(),
        "SecurityIncident | where Title has 'x' or Title contains_cs \"Incident\" or Title matches regex '^I.*' | extend n = toint(IncidentNumber) / 0, r = 1.0 / 0, s = substring(Title, -1, 100) | project-rename T = Title".to_owned(),
    ];
    q.push("print a = datetime(2026-11-27) + 1d - 5m, b = timespan(1.02:03:04), c = tostring(pack_array('k', 1)), e = bag_keys(dynamic({\"k\": 1})), f = extract('([0-9]+)', 1, 'ab12'), g = coalesce('', 'x'), d = todynamic('[1]')[5]".to_owned());
    q
}

fn kql_db() -> &'static Database {
    static DB: OnceLock<Database> = OnceLock::new();
    DB.get_or_init(|| {
        let objects = la_objects();
        let mut incidents = Vec::new();
        let mut alerts = Vec::new();
        for row in objects.as_array().unwrap() {
            let mut o = row.as_object().unwrap().clone();
            let table = o.remove("Table").unwrap();
            let keep: &[&str] = if table == "SecurityIncident" {
                INCIDENT_COLUMNS
            } else if table == "SecurityAlert" {
                ALERT_COLUMNS
            } else {
                continue;
            };
            o.retain(|k, _| keep.contains(&k.as_str()) || k == WORKSPACE_COLUMN);
            // Dynamic columns as JSON values, as the service's types make them.
            for k in ["Owner", "AlertIds", "AdditionalData", "Comments"] {
                if let Some(Value::String(s)) = o.get(k) {
                    let parsed: Value = serde_json::from_str(s).unwrap();
                    o.insert(k.to_owned(), parsed);
                }
            }
            if table == "SecurityIncident" {
                incidents.push(Value::Object(o));
            } else {
                alerts.push(Value::Object(o));
            }
        }
        let mut db = Database::new();
        db.insert(
            "SecurityIncident",
            Table::from_json_objects(&Value::Array(incidents)).unwrap(),
        );
        db.insert(
            "SecurityAlert",
            Table::from_json_objects(&Value::Array(alerts)).unwrap(),
        );
        db
    })
}

fn kql_opts() -> QueryOptions {
    QueryOptions::new("2026-11-27T12:00:00Z".parse().unwrap())
}

/// The tokens of KQL, for queries that get past the lexer into the parser and binder.
fn kql_tokens() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "SecurityIncident",
        "SecurityAlert",
        "print",
        "range",
        "from",
        "to",
        "step",
        "let",
        "datatable",
        "union",
        "join",
        "kind",
        "=",
        "inner",
        "leftouter",
        "on",
        "$left",
        "$right",
        "where",
        "extend",
        "project",
        "project-away",
        "project-rename",
        "summarize",
        "by",
        "count()",
        "count",
        "dcount",
        "make_list",
        "make_set",
        "arg_max",
        "arg_min",
        "min",
        "max",
        "sum",
        "avg",
        "bin",
        "order",
        "sort",
        "asc",
        "desc",
        "take",
        "limit",
        "top",
        "distinct",
        "mv-expand",
        "typeof",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "|",
        ",",
        ";",
        ".",
        ":",
        "==",
        "!=",
        "=~",
        "!~",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "and",
        "or",
        "not",
        "in",
        "in~",
        "!in",
        "has",
        "contains",
        "startswith",
        "between",
        "..",
        "iff",
        "case",
        "isempty",
        "isnotempty",
        "isnull",
        "tostring",
        "toint",
        "tolong",
        "todouble",
        "todatetime",
        "totimespan",
        "pack_array",
        "bag_keys",
        "extract",
        "coalesce",
        "todynamic",
        "parse_json",
        "dynamic",
        "strcat",
        "strlen",
        "substring",
        "split",
        "ago",
        "now",
        "datetime",
        "timespan",
        "1d",
        "5m",
        "1.5",
        "0",
        "1",
        "-1",
        "9223372036854775807",
        "1e308",
        "'a'",
        "\"b\"",
        "@'c'",
        "true",
        "false",
        "null",
        "x",
        "y",
        "Status",
        "TimeGenerated",
        "IncidentName",
        "AlertIds",
        "*",
        "long",
        "string",
        "bool",
        "real",
        "dynamic",
        "//c\n",
        "\n",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|v| v.join(" "))
}

// ---------------------------------------------------------------------------------------
// Targets

/// With `FUZZ_LOG=FILE`, every input is appended to FILE (one JSON string a line, flushed)
/// before it is run: the last line names the input of a crash that proptest cannot catch
/// (a stack overflow aborts the process).
fn log_input(input: &str) {
    use std::io::Write;
    static LOG: OnceLock<Option<std::sync::Mutex<std::fs::File>>> = OnceLock::new();
    let log = LOG.get_or_init(|| {
        std::env::var_os("FUZZ_LOG").map(|p| {
            std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .expect("FUZZ_LOG file"),
            )
        })
    });
    if let Some(f) = log {
        let mut f = f.lock().unwrap();
        writeln!(f, "{}", Value::String(input.to_owned())).unwrap();
        f.flush().unwrap();
    }
}

fn check_kql(q: &str) {
    log_input(q);
    let _ = kql::run(q, kql_db(), &kql_opts());
    let _ = kql::run(q, &Database::new(), &kql_opts());
}

fn check_snapshot(bytes: &[u8]) {
    log_input(&String::from_utf8_lossy(bytes));
    let in_memory = build_snapshot_combined(bytes);
    // The answer in memory (a cycle) and from a reader (a file) read alike.
    let streamed = dfcsync::observe::build_snapshot_combined_from_reader(bytes);
    match (&in_memory, &streamed) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.incidents, b.incidents);
            assert_eq!(a.unreadable_incidents, b.unreadable_incidents);
            assert_eq!(a.alerts, b.alerts);
            assert_eq!(a.warnings, b.warnings);
            assert_eq!(a.server_now, b.server_now);
        }
        (Err(_), Err(_)) => {}
        _ => panic!("in memory {in_memory:?}, streamed {streamed:?}"),
    }
}

fn check_scenario(text: &str) {
    log_input(text);
    let _ = emulator::Scenario::from_json_str(text);
}

fn check_config(text: &str) {
    log_input(text);
    let _ = Config::parse(text, "<fuzz>");
}

#[test]
fn the_seeds_are_valid_inputs() {
    let snap = build_snapshot_combined(la_response().to_string().as_bytes()).unwrap();
    assert_eq!(snap.incidents.len(), 4, "{:?}", snap.warnings);
    assert!(snap.server_now.is_some());
    let snap = build_snapshot_combined(la_objects().to_string().as_bytes()).unwrap();
    assert_eq!(snap.incidents.len(), 4);
    check_snapshot(la_response().to_string().as_bytes());
    for s in scenarios() {
        emulator::Scenario::from_json_str(&s.to_string()).unwrap();
    }
    let configs = configs();
    Config::parse(&configs[1], "<seed>").unwrap();
    let bad: Vec<String> = queries()
        .iter()
        .filter_map(|q| {
            kql::run(q, kql_db(), &kql_opts())
                .err()
                .map(|e| format!("{q}: {e:?}"))
        })
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

proptest! {
    #![proptest_config(config())]

    // --- (a) KQL

    #[test]
    fn kql_arbitrary_text(q in ".{0,200}") {
        check_kql(&q);
    }

    #[test]
    fn kql_token_soup(q in kql_tokens()) {
        check_kql(&q);
    }

    #[test]
    fn kql_mutated_queries(i in any::<prop::sample::Index>(), e in edits()) {
        let qs = queries();
        let q = apply(qs[i.index(qs.len())].clone().into_bytes(), &e);
        check_kql(&String::from_utf8_lossy(&q));
    }

    // --- (b) Log Analytics responses

    #[test]
    fn snapshot_arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..512)) {
        check_snapshot(&b);
    }

    #[test]
    fn snapshot_mutated_bytes(objects in any::<bool>(), e in edits()) {
        let seed = if objects { la_objects() } else { la_response().clone() };
        check_snapshot(&apply(seed.to_string().into_bytes(), &e));
    }

    #[test]
    fn snapshot_mutated_values(objects in any::<bool>(), e in tree_edits()) {
        let seed = if objects { la_objects() } else { la_response().clone() };
        check_snapshot(apply_tree(seed, &e).to_string().as_bytes());
    }

    // --- (c) emulator scenarios

    #[test]
    fn scenario_arbitrary_text(s in ".{0,300}") {
        check_scenario(&s);
    }

    #[test]
    fn scenario_mutated_bytes(i in any::<prop::sample::Index>(), e in edits()) {
        let seeds = scenarios();
        let s = apply(seeds[i.index(seeds.len())].to_string().into_bytes(), &e);
        check_scenario(&String::from_utf8_lossy(&s));
    }

    #[test]
    fn scenario_mutated_values(i in any::<prop::sample::Index>(), e in tree_edits()) {
        let seeds = scenarios();
        check_scenario(&apply_tree(seeds[i.index(seeds.len())].clone(), &e).to_string());
    }

    // --- (d) configuration files

    #[test]
    fn config_arbitrary_text(s in ".{0,300}") {
        check_config(&s);
    }

    #[test]
    fn config_mutated_text(i in any::<prop::sample::Index>(), e in edits()) {
        let seeds = configs();
        let s = apply(seeds[i.index(seeds.len())].clone().into_bytes(), &e);
        check_config(&String::from_utf8_lossy(&s));
    }

    #[test]
    fn config_mutated_values(
        i in any::<prop::sample::Index>(),
        line in any::<prop::sample::Index>(),
        v in prop::sample::select(vec![
            "\"\"", "\"0s\"", "\"0d\"", "\"-1d\"", "\"18446744073709551615s\"",
            "\"99999999999999999999d\"", "\"1ns\"", "0", "-1", "18446744073709551615",
            "9223372036854775807", "1e400", "[]", "{}", "true", "\"x\"", "[1, \"a\"]",
            "\"{classification}{alerts}{\"", "\"{\"", "\"}\"", "\"{nope}\"", "\"\\u0000\"",
            "\"0.0.0.0:99999\"", "\"::1\"", "\"[::]:0\"",
        ]),
    ) {
        // Replaces the value of one `key = value` line by an odd one.
        let seeds = configs();
        let text = &seeds[i.index(seeds.len())];
        let lines: Vec<&str> = text.lines().collect();
        let keyed: Vec<usize> = (0..lines.len())
            .filter(|&k| !lines[k].starts_with('#') && lines[k].contains(" = "))
            .collect();
        let n = keyed[line.index(keyed.len())];
        let out: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(k, l)| match l.split_once(" = ") {
                Some((key, _)) if k == n => format!("{key} = {v}"),
                _ => (*l).to_owned(),
            })
            .collect();
        check_config(&out.join("\n"));
    }
}
