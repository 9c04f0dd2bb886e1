//! What the emulator does not do, against wiremock and a raw socket: malformed JSON, a
//! `nextLink` that points away from ARM, connection resets, slow answers hitting the
//! timeout, and the headers every request carries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use dfcsync::azure::AzureError;
use dfcsync::azure::auth::{AccessToken, TokenSource};
use dfcsync::azure::cloud::Cloud;
use dfcsync::azure::error::Service;
use dfcsync::azure::http::{ApiRequest, AzureHttp, HttpOptions};
use dfcsync::azure::log_analytics::LogAnalyticsClient;
use dfcsync::azure::sentinel::{SentinelClient, Workspace};
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct StaticToken;

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn token(&self, _scope: &str) -> Result<AccessToken, AzureError> {
        Ok(AccessToken::new(
            "test-token-value".into(),
            SystemTime::now() + Duration::from_secs(3600),
        ))
    }
    fn describe(&self) -> String {
        "static test token".into()
    }
}

fn cloud(base: &str) -> Cloud {
    Cloud {
        name: "test".into(),
        authority: base.into(),
        arm: base.into(),
        arm_scope: "https://management.azure.com/.default".into(),
        log_analytics: base.into(),
        log_analytics_scope: "https://api.loganalytics.io/.default".into(),
        graph: Some(base.into()),
        graph_scope: Some("https://graph.microsoft.com/.default".into()),
    }
}

fn http(timeout: Duration, retries: u32) -> AzureHttp {
    AzureHttp::builder(&Cloud::public())
        .options(HttpOptions {
            timeout,
            connect_timeout: Duration::from_secs(1),
            max_retries: retries,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            ..HttpOptions::default()
        })
        .build()
        .unwrap()
        .with_credential(Arc::new(StaticToken))
}

fn ws() -> Workspace {
    Workspace {
        subscription_id: "s".into(),
        resource_group: "rg".into(),
        name: "ws".into(),
        id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws".into(),
        customer_id: "c".into(),
        location: None,
    }
}

fn incident(name: &str) -> serde_json::Value {
    json!({"id": format!("/x/incidents/{name}"), "name": name, "etag": "\"1\"",
           "properties": {"title": "t", "severity": "Low", "status": "New"}})
}

#[tokio::test]
async fn malformed_json_is_a_decode_error_with_the_request_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("/incidents/i1$"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ms-request-id", "rid-42")
                .set_body_string("{\"id\": \"x\", \"name\": "),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/workspaces/c/query"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy login</html>"))
        .mount(&server)
        .await;
    let h = http(Duration::from_secs(5), 0);
    let s = SentinelClient::new(h.clone(), &cloud(&server.uri()));
    let e = s.get_incident(&ws(), "i1").await.unwrap_err();
    assert!(matches!(e, AzureError::Decode { .. }), "{e:?}");
    assert!(e.to_string().contains("rid-42"), "{e}");
    let la = LogAnalyticsClient::new(h, &cloud(&server.uri()));
    let e = la.query("c", "T", None).await.unwrap_err();
    assert!(matches!(e, AzureError::Decode { .. }), "{e:?}");
}

#[tokio::test]
async fn pages_follow_next_link_but_never_away_from_arm() {
    let server = MockServer::start().await;
    let base = server.uri();
    Mock::given(method("GET"))
        .and(path_regex("/incidents$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [incident("i1")],
            "nextLink": format!("{base}/page2?api-version=2025-09-01&$skipToken=abc")
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/page2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [incident("i2")],
            "nextLink": "https://evil.example/steal?api-version=1"
        })))
        .mount(&server)
        .await;
    let s = SentinelClient::new(http(Duration::from_secs(5), 0), &cloud(&base));
    let e = s.list_incidents(&ws(), None, Some(1)).await.unwrap_err();
    assert!(e.to_string().contains("points away from ARM"), "{e}");
    let got = server.received_requests().await.unwrap_or_default();
    assert_eq!(got.len(), 2);
    assert!(got[0].url.query().unwrap_or("").contains("%24top=1"));
}

#[tokio::test]
async fn every_request_carries_our_headers_and_keeps_its_id_across_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(incident("i1")))
        .mount(&server)
        .await;
    let s = SentinelClient::new(http(Duration::from_secs(5), 2), &cloud(&server.uri()));
    s.get_incident(&ws(), "i1").await.unwrap();
    let got = server.received_requests().await.unwrap_or_default();
    assert_eq!(got.len(), 2);
    let h = |i: usize, n: &str| {
        got[i]
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        h(0, "user-agent").starts_with("dfcsync/"),
        "{}",
        h(0, "user-agent")
    );
    assert_eq!(h(0, "authorization"), "Bearer test-token-value");
    assert_eq!(h(0, "x-ms-client-request-id").len(), 36);
    assert_eq!(
        h(0, "x-ms-client-request-id"),
        h(1, "x-ms-client-request-id")
    );
}

#[tokio::test]
async fn a_slow_answer_hits_the_timeout_and_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(incident("i1"))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    let h = http(Duration::from_millis(200), 1);
    let s = SentinelClient::new(h.clone(), &cloud(&server.uri()));
    let t = std::time::Instant::now();
    let e = s.get_incident(&ws(), "i1").await.unwrap_err();
    assert!(
        matches!(
            e,
            AzureError::Transport {
                timeout: true,
                service: Service::Arm,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        2
    );
    assert_eq!(h.stats().transport_errors.load(Ordering::Relaxed), 2);
}

/// A server that accepts connections and closes them at once, before any answer.
async fn resetting_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test]
async fn a_connection_reset_is_retried_when_idempotent_only() {
    let (base, count) = resetting_server().await;
    let h = http(Duration::from_secs(2), 2);
    let s = SentinelClient::new(h.clone(), &cloud(&base));
    let e = s.get_incident(&ws(), "i1").await.unwrap_err();
    assert!(
        matches!(e, AzureError::Transport { timeout: false, .. }),
        "{e:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 3, "1 + 2 retries");

    // A POST that is not idempotent is sent once.
    let before = count.load(Ordering::SeqCst);
    let url = url::Url::parse(&format!("{base}/create")).unwrap();
    let req = ApiRequest::new(Service::Arm, reqwest::Method::POST, url, "s/.default")
        .json(&json!({"x": 1}));
    assert!(!req.idempotent);
    let e = h.send(req).await.unwrap_err();
    assert!(matches!(e, AzureError::Transport { .. }), "{e:?}");
    assert_eq!(count.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn a_non_idempotent_post_is_not_retried_on_5xx() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(
                json!({"error": {"code": "InternalServerError", "message": "boom"}}),
            ),
        )
        .mount(&server)
        .await;
    let h = http(Duration::from_secs(2), 3);
    let url = url::Url::parse(&format!("{}/create", server.uri())).unwrap();
    let req = ApiRequest::new(Service::Arm, reqwest::Method::POST, url, "s/.default");
    let e = h.send(req).await.unwrap_err();
    assert!(
        matches!(&e, AzureError::Http { status: 500, code: Some(c), .. } if c == "InternalServerError"),
        "{e:?}"
    );
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1
    );
}

/// Names that come from the data go into URL paths as one segment each, percent-encoded:
/// an incident or DfC alert name with `/`, `?`, `#` or a space never adds a segment, a query
/// or a fragment.
#[tokio::test]
async fn names_from_the_data_are_one_path_segment() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"code": "NotFound", "message": "no"}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"code": "NotFound", "message": "no"}})),
        )
        .mount(&server)
        .await;
    let h = http(Duration::from_secs(5), 0);
    let s = SentinelClient::new(h.clone(), &cloud(&server.uri()));
    let _ = s.get_incident(&ws(), "../../x?y=1#z w").await;
    let _ = s.list_comments(&ws(), "a/b").await;
    let d = dfcsync::azure::defender::DefenderClient::new(h.clone(), &cloud(&server.uri()));
    let addr = dfcsync::model::AlertAddress {
        name: "2517/../x?y".into(),
        subscription_id: "sub".into(),
        resource_group: Some("rg".into()),
        location: "westeurope".into(),
    };
    let _ = d.get_alert(&addr).await;
    let g = dfcsync::azure::graph::GraphClient::new(h, &cloud(&server.uri())).unwrap();
    let _ = g.get_incident("1/../2").await;
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    let want = [
        "/incidents/..%2F..%2Fx%3Fy%3D1%23z%20w",
        "/incidents/a%2Fb/comments",
        "/alerts/2517%2F..%2Fx%3Fy",
        "/v1.0/security/incidents/1%2F..%2F2",
    ];
    for w in want {
        assert!(paths.iter().any(|p| p.ends_with(w)), "{w} not in {paths:?}");
    }
    for p in &paths {
        assert!(!p.contains("/../") && !p.ends_with("/.."), "{p}");
    }
}
