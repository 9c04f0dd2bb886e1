//! Each credential kind against the emulator: it gets a token and calls each service.
//! Managed identity through the App Service endpoint (system-assigned and user-assigned by
//! client id, object id and resource id), the Azure CLI through a fake `az` that asks the
//! emulator for the token (and our cache keeps it from running twice), workload identity
//! up to the token endpoint (the emulator takes no client assertions), `auto`'s choice, and
//! a captured log of a whole run grepped for secrets and tokens.

mod azure_support;

use std::ffi::OsStr;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use azure_support::*;
use dfcsync::azure::AzureError;
use dfcsync::azure::auth::{AuthOptions, Credential, Method, TokenSource};
use dfcsync::azure::defender::{DefenderClient, DfcAction};
use dfcsync::azure::http::AzureHttp;
use dfcsync::azure::log_analytics::LogAnalyticsClient;
use dfcsync::azure::sentinel::SentinelClient;
use dfcsync::config::AuthSection;
use dfcsync::model::AlertAddress;
use serde_json::{Value, json};

/// Calls each service with `http`; returns the first error.
async fn call_each_service(env: &Env, http: &AzureHttp) -> Result<(), AzureError> {
    let s = SentinelClient::new(http.clone(), &env.cloud);
    let ws = s.workspace(SUB, "rg-sentinel", "law-sentinel").await?;
    let incidents = s.list_incidents(&ws, None, None).await?;
    assert_eq!(incidents.len(), 2);
    LogAnalyticsClient::new(http.clone(), &env.cloud)
        .query(&ws.customer_id, "SecurityIncident | take 1", None)
        .await?;
    let a = env.alert("B1");
    let addr = AlertAddress {
        name: a["name"].as_str().unwrap_or_default().to_owned(),
        subscription_id: DFC_SUB.into(),
        resource_group: Some("rg-app".into()),
        location: "westeurope".into(),
    };
    let d = DefenderClient::new(http.clone(), &env.cloud);
    d.get_alert(&addr).await?;
    d.set_status(&addr, DfcAction::InProgress).await?;
    Ok(())
}

fn mi_options(env: &Env) -> AuthOptions {
    let e = env.emu.endpoints();
    // The one endpoint that is plain http, as on an Azure host.
    assert!(
        e.identity_endpoint.starts_with("http://"),
        "{}",
        e.identity_endpoint
    );
    let mut o = AuthOptions::isolated();
    o.env
        .insert("IDENTITY_ENDPOINT".into(), e.identity_endpoint);
    o.env.insert("IDENTITY_HEADER".into(), e.identity_header);
    o
}

#[tokio::test]
async fn managed_identity_every_selector_calls_every_service() {
    let env = start().await;
    let cases = [
        AuthSection::default(),
        AuthSection {
            client_id: Some(MI_CLIENT_ID.into()),
            ..Default::default()
        },
        AuthSection {
            object_id: Some(MI_OBJECT_ID.into()),
            ..Default::default()
        },
        AuthSection {
            resource_id: Some(MI_RESOURCE_ID.into()),
            ..Default::default()
        },
    ];
    for mut auth in cases {
        auth.method = Some("managed_identity".into());
        let since = env.last_seq().await;
        let cred = Credential::from_config(&auth, &env.cloud, None, &env.base, mi_options(&env))
            .await
            .unwrap();
        assert_eq!(cred.method(), Method::ManagedIdentity);
        assert!(cred.describe().contains("App Service endpoint"));
        let header = env.emu.endpoints().identity_header;
        let dbg = format!("{cred:?} {:?} {}", mi_options(&env), cred.describe());
        assert!(!dbg.contains(&header), "the identity header leaked: {dbg}");
        let http = env.with(Arc::new(cred));
        call_each_service(&env, &http).await.unwrap();
        let log = env.requests_since(since).await;
        let arm: Vec<&Value> = log.iter().filter(|e| e["service"] == "arm").collect();
        assert!(
            arm.iter().all(|e| e["principal"] == "mi-dfcsync"),
            "{log:?}"
        );
        let tokens = log.iter().filter(|e| e["service"] == "identity").count();
        assert_eq!(tokens, 2, "one token per audience, then the cache: {log:?}");
    }
    // An identity the resource does not have.
    let auth = AuthSection {
        method: Some("managed_identity".into()),
        client_id: Some("99999999-0000-0000-0000-000000000000".into()),
        ..Default::default()
    };
    let cred = Credential::from_config(&auth, &env.cloud, None, &env.base, mi_options(&env))
        .await
        .unwrap();
    let e = cred.token(&env.cloud.arm_scope).await.unwrap_err();
    assert!(matches!(e, AzureError::Auth { .. }), "{e:?}");
    assert!(!e.to_string().contains(&env.emu.endpoints().identity_header));
}

#[tokio::test]
async fn auto_picks_managed_identity_on_app_service_and_says_why() {
    let env = start().await;
    let cred = Credential::from_config(
        &AuthSection::default(),
        &env.cloud,
        None,
        &env.base,
        mi_options(&env),
    )
    .await
    .unwrap();
    assert_eq!(cred.method(), Method::ManagedIdentity);
    let d = cred.describe();
    assert!(d.contains("auto") && d.contains("IDENTITY_ENDPOINT"), "{d}");
    call_each_service(&env, &env.with(Arc::new(cred)))
        .await
        .unwrap();
    // Nothing to go by: a clear error.
    let e = Credential::from_config(
        &AuthSection::default(),
        &env.cloud,
        None,
        &env.base,
        AuthOptions::isolated(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("found no credential"), "{e}");
}

/// A fake `az`: answers `az account get-access-token` with a token the emulator mints for
/// the dfcsync principal, and counts its runs.
#[derive(Debug)]
struct FakeAz {
    base: String,
    http: reqwest::Client,
    runs: AtomicUsize,
}

#[async_trait::async_trait]
impl azure_identity::Executor for FakeAz {
    async fn run(&self, _program: &OsStr, args: &[&OsStr]) -> io::Result<std::process::Output> {
        use std::os::unix::process::ExitStatusExt;
        self.runs.fetch_add(1, Ordering::SeqCst);
        let command = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let scope = command
            .split_whitespace()
            .skip_while(|w| *w != "--scope")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let r = self
            .http
            .post(format!("{}/_emulator/token", self.base))
            .header("Content-Type", "application/json")
            .body(json!({"principal": "dfcsync", "scope": scope}).to_string())
            .send()
            .await
            .map_err(io::Error::other)?;
        let v: Value = serde_json::from_str(&r.text().await.map_err(io::Error::other)?)
            .map_err(io::Error::other)?;
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() + 3000)
            .unwrap_or(0);
        let out = json!({
            "accessToken": v["access_token"], "expiresOn": "2026-11-27 13:00:00.000000",
            "expires_on": exp, "subscription": SUB, "tenant": TENANT, "tokenType": "Bearer"
        });
        Ok(std::process::Output {
            status: std::process::ExitStatus::from_raw(0),
            stdout: out.to_string().into_bytes(),
            stderr: Vec::new(),
        })
    }
}

#[tokio::test]
async fn azure_cli_with_our_cache() {
    let env = start().await;
    let fake = Arc::new(FakeAz {
        base: env.emu.base_url().to_owned(),
        http: env.ctl.clone(),
        runs: AtomicUsize::new(0),
    });
    let mut opts = AuthOptions::isolated();
    opts.cli_executor = Some(fake.clone());
    let auth = AuthSection {
        method: Some("azure_cli".into()),
        ..Default::default()
    };
    let cred = Credential::from_config(&auth, &env.cloud, Some(TENANT), &env.base, opts)
        .await
        .unwrap();
    assert!(cred.describe().contains("cached by dfcsync"));
    let http = env.with(Arc::new(cred));
    call_each_service(&env, &http).await.unwrap();
    call_each_service(&env, &http).await.unwrap();
    assert_eq!(
        fake.runs.load(Ordering::SeqCst),
        2,
        "az runs once per audience, not once per call"
    );
}

#[tokio::test]
async fn workload_identity_sends_the_federated_token() {
    use base64::Engine;
    let env = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    // What the AKS webhook mounts: a service-account token for Entra's exchange audience.
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let assertion = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        b64(
            serde_json::json!({"iss": "https://oidc.example", "sub": FEDERATED_SUBJECT, "aud": ["api://AzureADTokenExchange"]})
        )
    );
    std::fs::write(&file, &assertion).unwrap();
    let mut opts = AuthOptions::isolated();
    opts.env.insert(
        "AZURE_FEDERATED_TOKEN_FILE".into(),
        file.display().to_string(),
    );
    opts.env.insert("AZURE_CLIENT_ID".into(), CLIENT_ID.into());
    opts.env.insert("AZURE_TENANT_ID".into(), TENANT.into());
    let cred = Credential::from_config(&AuthSection::default(), &env.cloud, None, &env.base, opts)
        .await
        .unwrap();
    assert_eq!(cred.method(), Method::WorkloadIdentity);
    assert!(cred.describe().contains("AZURE_FEDERATED_TOKEN_FILE"));
    let http = env.base.with_credential(Arc::new(cred));
    call_each_service(&env, &http).await.unwrap();

    // A token file for another subject is refused, as an Auth error that does not echo it.
    std::fs::write(
        &file,
        format!(
            "{}.{}.c2ln",
            b64(serde_json::json!({"alg": "RS256"})),
            b64(serde_json::json!({"sub": "system:serviceaccount:other:other", "aud": "api://AzureADTokenExchange"}))
        ),
    )
    .unwrap();
    let mut opts = AuthOptions::isolated();
    opts.env.insert(
        "AZURE_FEDERATED_TOKEN_FILE".into(),
        file.display().to_string(),
    );
    opts.env.insert("AZURE_CLIENT_ID".into(), CLIENT_ID.into());
    opts.env.insert("AZURE_TENANT_ID".into(), TENANT.into());
    let cred = Credential::from_config(&AuthSection::default(), &env.cloud, None, &env.base, opts)
        .await
        .unwrap();
    let e = cred.token(&env.cloud.arm_scope).await.unwrap_err();
    assert!(matches!(e, AzureError::Auth { .. }), "{e:?}");
    assert!(e.to_string().contains("federated identity"), "{e}");
    assert!(!e.to_string().contains("c2ln"), "{e}");
}

/// A writer into a shared buffer, for the captured log.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_log_of_a_run_holds_no_secret_and_no_token() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = start().await;
    call_each_service(&env, &env.http).await.unwrap();
    // An error path too: a 429, a 503 and a conflict, all logged.
    env.fault(json!({"method": "GET", "path": "/incidents$", "status": 429, "times": 1, "retry_after": "0s"}))
        .await;
    env.fault(json!({"method": "POST", "path": "/query$", "status": 503, "times": 1}))
        .await;
    call_each_service(&env, &env.http).await.unwrap();
    let arm = env.cred.token(&env.cloud.arm_scope).await.unwrap();
    let arm = arm.secret().to_owned();
    let la = env
        .cred
        .token(&env.cloud.log_analytics_scope)
        .await
        .unwrap();
    let la = la.secret().to_owned();

    let text =
        String::from_utf8_lossy(&buf.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(text.contains("throttled (429)"), "the log was captured");
    assert!(text.contains("client_request_id"), "request ids are logged");
    for (what, needle) in [
        ("secret", SECRET),
        ("ARM token", arm.as_str()),
        ("LA token", la.as_str()),
    ] {
        assert!(needle.len() > 10);
        assert!(!text.contains(needle), "the {what} is in the log");
    }
    // The token's signature alone neither.
    let sig = arm.rsplit('.').next().unwrap_or_default();
    assert!(sig.len() > 10 && !text.contains(sig));
}

/// `AZURE_AUTHORITY_HOST` (the Azure SDKs' variable) moves the authority of a named cloud:
/// here the public cloud's, pointed at the emulator, gets a token there (login.microsoftonline.com
/// cannot be reached from a test).
#[tokio::test]
async fn azure_authority_host_is_honoured() {
    let env = start().await;
    let public = dfcsync::azure::cloud::Cloud::public();
    let mut opts = AuthOptions::isolated();
    opts.env
        .insert("AZURE_AUTHORITY_HOST".into(), env.cloud.authority.clone());
    let cred = Credential::from_config(
        &env.config.file.auth,
        &public,
        env.config.file.azure.tenant_id.as_deref(),
        &env.base,
        opts,
    )
    .await
    .expect("credential");
    assert!(
        cred.describe().contains(&env.cloud.authority),
        "{}",
        cred.describe()
    );
    cred.token(&env.cloud.arm_scope)
        .await
        .expect("a token from the authority AZURE_AUTHORITY_HOST names");
    // Without it, the public cloud's own authority is used.
    let cred = Credential::from_config(
        &env.config.file.auth,
        &public,
        env.config.file.azure.tenant_id.as_deref(),
        &env.base,
        AuthOptions::isolated(),
    )
    .await
    .expect("credential");
    assert!(
        cred.describe()
            .contains("https://login.microsoftonline.com"),
        "{}",
        cred.describe()
    );
    // Plain http is refused, naming the variable.
    let mut opts = AuthOptions::isolated();
    opts.env
        .insert("AZURE_AUTHORITY_HOST".into(), "http://login.example".into());
    let e = Credential::from_config(
        &env.config.file.auth,
        &public,
        env.config.file.azure.tenant_id.as_deref(),
        &env.base,
        opts,
    )
    .await
    .expect_err("refused");
    assert!(e.to_string().contains("AZURE_AUTHORITY_HOST"), "{e}");
}
