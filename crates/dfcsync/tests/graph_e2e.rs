//! dfcsync's Graph backend end to end against the emulator's Microsoft Graph: the client
//! (paging, filters, the `Prefer` header, errors, 429), and the backend's cycles (the demo's
//! stories in a tenant without Sentinel, with and without XDR's roll-up, a concurrent
//! analyst edit, token expiry), checked in the emulator's state and request log.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::{Value, json};

use dfcsync::azure::AzureError;
use dfcsync::azure::auth::AuthOptions;
use dfcsync::azure::graph::{GraphClient, IncidentUpdate};
use dfcsync::config::Config;
use dfcsync::connect::Connection;
use dfcsync::cycle::{CycleReport, Mode, ReadMode, Syncer, run_cycle};

const DEMO: &str = include_str!("../demo/scenario.json");
const XDR_DEMO: &str = include_str!("../demo/scenario_xdr.json");

/// The demo's stories in a tenant with Defender XDR and no Sentinel
/// (`demo/scenario_xdr.json`, what `dfcsync demo --backend graph` runs): every alert without
/// a workspace, the analysts' Sentinel edits made in XDR instead, the rows-only incident and
/// the alerts added to incidents in Sentinel dropped. `dfcsync` holds the two Graph
/// application roles.
fn xdr_tenant(f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(XDR_DEMO).unwrap();
    f(&mut v);
    v.to_string()
}

mod emulator_env;
use emulator_env::{Env, fast_http};

impl Env {
    /// `Env::start` with the Graph backend.
    async fn start_graph(scenario: &str, extra_config: &str) -> Env {
        Env::start(
            scenario,
            &format!("[sync]\nbackend = \"graph\"\n{extra_config}"),
        )
        .await
    }

    fn graph(&self) -> &GraphClient {
        self.conn.graph.as_ref().expect("a Graph client")
    }

    /// The Graph requests of the log, as `METHOD path status`.
    async fn graph_requests(&self) -> Vec<String> {
        self.requests()
            .await
            .iter()
            .filter(|r| r["service"] == "graph")
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["method"].as_str().unwrap_or(""),
                    r["path"].as_str().unwrap_or(""),
                    r["status"]
                )
            })
            .collect()
    }

    fn xdr_incidents(&self) -> Vec<Value> {
        self.emu.state()["xdr_incidents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn the_client_pages_filters_and_writes() {
    // 60 more alerts, each its own incident: more than one page of 50.
    let scenario = xdr_tenant(|v| {
        let events = v["events"].as_array_mut().unwrap();
        for i in 0..60 {
            events.push(
                json!({"at": "-3h", "do": "new_alert", "alert": format!("bulk-{i}"),
                "subscription_id": "00000000-0000-0000-0000-000000000002",
                "resource_group": "rg-app", "location": "westeurope",
                "display_name": format!("Bulk alert {i}"), "severity": "Low"}),
            );
        }
    });
    let env = Env::start_graph(&scenario, "").await;
    let g = env.graph();
    let all = g.list_incidents(None).await.unwrap();
    let expected = env.xdr_incidents().len();
    assert!(expected > 60, "{expected}");
    assert_eq!(all.value.len(), expected, "every page followed");
    let server_now = all.server_now.expect("the Date header");
    let platform_now =
        chrono::DateTime::parse_from_rfc3339(env.emu.state()["now"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    assert!(
        (platform_now - server_now).num_seconds().abs() <= 2,
        "the Date header is the service's clock: {server_now} vs {platform_now}"
    );
    let mut sorted = all.value.clone();
    sorted
        .sort_by(|a, b| (&a.last_update_date_time, &a.id).cmp(&(&b.last_update_date_time, &b.id)));
    assert_eq!(sorted, all.value, "sorted on the client");
    let log = env.graph_requests().await;
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("GET /v1.0/security/incidents "))
            .count(),
        expected.div_ceil(50),
        "{log:?}"
    );
    // A filter on the time of the last update.
    let since = server_now - chrono::TimeDelta::minutes(100);
    let recent = g
        .list_incidents(Some(&format!(
            "lastUpdateDateTime ge {}",
            dfcsync::azure::graph::odata_time(since)
        )))
        .await
        .unwrap();
    assert!(!recent.value.is_empty() && recent.value.len() < expected);
    assert!(recent.value.iter().all(|i| {
        chrono::DateTime::parse_from_rfc3339(&i.last_update_date_time).unwrap() >= since
    }));
    // DfC alerts changed since: serviceSource is readable (the Prefer header).
    let changed = g.dfc_alerts_updated_since(since).await.unwrap();
    assert!(!changed.value.is_empty());
    assert!(
        changed
            .value
            .iter()
            .all(|a| a.service_source.as_deref() == Some("microsoftDefenderForCloud"))
    );
    // Get, alerts, PATCH, comment.
    let id = &all.value[0].id;
    let one = g.get_incident(id).await.unwrap();
    assert_eq!(&one.value.id, id);
    let alerts = g.incident_alerts(id).await.unwrap();
    assert!(!alerts.is_empty());
    let written = g
        .update_incident(
            id,
            &IncidentUpdate {
                status: Some("inProgress".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(written.status, "inProgress");
    let comments = g
        .post_comment(id, "hello [dfcsync:notice:0]")
        .await
        .unwrap();
    assert!(comments.iter().any(|c| c.comment.contains("hello")));
    assert_eq!(
        env.conn.stats.total(dfcsync::azure::error::Service::Graph) as usize,
        log.len() + 6,
        "requests counted under the service graph"
    );
}

#[tokio::test]
async fn graph_errors_name_the_missing_role_and_429_waits_retry_after() {
    let scenario = xdr_tenant(|v| {
        v["principals"][0]["graph_permissions"] = json!(["SecurityIncident.Read.All"]);
    });
    let env = Env::start_graph(&scenario, "").await;
    let g = env.graph();
    let id = g.list_incidents(None).await.unwrap().value[0].id.clone();
    let e = g
        .update_incident(
            &id,
            &IncidentUpdate {
                status: Some("inProgress".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, AzureError::Forbidden { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("SecurityIncident.ReadWrite.All") && text.contains("appRoleAssignments"),
        "{text}"
    );
    // A 429 with Retry-After: waited, then answered.
    env.control(
        "faults",
        json!({"method": "GET", "path": "/security/incidents$", "status": 429, "times": 1, "retry_after": "1s"}),
    )
    .await;
    let started = std::time::Instant::now();
    g.list_incidents(None).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    assert!(
        env.graph_requests()
            .await
            .iter()
            .any(|l| l == "GET /v1.0/security/incidents 429")
    );
}

impl Env {
    async fn cycle(&self, mode: Mode) -> CycleReport {
        let stop = Arc::new(AtomicBool::new(false));
        run_cycle(&self.conn, &self.config, mode, &stop, &|_, _| {}).await
    }

    /// The XDR incident of the alert with this scenario handle.
    fn incident(&self, key: &str) -> Value {
        let st = self.emu.state();
        let alert = st["xdr_alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["alert"] == key)
            .unwrap_or_else(|| panic!("no XDR alert {key}"))
            .clone();
        let id = alert["incidentId"].clone();
        st["xdr_incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("no XDR incident of {key}"))
            .clone()
    }

    async fn event(&self, e: Value) {
        self.control("events", json!({ "events": [e] })).await;
    }
}

/// `(status, classification)` of an XDR incident.
fn status(i: &Value) -> (String, String) {
    (
        i["status"].as_str().unwrap_or("").to_owned(),
        i["classification"].as_str().unwrap_or("").to_owned(),
    )
}

/// The marks on an XDR incident's comments, in order.
fn marks(i: &Value) -> Vec<String> {
    i["comments"]
        .as_array()
        .map(|c| {
            c.iter()
                .flat_map(|c| {
                    dfcsync::model::Mark::find_all(c["comment"].as_str().unwrap_or(""))
                        .into_iter()
                        .map(|m| m.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

/// Every cycle succeeded; the last planned nothing; no incident carries a mark twice.
async fn sync_to_rest(env: &Env) -> Vec<CycleReport> {
    let mut reports = Vec::new();
    for _ in 0..4 {
        let r = env.cycle(Mode::Sync).await;
        assert!(r.succeeded(), "{}", dfcsync::report::cycle_table(&r));
        let rest = !r.has_actions();
        reports.push(r);
        if rest {
            break;
        }
    }
    assert!(
        !reports.last().unwrap().has_actions(),
        "a fixed point within four cycles"
    );
    for i in env.xdr_incidents() {
        let m = marks(&i);
        let unique: std::collections::BTreeSet<&String> = m.iter().collect();
        assert_eq!(unique.len(), m.len(), "no duplicate comment: {i}");
    }
    reports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_stories_in_a_tenant_without_sentinel() {
    let env = Env::start_graph(&xdr_tenant(|_| {}), "").await;
    assert!(env.config.file.workspaces.is_empty());
    let reports = sync_to_rest(&env).await;
    let first = &reports[0];
    assert_eq!(first.workspaces.len(), 1);
    assert!(
        first
            .requests
            .iter()
            .all(|(s, _, _)| s == "graph" || s == "token"),
        "{:?}",
        first.requests
    );
    let s = |k: &str| status(&env.incident(k));
    assert_eq!(
        s("new"),
        pair("active", "unknown"),
        "a new alert: nothing to do"
    );
    assert_eq!(s("progress").0, "inProgress", "in progress in DfC: Active");
    assert_eq!(
        s("dismissed"),
        pair("resolved", "informationalExpectedActivity")
    );
    assert_eq!(s("resolved"), pair("resolved", "truePositive"));
    assert_eq!(
        s("analyst-active").0,
        "inProgress",
        "left as the analyst set it"
    );
    assert!(marks(&env.incident("analyst-active")).is_empty());
    assert_eq!(
        s("analyst-closed"),
        pair("resolved", "falsePositive"),
        "left as the analyst closed it"
    );
    assert!(marks(&env.incident("analyst-closed")).is_empty());
    assert_eq!(s("mixed-1"), pair("resolved", "truePositive"));
    assert_eq!(s("busy-1").0, "inProgress");
    assert_eq!(s("old"), pair("resolved", "truePositive"));
    assert_eq!(
        s("noticed").0,
        "inProgress",
        "a person acted after the alert"
    );
    let noticed = marks(&env.incident("noticed"));
    assert_eq!(noticed.len(), 1);
    assert!(noticed[0].starts_with("[dfcsync:notice:"), "{noticed:?}");
    let closed = marks(&env.incident("resolved"));
    assert_eq!(closed.len(), 1);
    assert!(closed[0].starts_with("[dfcsync:close:"), "{closed:?}");
    // The Graph request counts are in the report, under the service graph.
    assert!(
        first
            .requests
            .iter()
            .any(|(s, st, n)| s == "graph" && *st == 200 && *n > 0)
    );
    // And in the metrics.
    let metrics = dfcsync::metrics::Metrics::new();
    metrics.record(first);
    let text = metrics.render();
    assert!(
        text.lines()
            .any(|l| l.contains("azure_requests") && l.contains("service=\"graph\"")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_xdr_rolling_incidents_up_the_end_state_is_the_same() {
    let env = Env::start_graph(
        &xdr_tenant(|v| v["xdr_incident_follows_alerts"] = json!(true)),
        "",
    )
    .await;
    sync_to_rest(&env).await;
    let s = |k: &str| status(&env.incident(k)).0;
    for (k, want) in [
        ("new", "active"),
        ("progress", "inProgress"),
        ("dismissed", "resolved"),
        ("resolved", "resolved"),
        ("analyst-active", "inProgress"),
        ("analyst-closed", "resolved"),
        ("mixed-1", "resolved"),
        ("busy-1", "inProgress"),
        ("old", "resolved"),
        ("noticed", "inProgress"),
    ] {
        assert_eq!(s(k), want, "{k}");
    }
    // XDR closed them itself: dfcsync leaves a close that is not its own.
    assert!(marks(&env.incident("resolved")).is_empty());
    assert_eq!(
        env.incident("resolved")["lastModifiedBy"],
        "Microsoft Defender XDR"
    );
    assert_eq!(marks(&env.incident("noticed")).len(), 1, "one notice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_edit_between_read_and_patch_is_decided_again() {
    let env = Env::start_graph(&xdr_tenant(|_| {}), "").await;
    let g = env.graph();
    let read = dfcsync::backend::graph::source::read_whole(g, env.config.policy.max_age)
        .await
        .unwrap();
    let plan =
        dfcsync::decide::decide(&read.snapshot, &env.config.policy, read.server_now.unwrap());
    let id = env.incident("resolved")["id"].as_str().unwrap().to_owned();
    assert!(
        plan.actions
            .iter()
            .any(|a| *a.incident == id && a.kind == dfcsync::model::ActionKind::Close)
    );
    // The analyst takes the incident after dfcsync read it.
    env.control("clock", json!({"advance": "1m"})).await;
    env.event(json!({"do": "xdr_incident_status", "incident": "resolved", "status": "inProgress", "by": "analyst@contoso.com"}))
        .await;
    let opts = dfcsync::act::ActOptions {
        concurrency: 2,
        conflict_retries: 3,
        stop: Arc::new(AtomicBool::new(false)),
        etags: Default::default(),
        memo: Default::default(),
    };
    let report = dfcsync::backend::graph::sink::act(
        g,
        &read.snapshot.incidents,
        &read.snapshot.alerts,
        &plan,
        &env.config.policy,
        &opts,
        &|_| {},
    )
    .await;
    let o = report.outcomes.iter().find(|o| o.incident == id).unwrap();
    assert_eq!(
        o.kind,
        dfcsync::model::ActionKind::Notice,
        "decided again: {o:?}"
    );
    assert_eq!(o.result, dfcsync::act::ActionResult::Applied);
    let i = env.incident("resolved");
    assert_eq!(status(&i).0, "inProgress", "not overwritten");
    assert_eq!(marks(&i).len(), 1);
    assert!(marks(&i)[0].starts_with("[dfcsync:notice:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_renewed_and_the_feed_reads_only_changes() {
    let env = Env::start_graph(&xdr_tenant(|_| {}), "").await;
    let mut syncer = Syncer::new(&env.config, ReadMode::Feed);
    let stop = Arc::new(AtomicBool::new(false));
    let r = syncer
        .cycle(&env.conn, &env.config, Mode::Sync, &stop, &|_, _| {})
        .await;
    assert!(r.succeeded(), "{}", dfcsync::report::cycle_table(&r));
    assert_eq!((r.whole_reads, r.change_reads), (1, 0));
    // A quiet change read past the overlap (10 minutes) of the first cycle's own writes.
    env.control("clock", json!({"advance": "15m"})).await;
    let before = env.graph_requests().await.len();
    let r = syncer
        .cycle(&env.conn, &env.config, Mode::Sync, &stop, &|_, _| {})
        .await;
    assert!(
        r.succeeded() && !r.has_actions(),
        "{}",
        dfcsync::report::cycle_table(&r)
    );
    assert_eq!((r.whole_reads, r.change_reads), (0, 1));
    let quiet = env.graph_requests().await[before..].to_vec();
    assert!(
        quiet.iter().all(|l| l.starts_with("GET")),
        "a quiet cycle writes nothing: {quiet:?}"
    );
    // Two hours on: the cached token has expired; an alert changes.
    env.control("clock", json!({"advance": "2h"})).await;
    env.event(json!({"do": "alert_status", "alert": "new", "status": "Resolved", "by": "owner@contoso.com"}))
        .await;
    let before = env.graph_requests().await.len();
    let r = syncer
        .cycle(&env.conn, &env.config, Mode::Sync, &stop, &|_, _| {})
        .await;
    assert!(r.succeeded(), "{}", dfcsync::report::cycle_table(&r));
    assert_eq!((r.whole_reads, r.change_reads), (0, 1));
    assert_eq!(
        status(&env.incident("new")),
        pair("resolved", "truePositive")
    );
    let log = env.graph_requests().await;
    let this_cycle = &log[before..];
    assert!(
        this_cycle.iter().any(|l| l.ends_with(" 401")),
        "the expired token was refused once: {this_cycle:?}"
    );
    // No incident's alerts were read by incident: the changed alert came with the DfC
    // alert page, and the rest of its incident from what the first read kept.
    assert_eq!(
        this_cycle
            .iter()
            .filter(|l| l.starts_with("GET") && l.contains("/alerts 200"))
            .count(),
        0,
        "{this_cycle:?}"
    );
}

/// `(title, action, mark)` of a plan's actions, sorted.
fn plan_of(r: &CycleReport) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = r
        .workspaces
        .iter()
        .flat_map(|w| w.plan.iter())
        .flat_map(|p| p.actions.iter())
        .map(|a| (a.title.to_string(), a.kind.to_string(), a.mark.to_string()))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_plan_and_marks_through_graph_as_through_sentinel() {
    // The demo in a workspace onboarded to the Defender portal: each incident is seen
    // through both APIs. One emulator per backend, from the same scenario.
    let mut v: Value = serde_json::from_str(DEMO).unwrap();
    v["defender_xdr"] = json!(true);
    v["workspaces"][0]["defender_portal"] = json!(true);
    v["principals"][0]["graph_permissions"] =
        json!(["SecurityIncident.ReadWrite.All", "SecurityAlert.Read.All"]);
    v["limits"] = json!({"graph_requests_per_minute": 100000});
    let scenario = v.to_string();
    let graph = Env::start_graph(&scenario, "").await;
    let sentinel = {
        let s = emulator::Scenario::from_json_str(&scenario).unwrap();
        let emu = emulator::Emulator::start(s, emulator::StartOptions::default())
            .await
            .unwrap();
        let config = Config::parse(&emu.config_toml(), "<test>").unwrap();
        let conn = Connection::open_with(&config, AuthOptions::isolated(), fast_http())
            .await
            .unwrap();
        (emu, config, conn)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let through_sentinel =
        plan_of(&run_cycle(&sentinel.2, &sentinel.1, Mode::Plan, &stop, &|_, _| {}).await);
    let through_graph = plan_of(&graph.cycle(Mode::Plan).await);
    assert!(through_graph.len() >= 6, "{through_graph:#?}");
    assert_eq!(through_graph, through_sentinel);
    // And after the Graph backend acts, Sentinel's side (kept in step by the platform)
    // needs nothing more from the Sentinel backend.
    sync_to_rest(&graph).await;
    let conn = Connection::open_with(
        &Config::parse(&graph.emu.config_toml(), "<test>").unwrap(),
        AuthOptions::isolated(),
        fast_http(),
    )
    .await
    .unwrap();
    let config = Config::parse(&graph.emu.config_toml(), "<test>").unwrap();
    let after = run_cycle(&conn, &config, Mode::Plan, &stop, &|_, _| {}).await;
    assert!(
        !after.has_actions(),
        "{}",
        dfcsync::report::cycle_table(&after)
    );
}

#[tokio::test]
async fn doctor_checks_the_graph_application_roles() {
    let env = Env::start_graph(&xdr_tenant(|_| {}), "").await;
    let checks = dfcsync::doctor::azure_checks(&env.conn, &env.config).await;
    let perms = checks
        .iter()
        .find(|c| c.name == "Graph permissions")
        .unwrap();
    assert_eq!(perms.verdict, dfcsync::doctor::Verdict::Ok, "{perms:?}");
    assert!(
        checks
            .iter()
            .filter(|c| c.name != "lease")
            .all(|c| c.verdict == dfcsync::doctor::Verdict::Ok),
        "{checks:?}"
    );
    // Graph without a lease: overlapping runs could comment twice, and doctor says so.
    let lease = checks.iter().find(|c| c.name == "lease").unwrap();
    assert_eq!(lease.verdict, dfcsync::doctor::Verdict::Warn, "{lease:?}");
    // Without admin consent for the alert role.
    let env = Env::start_graph(
        &xdr_tenant(|v| {
            v["principals"][0]["graph_permissions"] = json!(["SecurityIncident.ReadWrite.All"])
        }),
        "",
    )
    .await;
    let checks = dfcsync::doctor::azure_checks(&env.conn, &env.config).await;
    let perms = checks
        .iter()
        .find(|c| c.name == "Graph permissions")
        .unwrap();
    assert_eq!(perms.verdict, dfcsync::doctor::Verdict::Fail);
    assert!(perms.detail.contains("SecurityAlert.Read.All"), "{perms:?}");
    assert!(
        perms
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("appRoleAssignments"),
        "{perms:?}"
    );
}

/// The Graph calls of a cycle, counted from the emulator's request log (docs/benchmarks.md,
/// "Graph: calls per cycle").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_calls_per_quiet_cycle_and_per_change() {
    let env = Env::start_graph(&xdr_tenant(|_| {}), "").await;
    let mut syncer = Syncer::new(&env.config, ReadMode::Feed);
    let stop = Arc::new(AtomicBool::new(false));
    let mut cycle = async |label: &str| {
        let before = env.graph_requests().await.len();
        let r = syncer
            .cycle(&env.conn, &env.config, Mode::Sync, &stop, &|_, _| {})
            .await;
        assert!(r.succeeded(), "{}", dfcsync::report::cycle_table(&r));
        let calls = env.graph_requests().await[before..].to_vec();
        eprintln!("graph calls, {label}: {} {calls:?}", calls.len());
        (r, calls)
    };
    // The whole read, by the page: the service's clock (an empty list), the DfC alerts, the
    // incidents with their alerts; then per incident acted on its fresh read, its PATCH (for
    // a status change) and its comment.
    let (r, calls) = cycle("whole read with the demo's actions").await;
    let reads = calls.iter().filter(|c| c.starts_with("GET")).count();
    let actions = r.workspaces[0].plan.as_ref().unwrap().actions.clone();
    let status_changes = actions
        .iter()
        .filter(|a| a.kind != dfcsync::model::ActionKind::Notice)
        .count();
    // A service that refuses resolvingComment costs a refused PATCH and a read more, for
    // the writes under way when the first refusal comes (at most `concurrency`).
    let refused = calls
        .iter()
        .filter(|c| c.starts_with("PATCH") && c.ends_with(" 400"))
        .count();
    assert!(refused <= env.config.sync.concurrency, "{calls:?}");
    assert_eq!(reads, 3 + actions.len() + refused, "{calls:?}");
    assert!(
        calls.iter().all(|c| !c.contains("/alerts ")),
        "no incident's alerts read by incident: {calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("POST")).count(),
        actions.len(),
        "one comment per action"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("PATCH") && c.ends_with(" 200"))
            .count(),
        status_changes
    );
    // The first change read re-reads what changed within the overlap (10 minutes) before
    // the whole read's clock: the incidents dfcsync just wrote come with the updated
    // incidents' page, their alerts expanded.
    env.control("clock", json!({"advance": "15m"})).await;
    let (_, calls) = cycle("first change read").await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    // A quiet cycle past the overlap: two list calls, nothing else.
    env.control("clock", json!({"advance": "15m"})).await;
    let (_, calls) = cycle("quiet").await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    // One alert resolved: the two lists (the incident, all of whose alerts are DfC's, is
    // answered from the alert page and what the first read kept), then the close (its fresh
    // read, the PATCH, the comment).
    env.control("clock", json!({"advance": "15m"})).await;
    env.event(json!({"do": "alert_status", "alert": "new", "status": "Resolved", "by": "owner@contoso.com"}))
        .await;
    let (_, calls) = cycle("one alert resolved").await;
    assert_eq!(calls.len(), 5, "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_dfcsync_closed_is_reopened_and_one_a_person_reopened_is_left() {
    let env = Env::start_graph(&xdr_tenant(|_| {}), "").await;
    sync_to_rest(&env).await;
    assert_eq!(status(&env.incident("resolved")).0, "resolved");
    assert_eq!(status(&env.incident("dismissed")).0, "resolved");
    // The resolved alert comes back in DfC: dfcsync closed it, so dfcsync reopens it.
    env.control("clock", json!({"advance": "5m"})).await;
    env.event(json!({"do": "alert_status", "alert": "resolved", "status": "Active", "by": "owner@contoso.com"}))
        .await;
    // A person reopens the other incident dfcsync closed: it stays as they left it.
    env.event(json!({"do": "xdr_incident_status", "incident": "dismissed", "status": "inProgress", "by": "analyst@contoso.com"}))
        .await;
    sync_to_rest(&env).await;
    let reopened = env.incident("resolved");
    assert_eq!(status(&reopened).0, "inProgress");
    let m = marks(&reopened);
    assert!(m.iter().any(|m| m.starts_with("[dfcsync:reopen:")), "{m:?}");
    let left = env.incident("dismissed");
    assert_eq!(status(&left).0, "inProgress", "not closed again");
    assert_eq!(
        marks(&left).len(),
        1,
        "only the close's comment: {:?}",
        marks(&left)
    );
}

#[test]
fn the_graph_demo_command_runs() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dfcsync"))
        .args(["demo", "--backend", "graph"])
        .output()
        .expect("dfcsync demo --backend graph");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("tenant (Microsoft Graph)"), "{text}");
    assert!(
        text.contains("informationalExpectedActivity / other"),
        "{text}"
    );
    assert!(text.contains("sync: nothing to do"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_within_reads_only_what_changed_in_the_window() {
    let env = Env::start_graph(&xdr_tenant(|_| {}), "").await;
    // The "resolved" incident, untouched since its alert was resolved 80 minutes ago, is
    // given an owner now.
    env.event(json!({"do": "xdr_incident_status", "incident": "resolved", "status": "active", "assigned_to": "analyst@contoso.com", "by": "analyst@contoso.com"}))
        .await;
    let mut syncer = Syncer::new(
        &env.config,
        ReadMode::ChangedWithin(chrono::TimeDelta::minutes(30)),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let r = syncer
        .cycle(&env.conn, &env.config, Mode::Sync, &stop, &|_, _| {})
        .await;
    assert!(r.succeeded(), "{}", dfcsync::report::cycle_table(&r));
    assert_eq!((r.whole_reads, r.change_reads), (0, 1));
    // The given owner, and the demo's changes of the last half hour ("old", "noticed").
    assert_eq!(r.workspaces[0].incidents_seen, 3);
    assert_eq!(
        status(&env.incident("resolved")),
        pair("resolved", "truePositive")
    );
    assert_eq!(
        status(&env.incident("dismissed")).0,
        "active",
        "not changed within the window: not read"
    );
}
