//! The harness of the end-to-end tests (`e2e`, `graph_e2e`): an emulator started on a
//! scenario, dfcsync's configuration for it (the emulator's own plus the test's lines), a
//! connection opened as the product opens it (with fast retries), and the emulator's control
//! API and request log. Each test file adds the helpers of its own backend to `Env`.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

use dfcsync::azure::auth::AuthOptions;
use dfcsync::azure::http::{AzureHttp, HttpOptions};
use dfcsync::config::Config;
use dfcsync::connect::Connection;

/// Retries fast enough for tests.
pub fn fast_http() -> HttpOptions {
    HttpOptions {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        access_retries: 0,
        access_retry_delay: Duration::from_millis(5),
        ..HttpOptions::default()
    }
}

pub struct Env {
    pub emu: emulator::EmulatorHandle,
    pub config: Config,
    pub conn: Connection,
    /// A client that trusts the emulator's CA, for its control API.
    pub http: reqwest::Client,
}

impl Env {
    /// The emulator on `scenario`, and dfcsync connected to it with the emulator's
    /// configuration followed by `extra_config`.
    pub async fn start(scenario: &str, extra_config: &str) -> Env {
        let scenario = emulator::Scenario::from_json_str(scenario).expect("scenario");
        let emu = emulator::Emulator::start(scenario, emulator::StartOptions::default())
            .await
            .expect("emulator");
        let config = Config::parse(&format!("{}\n{extra_config}", emu.config_toml()), "<test>")
            .expect("config");
        let conn = Connection::open_with(&config, AuthOptions::isolated(), fast_http())
            .await
            .expect("connection");
        let http = AzureHttp::builder(&conn.cloud)
            .ca_pem(emu.ca_pem().as_bytes())
            .build()
            .unwrap()
            .reqwest_client()
            .clone();
        Env {
            emu,
            config,
            conn,
            http,
        }
    }

    /// POSTs `body` to the control API's `path` and expects a success.
    pub async fn control(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}/_emulator/{path}", self.emu.base_url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    /// The emulator's request log.
    pub async fn requests(&self) -> Vec<Value> {
        let r = self
            .http
            .get(format!("{}/_emulator/requests", self.emu.base_url()))
            .send()
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        v.as_array().cloned().unwrap_or_default()
    }
}
