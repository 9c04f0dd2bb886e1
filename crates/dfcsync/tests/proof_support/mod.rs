//! Shared helpers of the proof harnesses (`chaos.rs`, `proof_*.rs`): a generator of
//! scenarios with many incidents in varied states (and what the engine must make of each),
//! running cycles to convergence, reading the emulator's final state as comparable values,
//! the invariant checks, and a TCP proxy that drops connections.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use dfcsync::azure::auth::AuthOptions;
use dfcsync::azure::http::{AzureHttp, HttpOptions};
use dfcsync::config::Config;
use dfcsync::connect::Connection;
use dfcsync::cycle::{CycleReport, Mode, Syncer, run_cycle};
use dfcsync::model::ActionKind;
use emulator::{Emulator, EmulatorHandle, Scenario, StartOptions};
use serde_json::{Value, json};

pub const SUB: &str = "00000000-0000-0000-0000-000000000001";
pub const DFC_SUB: &str = "00000000-0000-0000-0000-000000000002";
pub const NOW: &str = "2026-11-27T12:00:00Z";

/// The kinds of incident the generator makes, and the state the engine must leave each in
/// (status, classification, the actions of its marks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One alert, New: nothing to do.
    New,
    /// One alert InProgress: activate.
    InProgress,
    /// One alert Resolved: close TruePositive.
    Resolved,
    /// One alert Dismissed: close BenignPositive.
    Dismissed,
    /// Resolved + Dismissed: close once, TruePositive.
    Mixed,
    /// InProgress + Resolved on a New incident: activate.
    Busy,
    /// New + Resolved: nothing.
    HalfDone,
    /// Alert resolved, then an analyst set the incident Active: a notice, no close.
    Noticed,
    /// Closed by an analyst as a false positive: left alone.
    AnalystClosed,
    /// Analyst set it Active, then the alert went InProgress: nothing (Active + Working).
    ActiveWorking,
    /// Three alerts, all Dismissed: close BenignPositive.
    AllDismissed,
    /// Analyst set it Active, later the alert was dismissed: close BenignPositive.
    ActiveThenDismissed,
}

pub const KINDS: [Kind; 12] = [
    Kind::New,
    Kind::InProgress,
    Kind::Resolved,
    Kind::Dismissed,
    Kind::Mixed,
    Kind::Busy,
    Kind::HalfDone,
    Kind::Noticed,
    Kind::AnalystClosed,
    Kind::ActiveWorking,
    Kind::AllDismissed,
    Kind::ActiveThenDismissed,
];

/// What one incident must end as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub status: &'static str,
    pub classification: Option<&'static str>,
    pub marks: BTreeSet<&'static str>,
}

impl Kind {
    pub fn expect(self) -> Expect {
        let (status, classification, marks): (_, _, &[&str]) = match self {
            Kind::New | Kind::HalfDone => ("New", None, &[]),
            Kind::InProgress | Kind::Busy => ("Active", None, &["activate"]),
            Kind::Resolved | Kind::Mixed => ("Closed", Some("TruePositive"), &["close"]),
            Kind::Dismissed | Kind::AllDismissed | Kind::ActiveThenDismissed => {
                ("Closed", Some("BenignPositive"), &["close"])
            }
            Kind::Noticed => ("Active", None, &["notice"]),
            Kind::AnalystClosed => ("Closed", Some("FalsePositive"), &[]),
            Kind::ActiveWorking => ("Active", None, &[]),
        };
        Expect {
            status,
            classification,
            marks: marks.iter().copied().collect(),
        }
    }
}

/// A scenario of `n` incidents (kinds in turn, so every kind is present), one workspace,
/// ARM and Log Analytics limits raised out of the way unless `limits` says otherwise.
/// Returns the scenario and the kind of each incident by its first alert's handle.
pub fn scenario(n: usize, ingestion_delay: &str, limits: Option<Value>) -> (Value, Vec<Kind>) {
    scenario_in(n, ingestion_delay, limits, 1)
}

/// The name and workspace id of the `k`-th workspace of [`scenario_in`] (the first is the
/// one of [`scenario`]).
pub fn workspace(k: usize) -> (String, String) {
    if k == 0 {
        (
            "law-sentinel".into(),
            "11111111-2222-3333-4444-555555555555".into(),
        )
    } else {
        (
            format!("law-{k}"),
            format!("{k:08x}-2222-3333-4444-555555555555"),
        )
    }
}

/// [`scenario`] over `workspaces` workspaces in the same resource group, incident `i` in
/// workspace `i % workspaces`.
pub fn scenario_in(
    n: usize,
    ingestion_delay: &str,
    limits: Option<Value>,
    workspaces: usize,
) -> (Value, Vec<Kind>) {
    let workspaces = workspaces.max(1);
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let mut events: Vec<(DateTime<Utc>, usize, Value)> = Vec::new();
    let mut kinds = Vec::with_capacity(n);
    let mut seq = 0usize;
    let mut push = |t: DateTime<Utc>, e: Value, events: &mut Vec<(DateTime<Utc>, usize, Value)>| {
        seq += 1;
        events.push((t, seq, e));
    };
    for i in 0..n {
        let kind = KINDS[i % KINDS.len()];
        kinds.push(kind);
        // Incidents 20 s apart, the oldest about 60 h ago (well inside max_age).
        let t0 = now - TimeDelta::hours(60) + TimeDelta::seconds(20 * i as i64);
        let at = |s: i64| t0 + TimeDelta::seconds(s);
        let h = format!("I{i}");
        let extra = |k: usize| format!("I{i}x{k}");
        push(
            at(0),
            json!({"do": "new_alert", "workspace": workspace(i % workspaces).0, "alert": h,
                   "subscription_id": DFC_SUB, "resource_group": "rg-app", "location": "westeurope",
                   "display_name": format!("Chaos alert {i} ({kind:?})"), "severity": "Medium"}),
            &mut events,
        );
        let status = |a: &str, s: &str| json!({"do": "alert_status", "alert": a, "status": s, "by": "owner@contoso.com"});
        let add = |a: &str| json!({"do": "incident_add_alert", "incident": h, "alert": a, "by": "analyst@contoso.com"});
        let incident = |s: &str| json!({"do": "incident_status", "incident": h, "status": s, "by": "analyst@contoso.com"});
        match kind {
            Kind::New => {}
            Kind::InProgress => push(at(5), status(&h, "InProgress"), &mut events),
            Kind::Resolved => push(at(5), status(&h, "Resolved"), &mut events),
            Kind::Dismissed => push(at(5), status(&h, "Dismissed"), &mut events),
            Kind::Mixed => {
                push(at(2), add(&extra(1)), &mut events);
                push(at(5), status(&h, "Resolved"), &mut events);
                push(at(6), status(&extra(1), "Dismissed"), &mut events);
            }
            Kind::Busy => {
                push(at(2), add(&extra(1)), &mut events);
                push(at(5), status(&h, "InProgress"), &mut events);
                push(at(6), status(&extra(1), "Resolved"), &mut events);
            }
            Kind::HalfDone => {
                push(at(2), add(&extra(1)), &mut events);
                push(at(6), status(&extra(1), "Resolved"), &mut events);
            }
            Kind::Noticed => {
                push(at(5), status(&h, "Resolved"), &mut events);
                push(at(9), incident("Active"), &mut events);
            }
            Kind::AnalystClosed => push(
                at(5),
                json!({"do": "incident_status", "incident": h, "status": "Closed",
                       "classification": "FalsePositive", "classification_reason": "IncorrectAlertLogic",
                       "classification_comment": "not a threat", "by": "analyst@contoso.com"}),
                &mut events,
            ),
            Kind::ActiveWorking => {
                push(at(3), incident("Active"), &mut events);
                push(at(7), status(&h, "InProgress"), &mut events);
            }
            Kind::AllDismissed => {
                push(at(1), add(&extra(1)), &mut events);
                push(at(2), add(&extra(2)), &mut events);
                push(at(5), status(&h, "Dismissed"), &mut events);
                push(at(6), status(&extra(1), "Dismissed"), &mut events);
                push(at(7), status(&extra(2), "Dismissed"), &mut events);
            }
            Kind::ActiveThenDismissed => {
                push(at(3), incident("Active"), &mut events);
                push(at(8), status(&h, "Dismissed"), &mut events);
            }
        }
    }
    events.sort_by_key(|(t, s, _)| (*t, *s));
    let events: Vec<Value> = events
        .into_iter()
        .map(|(t, _, mut e)| {
            e["at"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            e
        })
        .collect();
    let s = scenario_of(
        events,
        workspaces,
        ingestion_delay,
        limits.unwrap_or_else(out_of_the_way),
    );
    (s, kinds)
}

/// ARM and Log Analytics limits raised out of the way.
pub fn out_of_the_way() -> Value {
    let big = json!({"bucket": 1_000_000, "per_second": 1_000_000});
    json!({"arm_reads": big, "arm_writes": big, "la_requests_per_30s": 1_000_000,
           "default_page_size": 1000})
}

/// A scenario of these events over `workspaces` workspaces ([`workspace`]) in one resource
/// group, with the `dfcsync` principal (Sentinel Responder on the group), an analyst and a
/// subscription owner.
pub fn scenario_of(
    events: Vec<Value>,
    workspaces: usize,
    ingestion_delay: &str,
    limits: Value,
) -> Value {
    json!({
        "now": NOW,
        "seed": "dfcsync-proof",
        "tenant_id": "72f988bf-0000-0000-0000-000000000001",
        "limits": limits,
        "workspaces": (0..workspaces.max(1)).map(|k| {
            let (name, id) = workspace(k);
            json!({ "name": name, "subscription_id": SUB, "resource_group": "rg-sentinel",
              "customer_id": id, "location": "westeurope",
              "incident_creation": true, "bidirectional_sync": true,
              "ingestion_delay": ingestion_delay })
        }).collect::<Vec<_>>(),
        "principals": [
            { "name": "dfcsync", "kind": "service_principal",
              "client_id": "aaaaaaaa-0000-0000-0000-000000000001", "secret": "proof-secret",
              "object_id": "bbbbbbbb-0000-0000-0000-000000000001",
              "roles": [ { "role": "Microsoft Sentinel Responder",
                           "scope": format!("/subscriptions/{SUB}/resourceGroups/rg-sentinel") } ] },
            { "name": "analyst@contoso.com", "kind": "user", "object_id": "cccccccc-0000-0000-0000-000000000001",
              "roles": [ { "role": "Microsoft Sentinel Responder", "scope": format!("/subscriptions/{SUB}") } ] },
            { "name": "owner@contoso.com", "kind": "user", "object_id": "cccccccc-0000-0000-0000-000000000002",
              "roles": [ { "role": "Security Admin", "scope": format!("/subscriptions/{DFC_SUB}") } ] }
        ],
        "events": events
    })
}

/// Short waits for tests: retries in milliseconds, `Retry-After` up to 3 s.
pub fn fast() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(20),
        max_retries: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(3),
        access_retries: 2,
        access_retry_delay: Duration::from_millis(20),
        ..HttpOptions::default()
    }
}

pub async fn start(scenario: &Value) -> EmulatorHandle {
    let s = Scenario::from_json_str(&scenario.to_string()).expect("scenario");
    Emulator::start(s, StartOptions::default())
        .await
        .expect("emulator")
}

/// The configuration the emulator prints, its endpoints moved to `base` (a proxy) when
/// given, and `extra` TOML appended.
pub fn config_text(emu: &EmulatorHandle, base: Option<&str>, extra: &str) -> String {
    let mut text = emu.config_toml();
    if let Some(b) = base {
        text = text.replace(&format!("\"{}\"", emu.base_url()), &format!("\"{b}\""));
    }
    text.push_str(extra);
    text
}

pub async fn connect(config: &Config, http: HttpOptions) -> Connection {
    Connection::open_with(config, AuthOptions::isolated(), http)
        .await
        .expect("connection")
}

/// A client for the control API.
pub fn control(conn: &Connection, emu: &EmulatorHandle) -> reqwest::Client {
    AzureHttp::builder(&conn.cloud)
        .ca_pem(emu.ca_pem().as_bytes())
        .build()
        .expect("control client")
        .reqwest_client()
        .clone()
}

pub async fn post(ctl: &reqwest::Client, emu: &EmulatorHandle, path: &str, body: Value) {
    let r = ctl
        .post(format!("{}{path}", emu.base_url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("control call");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status} {text}");
}

pub async fn delete(ctl: &reqwest::Client, emu: &EmulatorHandle, path: &str) {
    let r = ctl
        .delete(format!("{}{path}", emu.base_url()))
        .send()
        .await
        .expect("control call");
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

/// The emulator's request log (`GET /_emulator/requests`): one entry per request, oldest
/// first.
pub async fn request_log(ctl: &reqwest::Client, emu: &EmulatorHandle) -> Vec<Value> {
    let text = ctl
        .get(format!("{}/_emulator/requests", emu.base_url()))
        .send()
        .await
        .expect("the request log")
        .text()
        .await
        .expect("the request log's body");
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(entries)) => entries,
        other => panic!("the request log is not an array: {other:?}"),
    }
}

/// Puts a proof scenario in the Defender portal: Defender XDR on (every incident also an XDR
/// incident), the dfcsync principal's Graph roles, and Graph's request limit out of the way.
pub fn on_graph(s: &mut Value) {
    s["defender_xdr"] = json!(true);
    for w in s["workspaces"].as_array_mut().unwrap() {
        w["defender_portal"] = json!(true);
    }
    for p in s["principals"].as_array_mut().unwrap() {
        if p["name"] == "dfcsync" {
            p["graph_permissions"] =
                json!(["SecurityIncident.ReadWrite.All", "SecurityAlert.Read.All"]);
        }
    }
    if !s["limits"].is_object() {
        s["limits"] = json!({});
    }
    s["limits"]["graph_requests_per_minute"] = json!(1_000_000);
}

/// ARM reads of incidents among `entries` of the request log: (list pages, single GETs).
pub fn incident_reads<'a>(entries: impl IntoIterator<Item = &'a Value>) -> (u64, u64) {
    let mut out = (0, 0);
    for e in entries
        .into_iter()
        .filter(|e| e["service"] == "arm" && e["method"] == "GET")
    {
        let path = e["path"].as_str().unwrap_or_default();
        if path.ends_with("/incidents") {
            out.0 += 1;
        } else if path
            .rsplit_once("/incidents/")
            .is_some_and(|(_, name)| !name.contains('/'))
        {
            out.1 += 1;
        }
    }
    out
}

/// Every action a cycle planned: (incident name, kind).
pub fn planned(report: &CycleReport) -> Vec<(String, ActionKind)> {
    report
        .workspaces
        .iter()
        .filter_map(|w| w.plan.as_ref())
        .flat_map(|p| p.actions.iter().map(|a| (a.incident.to_string(), a.kind)))
        .collect()
}

/// Runs sync cycles until one succeeds and plans nothing; panics after `max` cycles.
/// Returns the reports.
///
/// With `wait` (a control client and the emulator), the emulator's clock moves on by that
/// much before each cycle, so that a workspace's ingestion delay has passed.
pub async fn converge(
    conn: &Connection,
    config: &Config,
    max: usize,
    wait: Option<(&reqwest::Client, &EmulatorHandle, &str)>,
) -> Vec<CycleReport> {
    converge_with(None, conn, config, max, wait).await
}

/// [`converge`] with the cycles of `syncer` when given (the change feed between its
/// resyncs), else a fresh whole read each cycle.
pub async fn converge_with(
    mut syncer: Option<&mut Syncer>,
    conn: &Connection,
    config: &Config,
    max: usize,
    wait: Option<(&reqwest::Client, &EmulatorHandle, &str)>,
) -> Vec<CycleReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut reports = Vec::new();
    for _ in 0..max {
        if let Some((ctl, emu, by)) = wait {
            post(ctl, emu, "/_emulator/clock", json!({ "advance": by })).await;
        }
        let r = match syncer.as_deref_mut() {
            Some(s) => s.cycle(conn, config, Mode::Sync, &stop, &|_, _| {}).await,
            None => run_cycle(conn, config, Mode::Sync, &stop, &|_, _| {}).await,
        };
        let done = r.succeeded() && !r.has_actions();
        reports.push(r);
        if done {
            return reports;
        }
    }
    let last = reports.last().unwrap();
    let outcomes: Vec<String> = last
        .workspaces
        .iter()
        .filter_map(|w| w.act.as_ref())
        .flat_map(|a| a.outcomes.iter())
        .take(5)
        .map(|o| format!("#{} {} {:?}", o.incident_number, o.kind, o.result))
        .collect();
    panic!(
        "no convergence after {max} cycles; last: errors {:?}, actions {}, outcomes {outcomes:?}",
        last.workspaces
            .iter()
            .map(|w| w.error.clone())
            .collect::<Vec<_>>(),
        planned(last).len()
    );
}

/// The marks (`action:fingerprint`) in a text.
pub fn marks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(p) = rest.find("[dfcsync:") {
        let after = &rest[p + 9..];
        match after.find(']') {
            Some(end) => {
                out.push(after[..end].to_owned());
                rest = &after[end..];
            }
            None => break,
        }
    }
    out
}

/// What we compare of one incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub status: String,
    pub classification: String,
    pub classification_reason: String,
    /// The marks of its comments (`action:fingerprint`).
    pub comment_marks: BTreeSet<String>,
    /// The mark at the end of its classification comment, if any.
    pub close_mark: Option<String>,
}

/// Incidents by number, as comparable views.
pub fn views(state: &Value) -> BTreeMap<i64, View> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    state["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let comment_marks = i["comments"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|c| marks(c["message"].as_str().unwrap_or("")))
                .collect();
            (
                i["number"].as_i64().unwrap(),
                View {
                    status: s(&i["status"]),
                    classification: s(&i["classification"]),
                    classification_reason: s(&i["classification_reason"]),
                    comment_marks,
                    close_mark: marks(i["classification_comment"].as_str().unwrap_or("")).pop(),
                },
            )
        })
        .collect()
}

/// Panics on an incident with two comments carrying the same mark.
pub fn assert_no_duplicate_comments(state: &Value) {
    for i in state["incidents"].as_array().unwrap() {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for c in i["comments"].as_array().unwrap() {
            for m in marks(c["message"].as_str().unwrap_or("")) {
                *seen.entry(m).or_default() += 1;
            }
        }
        let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            dup.is_empty(),
            "incident #{} has duplicate comments: {dup:?}",
            i["number"]
        );
    }
}

/// The DfC status of every alert by `SystemAlertId`.
pub fn alert_status(state: &Value) -> HashMap<String, String> {
    state["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["system_alert_id"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The alert ids of every incident by name.
pub fn incident_alerts(state: &Value) -> HashMap<String, Vec<String>> {
    state["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["alert_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

pub fn terminal(status: &str) -> bool {
    matches!(status, "Resolved" | "Dismissed")
}

/// Panics when a plan closes an incident one of whose alerts is open in `truth` (the DfC
/// statuses before the run: nothing but the tool's own closes changes them during a run).
pub fn assert_no_close_of_open(
    reports: &[CycleReport],
    truth: &HashMap<String, String>,
    alerts_of: &HashMap<String, Vec<String>>,
) {
    for r in reports {
        for (incident, kind) in planned(r) {
            if kind != ActionKind::Close {
                continue;
            }
            for id in &alerts_of[&incident] {
                let st = truth.get(id).map_or("missing", String::as_str);
                assert!(
                    terminal(st),
                    "a plan closes {incident} while its alert {id} is {st}"
                );
            }
        }
    }
}

/// Panics when a Closed incident in the final state has an alert that is not finished.
pub fn assert_closed_alerts_finished(state: &Value) {
    let st = alert_status(state);
    for i in state["incidents"].as_array().unwrap() {
        if i["status"] != "Closed" {
            continue;
        }
        for id in i["alert_ids"].as_array().unwrap() {
            let s = st
                .get(id.as_str().unwrap())
                .map_or("missing", String::as_str);
            assert!(
                terminal(s),
                "incident #{} is Closed, alert {id} is {s}",
                i["number"]
            );
        }
    }
}

/// Checks the fault-free result against what each kind must end as.
pub fn assert_expected(views: &BTreeMap<i64, View>, kinds: &[Kind]) {
    assert_eq!(views.len(), kinds.len(), "one incident per generated story");
    // Incident numbers follow creation order, which is the generator's order.
    for ((number, v), kind) in views.iter().zip(kinds) {
        assert_kind(&format!("#{number}"), *kind, v);
    }
}

/// Checks one incident's end state against what its kind must end as.
pub fn assert_kind(label: &str, kind: Kind, v: &View) {
    let e = kind.expect();
    let actions: BTreeSet<&str> = v
        .comment_marks
        .iter()
        .map(|m| m.split(':').next().unwrap())
        .collect();
    assert_eq!(v.status, e.status, "{label} {kind:?}: {v:?}");
    assert_eq!(
        v.classification,
        e.classification.unwrap_or(""),
        "{label} {kind:?}: {v:?}"
    );
    assert_eq!(actions, e.marks, "{label} {kind:?}: {v:?}");
    if e.marks.contains("close") {
        let cm = v.close_mark.as_deref().unwrap_or("");
        assert!(
            v.comment_marks.contains(cm),
            "{label}: the close mark {cm:?} and the audit comment's differ: {v:?}"
        );
    }
}

/// Incidents by the generator's story number (`I{i}`, the handle of their first alert),
/// with their workspace: for scenarios over several workspaces, where incident numbers
/// repeat.
pub fn views_by_story(state: &Value) -> BTreeMap<usize, (String, View)> {
    let by_number = |ws: &str, n: i64| -> Option<View> {
        let one = json!({"incidents": state["incidents"]
            .as_array()?
            .iter()
            .filter(|i| i["workspace"] == ws && i["number"] == n)
            .cloned()
            .collect::<Vec<_>>()});
        views(&one).remove(&n)
    };
    let handle_of: HashMap<&str, usize> = state["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            let story = a["key"].as_str()?.strip_prefix('I')?.parse().ok()?;
            Some((a["system_alert_id"].as_str()?, story))
        })
        .collect();
    state["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| {
            let first = i["alert_ids"].as_array()?.first()?.as_str()?;
            let story = *handle_of.get(first)?;
            let ws = i["workspace"].as_str()?.to_owned();
            let view = by_number(&ws, i["number"].as_i64()?)?;
            Some((story, (ws, view)))
        })
        .collect()
}

/// A TCP proxy in front of the emulator that, while `dropping` is on, cuts connections:
/// a share (`probability`) at once, every other one after relaying a random number of the
/// server's bytes (so a request may have been carried out with its answer lost, and every
/// request in flight on an HTTP/2 connection fails together).
pub struct Proxy {
    pub url: String,
    pub dropping: Arc<AtomicBool>,
    pub cut: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(target: &str, probability: f64, seed: u64) -> Proxy {
        let target = target
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let dropping = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(AtomicU64::new(0));
        let (d, c) = (dropping.clone(), cut.clone());
        let task = tokio::spawn(async move {
            let rng = std::sync::Mutex::new(fastrand::Rng::with_seed(seed));
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (drop_now, budget) = {
                    let mut r = rng.lock().unwrap();
                    let on = d.load(Ordering::Relaxed);
                    // Log-uniform between 2 KB and 8 MB: small answers and whole query results
                    // are cut alike.
                    let budget = (2_000f64 * 4_000f64.powf(r.f64())) as usize;
                    (on && r.f64() < probability, on.then_some(budget))
                };
                if drop_now {
                    c.fetch_add(1, Ordering::Relaxed);
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    pipe(client, server, budget, c).await;
                });
            }
        });
        Proxy {
            url,
            dropping,
            cut,
            task,
        }
    }
}

async fn pipe(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    budget: Option<usize>,
    cut: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    };
    let down = async {
        let mut left = budget.unwrap_or(usize::MAX);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if n >= left {
                let _ = cw.write_all(&buf[..left]).await;
                cut.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            left -= n;
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
        false
    };
    tokio::pin!(up);
    tokio::pin!(down);
    tokio::select! {
        _ = &mut up => {
            // The client finished sending; keep relaying the answer.
            (&mut down).await;
        }
        _ = &mut down => {}
    }
}
