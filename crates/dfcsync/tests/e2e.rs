//! dfcsync end to end against the emulator: the real connection, query, engine and writes,
//! checked in the emulator's state and request log.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{Value, json};

use dfcsync::cycle::{CycleReport, Mode, run_cycle};

const DEMO: &str = include_str!("../demo/scenario.json");

mod emulator_env;
use emulator_env::Env;

impl Env {
    async fn cycle(&self, mode: Mode) -> CycleReport {
        let stop = Arc::new(AtomicBool::new(false));
        run_cycle(&self.conn, &self.config, mode, &stop, &|_, _| {}).await
    }

    /// The incident created for the alert with this scenario handle.
    fn incident(&self, key: &str) -> Value {
        let state = self.emu.state();
        let sysid = state["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .unwrap_or_else(|| panic!("alert {key}"))["system_alert_id"]
            .clone();
        state["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["alert_ids"].as_array().unwrap().contains(&sysid))
            .unwrap_or_else(|| panic!("incident of {key}"))
            .clone()
    }
}

fn writes(requests: &[Value]) -> usize {
    requests
        .iter()
        .filter(|r| {
            let path = r["path"].as_str().unwrap_or("");
            (r["method"] == "PUT"
                || (r["method"] == "POST" && path.contains("/Microsoft.Security/")))
                && path.starts_with("/subscriptions/")
        })
        .count()
}

fn marks(incident: &Value) -> Vec<String> {
    incident["comments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| {
            dfcsync::model::Mark::find_all(c["message"].as_str().unwrap_or(""))
                .into_iter()
                .map(|m| m.to_string())
        })
        .collect()
}

fn status(i: &Value) -> (String, String) {
    (
        i["status"].as_str().unwrap_or("").to_owned(),
        i["classification"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_does_what_semantics_says_and_a_second_writes_nothing() {
    let env = Env::start(DEMO, "").await;
    let report = env.cycle(Mode::Sync).await;
    assert!(
        report.succeeded(),
        "{}",
        dfcsync::report::cycle_table(&report)
    );
    let s = |k: &str| status(&env.incident(k));
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    // The six rows of the behaviour table.
    assert_eq!(s("new"), pair("New", ""), "a new alert: nothing to do");
    assert_eq!(
        s("progress"),
        pair("Active", ""),
        "in progress in DfC: Active"
    );
    assert_eq!(s("dismissed"), pair("Closed", "BenignPositive"));
    assert_eq!(s("resolved"), pair("Closed", "TruePositive"));
    assert_eq!(
        s("analyst-active"),
        pair("Active", ""),
        "left as the analyst set it"
    );
    assert_eq!(
        s("analyst-closed"),
        pair("Closed", "FalsePositive"),
        "left as the analyst closed it"
    );
    // Where dfcsync differs from the original query.
    assert_eq!(
        s("mixed-1"),
        pair("Closed", "TruePositive"),
        "1: Resolved + Dismissed close once as TruePositive"
    );
    assert_eq!(
        s("busy-1"),
        pair("Active", ""),
        "4: InProgress + Resolved activates"
    );
    assert_eq!(
        s("old"),
        pair("Closed", "TruePositive"),
        "6: an incident untouched for 40 days is seen"
    );
    assert_eq!(
        s("noticed"),
        pair("Active", ""),
        "a person acted after the alert: the status stays"
    );
    assert_eq!(marks(&env.incident("noticed")).len(), 1, "one notice");
    let state = env.emu.state();
    let held = state["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["number"] == 900)
        .unwrap();
    assert_eq!(
        status(held),
        pair("New", ""),
        "2: an alert missing from SecurityAlert holds the incident"
    );
    let plan = report.workspaces[0].plan.as_ref().unwrap();
    assert_eq!(plan.held.len(), 1);
    assert_eq!(plan.held[0].incident_number, Some(900));
    // Every action left exactly one mark, in one comment; the close carries it in its
    // classification comment too.
    let resolved = env.incident("resolved");
    assert_eq!(marks(&resolved).len(), 1);
    assert!(
        resolved["classification_comment"]
            .as_str()
            .unwrap()
            .ends_with(&marks(&resolved)[0])
    );

    // No write met a 409 of the tool's own making: an activate writes its comment first (which
    // gives the incident a new ETag in the emulator) and reads the incident again before the
    // status PUT.
    let conflicts: Vec<Value> = env
        .requests()
        .await
        .into_iter()
        .filter(|r| r["status"] == 409)
        .collect();
    assert!(conflicts.is_empty(), "{conflicts:?}");

    // Nothing new: the second cycle writes nothing.
    let before = writes(&env.requests().await);
    let again = env.cycle(Mode::Sync).await;
    assert!(again.succeeded());
    assert!(
        !again.has_actions(),
        "{}",
        dfcsync::report::cycle_table(&again)
    );
    assert_eq!(
        writes(&env.requests().await),
        before,
        "a second sync with nothing new makes no write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_changes_nothing() {
    let env = Env::start(DEMO, "").await;
    let before = env.emu.state()["incidents"].clone();
    let report = env.cycle(Mode::Plan).await;
    assert!(report.has_actions());
    assert_eq!(writes(&env.requests().await), 0);
    assert_eq!(env.emu.state()["incidents"], before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_reopen_is_not_fought_over_three_cycles() {
    let env = Env::start(DEMO, "").await;
    env.cycle(Mode::Sync).await;
    assert_eq!(status(&env.incident("resolved")).0, "Closed");
    env.control(
        "events",
        json!({"events": [{"do": "incident_status", "incident": "resolved", "status": "Active", "by": "analyst@contoso.com"}]}),
    )
    .await;
    let writes_before = writes(&env.requests().await);
    for _ in 0..3 {
        env.control("clock", json!({"advance": "10m"})).await;
        let r = env.cycle(Mode::Sync).await;
        assert!(r.succeeded(), "{}", dfcsync::report::cycle_table(&r));
        assert_eq!(status(&env.incident("resolved")).0, "Active");
    }
    assert_eq!(writes(&env.requests().await), writes_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_read_again_decided_again_and_written() {
    let env = Env::start(DEMO, "").await;
    let name = env.incident("resolved")["name"]
        .as_str()
        .unwrap()
        .to_owned();
    env.control("faults", json!({"conflict": format!("/incidents/{name}$")}))
        .await;
    let report = env.cycle(Mode::Sync).await;
    assert!(
        report.succeeded(),
        "{}",
        dfcsync::report::cycle_table(&report)
    );
    let outcome = report.workspaces[0]
        .act
        .as_ref()
        .unwrap()
        .outcomes
        .iter()
        .find(|o| o.incident == name)
        .unwrap()
        .clone();
    assert_eq!(outcome.conflicts, 1, "{outcome:?}");
    assert_eq!(outcome.result, dfcsync::act::ActionResult::Applied);
    assert_eq!(
        status(&env.incident("resolved")),
        ("Closed".into(), "TruePositive".into())
    );
    let puts: Vec<Value> = env
        .requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "PUT" && r["path"].as_str().unwrap().ends_with(&name))
        .collect();
    assert_eq!(
        puts.iter()
            .map(|r| r["status"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![409, 200]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_waits_for_retry_after() {
    let env = Env::start(DEMO, "").await;
    env.control(
        "faults",
        json!({"method": "PUT", "path": "/incidents/[^/]+$", "status": 429, "times": 2, "retry_after": "1s"}),
    )
    .await;
    let report = env.cycle(Mode::Sync).await;
    assert!(
        report.succeeded(),
        "{}",
        dfcsync::report::cycle_table(&report)
    );
    assert_eq!(report.throttle_waits, 2, "each 429 waited for Retry-After");
    assert!(report.throttle_wait >= Duration::from_secs(2));
    let throttled = env
        .requests()
        .await
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert_eq!(throttled, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_role_assignment_fails_clearly_then_works() {
    let mut scenario: Value = serde_json::from_str(DEMO).unwrap();
    scenario["principals"][0]["propagation_delay"] = json!("5m");
    let env = Env::start(&scenario.to_string(), "").await;
    let first = env.cycle(Mode::Sync).await;
    assert!(!first.succeeded());
    let error = first.workspaces[0].error.clone().unwrap();
    assert!(error.contains("Microsoft Sentinel Responder"), "{error}");
    assert!(error.contains("several minutes"), "{error}");
    env.control("clock", json!({"advance": "6m"})).await;
    let second = env.cycle(Mode::Sync).await;
    assert!(
        second.succeeded(),
        "{}",
        dfcsync::report::cycle_table(&second)
    );
    assert_eq!(status(&env.incident("resolved")).0, "Closed");
}

/// Two workspaces, each with one incident whose alert was resolved.
fn two_workspaces(writeback_role: bool) -> String {
    let mut s: Value = serde_json::from_str(DEMO).unwrap();
    let mut ws2 = s["workspaces"][0].clone();
    ws2["name"] = json!("law-second");
    ws2["customer_id"] = json!("22222222-2222-3333-4444-555555555555");
    // The health table lives in one workspace: a DCR's immutable id is unique.
    if let Some(ws2) = ws2.as_object_mut() {
        ws2.remove("dcr");
    }
    s["workspaces"].as_array_mut().unwrap().push(ws2);
    if writeback_role {
        s["principals"][0]["roles"].as_array_mut().unwrap().push(
            json!({"role": "Security Admin", "scope": "/subscriptions/00000000-0000-0000-0000-000000000002"}),
        );
    }
    let sub = "00000000-0000-0000-0000-000000000002";
    let mut events = vec![
        json!({"at": "-3h", "do": "new_alert", "workspace": "law-sentinel", "alert": "w1", "subscription_id": sub, "resource_group": "rg-app", "location": "westeurope", "display_name": "One"}),
        json!({"at": "-1h", "do": "alert_status", "alert": "w1", "status": "Resolved", "by": "owner@contoso.com"}),
        json!({"at": "-3h", "do": "new_alert", "workspace": "law-second", "alert": "w2", "subscription_id": sub, "resource_group": "rg-app", "location": "westeurope", "display_name": "Two"}),
        json!({"at": "-1h", "do": "alert_status", "alert": "w2", "status": "Resolved", "by": "owner@contoso.com"}),
        // A person takes an incident whose alert is still New: writeback's case.
        json!({"at": "-3h", "do": "new_alert", "workspace": "law-second", "alert": "taken", "subscription_id": sub, "resource_group": "rg-app", "location": "westeurope", "display_name": "Taken"}),
        json!({"at": "-30m", "do": "incident_status", "incident": "taken", "status": "Active", "by": "analyst@contoso.com"}),
    ];
    s["events"] = Value::Array(std::mem::take(&mut events));
    s.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workspaces_in_one_run_with_writeback_off() {
    let env = Env::start(&two_workspaces(true), "").await;
    assert_eq!(env.config.file.workspaces.len(), 2);
    let r = env.cycle(Mode::Sync).await;
    assert!(r.succeeded(), "{}", dfcsync::report::cycle_table(&r));
    assert_eq!(status(&env.incident("w1")).0, "Closed");
    assert_eq!(status(&env.incident("w2")).0, "Closed");
    let state = env.emu.state();
    let taken = state["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "taken")
        .unwrap();
    assert_eq!(
        taken["status"], "Active",
        "writeback is off by default: DfC is not touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writeback_sets_the_dfc_alert_in_progress() {
    let env = Env::start(&two_workspaces(true), "").await;
    let mut config = env.config.clone();
    config.policy.writeback = true;
    let stop = Arc::new(AtomicBool::new(false));
    let r = run_cycle(&env.conn, &config, Mode::Sync, &stop, &|_, _| {}).await;
    assert!(r.succeeded(), "{}", dfcsync::report::cycle_table(&r));
    let state = env.emu.state();
    let taken = state["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "taken")
        .unwrap();
    assert_eq!(taken["status"], "InProgress");
    assert_eq!(marks(&env.incident("taken")).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writeback_without_security_admin_is_reported_once_and_the_rest_carries_on() {
    let env = Env::start(&two_workspaces(false), "").await;
    let mut config = env.config.clone();
    config.policy.writeback = true;
    let stop = Arc::new(AtomicBool::new(false));
    let r = run_cycle(&env.conn, &config, Mode::Sync, &stop, &|_, _| {}).await;
    let missing: Vec<String> = r
        .workspaces
        .iter()
        .flat_map(|w| w.act.iter().flat_map(|a| a.missing_roles.clone()))
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("Security Admin"));
    assert_eq!(
        status(&env.incident("w1")).0,
        "Closed",
        "the closes still happen"
    );
    assert_eq!(status(&env.incident("w2")).0, "Closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_each_missing_role() {
    use dfcsync::doctor::{Verdict, azure_checks, passed};
    // All roles there, writeback on.
    let env = Env::start(&two_workspaces(true), "").await;
    let mut config = env.config.clone();
    config.policy.writeback = true;
    let checks = azure_checks(&env.conn, &config).await;
    assert!(passed(&checks), "{}", dfcsync::doctor::table(&checks));
    // No Security Admin: the writeback check names it.
    let env = Env::start(&two_workspaces(false), "").await;
    let checks = azure_checks(&env.conn, &config).await;
    let dfc = checks.iter().find(|c| c.name.contains("Defender")).unwrap();
    assert_eq!(
        dfc.verdict,
        Verdict::Fail,
        "{}",
        dfcsync::doctor::table(&checks)
    );
    assert!(dfc.fix.as_deref().unwrap().contains("Security Admin"));
    // No Sentinel Responder: the workspace check names it.
    let mut s: Value = serde_json::from_str(&two_workspaces(true)).unwrap();
    s["principals"][0]["roles"] = json!([]);
    let env = Env::start(&s.to_string(), "").await;
    let checks = azure_checks(&env.conn, &env.config).await;
    let failed: Vec<_> = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .collect();
    assert!(!failed.is_empty(), "{}", dfcsync::doctor::table(&checks));
    assert!(
        failed[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("Microsoft Sentinel Responder"),
        "{}",
        dfcsync::doctor::table(&checks)
    );
    // Reader only: reading works, the write probe names the Responder role.
    s["principals"][0]["roles"] = json!([{"role": "Microsoft Sentinel Reader", "scope": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-sentinel"}]);
    let env = Env::start(&s.to_string(), "").await;
    let checks = azure_checks(&env.conn, &env.config).await;
    let write = checks
        .iter()
        .find(|c| c.name.starts_with("incident write"))
        .unwrap();
    assert_eq!(
        write.verdict,
        Verdict::Fail,
        "{}",
        dfcsync::doctor::table(&checks)
    );
    assert!(
        write
            .fix
            .as_deref()
            .unwrap()
            .contains("Microsoft Sentinel Responder")
    );
}

#[test]
fn the_readme_demo_command_runs() {
    // The README's first command, as `cargo run --release -- demo` runs it (the binary).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dfcsync"))
        .arg("demo")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("== Incidents before"), "{text}");
    assert!(
        text.contains("sync: 2 activate applied, 4 close applied, 1 notice applied; 1 held"),
        "{text}"
    );
    assert!(
        text.contains("== dfcsync sync, again\nsync: nothing to do"),
        "{text}"
    );
    // The workbook's tables, from the rows the demo wrote to DfcSync_CL: the actions by kind
    // with their counts, and the held incident.
    let workbook = text
        .split("== The workbook (what dfcsync did")
        .nth(1)
        .expect("the workbook's tables");
    for (action, n) in [("activate", 2), ("close", 4), ("notice", 1)] {
        assert!(
            workbook.lines().any(|l| l.contains(&format!(" {action} "))
                && l.trim_end_matches(['│', ' ']).ends_with(&format!(" {n}"))),
            "{action} {n} in {workbook}"
        );
    }
    assert!(workbook.contains("missing_alert"), "{workbook}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_service_says_expired_is_renewed() {
    // The emulator's clock moves two hours on: every cached token is expired by the
    // service's clock, while the local clock says it is fresh.
    let env = Env::start(DEMO, "").await;
    assert!(env.cycle(Mode::Plan).await.succeeded());
    env.control("clock", json!({"advance": "2h"})).await;
    let r = env.cycle(Mode::Plan).await;
    assert!(r.succeeded(), "{}", dfcsync::report::cycle_table(&r));
    let expired = env
        .requests()
        .await
        .iter()
        .filter(|x| x["status"] == 401)
        .count();
    assert!(expired >= 1, "the service refused the old token first");
}

/// The JSON report of `sync --output json` as the former code built it (a `Value`, its
/// objects' keys in alphabetical order): the streamed form must write the same bytes.
fn cycle_json_as_a_value(report: &CycleReport) -> Value {
    let workspaces: Vec<Value> = report
        .workspaces
        .iter()
        .map(|w| {
            let outcome = |o: &dfcsync::act::ActionOutcome, repair: bool| {
                json!({
                    "incident": o.incident,
                    "incident_number": o.incident_number,
                    "action": if repair { "repair" } else { o.kind.as_str() },
                    "fingerprint": o.fingerprint,
                    "result": o.result.label(),
                    "detail": o.result.detail(),
                    "conflicts": o.conflicts,
                })
            };
            let outcomes: Vec<Value> = w
                .act
                .iter()
                .flat_map(|a| {
                    a.outcomes
                        .iter()
                        .map(|o| outcome(o, false))
                        .chain(a.repairs.iter().map(|o| outcome(o, true)))
                })
                .collect();
            json!({
                "workspace": w.workspace,
                "error": w.error,
                "warnings": w.warnings,
                "incidents_in_scope_rows": w.incidents_seen,
                "plan": w.plan.as_ref().map(dfcsync::report::plan_json),
                "results": outcomes,
                "missing_roles": w.act.as_ref().map(|a| a.missing_roles.clone()).unwrap_or_default(),
                "etag_reads": w.act.as_ref().map(|a| json!({"gets": a.etag_reads.gets, "list_pages": a.etag_reads.list_pages, "lists": a.etag_reads.lists})).unwrap_or(json!({"gets": 0, "list_pages": 0, "lists": 0})),
            })
        })
        .collect();
    let requests: Vec<Value> = report
        .requests
        .iter()
        .map(|(s, st, n)| json!({"service": s, "status": st, "count": n}))
        .collect();
    json!({
        "started": report.started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "duration_ms": report.duration.as_millis() as u64,
        "mode": match report.mode { Mode::Plan => "plan", Mode::Sync => "sync" },
        "succeeded": report.succeeded(),
        "stopped": report.stopped,
        "workspaces": workspaces,
        "azure_requests": requests,
        "retries": report.retries,
        "log_analytics": {
            "whole_reads": report.whole_reads,
            "change_reads": report.change_reads,
            "queries": report.reads.queries,
            "bytes": report.reads.bytes,
            "rows": report.reads.rows,
            "partitions": report.reads.partitions,
            "answers_refused_as_too_large": report.reads.refused,
            "candidates": report.reads.candidates,
        },
        "throttle_waits": report.throttle_waits,
        "throttle_wait_ms": report.throttle_wait.as_millis() as u64,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streamed_json_report_is_the_former_report_byte_for_byte() {
    let env = Env::start(&two_workspaces(true), "").await;
    let report = env.cycle(Mode::Sync).await;
    assert!(report.has_actions());
    let streamed = serde_json::to_string_pretty(&dfcsync::report::CycleJson(&report)).unwrap();
    let former = serde_json::to_string_pretty(&cycle_json_as_a_value(&report)).unwrap();
    assert_eq!(streamed, former);
}
