//! Authentication: one credential, chosen from `[auth]`, giving tokens per scope.
//!
//! | method | how | where the identity comes from |
//! |---|---|---|
//! | `client_secret` | `azure_identity::ClientSecretCredential` | `client_id` + the secret from `client_secret_file` or the variable named by `client_secret_env` (never the command line) |
//! | `workload_identity` | `azure_identity::WorkloadIdentityCredential` | AKS: `AZURE_FEDERATED_TOKEN_FILE`, client id from `[auth]` or `AZURE_CLIENT_ID`, tenant from `[azure]` or `AZURE_TENANT_ID` |
//! | `managed_identity` | IMDS (VMs, VMSS, AKS nodes): `azure_identity::ManagedIdentityCredential`; App Service / Functions / Container Apps (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`): a small hand-written request (reference §5.2) | system-assigned, or user-assigned by `client_id`, `object_id` or `resource_id` |
//! | `azure_cli` | `azure_identity::AzureCliCredential` + our token cache (the SDK's has none: every call would run `az`) | `az login` |
//! | `auto` (default) | the first that applies, in this order: | |
//!
//! `auto`, in order: (1) a client secret is configured (`client_secret_file` or
//! `client_secret_env`) → `client_secret`; (2) `AZURE_FEDERATED_TOKEN_FILE` is set (the AKS
//! workload identity webhook) → `workload_identity`; (3) `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` are set (App Service, Functions, Container Apps) → `managed_identity`;
//! (4) `[auth]` names a user-assigned identity (`client_id`, `object_id` or `resource_id`)
//! → `managed_identity` through IMDS; (5) IMDS answers a short probe → `managed_identity`
//! (system-assigned); (6) `az` is on `PATH` → `azure_cli`; otherwise an error that lists
//! what was checked. The SDK has no `DefaultAzureCredential` any more, so this order is
//! ours; [`Credential::describe`] says which one was taken and why (`dfcsync doctor`).
//!
//! Decisions where the SDK (azure_identity 1.0.0) falls short:
//! - Custom clouds and the extra CA: the SDK's credentials take a `CloudConfiguration`
//!   (custom authority host) and a transport in their `ClientOptions`; we hand them our own
//!   `reqwest` client ([`super::http`]), so token requests trust `tls_ca_file` too.
//! - App Service managed identity: the SDK refuses user-assigned resource ids there
//!   (azure-sdk-for-rust#2407) and reads its endpoint only from the process environment;
//!   the request is four lines of REST (reference §5.2), so we send it ourselves through our
//!   client, with retries on 404/429/5xx.
//! - IMDS stays with the SDK (its retry schedule follows Microsoft's guidance). Its address
//!   is fixed (`169.254.169.254`), so the emulator cannot stand in for it.
//! - The Azure CLI credential has no cache; [`Credential`] caches every token per scope
//!   until five minutes before it expires, for every method (single flight per credential).
//!
//! Tokens and secrets never appear in `Debug` output, logs or errors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};

use super::cloud::{Cloud, resource_of_scope};
use super::error::AzureError;
use super::http::AzureHttp;
pub use super::token::{AccessToken, TokenSource};
use crate::config::AuthSection;

/// The order in which `auth.method = "auto"` picks a credential (for `dfcsync doctor` and
/// the docs).
pub const AUTO_ORDER: &str = "auth.method = \"auto\" takes the first that applies: \
1. client_secret, when [auth] client_secret_file or client_secret_env is set; \
2. workload_identity, when AZURE_FEDERATED_TOKEN_FILE is set (AKS workload identity); \
3. managed_identity, when IDENTITY_ENDPOINT and IDENTITY_HEADER are set (App Service, Functions, Container Apps); \
4. managed_identity through IMDS, when [auth] names client_id, object_id or resource_id (a user-assigned identity); \
5. managed_identity through IMDS, when IMDS answers a one-second probe (system-assigned); \
6. azure_cli, when az is on PATH.";

/// The authentication methods of `[auth] method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ManagedIdentity,
    WorkloadIdentity,
    ClientSecret,
    AzureCli,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::ManagedIdentity => "managed_identity",
            Method::WorkloadIdentity => "workload_identity",
            Method::ClientSecret => "client_secret",
            Method::AzureCli => "azure_cli",
        }
    }
}

/// What the credential may read from its surroundings. [`AuthOptions::from_process`] takes
/// the real ones; tests build their own.
#[derive(Clone)]
pub struct AuthOptions {
    /// Environment variables (only those named in this module are read).
    pub env: HashMap<String, String>,
    /// Whether `az` is on `PATH` (for `auto`).
    pub az_on_path: bool,
    /// Whether `auto` may probe IMDS, and how long it waits for it.
    pub imds_probe: Option<Duration>,
    /// Runs `az` (tests give a fake one).
    pub cli_executor: Option<Arc<dyn azure_identity::Executor>>,
    /// Tokens are renewed this long before they expire.
    pub refresh_margin: Duration,
}

impl std::fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.env.keys().collect();
        names.sort();
        f.debug_struct("AuthOptions")
            .field("env_names", &names)
            .field("az_on_path", &self.az_on_path)
            .field("imds_probe", &self.imds_probe)
            .finish_non_exhaustive()
    }
}

/// The variables this module reads.
const ENV_NAMES: [&str; 6] = [
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
];

impl AuthOptions {
    /// Nothing from the surroundings: no variables, no `az`, no IMDS probe.
    pub fn isolated() -> AuthOptions {
        AuthOptions {
            env: HashMap::new(),
            az_on_path: false,
            imds_probe: None,
            cli_executor: None,
            refresh_margin: Duration::from_secs(300),
        }
    }

    /// The process environment, `PATH` and IMDS (probed for one second).
    pub fn from_process() -> AuthOptions {
        let mut env = HashMap::new();
        for n in ENV_NAMES {
            if let Ok(v) = std::env::var(n)
                && !v.is_empty()
            {
                env.insert(n.to_owned(), v);
            }
        }
        // A variable named by `client_secret_env` is read when the credential is built.
        let az_on_path = std::env::var_os("PATH").is_some_and(|p| {
            std::env::split_paths(&p).any(|d| d.join("az").is_file() || d.join("az.cmd").is_file())
        });
        AuthOptions {
            env,
            az_on_path,
            imds_probe: Some(Duration::from_secs(1)),
            cli_executor: None,
            refresh_margin: Duration::from_secs(300),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// A user-assigned managed identity.
#[allow(clippy::enum_variant_names)] // named as Azure names them
#[derive(Debug, Clone, PartialEq, Eq)]
enum UserAssigned {
    ClientId(String),
    ObjectId(String),
    ResourceId(String),
}

impl UserAssigned {
    fn from_section(auth: &AuthSection) -> Result<Option<UserAssigned>, AzureError> {
        let given: Vec<UserAssigned> = [
            auth.client_id.clone().map(UserAssigned::ClientId),
            auth.object_id.clone().map(UserAssigned::ObjectId),
            auth.resource_id.clone().map(UserAssigned::ResourceId),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.len() {
            0 => Ok(None),
            1 => Ok(given.into_iter().next()),
            _ => Err(AzureError::Config(
                "[auth]: a managed identity is chosen by one of client_id, object_id or resource_id, not several".into(),
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            UserAssigned::ClientId(v) => format!("user-assigned, client id {v}"),
            UserAssigned::ObjectId(v) => format!("user-assigned, object id {v}"),
            UserAssigned::ResourceId(v) => format!("user-assigned, resource id {v}"),
        }
    }
}

enum Inner {
    Sdk(SdkCredential),
    AppService {
        http: reqwest::Client,
        endpoint: url::Url,
        header: String,
        id: Option<UserAssigned>,
    },
}

/// A credential with its token cache.
/// An SDK credential, and how to make a fresh one: the SDK's credentials cache tokens
/// with no way to drop one, so a token a service refused (revoked, or expired by the
/// service's clock) is forgotten by making the credential again.
struct SdkCredential {
    make: Box<dyn Fn() -> Result<Arc<dyn TokenCredential>, AzureError> + Send + Sync>,
    current: std::sync::RwLock<Arc<dyn TokenCredential>>,
}

impl SdkCredential {
    fn new(
        make: impl Fn() -> Result<Arc<dyn TokenCredential>, AzureError> + Send + Sync + 'static,
    ) -> Result<Self, AzureError> {
        let current = make()?;
        Ok(Self {
            make: Box::new(make),
            current: std::sync::RwLock::new(current),
        })
    }

    fn get(&self) -> Arc<dyn TokenCredential> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn renew(&self) {
        match (self.make)() {
            Ok(fresh) => *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh,
            Err(e) => tracing::warn!(error = %e, "could not renew the credential"),
        }
    }
}

impl std::fmt::Debug for SdkCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SdkCredential(..)")
    }
}

pub struct Credential {
    method: Method,
    description: String,
    inner: Inner,
    cache: tokio::sync::Mutex<HashMap<String, AccessToken>>,
    refresh_margin: Duration,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("method", &self.method)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

fn sdk_options(cloud: &Cloud, http: &AzureHttp) -> ClientOptions {
    ClientOptions {
        transport: Some(Transport::new(Arc::new(http.reqwest_client().clone()))),
        cloud: Some(Arc::new(cloud.sdk_cloud())),
        ..Default::default()
    }
}

fn sdk_err(what: &str) -> impl Fn(azure_core::Error) -> AzureError + '_ {
    move |e| AzureError::Auth {
        credential: what.to_owned(),
        message: e.to_string(),
    }
}

/// The method `auto` picks, and why.
fn choose(auth: &AuthSection, opts: &AuthOptions, imds: bool) -> Result<(Method, String), String> {
    if auth.client_secret_file.is_some() || auth.client_secret_env.is_some() {
        return Ok((
            Method::ClientSecret,
            "a client secret is configured in [auth]".into(),
        ));
    }
    if opts.var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        return Ok((
            Method::WorkloadIdentity,
            "AZURE_FEDERATED_TOKEN_FILE is set (AKS workload identity)".into(),
        ));
    }
    if opts.var("IDENTITY_ENDPOINT").is_some() && opts.var("IDENTITY_HEADER").is_some() {
        return Ok((
            Method::ManagedIdentity,
            "IDENTITY_ENDPOINT and IDENTITY_HEADER are set (App Service, Functions, Container Apps)".into(),
        ));
    }
    if auth.client_id.is_some() || auth.object_id.is_some() || auth.resource_id.is_some() {
        return Ok((
            Method::ManagedIdentity,
            "[auth] names an identity but no secret: a user-assigned managed identity".into(),
        ));
    }
    if imds {
        return Ok((
            Method::ManagedIdentity,
            "the instance metadata service (IMDS) answered".into(),
        ));
    }
    if opts.az_on_path {
        return Ok((Method::AzureCli, "the Azure CLI (az) is on PATH".into()));
    }
    Err("auth.method = \"auto\" found no credential: no client secret in [auth], no AZURE_FEDERATED_TOKEN_FILE, no IDENTITY_ENDPOINT/IDENTITY_HEADER, no identity named in [auth], no IMDS answer, no az on PATH; set [auth] method".into())
}

/// Whether IMDS answers at all (any HTTP answer counts).
async fn probe_imds(timeout: Duration) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
    else {
        return false;
    };
    client
        .get("http://169.254.169.254/metadata/identity/oauth2/token")
        .send()
        .await
        .is_ok()
}

fn read_secret(auth: &AuthSection, opts: &AuthOptions) -> Result<(Secret, String), AzureError> {
    if let Some(path) = &auth.client_secret_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AzureError::Config(format!(
                "auth.client_secret_file {}: cannot read: {e}",
                path.display()
            ))
        })?;
        let secret = text.trim_end_matches(['\r', '\n']).to_owned();
        if secret.is_empty() {
            return Err(AzureError::Config(format!(
                "auth.client_secret_file {}: is empty",
                path.display()
            )));
        }
        return Ok((
            Secret::new(secret),
            format!("secret from file {}", path.display()),
        ));
    }
    if let Some(name) = &auth.client_secret_env {
        let value = opts
            .env
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                AzureError::Config(format!(
                    "auth.client_secret_env: the variable {name} is not set or empty"
                ))
            })?;
        return Ok((
            Secret::new(value),
            format!("secret from environment variable {name}"),
        ));
    }
    Err(AzureError::Config(
        "auth.method = \"client_secret\" needs client_secret_file or client_secret_env".into(),
    ))
}

impl Credential {
    /// Builds the credential `[auth]` asks for. `tenant_id` is `[azure] tenant_id`.
    pub async fn from_config(
        auth: &AuthSection,
        cloud: &Cloud,
        tenant_id: Option<&str>,
        http: &AzureHttp,
        opts: AuthOptions,
    ) -> Result<Credential, AzureError> {
        let cloud =
            &cloud.with_authority_host(opts.env.get("AZURE_AUTHORITY_HOST").map(String::as_str))?;
        let method_name = auth.method.as_deref().unwrap_or("auto");
        let (method, why) = match method_name {
            "auto" => {
                let quick = choose(auth, &opts, false);
                let picked = match quick {
                    Ok((m, _)) if m != Method::AzureCli => quick,
                    _ => {
                        let imds = match opts.imds_probe {
                            Some(t) => probe_imds(t).await,
                            None => false,
                        };
                        choose(auth, &opts, imds)
                    }
                };
                let (m, why) = picked.map_err(AzureError::Config)?;
                (m, format!("auth.method = \"auto\": {why}"))
            }
            "managed_identity" => (
                Method::ManagedIdentity,
                "auth.method = \"managed_identity\"".into(),
            ),
            "workload_identity" => (
                Method::WorkloadIdentity,
                "auth.method = \"workload_identity\"".into(),
            ),
            "client_secret" => (
                Method::ClientSecret,
                "auth.method = \"client_secret\"".into(),
            ),
            "azure_cli" => (Method::AzureCli, "auth.method = \"azure_cli\"".into()),
            other => {
                return Err(AzureError::Config(format!(
                    "auth.method {other:?} is not a method (auto, managed_identity, workload_identity, client_secret, azure_cli)"
                )));
            }
        };
        let (inner, what) = match method {
            Method::ClientSecret => {
                let tenant = tenant_id.ok_or_else(|| {
                    AzureError::Config("client_secret needs [azure] tenant_id".into())
                })?;
                let client_id = auth.client_id.clone().ok_or_else(|| {
                    AzureError::Config("client_secret needs [auth] client_id".into())
                })?;
                let (secret, from) = read_secret(auth, &opts)?;
                let client_options = sdk_options(cloud, http);
                let (t, id) = (tenant.to_owned(), client_id.clone());
                let c = SdkCredential::new(move || {
                    let options = azure_identity::ClientSecretCredentialOptions {
                        client_options: client_options.clone(),
                    };
                    let c: Arc<dyn TokenCredential> = azure_identity::ClientSecretCredential::new(
                        &t,
                        id.clone(),
                        secret.clone(),
                        Some(options),
                    )
                    .map_err(sdk_err("client_secret"))?;
                    Ok(c)
                })?;
                (
                    Inner::Sdk(c),
                    format!(
                        "client secret for application {client_id} in tenant {tenant} ({from}), authority {}",
                        cloud.authority
                    ),
                )
            }
            Method::WorkloadIdentity => {
                let client_id = auth
                    .client_id
                    .clone()
                    .or_else(|| opts.var("AZURE_CLIENT_ID").map(str::to_owned))
                    .ok_or_else(|| {
                        AzureError::Config(
                            "workload_identity needs [auth] client_id or AZURE_CLIENT_ID".into(),
                        )
                    })?;
                let tenant = tenant_id
                    .map(str::to_owned)
                    .or_else(|| opts.var("AZURE_TENANT_ID").map(str::to_owned))
                    .ok_or_else(|| {
                        AzureError::Config(
                            "workload_identity needs [azure] tenant_id or AZURE_TENANT_ID".into(),
                        )
                    })?;
                let file = opts
                    .var("AZURE_FEDERATED_TOKEN_FILE")
                    .map(PathBuf::from)
                    .ok_or_else(|| {
                        AzureError::Config(
                            "workload_identity needs AZURE_FEDERATED_TOKEN_FILE (set by the AKS workload identity webhook)".into(),
                        )
                    })?;
                let client_options = sdk_options(cloud, http);
                let (id, t, path) = (client_id.clone(), tenant.clone(), file.clone());
                let c = SdkCredential::new(move || {
                    let mut options = azure_identity::WorkloadIdentityCredentialOptions::default();
                    options.credential_options.client_options = client_options.clone();
                    options.client_id = Some(id.clone());
                    options.tenant_id = Some(t.clone());
                    options.token_file_path = Some(path.clone());
                    let c: Arc<dyn TokenCredential> =
                        azure_identity::WorkloadIdentityCredential::new(Some(options))
                            .map_err(sdk_err("workload_identity"))?;
                    Ok(c)
                })?;
                (
                    Inner::Sdk(c),
                    format!(
                        "workload identity: application {client_id} in tenant {tenant}, federated token from {}, authority {}",
                        file.display(),
                        cloud.authority
                    ),
                )
            }
            Method::ManagedIdentity => {
                let id = UserAssigned::from_section(auth)?;
                let who = id
                    .as_ref()
                    .map(UserAssigned::describe)
                    .unwrap_or_else(|| "system-assigned".into());
                match (opts.var("IDENTITY_ENDPOINT"), opts.var("IDENTITY_HEADER")) {
                    (Some(endpoint), Some(header)) => {
                        let url = url::Url::parse(endpoint).map_err(|e| {
                            AzureError::Config(format!("IDENTITY_ENDPOINT {endpoint:?}: {e}"))
                        })?;
                        // The one endpoint that may be plain http: Azure serves it on the host.
                        if url.scheme() != "http" && url.scheme() != "https" {
                            return Err(AzureError::Config(format!(
                                "IDENTITY_ENDPOINT {endpoint:?} is not an http(s) URL"
                            )));
                        }
                        (
                            Inner::AppService {
                                http: http.reqwest_client().clone(),
                                endpoint: url,
                                header: header.to_owned(),
                                id,
                            },
                            format!(
                                "managed identity ({who}) from the App Service endpoint {endpoint}"
                            ),
                        )
                    }
                    _ => {
                        let client_options = sdk_options(cloud, http);
                        let user_assigned = id.clone();
                        let c = SdkCredential::new(move || {
                            let mut options = azure_identity::ManagedIdentityCredentialOptions {
                                client_options: client_options.clone(),
                                ..Default::default()
                            };
                            options.user_assigned_id = user_assigned.clone().map(|i| match i {
                                UserAssigned::ClientId(v) => {
                                    azure_identity::UserAssignedId::ClientId(v)
                                }
                                UserAssigned::ObjectId(v) => {
                                    azure_identity::UserAssignedId::ObjectId(v)
                                }
                                UserAssigned::ResourceId(v) => {
                                    azure_identity::UserAssignedId::ResourceId(v)
                                }
                            });
                            let c: Arc<dyn TokenCredential> =
                                azure_identity::ManagedIdentityCredential::new(Some(options))
                                    .map_err(sdk_err("managed_identity"))?;
                            Ok(c)
                        })?;
                        (
                            Inner::Sdk(c),
                            format!("managed identity ({who}) from IMDS (169.254.169.254)"),
                        )
                    }
                }
            }
            Method::AzureCli => {
                let (tenant, executor) = (tenant_id.map(str::to_owned), opts.cli_executor.clone());
                let c = SdkCredential::new(move || {
                    let options = azure_identity::AzureCliCredentialOptions {
                        tenant_id: tenant.clone(),
                        executor: executor.clone(),
                        ..Default::default()
                    };
                    let c: Arc<dyn TokenCredential> =
                        azure_identity::AzureCliCredential::new(Some(options))
                            .map_err(sdk_err("azure_cli"))?;
                    Ok(c)
                })?;
                (
                    Inner::Sdk(c),
                    format!(
                        "Azure CLI (az account get-access-token{}), tokens cached by dfcsync",
                        tenant_id
                            .map(|t| format!(" --tenant {t}"))
                            .unwrap_or_default()
                    ),
                )
            }
        };
        let description = format!("{}: {what}; chosen because {why}", method.name());
        tracing::info!(credential = %description, "credential");
        Ok(Credential {
            method,
            description,
            inner,
            cache: tokio::sync::Mutex::new(HashMap::new()),
            refresh_margin: opts.refresh_margin,
        })
    }

    /// The method in use.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Which credential and why (for `dfcsync doctor`).
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    async fn fetch(&self, scope: &str) -> Result<AccessToken, AzureError> {
        match &self.inner {
            Inner::Sdk(c) => {
                let t = c
                    .get()
                    .get_token(&[scope], None)
                    .await
                    .map_err(sdk_err(self.method.name()))?;
                let secs = t.expires_on.unix_timestamp();
                let expires_at = if secs > 0 {
                    UNIX_EPOCH + Duration::from_secs(secs as u64)
                } else {
                    SystemTime::now()
                };
                Ok(AccessToken::new(t.token.secret().to_owned(), expires_at))
            }
            Inner::AppService {
                http,
                endpoint,
                header,
                id,
            } => app_service_token(http, endpoint, header, id.as_ref(), scope).await,
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for Credential {
    async fn token(&self, scope: &str) -> Result<AccessToken, AzureError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.get(scope)
            && t.expires_at > SystemTime::now() + self.refresh_margin
        {
            return Ok(t.clone());
        }
        let t = self.fetch(scope).await?;
        tracing::debug!(method = self.method.name(), scope, "new token");
        cache.insert(scope.to_owned(), t.clone());
        Ok(t)
    }

    async fn invalidate(&self, scope: &str) {
        self.cache.lock().await.remove(scope);
        if let Inner::Sdk(c) = &self.inner {
            c.renew();
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// The App Service / Container Apps managed identity request (reference §5.2).
async fn app_service_token(
    http: &reqwest::Client,
    endpoint: &url::Url,
    header: &str,
    id: Option<&UserAssigned>,
    scope: &str,
) -> Result<AccessToken, AzureError> {
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("api-version", "2019-08-01");
        q.append_pair("resource", resource_of_scope(scope));
        match id {
            Some(UserAssigned::ClientId(v)) => {
                q.append_pair("client_id", v);
            }
            Some(UserAssigned::ObjectId(v)) => {
                q.append_pair("principal_id", v);
            }
            Some(UserAssigned::ResourceId(v)) => {
                q.append_pair("mi_res_id", v);
            }
            None => {}
        }
    }
    let err = |message: String| AzureError::Auth {
        credential: "managed_identity (App Service endpoint)".into(),
        message,
    };
    let mut attempt = 0u32;
    loop {
        let sent = http
            .get(url.clone())
            .header("X-IDENTITY-HEADER", header)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let retryable;
        let message = match sent {
            Err(e) => {
                retryable = true;
                format!("no answer from {}: {e}", endpoint.as_str())
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.bytes().await.unwrap_or_default();
                if status == 200 {
                    return parse_mi_response(&body).map_err(err);
                }
                retryable = status == 404 || status == 429 || status >= 500;
                let (code, message, _) = super::error::error_parts(&body);
                format!(
                    "HTTP {status}{}: {}",
                    code.map(|c| format!(" {c}")).unwrap_or_default(),
                    message.unwrap_or_else(|| "(no message)".into())
                )
            }
        };
        if retryable && attempt < 3 {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
            continue;
        }
        return Err(err(message));
    }
}

/// A managed identity answer: `access_token` and `expires_on` (epoch seconds, a string on
/// these endpoints; a number is accepted too).
fn parse_mi_response(body: &[u8]) -> Result<AccessToken, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the token answer is not JSON: {e}"))?;
    let token = v
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("the token answer has no access_token")?;
    let expires_on = match v.get("expires_on") {
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        _ => None,
    }
    .or_else(|| {
        let secs = match v.get("expires_in") {
            Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            _ => None,
        }?;
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs() + secs)
    })
    .ok_or("the token answer has no expires_on")?;
    Ok(AccessToken::new(
        token.to_owned(),
        UNIX_EPOCH + Duration::from_secs(expires_on),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(vars: &[(&str, &str)], az: bool) -> AuthOptions {
        let mut o = AuthOptions::isolated();
        for (k, v) in vars {
            o.env.insert((*k).into(), (*v).into());
        }
        o.az_on_path = az;
        o
    }

    #[test]
    fn auto_order() {
        let none = AuthSection::default();
        let secret = AuthSection {
            client_id: Some("c".into()),
            client_secret_env: Some("S".into()),
            ..Default::default()
        };
        let wi = [("AZURE_FEDERATED_TOKEN_FILE", "/t")];
        let mi = [("IDENTITY_ENDPOINT", "http://x"), ("IDENTITY_HEADER", "h")];
        assert_eq!(
            choose(&secret, &opts(&wi, true), true).unwrap().0,
            Method::ClientSecret
        );
        assert_eq!(
            choose(&none, &opts(&wi, true), true).unwrap().0,
            Method::WorkloadIdentity
        );
        assert_eq!(
            choose(&none, &opts(&mi, true), true).unwrap().0,
            Method::ManagedIdentity
        );
        let uami = AuthSection {
            object_id: Some("o".into()),
            ..Default::default()
        };
        assert_eq!(
            choose(&uami, &opts(&[], true), false).unwrap().0,
            Method::ManagedIdentity
        );
        assert_eq!(
            choose(&none, &opts(&[], true), true).unwrap().0,
            Method::ManagedIdentity
        );
        assert_eq!(
            choose(&none, &opts(&[], true), false).unwrap().0,
            Method::AzureCli
        );
        let e = choose(&none, &opts(&[], false), false).unwrap_err();
        assert!(e.contains("found no credential"), "{e}");
    }

    #[tokio::test]
    async fn imds_is_the_sdk_and_says_so() {
        // Only without an App Service endpoint in the process environment (CI has none).
        if std::env::var_os("IDENTITY_ENDPOINT").is_some() {
            return;
        }
        let http = AzureHttp::builder(&Cloud::public()).build().unwrap();
        let auth = AuthSection {
            method: Some("managed_identity".into()),
            resource_id: Some("/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi".into()),
            ..Default::default()
        };
        let c = Credential::from_config(
            &auth,
            &Cloud::public(),
            None,
            &http,
            AuthOptions::isolated(),
        )
        .await
        .unwrap();
        let d = c.describe();
        assert!(d.contains("IMDS") && d.contains("resource id"), "{d}");
        let both = AuthSection {
            client_id: Some("c".into()),
            object_id: Some("o".into()),
            ..auth
        };
        let e = Credential::from_config(
            &both,
            &Cloud::public(),
            None,
            &http,
            AuthOptions::isolated(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("not several"), "{e}");
        assert!(AUTO_ORDER.contains("6. azure_cli"));
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = AccessToken::new("eyJsecret".into(), SystemTime::now());
        assert!(!format!("{t:?}").contains("eyJsecret"));
    }

    #[test]
    fn mi_response_numbers_as_strings() {
        let t = parse_mi_response(br#"{"access_token":"a","expires_on":"1506484173"}"#).unwrap();
        assert_eq!(
            t.expires_at,
            UNIX_EPOCH + Duration::from_secs(1_506_484_173)
        );
        assert!(parse_mi_response(br#"{"access_token":""}"#).is_err());
    }
}
