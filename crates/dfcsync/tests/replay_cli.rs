//! `dfcsync replay` end to end: the real binary on exported rows, its JSON contract, its
//! exit codes, and its answers to bad input.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use support::{ANALYST, World};

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn replay(incidents: &Path, alerts: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dfcsync"))
        .arg("replay")
        .arg("--incidents")
        .arg(incidents)
        .arg("--alerts")
        .arg(alerts)
        .args(["--now", "2026-11-27T12:00:00Z"])
        .args(extra)
        .env_remove("DFCSYNC_CONFIG")
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Incident 1 closes (resolved), 2 activates (in progress), 3 is held (missing alert),
/// 4 needs nothing.
fn mixed_world() -> World {
    let mut w = World::new();
    for id in ["a1", "a2", "a4"] {
        w.alert(id, "New", -180);
    }
    w.incident(1, &["a1"], -179);
    w.incident(2, &["a2"], -179);
    w.incident(3, &["a-gone"], -179);
    w.incident(4, &["a4"], -179);
    w.alert("a1", "Resolved", -60)
        .alert("a2", "InProgress", -50);
    w
}

#[test]
fn json_output_is_the_contract() {
    let w = mixed_world();
    let f = Files::new();
    let out = replay(
        &f.write("i.json", &w.incidents_json()),
        &f.write("a.json", &w.alerts_json()),
        &["--output", "json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    assert_eq!(v["now"], "2026-11-27T12:00:00Z");
    let actions = v["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    let close = &actions[0];
    assert_eq!(close["incident"], "00000000-0000-4000-8000-000000000001");
    assert_eq!(close["incident_number"], 1);
    assert_eq!(close["action"], "close");
    assert_eq!(close["classification"], "TruePositive");
    assert_eq!(close["classification_reason"], "SuspiciousActivity");
    let fp = close["fingerprint"].as_str().unwrap();
    assert!(
        fp.len() == 16
            && fp
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert!(!close["why"].as_str().unwrap().is_empty());
    assert_eq!(close["mark"], format!("[dfcsync:close:{fp}]"));
    assert_eq!(actions[1]["action"], "activate");
    assert_eq!(actions[1]["incident_number"], 2);
    assert_eq!(actions[1]["classification"], Value::Null);
    assert_eq!(
        v["held"],
        json!([{"incident": "00000000-0000-4000-8000-000000000003", "incident_number": 3, "kind": "missing_alert",
                "reason": "alert a-gone has no row in SecurityAlert (never act on an alert we cannot see)"}])
    );
}

#[test]
fn the_fingerprint_matches_the_documented_formula() {
    // Computed outside the engine: sha256("a1=Resolved@2026-11-27T11:00:00Z"), first 16 hex.
    let mut w = World::new();
    w.alert("a1", "New", -180);
    w.incident(1, &["a1"], -179);
    w.alerts.push(support::AlertRow {
        id: "a1".into(),
        status: "Resolved".into(),
        time: w.t(-60) + chrono::TimeDelta::milliseconds(730),
        product: support::DFC.into(),
    });
    let f = Files::new();
    let out = replay(
        &f.write("i.json", &w.incidents_json()),
        &f.write("a.json", &w.alerts_json()),
        &["--output", "json"],
    );
    let v = stdout_json(&out);
    assert_eq!(v["actions"][0]["fingerprint"], "52caf46650f8f9b1");
}

#[test]
fn detailed_exitcode_says_whether_there_is_anything_to_do() {
    let f = Files::new();
    let w = mixed_world();
    let (i, a) = (
        f.write("i.json", &w.incidents_json()),
        f.write("a.json", &w.alerts_json()),
    );
    assert_eq!(
        replay(&i, &a, &["--detailed-exitcode"]).status.code(),
        Some(2)
    );
    assert_eq!(replay(&i, &a, &[]).status.code(), Some(0));
    let mut quiet = World::new();
    quiet.alert("a1", "New", -60);
    quiet.incident(1, &["a1"], -59);
    let (i, a) = (
        f.write("qi.json", &quiet.incidents_json()),
        f.write("qa.json", &quiet.alerts_json()),
    );
    assert_eq!(
        replay(&i, &a, &["--detailed-exitcode"]).status.code(),
        Some(0)
    );
}

#[test]
fn table_output_for_people() {
    let f = Files::new();
    let w = mixed_world();
    let out = replay(
        &f.write("i.json", &w.incidents_json()),
        &f.write("a.json", &w.alerts_json()),
        &[],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("2 action(s)"), "{text}");
    assert!(
        text.contains("close") && text.contains("TruePositive / SuspiciousActivity"),
        "{text}"
    );
    assert!(text.contains("1 incident(s) held"), "{text}");
    assert!(text.contains("a-gone"), "{text}");
}

/// The rows as `az monitor log-analytics query` prints them: objects with string values.
fn as_az_objects(la: &str) -> String {
    let v: Value = serde_json::from_str(la).unwrap();
    let t = &v["tables"][0];
    let names: Vec<&str> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let rows: Vec<Value> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let obj: serde_json::Map<String, Value> = names
                .iter()
                .zip(r.as_array().unwrap())
                .map(|(n, c)| {
                    let s = match c {
                        Value::Number(n) => Value::String(n.to_string()),
                        other => other.clone(),
                    };
                    (n.to_string(), s)
                })
                .collect();
            Value::Object(obj)
        })
        .collect();
    Value::Array(rows).to_string()
}

#[test]
fn az_cli_row_objects_give_the_same_plan() {
    let f = Files::new();
    let w = mixed_world();
    let la = replay(
        &f.write("i.json", &w.incidents_json()),
        &f.write("a.json", &w.alerts_json()),
        &["--output", "json"],
    );
    let az = replay(
        &f.write("ai.json", &as_az_objects(&w.incidents_json())),
        &f.write("aa.json", &as_az_objects(&w.alerts_json())),
        &["--output", "json"],
    );
    assert!(
        az.status.success(),
        "{}",
        String::from_utf8_lossy(&az.stderr)
    );
    assert_eq!(stdout_json(&la), stdout_json(&az));
}

#[test]
fn bad_files_are_clear_errors() {
    let f = Files::new();
    let w = mixed_world();
    let good_alerts = f.write("a.json", &w.alerts_json());
    let cases = [
        (
            "{\"tables\": [",
            "i.json",
            "SecurityIncident rows: not valid JSON",
        ),
        ("{\"foo\": 1}", "i.json", "the document holds no table"),
        (
            &w.alerts_json(),
            "i.json",
            "SecurityIncident rows: none of the",
        ),
    ];
    for (text, name, want) in cases {
        let out = replay(&f.write(name, text), &good_alerts, &[]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}\n  wanted: {want}");
        assert!(err.contains("i.json"), "names the file: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = replay(&f.dir.path().join("nope.json"), &good_alerts, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
}

#[test]
fn bad_rows_hold_what_they_touch_and_the_rest_carries_on() {
    let f = Files::new();
    let w = mixed_world();
    // Break incident 2's timestamp and alert a4's dynamic-free Status; incident 1 still closes.
    let mut inc: Value = serde_json::from_str(&w.incidents_json()).unwrap();
    let cols: Vec<String> = inc["tables"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    let lm = cols.iter().position(|c| c == "LastModifiedTime").unwrap();
    let num = cols.iter().position(|c| c == "IncidentNumber").unwrap();
    for row in inc["tables"][0]["rows"].as_array_mut().unwrap() {
        if row[num] == 2 {
            row[lm] = json!("last tuesday");
        }
    }
    let mut al: Value = serde_json::from_str(&w.alerts_json()).unwrap();
    for row in al["tables"][0]["rows"].as_array_mut().unwrap() {
        if row[7] == "a4" {
            row[0] = json!(12345);
        }
    }
    let out = replay(
        &f.write("i.json", &inc.to_string()),
        &f.write("a.json", &al.to_string()),
        &["--output", "json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    let actions: Vec<(i64, &str)> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["incident_number"].as_i64().unwrap(),
                a["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(actions, vec![(1, "close")]);
    let held: Vec<(i64, String)> = v["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["incident_number"].as_i64().unwrap(),
                h["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(held.len(), 3, "{held:?}");
    assert_eq!(held[0].0, 2);
    assert!(
        held[0]
            .1
            .contains("SecurityIncident.LastModifiedTime: not an RFC 3339"),
        "{}",
        held[0].1
    );
    assert_eq!(held[1].0, 3);
    assert_eq!(held[2].0, 4);
    assert!(
        held[2]
            .1
            .contains("alert a4: unreadable row: SecurityAlert.TimeGenerated"),
        "{}",
        held[2].1
    );
}

#[test]
fn config_errors_stop_before_anything_runs() {
    let f = Files::new();
    let w = mixed_world();
    let cfg = f.write(
        "dfcsync.toml",
        "[policy.resolved]\nclassification = \"BenignPositive\"\nreason = \"SuspiciousActivity\"\n",
    );
    let out = replay(
        &f.write("i.json", &w.incidents_json()),
        &f.write("a.json", &w.alerts_json()),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dfcsync.toml: key policy.resolved: classification BenignPositive cannot have reason SuspiciousActivity"), "{err}");
}

#[test]
fn policy_from_the_config_is_applied() {
    let f = Files::new();
    let mut w = World::new();
    w.alert("a1", "New", -180);
    w.incident(1, &["a1"], -179);
    w.alert("a1", "Resolved", -60);
    w.set_status(0, "Active", -30, ANALYST);
    let (i, a) = (
        f.write("i.json", &w.incidents_json()),
        f.write("a.json", &w.alerts_json()),
    );
    let kind = |extra: &[&str]| stdout_json(&replay(&i, &a, extra))["actions"][0]["action"].clone();
    assert_eq!(kind(&["--output", "json"]), "notice");
    let cfg = f.write("c.toml", "[policy]\nrespect_manual_changes = false\n");
    assert_eq!(
        kind(&["--output", "json", "--config", cfg.to_str().unwrap()]),
        "close"
    );
}
