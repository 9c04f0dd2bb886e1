//! Shared helpers: the demo scenario, a started emulator, an HTTPS client trusting its CA,
//! and tokens.

use emulator::{Emulator, EmulatorHandle, Scenario, StartOptions};
use serde_json::{Value, json};

pub const DEMO: &str = emulator::DEMO_SCENARIO;
pub const SUB: &str = "00000000-0000-0000-0000-000000000001";
pub const DFC_SUB: &str = "00000000-0000-0000-0000-000000000002";
pub const TENANT: &str = "72f988bf-0000-0000-0000-000000000001";
pub const CUSTOMER_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "aaaaaaaa-0000-0000-0000-000000000001";
pub const SECRET: &str = "s3cret-dfcsync";
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
pub const LA_SCOPE: &str = "https://api.loganalytics.io/.default";
pub const SI_VERSION: &str = "2025-09-01";

/// The demo scenario with changes applied to its JSON.
pub fn demo_with(f: impl FnOnce(&mut Value)) -> Scenario {
    let mut v: Value = serde_json::from_str(DEMO).unwrap();
    f(&mut v);
    Scenario::from_json_value(v).unwrap()
}

pub struct Env {
    pub emu: EmulatorHandle,
    pub http: reqwest::Client,
    pub base: String,
}

pub async fn start(s: Scenario) -> Env {
    let emu = Emulator::start(s, StartOptions::default()).await.unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = emu.base_url().to_string();
    Env { emu, http, base }
}

pub async fn start_demo() -> Env {
    start(Scenario::from_json_str(DEMO).unwrap()).await
}

impl Env {
    pub fn ws_path(&self) -> String {
        format!(
            "/subscriptions/{SUB}/resourceGroups/rg-sentinel/providers/Microsoft.OperationalInsights/workspaces/law-sentinel"
        )
    }

    pub fn incidents_url(&self) -> String {
        format!(
            "{}{}/providers/Microsoft.SecurityInsights/incidents",
            self.base,
            self.ws_path()
        )
    }

    /// A client-credentials token for the dfcsync principal.
    pub async fn token(&self, scope: &str) -> String {
        let r = self
            .http
            .post(format!("{}/{TENANT}/oauth2/v2.0/token", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    /// A token for any principal, through the control API.
    pub async fn token_for(&self, principal: &str, scope: &str) -> String {
        let v = self
            .control(
                "POST",
                "token",
                Some(json!({"principal": principal, "scope": scope})),
            )
            .await;
        v["access_token"].as_str().unwrap().to_string()
    }

    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_emulator/{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url),
        };
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "control {path}: {status} {v}");
        v
    }

    pub async fn call(
        &self,
        method: &str,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call_with(method, url, token, body, &[]).await
    }

    /// [`Env::call`] with extra request headers.
    pub async fn call_with(
        &self,
        method: &str,
        url: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, url).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        } else if method == "POST" {
            req = req.header("Content-Length", "0");
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, headers, v)
    }

    pub async fn query(&self, token: &str, query: &str) -> (u16, Value) {
        let (s, _, v) = self.query_bytes(token, query).await;
        (s, v)
    }

    /// Posts a query: the status, the size of the body as received, the body parsed.
    pub async fn query_bytes(&self, token: &str, query: &str) -> (u16, usize, Value) {
        let r = self
            .http
            .post(format!("{}/v1/workspaces/{CUSTOMER_ID}/query", self.base))
            .bearer_auth(token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let body = r.bytes().await.unwrap();
        (s, body.len(), serde_json::from_slice(&body).unwrap())
    }

    /// The `seq` of the request log's last entry (0 when it is empty).
    pub async fn last_seq(&self) -> u64 {
        self.control("GET", "requests", None)
            .await
            .as_array()
            .unwrap()
            .last()
            .map(|e| e["seq"].as_u64().unwrap())
            .unwrap_or(0)
    }

    pub fn state(&self) -> Value {
        self.emu.state()
    }
}

/// The newest row of an incident's or alert's rows in the state's tables.
pub fn rows<'a>(state: &'a Value, table: &str, key: &str, value: &str) -> Vec<&'a Value> {
    state["tables"][table]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r[key] == value)
        .collect()
}
