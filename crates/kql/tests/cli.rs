//! The `kql` binary: tables from files, the query from a file or `--query`, the result as a
//! Log Analytics response, errors as the service's error body with exit status 1.

mod common;

use std::process::Command;

fn kql() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kql"))
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kql-cli-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn runs_the_seed_query_over_exported_files() {
    let dir = tmpdir("seed");
    let db = common::seed_data::seed_db();
    let mut args = Vec::new();
    for name in ["SecurityIncident", "SecurityAlert"] {
        let t = db.get(name).expect("table");
        let p = dir.join(format!("{name}.json"));
        std::fs::write(&p, kql::response_json(std::slice::from_ref(t)).to_string()).expect("write");
        args.push("--table".to_string());
        args.push(format!("{name}={}", p.display()));
    }
    let qf = dir.join("q.kql");
    std::fs::write(&qf, include_str!("data/seed-query.kql")).expect("write");
    let out = kql()
        .args(&args)
        .args(["--now", "2026-11-27T12:00:00Z"])
        .arg(&qf)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let t = kql::Table::from_log_analytics_json(&v).expect("a response");
    assert_eq!(t.name, "PrimaryResult");
    let direct = common::run_db(&db, include_str!("data/seed-query.kql"));
    let key = |t: &kql::Table| {
        let mut r: Vec<String> = t.rows.iter().map(|r| format!("{r:?}")).collect();
        r.sort();
        r
    };
    assert_eq!(key(&t), key(&direct));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_object_files_and_query_text() {
    let dir = tmpdir("objects");
    let p = dir.join("t.json");
    std::fs::write(&p, r#"[{"b": "x", "a": 1}, {"b": "y", "a": 2.5}]"#).expect("write");
    let out = kql()
        .args([
            "--table",
            &format!("T={}", p.display()),
            "--query",
            "T | project b, a",
        ])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["tables"][0]["columns"][1]["type"], "real");
    assert_eq!(
        v["tables"][0]["rows"],
        serde_json::json!([["x", 1], ["y", 2.5]])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_exit_with_the_service_error_body() {
    let out = kql()
        .args(["--query", "print x = "])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["error"]["code"], "BadArgumentError");
    assert_eq!(v["error"]["innererror"]["code"], "SyntaxError");
    let out = kql()
        .args(["--table", "T=/nonexistent/file.json", "--query", "T"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.json"));
}

#[test]
fn help_reads_like_a_manual() {
    let out = kql().arg("--help").output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--table",
        "--now",
        "--query",
        "QUERYFILE",
        "Log Analytics",
        "Examples",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}");
    }
}
