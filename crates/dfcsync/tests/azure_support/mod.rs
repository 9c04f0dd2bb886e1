//! Shared helpers of the `azure_*` tests: a scenario for the emulator, a started emulator
//! with the dfcsync configuration it prints, fast retry options, and the clients built the
//! way the product builds them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use dfcsync::azure::auth::{AuthOptions, Credential, TokenSource};
use dfcsync::azure::cloud::Cloud;
use dfcsync::azure::defender::DefenderClient;
use dfcsync::azure::http::{AzureHttp, HttpOptions};
use dfcsync::azure::log_analytics::LogAnalyticsClient;
use dfcsync::azure::sentinel::{SentinelClient, Workspace};
use dfcsync::config::Config;
use emulator::{Emulator, EmulatorHandle, Scenario, StartOptions};
use serde_json::{Value, json};

/// The Kubernetes service account the workload-identity tests federate.
pub const FEDERATED_SUBJECT: &str = "system:serviceaccount:dfcsync:dfcsync";

pub const SUB: &str = "00000000-0000-0000-0000-000000000001";
pub const DFC_SUB: &str = "00000000-0000-0000-0000-000000000002";
pub const TENANT: &str = "72f988bf-0000-0000-0000-000000000001";
pub const CUSTOMER_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "aaaaaaaa-0000-0000-0000-000000000001";
pub const SECRET: &str = "s3cret-dfcsync-4f1e2d";
pub const MI_CLIENT_ID: &str = "dddddddd-0000-0000-0000-000000000001";
pub const MI_OBJECT_ID: &str = "dddddddd-0000-0000-0000-000000000002";
pub const MI_RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-sentinel/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi-dfcsync";

/// The scenario: one workspace, the dfcsync service principal (Sentinel Responder on the
/// workspace's resource group, Security Admin on the DfC subscription), a user-assigned
/// managed identity with the same roles, two alerts with their incidents (A1 at the
/// subscription level, B1 in resource group rg-app).
pub fn scenario_json() -> Value {
    let roles = json!([
        { "role": "Microsoft Sentinel Responder", "scope": format!("/subscriptions/{SUB}/resourceGroups/rg-sentinel") },
        { "role": "Security Admin", "scope": format!("/subscriptions/{DFC_SUB}") }
    ]);
    json!({
        "now": "2026-11-27T12:00:00Z",
        "tenant_id": TENANT,
        "workspaces": [
            { "name": "law-sentinel", "subscription_id": SUB, "resource_group": "rg-sentinel",
              "customer_id": CUSTOMER_ID, "location": "westeurope", "incident_creation": true,
              "bidirectional_sync": true, "ingestion_delay": "0s" }
        ],
        "principals": [
            { "name": "dfcsync", "kind": "service_principal", "client_id": CLIENT_ID, "secret": SECRET,
              "object_id": "bbbbbbbb-0000-0000-0000-000000000001", "roles": roles,
              "federated_subject": FEDERATED_SUBJECT },
            { "name": "analyst@contoso.com", "kind": "user", "object_id": "cccccccc-0000-0000-0000-000000000001",
              "roles": [ { "role": "Microsoft Sentinel Responder", "scope": format!("/subscriptions/{SUB}") } ] },
            { "name": "mi-dfcsync", "kind": "managed_identity", "client_id": MI_CLIENT_ID,
              "object_id": MI_OBJECT_ID, "resource_id": MI_RESOURCE_ID, "roles": roles }
        ],
        "events": [
            { "at": "-3h", "do": "new_alert", "workspace": "law-sentinel", "alert": "A1",
              "subscription_id": DFC_SUB, "location": "westeurope",
              "display_name": "Suspicious process executed", "severity": "High" },
            { "at": "-1h", "do": "alert_status", "alert": "A1", "status": "Resolved", "by": "analyst@contoso.com" },
            { "at": "-2h", "do": "new_alert", "workspace": "law-sentinel", "alert": "B1",
              "subscription_id": DFC_SUB, "resource_group": "rg-app", "location": "westeurope",
              "display_name": "Digital currency mining related behavior detected", "severity": "Medium" }
        ]
    })
}

/// Short waits for tests: retries in milliseconds, Retry-After up to 3 s.
pub fn fast() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        max_retries: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(3),
        access_retries: 2,
        access_retry_delay: Duration::from_millis(20),
        ..HttpOptions::default()
    }
}

pub struct Env {
    pub emu: EmulatorHandle,
    pub config: Config,
    pub cloud: Cloud,
    /// The policy without a credential.
    pub base: AzureHttp,
    /// The policy with the configured (client secret) credential.
    pub http: AzureHttp,
    /// That credential (its cache holds the tokens `http` sends).
    pub cred: Arc<Credential>,
    pub ctl: reqwest::Client,
}

pub async fn start_with(scenario: Value, opts: HttpOptions) -> Env {
    let s = Scenario::from_json_str(&scenario.to_string()).expect("scenario");
    let emu = Emulator::start(s, StartOptions::default())
        .await
        .expect("emulator");
    let config = Config::parse(&emu.config_toml(), "emulator.toml").expect("config");
    let cloud = Cloud::from_config(&config.file.azure).expect("cloud");
    let base = AzureHttp::builder(&cloud)
        .ca_file(config.file.azure.tls_ca_file.as_deref())
        .options(opts)
        .build()
        .expect("http");
    let cred = Credential::from_config(
        &config.file.auth,
        &cloud,
        config.file.azure.tenant_id.as_deref(),
        &base,
        AuthOptions::isolated(),
    )
    .await
    .expect("credential");
    let cred = Arc::new(cred);
    let http = base.with_credential(cred.clone());
    let ctl = reqwest::Client::builder()
        .tls_backend_preconfigured(ctl_tls(emu.ca_pem()))
        .build()
        .expect("control client");
    Env {
        emu,
        config,
        cloud,
        base,
        http,
        cred,
        ctl,
    }
}

fn ctl_tls(ca_pem: &str) -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("pem")).expect("ca");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("tls")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

pub async fn start() -> Env {
    start_with(scenario_json(), fast()).await
}

impl Env {
    pub fn sentinel(&self) -> SentinelClient {
        SentinelClient::new(self.http.clone(), &self.cloud)
    }
    pub fn la(&self) -> LogAnalyticsClient {
        LogAnalyticsClient::new(self.http.clone(), &self.cloud)
    }
    pub fn defender(&self) -> DefenderClient {
        DefenderClient::new(self.http.clone(), &self.cloud)
    }
    pub fn with(&self, tokens: Arc<dyn TokenSource>) -> AzureHttp {
        self.base.with_credential(tokens)
    }

    pub async fn workspace(&self) -> Workspace {
        self.sentinel()
            .workspace(SUB, "rg-sentinel", "law-sentinel")
            .await
            .expect("workspace")
    }

    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_emulator/{path}", self.emu.base_url());
        let req = match method {
            "GET" => self.ctl.get(url),
            "DELETE" => self.ctl.delete(url),
            _ => self.ctl.post(url),
        };
        let req = match body {
            Some(b) => req
                .header("Content-Type", "application/json")
                .body(b.to_string()),
            None => req,
        };
        let r = req.send().await.expect("control call");
        let status = r.status();
        let text = r.text().await.expect("control body");
        assert!(status.is_success(), "control {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn fault(&self, rule: Value) {
        self.control("POST", "faults", Some(rule)).await;
    }

    /// The request log after `since`.
    pub async fn requests_since(&self, since: u64) -> Vec<Value> {
        let v = self
            .control("GET", &format!("requests?since={since}"), None)
            .await;
        v.as_array()
            .cloned()
            .or_else(|| v.get("requests").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    }

    /// The last sequence number of the request log.
    pub async fn last_seq(&self) -> u64 {
        self.requests_since(0)
            .await
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// The state's incident for an alert handle (`A1`).
    pub fn incident_of(&self, handle: &str) -> Value {
        let st = self.emu.state();
        let alert = st["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["key"] == handle))
            .cloned()
            .expect("alert in state");
        let sys = alert["system_alert_id"].clone();
        st["incidents"]
            .as_array()
            .and_then(|a| {
                a.iter().find(|i| {
                    i["alert_ids"]
                        .as_array()
                        .is_some_and(|ids| ids.contains(&sys))
                })
            })
            .cloned()
            .expect("incident in state")
    }

    /// The state's DfC alert for a handle.
    pub fn alert(&self, handle: &str) -> Value {
        let st = self.emu.state();
        st["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["key"] == handle))
            .cloned()
            .expect("alert in state")
    }
}
