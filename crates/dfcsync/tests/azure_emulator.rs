//! The Azure clients against the emulator: the client-secret credential calling every
//! service, and each error path ending as documented (403, 409, 429 with Retry-After, 5xx
//! then success, PartialError, wrong audience, insufficient access on a first run), with
//! retry counts read from the emulator's request log.

mod azure_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_support::*;
use dfcsync::azure::AzureError;
use dfcsync::azure::auth::TokenSource;
use dfcsync::azure::defender::{DfcAction, address_from_id};
use dfcsync::azure::error::Service;
use dfcsync::azure::log_analytics::{LogAnalyticsClient, QueryResponse};
use dfcsync::azure::sentinel::{SentinelClient, comment_id};
use dfcsync::model::AlertAddress;
use serde_json::json;

fn dfc_address(env: &Env, handle: &str) -> AlertAddress {
    let a = env.alert(handle);
    AlertAddress {
        name: a["name"].as_str().unwrap().to_owned(),
        subscription_id: a["subscription_id"].as_str().unwrap().into(),
        resource_group: a["resource_group"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(Into::into),
        location: a["location"].as_str().unwrap().into(),
    }
}

#[tokio::test]
async fn client_secret_reaches_every_service() {
    let env = start().await;
    let desc = env.http.clone();
    assert!(format!("{desc:?}").contains("client_secret: client secret for application"));

    // Sentinel: the workspace, incidents, an update, comments.
    let ws = env.workspace().await;
    assert_eq!(ws.customer_id, CUSTOMER_ID);
    let s = env.sentinel();
    let all = s.list_incidents(&ws, None, Some(1)).await.unwrap();
    assert_eq!(all.len(), 2, "two incidents over two pages of one");
    let open = s
        .list_incidents(&ws, Some("properties/status eq 'New'"), None)
        .await
        .unwrap();
    assert_eq!(open.len(), 2);
    let a1 = env.incident_of("A1");
    let name = a1["name"].as_str().unwrap();
    let mut inc = s.get_incident(&ws, name).await.unwrap();
    let title = inc.properties.title.clone();
    inc.close(
        "TruePositive",
        Some("SuspiciousActivity"),
        Some("closed by test [dfcsync:close:0123456789abcdef]"),
    );
    let written = s.update_incident(&ws, &inc).await.unwrap();
    assert_eq!(written.properties.status, "Closed");
    assert_eq!(written.properties.title, title, "writable properties kept");
    assert_ne!(written.etag, inc.etag, "a new etag");
    let st = env.incident_of("A1");
    assert_eq!(st["status"], "Closed");
    assert_eq!(st["classification"], "TruePositive");

    // The same comment twice is one comment.
    let cid = comment_id(name, "close", "0123456789abcdef");
    s.put_comment(&ws, name, cid, "first").await.unwrap();
    let c = s.put_comment(&ws, name, cid, "second").await.unwrap();
    assert_eq!(c.properties.message, "second");
    let comments = s.list_comments(&ws, name).await.unwrap();
    let ours: Vec<_> = comments
        .iter()
        .filter(|c| c.name.eq_ignore_ascii_case(&cid.to_string()))
        .collect();
    assert_eq!(ours.len(), 1, "{comments:?}");

    // Log Analytics.
    let body = env
        .la()
        .query(
            &ws.customer_id,
            "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentName | project IncidentName, Status, AlertIds",
            Some("P7D"),
        )
        .await
        .unwrap();
    let r = QueryResponse::parse(&body).unwrap();
    let recs = r.primary().unwrap().records().unwrap();
    assert_eq!(recs.len(), 2);
    let closed = recs.iter().find(|r| r["IncidentName"] == name).unwrap();
    assert_eq!(closed["Status"], "Closed");
    assert!(closed["AlertIds"].is_array(), "dynamic parsed: {closed:?}");

    // Defender for Cloud: a subscription-level alert and a resource-group one.
    let d = env.defender();
    let b1 = dfc_address(&env, "B1");
    assert_eq!(b1.resource_group.as_deref(), Some("rg-app"));
    let alert = d.get_alert(&b1).await.unwrap();
    assert_eq!(alert.properties.status.as_deref(), Some("Active"));
    assert_eq!(address_from_id(&alert.id).unwrap().location, b1.location);
    d.set_status(&b1, DfcAction::InProgress).await.unwrap();
    assert_eq!(env.alert("B1")["status"], "InProgress");
    d.set_status(&b1, DfcAction::Dismiss).await.unwrap();
    assert_eq!(env.alert("B1")["status"], "Dismissed");
    let stats = env.http.stats();
    assert!(stats.count(Service::Arm, 204) >= 2);
    assert_eq!(stats.count(Service::LogAnalytics, 200), 1);
}

#[tokio::test]
async fn dfc_resource_group_path_falls_back_to_the_subscription_path() {
    let env = start().await;
    let d = env.defender();
    // A1 lives at the subscription level: a wrong resource group gets 404, then the
    // subscription path answers.
    let mut a1 = dfc_address(&env, "A1");
    a1.resource_group = Some("rg-elsewhere".into());
    let since = env.last_seq().await;
    let alert = d.get_alert(&a1).await.unwrap();
    assert_eq!(alert.name, a1.name);
    let log = env.requests_since(since).await;
    let statuses: Vec<u64> = log
        .iter()
        .filter(|e| e["service"] == "arm")
        .filter_map(|e| e["status"].as_u64())
        .collect();
    assert_eq!(statuses, vec![404, 200], "{log:?}");
    // An unknown alert stays a 404.
    let mut missing = a1.clone();
    missing.name = "nope".into();
    let e = d
        .set_status(&missing, DfcAction::Resolve)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

#[tokio::test]
async fn stale_etag_is_a_typed_conflict_and_a_fresh_read_succeeds() {
    let env = start().await;
    let ws = env.workspace().await;
    let s = env.sentinel();
    let name = env.incident_of("A1")["name"].as_str().unwrap().to_owned();
    let mut inc = s.get_incident(&ws, &name).await.unwrap();
    env.fault(json!({ "conflict": format!("incidents/{name}") }))
        .await;
    inc.set_active();
    let since = env.last_seq().await;
    let e = s.update_incident(&ws, &inc).await.unwrap_err();
    let AzureError::Conflict { message, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(message.contains("Newer version"), "{message}");
    assert!(e.to_string().contains("read it again"));
    // A conflict is not retried blindly.
    assert_eq!(env.requests_since(since).await.len(), 1);
    let mut fresh = s.get_incident(&ws, &name).await.unwrap();
    let stale = fresh.clone();
    fresh.set_active();
    let w = s.update_incident(&ws, &fresh).await.unwrap();
    assert_eq!(w.properties.status, "Active");
    // A real stale etag: the copy read before that write.
    let mut stale = stale;
    stale.close("TruePositive", Some("SuspiciousActivity"), None);
    let e = s.update_incident(&ws, &stale).await.unwrap_err();
    assert!(matches!(e, AzureError::Conflict { .. }), "{e:?}");
    assert_eq!(env.incident_of("A1")["status"], "Active", "nothing written");
}

#[tokio::test]
async fn missing_role_is_forbidden_with_role_and_scope() {
    let mut sc = scenario_json();
    // dfcsync keeps Sentinel Responder but loses Security Admin.
    sc["principals"][0]["roles"] = json!([
        { "role": "Microsoft Sentinel Responder", "scope": format!("/subscriptions/{SUB}/resourceGroups/rg-sentinel") }
    ]);
    let env = start_with(sc, fast()).await;
    let a = dfc_address(&env, "B1");
    let e = env
        .defender()
        .set_status(&a, DfcAction::Resolve)
        .await
        .unwrap_err();
    let AzureError::Forbidden {
        role_hint,
        scope,
        action,
        request_id,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(role_hint, "Security Admin");
    assert!(scope.contains(DFC_SUB), "{scope}");
    assert_eq!(
        action.as_deref(),
        Some("Microsoft.Security/locations/alerts/resolve/action")
    );
    assert!(request_id.is_some());
    let text = e.to_string();
    assert!(text.contains("several minutes"), "{text}");
}

#[tokio::test]
async fn throttled_429_waits_for_retry_after() {
    let env = start().await;
    let ws = env.workspace().await;
    env.fault(json!({"method": "GET", "path": "/incidents$", "status": 429, "times": 1, "retry_after": "1s"}))
        .await;
    let since = env.last_seq().await;
    let t = Instant::now();
    let list = env
        .sentinel()
        .list_incidents(&ws, None, None)
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
    let log = env.requests_since(since).await;
    let statuses: Vec<u64> = log.iter().filter_map(|e| e["status"].as_u64()).collect();
    assert_eq!(statuses, vec![429, 200]);
    let stats = env.http.stats();
    assert_eq!(
        stats.throttled.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert!(
        stats
            .throttle_waits
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );

    // A Retry-After beyond what we wait for ends as Throttled, without waiting.
    env.fault(json!({"method": "GET", "path": "/incidents$", "status": 429, "times": 1, "retry_after": "600s"}))
        .await;
    let t = Instant::now();
    let e = env
        .sentinel()
        .list_incidents(&ws, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, AzureError::Throttled { retry_after: Some(d), .. } if d == Duration::from_secs(600)),
        "{e:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed_or_give_up() {
    let env = start().await;
    let ws = env.workspace().await;
    let name = env.incident_of("A1")["name"].as_str().unwrap().to_owned();
    env.fault(
        json!({"method": "GET", "path": format!("incidents/{name}$"), "status": 503, "times": 2}),
    )
    .await;
    let since = env.last_seq().await;
    let inc = env.sentinel().get_incident(&ws, &name).await.unwrap();
    let log = env.requests_since(since).await;
    let statuses: Vec<u64> = log.iter().filter_map(|e| e["status"].as_u64()).collect();
    assert_eq!(statuses, vec![503, 503, 200]);

    // A PUT (idempotent with its etag) and a query are retried too.
    env.fault(
        json!({"method": "PUT", "path": format!("incidents/{name}$"), "status": 500, "times": 1}),
    )
    .await;
    env.fault(json!({"method": "POST", "path": "/query$", "status": 502, "times": 1}))
        .await;
    let mut inc = inc;
    inc.set_active();
    env.sentinel().update_incident(&ws, &inc).await.unwrap();
    env.la()
        .query(&ws.customer_id, "SecurityAlert | take 1", None)
        .await
        .unwrap();

    // Past the retries: the last answer, typed.
    env.fault(
        json!({"method": "GET", "path": format!("incidents/{name}$"), "status": 503, "times": 10}),
    )
    .await;
    let since = env.last_seq().await;
    let e = env.sentinel().get_incident(&ws, &name).await.unwrap_err();
    assert!(matches!(e, AzureError::Http { status: 503, .. }), "{e:?}");
    assert_eq!(
        env.requests_since(since).await.len(),
        4,
        "1 + max_retries (3)"
    );
    assert!(
        env.http
            .stats()
            .retries
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 7
    );
}

#[tokio::test]
async fn partial_error_is_never_data() {
    let mut sc = scenario_json();
    sc["limits"] = json!({"la_max_rows": 1});
    let env = start_with(sc, fast()).await;
    let e = env
        .la()
        .query(CUSTOMER_ID, "SecurityAlert", None)
        .await
        .unwrap_err();
    let AzureError::PartialError { details, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(details.iter().any(|d| d.contains("limit")), "{details:?}");
    assert!(e.to_string().contains("not acting on partial data"));
    // A query within the limit is fine.
    env.la()
        .query(CUSTOMER_ID, "SecurityAlert | take 1", None)
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_audience_is_an_auth_error_naming_the_setting() {
    let env = start().await;
    let mut cloud = env.cloud.clone();
    cloud.log_analytics_scope = cloud.arm_scope.clone();
    let la = LogAnalyticsClient::new(env.http.clone(), &cloud);
    let e = la
        .query(CUSTOMER_ID, "SecurityAlert | take 1", None)
        .await
        .unwrap_err();
    assert!(matches!(e, AzureError::Auth { .. }), "{e:?}");
    assert!(e.to_string().contains("log_analytics_scope"), "{e}");
    let mut cloud = env.cloud.clone();
    cloud.arm_scope = env.cloud.log_analytics_scope.clone();
    let s = SentinelClient::new(env.http.clone(), &cloud);
    let e = s
        .workspace(SUB, "rg-sentinel", "law-sentinel")
        .await
        .unwrap_err();
    assert!(matches!(e, AzureError::Auth { .. }), "{e:?}");
    assert!(e.to_string().contains("arm_scope"), "{e}");
}

#[tokio::test]
async fn insufficient_access_is_retried_on_a_first_run_only() {
    // A role that never arrives: 1 + access_retries attempts, then the typed error.
    let mut sc = scenario_json();
    sc["principals"][0]["propagation_delay"] = json!("1h");
    let env = start_with(sc, fast()).await;
    let since = env.last_seq().await;
    let e = env
        .la()
        .query(CUSTOMER_ID, "SecurityAlert | take 1", None)
        .await
        .unwrap_err();
    let AzureError::InsufficientAccess { role_hint, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(role_hint.contains("Microsoft Sentinel Responder"));
    assert!(e.to_string().contains(CUSTOMER_ID) && e.to_string().contains("several minutes"));
    let la_calls = env
        .requests_since(since)
        .await
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/query")))
        .count();
    assert_eq!(la_calls, 3, "1 + access_retries (2)");

    // A role that arrives within a second: the first run waits for it.
    let mut sc = scenario_json();
    sc["principals"][0]["propagation_delay"] = json!("1s");
    let mut opts = fast();
    opts.access_retries = 6;
    opts.access_retry_delay = std::time::Duration::from_millis(150);
    opts.max_delay = std::time::Duration::from_millis(600);
    let env = start_with(sc, opts).await;
    let la = env.la();
    la.query(CUSTOMER_ID, "SecurityAlert | take 1", None)
        .await
        .unwrap();
}

#[tokio::test]
async fn arm_limiter_slows_down_before_arm_says_no() {
    let mut sc = scenario_json();
    sc["limits"] = json!({"arm_reads": {"bucket": 8, "per_second": 20}});
    let mut opts = fast();
    opts.arm_low_water = 4;
    opts.arm_read_rate = 20.0;
    let env = start_with(sc, opts).await;
    let ws = env.workspace().await;
    let name = env.incident_of("A1")["name"].as_str().unwrap().to_owned();
    let s = env.sentinel();
    let since = env.last_seq().await;
    for _ in 0..24 {
        s.get_incident(&ws, &name).await.unwrap();
    }
    let log = env.requests_since(since).await;
    assert!(
        log.iter().all(|e| e["status"] != 429),
        "ARM said no: {log:?}"
    );
    let stats = env.http.stats();
    assert!(
        stats
            .throttle_waits
            .load(std::sync::atomic::Ordering::Relaxed)
            > 5
    );
    assert_eq!(
        stats.throttled.load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // Concurrent callers share the pace.
    let since = env.last_seq().await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (s, ws, name) = (s.clone(), ws.clone(), name.clone());
        set.spawn(async move { s.get_incident(&ws, &name).await.map(|_| ()) });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    let log = env.requests_since(since).await;
    assert_eq!(log.len(), 16);
    assert!(log.iter().all(|e| e["status"] != 429), "{log:?}");
}

#[tokio::test]
async fn credentials_never_leak_into_errors_or_debug() {
    let env = start().await;
    let token = {
        let t = env.http.clone();
        let src: Arc<dyn TokenSource> = Arc::new(
            dfcsync::azure::auth::Credential::from_config(
                &env.config.file.auth,
                &env.cloud,
                Some(TENANT),
                &env.base,
                dfcsync::azure::auth::AuthOptions::isolated(),
            )
            .await
            .unwrap(),
        );
        let tok = src.token(&env.cloud.arm_scope).await.unwrap();
        let dbg = format!("{t:?} {tok:?} {}", src.describe());
        assert!(
            !dbg.contains(SECRET) && !dbg.contains(tok.secret()),
            "{dbg}"
        );
        tok.secret().to_owned()
    };
    assert!(token.len() > 20);
    // A wrong secret: the error names the credential, not the secret.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("secret");
    std::fs::write(&bad, "wrong-secret-value-123\n").unwrap();
    let mut auth = env.config.file.auth.clone();
    auth.client_secret_file = Some(bad);
    let c = dfcsync::azure::auth::Credential::from_config(
        &auth,
        &env.cloud,
        Some(TENANT),
        &env.base,
        dfcsync::azure::auth::AuthOptions::isolated(),
    )
    .await
    .unwrap();
    let e = c.token(&env.cloud.arm_scope).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(matches!(e, AzureError::Auth { .. }), "{text}");
    assert!(
        text.contains("7000215") || text.contains("Invalid client secret"),
        "{text}"
    );
    assert!(!text.contains("wrong-secret-value-123"), "{text}");
}

/// Gives a token the emulator minted already expired, until told to forget it.
struct ExpiredFirst {
    base: String,
    http: reqwest::Client,
    renewed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl TokenSource for ExpiredFirst {
    async fn token(&self, scope: &str) -> Result<dfcsync::azure::auth::AccessToken, AzureError> {
        let lifetime = if self.renewed.load(std::sync::atomic::Ordering::SeqCst) {
            3599
        } else {
            -600
        };
        let r = self
            .http
            .post(format!("{}/_emulator/token", self.base))
            .header("Content-Type", "application/json")
            .body(
                json!({"principal": "dfcsync", "scope": scope, "lifetime_secs": lifetime})
                    .to_string(),
            )
            .send()
            .await
            .map_err(|e| AzureError::Config(e.to_string()))?;
        let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap_or_default())
            .map_err(|e| AzureError::Config(e.to_string()))?;
        Ok(dfcsync::azure::auth::AccessToken::new(
            v["access_token"].as_str().unwrap_or_default().to_owned(),
            std::time::SystemTime::now() + Duration::from_secs(3600),
        ))
    }
    async fn invalidate(&self, _scope: &str) {
        self.renewed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    fn describe(&self) -> String {
        "expired first".into()
    }
}

#[tokio::test]
async fn a_refused_token_is_renewed_once() {
    let env = start().await;
    let src = Arc::new(ExpiredFirst {
        base: env.emu.base_url().to_owned(),
        http: env.ctl.clone(),
        renewed: std::sync::atomic::AtomicBool::new(false),
    });
    let s = SentinelClient::new(env.with(src), &env.cloud);
    let since = env.last_seq().await;
    s.workspace(SUB, "rg-sentinel", "law-sentinel")
        .await
        .unwrap();
    let statuses: Vec<u64> = env
        .requests_since(since)
        .await
        .iter()
        .filter(|e| e["service"] == "arm")
        .filter_map(|e| e["status"].as_u64())
        .collect();
    assert_eq!(statuses, vec![401, 200]);
}
