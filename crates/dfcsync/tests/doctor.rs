//! `doctor` at any size (issue 22): its cost per workspace is bounded whatever the
//! workspace holds, every workspace gets a verdict of its own, and "ok" is said only of what
//! was verified (exit code 2 when something could not be).

mod proof_support;

use dfcsync::azure::http::HttpOptions;
use dfcsync::config::Config;
use dfcsync::doctor::{Outcome, Verdict, azure_checks, outcome, table};
use proof_support::*;
use serde_json::json;

/// The incident list requests (`GET .../workspaces/{name}/providers/Microsoft.SecurityInsights/incidents`)
/// of the request log, for workspace `name`.
fn incident_lists(log: &[serde_json::Value], name: &str) -> usize {
    log.iter()
        .filter(|e| e["method"] == "GET")
        .filter(|e| {
            let path = e["path"].as_str().unwrap_or("").to_ascii_lowercase();
            path.contains(&format!("/workspaces/{}/", name.to_ascii_lowercase()))
                && path.ends_with("/providers/microsoft.securityinsights/incidents")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workspaces_of_3000_incidents_cost_a_page_each_and_get_a_verdict_each() {
    let per_workspace = 3000;
    let (mut s, _) = scenario_in(3 * per_workspace, "0s", None, 3);
    // Pages of 100 (a request that followed nextLink through a workspace would cost 30).
    s["limits"]["default_page_size"] = json!(100);
    let emu = start(&s).await;
    let config = Config::parse(&config_text(&emu, None, ""), "t").unwrap();
    assert_eq!(config.file.workspaces.len(), 3);
    let conn = connect(&config, HttpOptions::default()).await;
    let ctl = control(&conn, &emu);
    let before = request_log(&ctl, &emu).await.len();
    let checks = azure_checks(&conn, &config).await;
    let log = request_log(&ctl, &emu).await;
    let log = &log[before..];
    assert_eq!(outcome(&checks), Outcome::Passed, "{}", table(&checks));
    for k in 0..3 {
        let (name, _) = workspace(k);
        let lists = incident_lists(log, &name);
        assert!(
            (1..=3).contains(&lists),
            "{name}: {lists} incident list requests"
        );
        for what in ["workspace", "query", "incident read", "incident write"] {
            let c = checks
                .iter()
                .find(|c| c.name.starts_with(what) && c.name.ends_with(&format!("/{name}")))
                .unwrap_or_else(|| panic!("no {what} check for {name}\n{}", table(&checks)));
            assert_eq!(c.verdict, Verdict::Ok, "{}", table(&checks));
        }
        // The query check read one partition of the size the count called for, not all.
        let query = checks
            .iter()
            .find(|c| c.name.starts_with("query") && c.name.ends_with(&format!("/{name}")))
            .unwrap();
        assert!(query.detail.contains("partition"), "{}", query.detail);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_without_incidents_is_not_verified_and_says_so() {
    // No incident: the write probe has nothing to probe with; doctor does not call it ok.
    let (mut s, _) = scenario_in(0, "0s", None, 1);
    s["events"] = json!([]);
    let emu = start(&s).await;
    let config = Config::parse(&config_text(&emu, None, ""), "t").unwrap();
    let conn = connect(&config, HttpOptions::default()).await;
    let checks = azure_checks(&conn, &config).await;
    let write = checks
        .iter()
        .find(|c| c.name.starts_with("incident write"))
        .unwrap_or_else(|| panic!("{}", table(&checks)));
    assert_eq!(write.verdict, Verdict::NotVerified, "{}", table(&checks));
    assert_eq!(outcome(&checks), Outcome::NotVerified, "{}", table(&checks));
    assert!(checks.iter().all(|c| c.verdict != Verdict::Fail));
}
