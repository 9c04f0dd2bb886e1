//! The configuration file (TOML): Azure endpoints and credentials, the workspaces, and the
//! engine's policy. Every error names the file, the key and the reason, and is raised at
//! start-up; nothing is checked later at run time.
//!
//! `dfcsync.example.toml` at the repository root documents every key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::Closure;
use crate::policy::{Policy, ReopenPolicy, Template, Templates};

/// A configuration error: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: key {key}: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

/// The whole file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub azure: AzureSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub workspaces: Vec<WorkspaceSection>,
    #[serde(default)]
    pub policy: PolicySection,
    #[serde(default)]
    pub sync: SyncSection,
    #[serde(default)]
    pub lease: LeaseSection,
    #[serde(default)]
    pub health: HealthSection,
}

/// `[lease]`: one writer at a time (docs/deploy.md, "One writer at a time").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSection {
    /// `none` (default), `azure_blob` or `kubernetes`.
    pub kind: Option<String>,
    /// `azure_blob`: the storage account's blob endpoint (`https://<account>.blob.core.windows.net`).
    pub account_url: Option<String>,
    /// `azure_blob`: the container of the lease blobs (`dfcsync-leases`).
    pub container: Option<String>,
    /// The blob's or the Lease object's name; by default one named after the target (the
    /// tenant, or the configured workspaces), so that every run of one deployment shares it.
    pub name: Option<String>,
    /// How long a lease lasts unless renewed (`30s`; a Blob lease takes 15 to 60 s).
    pub duration: Option<String>,
    /// `kubernetes`: the namespace of the Lease (by default the pod's own).
    pub namespace: Option<String>,
    /// `kubernetes`: a kubeconfig file, to reach a cluster from outside it (by default the
    /// pod's service account, or `KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    /// `azure_blob`: the token scope of Storage (`https://storage.azure.com/.default`).
    pub scope: Option<String>,
}

/// `[health]`: dfcsync's own rows in a workspace, through the Logs Ingestion API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    /// The data collection rule's logs ingestion endpoint (off when not set).
    pub endpoint: Option<String>,
    /// The data collection rule's immutable id (`dcr-…`).
    pub dcr_immutable_id: Option<String>,
    /// The stream (`Custom-DfcSync_CL`).
    pub stream: Option<String>,
    /// The token scope of the Logs Ingestion API (`https://monitor.azure.com/.default`; the
    /// cloud's own by default).
    pub scope: Option<String>,
    /// The most rows kept while the endpoint fails (`20000`); past it the oldest are dropped,
    /// counted.
    pub buffer: Option<usize>,
}

/// `[sync]`: how cycles run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Time between cycles of `dfcsync run` (`60s`).
    pub interval: Option<String>,
    /// Up to this much is added at random to each interval (`10s`), so replicas and
    /// workspaces do not hit Azure in step.
    pub jitter: Option<String>,
    /// Incidents updated at once (8).
    pub concurrency: Option<usize>,
    /// How often one incident is re-read and re-decided after a 409 Conflict (3).
    pub conflict_retries: Option<u32>,
    /// Where `dfcsync run` serves /healthz, /readyz and /metrics (`127.0.0.1:9464`).
    pub listen: Option<String>,
    /// `dfcsync run` reads every in-scope incident at start and then this often, and only
    /// what changed in between (`1h`).
    pub resync: Option<String>,
    /// How far before the last read's clock the change feed starts (`10m`).
    pub feed_overlap: Option<String>,
    /// Which backend is read and written: `sentinel` (default: Log Analytics + the Sentinel
    /// ARM API, per workspace) or `graph` (Defender XDR incidents through Microsoft Graph,
    /// for the whole tenant).
    pub backend: Option<String>,
}

/// Where incidents are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Log Analytics rows and the Sentinel incidents API, per `[[workspaces]]`.
    #[default]
    Sentinel,
    /// Defender XDR incidents and alerts through Microsoft Graph's security API; the
    /// target is the credential's tenant.
    Graph,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sentinel => "sentinel",
            Self::Graph => "graph",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sentinel" => Some(Self::Sentinel),
            "graph" => Some(Self::Graph),
            _ => None,
        }
    }
}

/// The `[sync]` settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSettings {
    pub interval: std::time::Duration,
    pub jitter: std::time::Duration,
    pub concurrency: usize,
    pub conflict_retries: u32,
    pub listen: std::net::SocketAddr,
    pub resync: std::time::Duration,
    pub feed_overlap: chrono::TimeDelta,
    pub backend: Backend,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            interval: std::time::Duration::from_secs(60),
            jitter: std::time::Duration::from_secs(10),
            concurrency: 8,
            conflict_retries: 3,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9464)),
            resync: std::time::Duration::from_secs(3600),
            feed_overlap: chrono::TimeDelta::minutes(10),
            backend: Backend::Sentinel,
        }
    }
}

/// The environment variables that override keys of the file, with the key each sets.
/// (`DFCSYNC_CONFIG` names the file itself.)
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("DFCSYNC_CLOUD", "azure.cloud"),
    ("DFCSYNC_TENANT_ID", "azure.tenant_id"),
    ("DFCSYNC_TLS_CA_FILE", "azure.tls_ca_file"),
    ("DFCSYNC_AUTH_METHOD", "auth.method"),
    ("DFCSYNC_CLIENT_ID", "auth.client_id"),
    ("DFCSYNC_OBJECT_ID", "auth.object_id"),
    ("DFCSYNC_RESOURCE_ID", "auth.resource_id"),
    ("DFCSYNC_CLIENT_SECRET_FILE", "auth.client_secret_file"),
    ("DFCSYNC_CLIENT_SECRET_ENV", "auth.client_secret_env"),
    ("DFCSYNC_WORKSPACES", "workspaces"),
    ("DFCSYNC_MAX_AGE", "policy.max_age"),
    ("DFCSYNC_REOPEN", "policy.reopen"),
    (
        "DFCSYNC_RESPECT_MANUAL_CHANGES",
        "policy.respect_manual_changes",
    ),
    ("DFCSYNC_WRITEBACK", "policy.writeback"),
    ("DFCSYNC_INTERVAL", "sync.interval"),
    ("DFCSYNC_CONCURRENCY", "sync.concurrency"),
    ("DFCSYNC_LISTEN", "sync.listen"),
    ("DFCSYNC_RESYNC", "sync.resync"),
    ("DFCSYNC_FEED_OVERLAP", "sync.feed_overlap"),
    ("DFCSYNC_BACKEND", "sync.backend"),
    ("DFCSYNC_RESOLVED", "policy.resolved"),
    ("DFCSYNC_DISMISSED", "policy.dismissed"),
    ("DFCSYNC_LEASE_KIND", "lease.kind"),
    ("DFCSYNC_LEASE_ACCOUNT_URL", "lease.account_url"),
    ("DFCSYNC_LEASE_CONTAINER", "lease.container"),
    ("DFCSYNC_LEASE_NAME", "lease.name"),
    ("DFCSYNC_LEASE_DURATION", "lease.duration"),
    ("DFCSYNC_LEASE_NAMESPACE", "lease.namespace"),
    ("DFCSYNC_HEALTH_ENDPOINT", "health.endpoint"),
    ("DFCSYNC_HEALTH_DCR_IMMUTABLE_ID", "health.dcr_immutable_id"),
    ("DFCSYNC_HEALTH_STREAM", "health.stream"),
];

/// `[azure]`: which cloud, and extra trust.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSection {
    /// `public` (default), `usgov`, `china` or `custom`.
    pub cloud: Option<String>,
    pub tenant_id: Option<String>,
    /// An extra trusted root CA (PEM), for TLS-inspecting proxies and the emulator.
    pub tls_ca_file: Option<PathBuf>,
    /// With `cloud = "custom"`: every endpoint.
    pub endpoints: Option<EndpointsSection>,
}

/// `[azure.endpoints]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsSection {
    pub authority: String,
    pub arm: String,
    pub arm_scope: String,
    pub log_analytics: String,
    pub log_analytics_scope: String,
    /// Microsoft Graph's root (`https://graph.microsoft.com`), for `backend = "graph"`.
    #[serde(default)]
    pub graph: Option<String>,
    /// The scope of Graph tokens (`https://graph.microsoft.com/.default`).
    #[serde(default)]
    pub graph_scope: Option<String>,
}

/// `[auth]`: how dfcsync gets its tokens.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `auto` (default), `managed_identity`, `workload_identity`, `client_secret`, `azure_cli`.
    pub method: Option<String>,
    pub client_id: Option<String>,
    /// A managed identity chosen by object id or by resource id.
    pub object_id: Option<String>,
    pub resource_id: Option<String>,
    /// The client secret, from a file or from an environment variable (never the command line).
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_env: Option<String>,
}

/// `[[workspaces]]`: one Sentinel workspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSection {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    /// The workspace id (`customerId`, a GUID), when known: the workspace is then not looked
    /// up in ARM at the start of each run.
    #[serde(default)]
    pub workspace_id: Option<String>,
}

/// `[policy]`: the engine's choices (semantics.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Incidents created longer ago are out of scope (`90d`).
    pub max_age: Option<String>,
    pub product_names: Option<Vec<String>>,
    pub reopen: Option<ReopenPolicy>,
    pub respect_manual_changes: Option<bool>,
    pub writeback: Option<bool>,
    pub resolved: Option<ClosureSection>,
    pub dismissed: Option<ClosureSection>,
    #[serde(default)]
    pub templates: TemplatesSection,
}

/// A classification and its reason.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureSection {
    pub classification: String,
    pub reason: Option<String>,
}

/// `[policy.templates]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesSection {
    pub classification_comment: Option<String>,
    pub close_comment: Option<String>,
    pub activate_comment: Option<String>,
    pub reopen_comment: Option<String>,
    pub notice_comment: Option<String>,
    pub writeback_comment: Option<String>,
}

/// A configuration, read and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: ConfigFile,
    pub policy: Policy,
    pub sync: SyncSettings,
    pub lease: LeaseSettings,
    pub health: Option<HealthSettings>,
    /// Where it came from, for messages (`<defaults>` when there was no file).
    pub origin: String,
}

impl Config {
    /// The defaults, with no file.
    pub fn defaults() -> Self {
        Self {
            file: ConfigFile::default(),
            policy: Policy::default(),
            sync: SyncSettings::default(),
            lease: LeaseSettings::None,
            health: None,
            origin: "<defaults>".into(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = Self::read(path)?;
        Self::parse(&text, &origin)
    }

    fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })
    }

    /// The configuration of a run: the file (if any), then the `DFCSYNC_*` variables of
    /// [`ENV_OVERRIDES`] from `env`, checked together.
    pub fn load_with_env(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (Self::read(p)?, p.display().to_string()),
            None => (String::new(), "<defaults>".to_owned()),
        };
        let mut file = parse_file(&text, &origin)?;
        apply_env(&mut file, env)?;
        Self::check(file, &origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::check(parse_file(text, origin)?, origin)
    }

    fn check(file: ConfigFile, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: origin.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let policy = build_policy(&file.policy, &invalid)?;
        check_azure(&file, &invalid)?;
        let sync = build_sync(&file.sync, &invalid)?;
        let lease = build_lease(&file.lease, &invalid)?;
        let health = build_health(&file.health, &invalid)?;
        Ok(Self {
            file,
            policy,
            sync,
            lease,
            health,
            origin: origin.to_owned(),
        })
    }
}

fn parse_file(text: &str, origin: &str) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: origin.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// Applies the `DFCSYNC_*` overrides. `DFCSYNC_WORKSPACES` is a comma-separated list of
/// `subscription/resourceGroup/name` triples or workspace ARM ids.
fn apply_env(
    file: &mut ConfigFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let bad = |var: &str, reason: String| ConfigError::Invalid {
        file: format!("environment variable {var}"),
        key: ENV_OVERRIDES
            .iter()
            .find(|(v, _)| *v == var)
            .map_or(String::new(), |(_, k)| (*k).to_owned()),
        reason,
    };
    let get = |var: &str| env(var).filter(|v| !v.trim().is_empty());
    let parse_bool = |var: &str, v: &str| match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(bad(var, format!("{other:?} is not true or false"))),
    };
    if let Some(v) = get("DFCSYNC_CLOUD") {
        file.azure.cloud = Some(v);
    }
    if let Some(v) = get("DFCSYNC_TENANT_ID") {
        file.azure.tenant_id = Some(v);
    }
    if let Some(v) = get("DFCSYNC_TLS_CA_FILE") {
        file.azure.tls_ca_file = Some(PathBuf::from(v));
    }
    if let Some(v) = get("DFCSYNC_AUTH_METHOD") {
        file.auth.method = Some(v);
    }
    if let Some(v) = get("DFCSYNC_CLIENT_ID") {
        file.auth.client_id = Some(v);
    }
    if let Some(v) = get("DFCSYNC_OBJECT_ID") {
        file.auth.object_id = Some(v);
    }
    if let Some(v) = get("DFCSYNC_RESOURCE_ID") {
        file.auth.resource_id = Some(v);
    }
    if let Some(v) = get("DFCSYNC_CLIENT_SECRET_FILE") {
        file.auth.client_secret_file = Some(PathBuf::from(v));
    }
    if let Some(v) = get("DFCSYNC_CLIENT_SECRET_ENV") {
        file.auth.client_secret_env = Some(v);
    }
    if let Some(v) = get("DFCSYNC_WORKSPACES") {
        file.workspaces = v
            .split(',')
            .map(|w| parse_workspace_ref(w.trim()))
            .collect::<Result<_, _>>()
            .map_err(|e| bad("DFCSYNC_WORKSPACES", e))?;
    }
    if let Some(v) = get("DFCSYNC_MAX_AGE") {
        file.policy.max_age = Some(v);
    }
    if let Some(v) = get("DFCSYNC_REOPEN") {
        file.policy.reopen = Some(match v.trim() {
            "own" => ReopenPolicy::Own,
            "never" => ReopenPolicy::Never,
            "always" => ReopenPolicy::Always,
            other => {
                return Err(bad(
                    "DFCSYNC_REOPEN",
                    format!("{other:?} is not own, never or always"),
                ));
            }
        });
    }
    if let Some(v) = get("DFCSYNC_RESPECT_MANUAL_CHANGES") {
        file.policy.respect_manual_changes =
            Some(parse_bool("DFCSYNC_RESPECT_MANUAL_CHANGES", &v)?);
    }
    if let Some(v) = get("DFCSYNC_WRITEBACK") {
        file.policy.writeback = Some(parse_bool("DFCSYNC_WRITEBACK", &v)?);
    }
    if let Some(v) = get("DFCSYNC_INTERVAL") {
        file.sync.interval = Some(v);
    }
    if let Some(v) = get("DFCSYNC_CONCURRENCY") {
        file.sync.concurrency = Some(
            v.trim()
                .parse()
                .map_err(|_| bad("DFCSYNC_CONCURRENCY", format!("{v:?} is not a number")))?,
        );
    }
    if let Some(v) = get("DFCSYNC_LISTEN") {
        file.sync.listen = Some(v);
    }
    // Checked here too, so that an error names the variable rather than the file.
    if let Some(v) = get("DFCSYNC_RESYNC") {
        resync(&v).map_err(|e| bad("DFCSYNC_RESYNC", e))?;
        file.sync.resync = Some(v);
    }
    if let Some(v) = get("DFCSYNC_FEED_OVERLAP") {
        feed_overlap(&v).map_err(|e| bad("DFCSYNC_FEED_OVERLAP", e))?;
        file.sync.feed_overlap = Some(v);
    }
    if let Some(v) = get("DFCSYNC_BACKEND") {
        file.sync.backend = Some(v);
    }
    // `Classification/Reason` (`TruePositive/SuspiciousActivity`), or a classification alone.
    for (var, slot) in [
        ("DFCSYNC_RESOLVED", &mut file.policy.resolved),
        ("DFCSYNC_DISMISSED", &mut file.policy.dismissed),
    ] {
        if let Some(v) = get(var) {
            let (c, r) = match v.trim().split_once('/') {
                Some((c, r)) => (c.trim(), Some(r.trim().to_owned())),
                None => (v.trim(), None),
            };
            *slot = Some(ClosureSection {
                classification: c.to_owned(),
                reason: r.filter(|r| !r.is_empty()),
            });
        }
    }
    for (var, slot) in [
        ("DFCSYNC_LEASE_KIND", &mut file.lease.kind),
        ("DFCSYNC_LEASE_ACCOUNT_URL", &mut file.lease.account_url),
        ("DFCSYNC_LEASE_CONTAINER", &mut file.lease.container),
        ("DFCSYNC_LEASE_NAME", &mut file.lease.name),
        ("DFCSYNC_LEASE_DURATION", &mut file.lease.duration),
        ("DFCSYNC_LEASE_NAMESPACE", &mut file.lease.namespace),
        ("DFCSYNC_HEALTH_ENDPOINT", &mut file.health.endpoint),
        (
            "DFCSYNC_HEALTH_DCR_IMMUTABLE_ID",
            &mut file.health.dcr_immutable_id,
        ),
        ("DFCSYNC_HEALTH_STREAM", &mut file.health.stream),
    ] {
        if let Some(v) = get(var) {
            *slot = Some(v.trim().to_owned());
        }
    }
    Ok(())
}

/// `subscription/resourceGroup/name`, or a workspace's ARM id.
pub fn parse_workspace_ref(s: &str) -> Result<WorkspaceSection, String> {
    let parts: Vec<&str> = s.trim_matches('/').split('/').collect();
    let ws = match parts.as_slice() {
        [sub, rg, name] => (sub, rg, name),
        [
            "subscriptions",
            sub,
            "resourceGroups",
            rg,
            "providers",
            p,
            "workspaces",
            name,
        ] if p.eq_ignore_ascii_case("Microsoft.OperationalInsights") => (sub, rg, name),
        _ => {
            return Err(format!(
                "{s:?} is neither subscription/resourceGroup/name nor a workspace resource id"
            ));
        }
    };
    Ok(WorkspaceSection {
        subscription_id: (*ws.0).to_owned(),
        resource_group: (*ws.1).to_owned(),
        name: (*ws.2).to_owned(),
        workspace_id: None,
    })
}

fn build_sync(
    s: &SyncSection,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<SyncSettings, ConfigError> {
    let mut out = SyncSettings::default();
    let duration = |key: &str, v: &str| {
        humantime::parse_duration(v)
            .map_err(|e| invalid(key, format!("{v:?} is not a duration: {e}")))
    };
    if let Some(v) = &s.interval {
        out.interval = duration("sync.interval", v)?;
        if out.interval < std::time::Duration::from_secs(1) {
            return Err(invalid("sync.interval", "must be at least 1s".into()));
        }
    }
    if let Some(v) = &s.jitter {
        out.jitter = duration("sync.jitter", v)?;
    }
    if let Some(n) = s.concurrency {
        if !(1..=64).contains(&n) {
            return Err(invalid(
                "sync.concurrency",
                format!("{n} is not between 1 and 64"),
            ));
        }
        out.concurrency = n;
    }
    if let Some(n) = s.conflict_retries {
        out.conflict_retries = n;
    }
    if let Some(v) = &s.resync {
        out.resync = resync(v).map_err(|e| invalid("sync.resync", e))?;
    }
    if let Some(v) = &s.feed_overlap {
        out.feed_overlap = feed_overlap(v).map_err(|e| invalid("sync.feed_overlap", e))?;
    }
    if let Some(v) = &s.backend {
        out.backend = Backend::parse(v)
            .ok_or_else(|| invalid("sync.backend", format!("{v:?} is not sentinel or graph")))?;
    }
    if let Some(v) = &s.listen {
        out.listen = v
            .parse()
            .map_err(|_| invalid("sync.listen", format!("{v:?} is not an address:port")))?;
    }
    Ok(out)
}

/// The lease a run takes before writing (`[lease]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseSettings {
    /// No lease: overlapping runs may write twice where the service cannot tell (Graph
    /// comments, DfC writeback); dfcsync warns at start-up where that matters.
    None,
    /// An Azure Storage blob lease.
    AzureBlob {
        account_url: String,
        container: String,
        name: Option<String>,
        duration: std::time::Duration,
        scope: String,
    },
    /// A `coordination.k8s.io/v1` Lease, through the pod's service account.
    Kubernetes {
        namespace: Option<String>,
        name: Option<String>,
        duration: std::time::Duration,
        kubeconfig: Option<PathBuf>,
    },
}

/// The Blob lease's container unless `[lease] container` names one.
pub const DEFAULT_LEASE_CONTAINER: &str = "dfcsync-leases";
/// Storage's token scope (every cloud: `https://storage.azure.com`).
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

fn build_lease(
    l: &LeaseSection,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<LeaseSettings, ConfigError> {
    let duration = match &l.duration {
        None => std::time::Duration::from_secs(30),
        Some(v) => humantime::parse_duration(v)
            .map_err(|e| invalid("lease.duration", format!("{v:?} is not a duration: {e}")))?,
    };
    let kind = l.kind.as_deref().unwrap_or("none");
    let name = l.name.clone().filter(|n| !n.trim().is_empty());
    if let Some(n) = &name
        && (n.len() > 63
            || !n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        return Err(invalid(
            "lease.name",
            format!(
                "{n:?}: lower-case letters, digits and '-', at most 63 (a blob and a Kubernetes object take it)"
            ),
        ));
    }
    match kind {
        "none" => Ok(LeaseSettings::None),
        "azure_blob" => {
            if !(15..=60).contains(&duration.as_secs()) || duration.subsec_nanos() != 0 {
                return Err(invalid(
                    "lease.duration",
                    format!(
                        "{}: a Blob lease lasts 15 to 60 whole seconds",
                        humantime::format_duration(duration)
                    ),
                ));
            }
            let url = l.account_url.as_deref().ok_or_else(|| {
                invalid(
                    "lease.account_url",
                    "kind = \"azure_blob\" needs the storage account's blob endpoint (https://<account>.blob.core.windows.net)".into(),
                )
            })?;
            let parsed = url::Url::parse(url)
                .map_err(|e| invalid("lease.account_url", format!("{url:?}: {e}")))?;
            if parsed.scheme() != "https" {
                return Err(invalid(
                    "lease.account_url",
                    format!("{url:?} must be an https:// URL"),
                ));
            }
            Ok(LeaseSettings::AzureBlob {
                account_url: url.trim_end_matches('/').to_owned(),
                container: l
                    .container
                    .clone()
                    .unwrap_or_else(|| DEFAULT_LEASE_CONTAINER.to_owned()),
                name,
                duration,
                scope: l.scope.clone().unwrap_or_else(|| STORAGE_SCOPE.to_owned()),
            })
        }
        "kubernetes" => {
            if duration < std::time::Duration::from_secs(5) {
                return Err(invalid("lease.duration", "must be at least 5s".into()));
            }
            Ok(LeaseSettings::Kubernetes {
                namespace: l.namespace.clone(),
                name,
                duration,
                kubeconfig: l.kubeconfig.clone(),
            })
        }
        other => Err(invalid(
            "lease.kind",
            format!("{other:?} is not none, azure_blob or kubernetes"),
        )),
    }
}

/// Where health rows go (`[health]`, when `endpoint` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    pub endpoint: String,
    pub dcr_immutable_id: String,
    pub stream: String,
    /// `None`: the cloud's own Azure Monitor audience.
    pub scope: Option<String>,
    pub buffer: usize,
}

fn build_health(
    h: &HealthSection,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<HealthSettings>, ConfigError> {
    let Some(endpoint) = h.endpoint.as_deref().filter(|e| !e.trim().is_empty()) else {
        return Ok(None);
    };
    let parsed = url::Url::parse(endpoint)
        .map_err(|e| invalid("health.endpoint", format!("{endpoint:?}: {e}")))?;
    if parsed.scheme() != "https" {
        return Err(invalid(
            "health.endpoint",
            format!("{endpoint:?} must be an https:// URL"),
        ));
    }
    let dcr = h
        .dcr_immutable_id
        .clone()
        .filter(|d| !d.trim().is_empty())
        .ok_or_else(|| {
            invalid(
                "health.dcr_immutable_id",
                "[health] endpoint needs the data collection rule's immutable id (dcr-…)".into(),
            )
        })?;
    let stream = h
        .stream
        .clone()
        .unwrap_or_else(|| "Custom-DfcSync_CL".to_owned());
    if !stream.starts_with("Custom-") {
        return Err(invalid(
            "health.stream",
            format!("{stream:?}: a custom table's stream is named Custom-<table>"),
        ));
    }
    let buffer = h.buffer.unwrap_or(20_000);
    if buffer == 0 {
        return Err(invalid("health.buffer", "must be at least 1".into()));
    }
    Ok(Some(HealthSettings {
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        dcr_immutable_id: dcr,
        stream,
        scope: h.scope.clone(),
        buffer,
    }))
}

/// `[sync] resync`: a duration of at least a minute.
fn resync(v: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(v).map_err(|e| format!("{v:?} is not a duration: {e}"))?;
    if d < std::time::Duration::from_secs(60) {
        return Err("must be at least 1m".into());
    }
    Ok(d)
}

/// `[sync] feed_overlap`: a duration from a minute to a day.
fn feed_overlap(v: &str) -> Result<chrono::TimeDelta, String> {
    let d = humantime::parse_duration(v).map_err(|e| format!("{v:?} is not a duration: {e}"))?;
    if d < std::time::Duration::from_secs(60) || d > std::time::Duration::from_secs(86_400) {
        return Err("must be between 1m and 1d".into());
    }
    chrono::TimeDelta::from_std(d).map_err(|e| e.to_string())
}

/// The largest `max_age`: 100 years (humantime's `100y`, 36,525 days). No workspace holds
/// older rows, and a larger one breaks at run time: the sync query's `ago()` leaves the range
/// of a Kusto timespan (about 29,000 years) and the engine's `now - max_age` the range of a
/// date (found by the `config` cargo-fuzz target, docs/reliability.md).
const MAX_AGE_LIMIT: chrono::TimeDelta = chrono::TimeDelta::days(36_525);

fn build_policy(
    p: &PolicySection,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Policy, ConfigError> {
    let mut policy = Policy::default();
    if let Some(age) = &p.max_age {
        let d = humantime::parse_duration(age)
            .map_err(|e| invalid("policy.max_age", format!("{age:?} is not a duration: {e}")))?;
        policy.max_age = chrono::TimeDelta::from_std(d)
            .ok()
            .filter(|d| *d > chrono::TimeDelta::zero() && *d <= MAX_AGE_LIMIT)
            .ok_or_else(|| {
                invalid(
                    "policy.max_age",
                    format!("{age:?} is out of range (more than 0s, at most 100y)"),
                )
            })?;
    }
    if let Some(names) = &p.product_names {
        if names.iter().all(|n| n.trim().is_empty()) {
            return Err(invalid(
                "policy.product_names",
                "must name at least one product".into(),
            ));
        }
        policy.product_names = names.clone();
    }
    if let Some(r) = p.reopen {
        policy.reopen = r;
    }
    if let Some(b) = p.respect_manual_changes {
        policy.respect_manual_changes = b;
    }
    if let Some(b) = p.writeback {
        policy.writeback = b;
    }
    let closure = |key: &str, c: &ClosureSection| {
        let closure = Closure::parse(&c.classification, c.reason.as_deref())
            .map_err(|e| invalid(key, e.to_string()))?;
        if closure.reason().is_none() {
            // Closing needs a reason (400 "classification … must have classificationReason").
            return Err(invalid(
                key,
                "an automatic close needs a classification with a reason (Undetermined has none)"
                    .into(),
            ));
        }
        Ok(closure)
    };
    if let Some(c) = &p.resolved {
        policy.resolved = closure("policy.resolved", c)?;
    }
    if let Some(c) = &p.dismissed {
        policy.dismissed = closure("policy.dismissed", c)?;
    }
    let t = &p.templates;
    let mut templates = Templates::default();
    let slots: [(&str, &Option<String>, &mut Template); 6] = [
        (
            "classification_comment",
            &t.classification_comment,
            &mut templates.classification_comment,
        ),
        (
            "close_comment",
            &t.close_comment,
            &mut templates.close_comment,
        ),
        (
            "activate_comment",
            &t.activate_comment,
            &mut templates.activate_comment,
        ),
        (
            "reopen_comment",
            &t.reopen_comment,
            &mut templates.reopen_comment,
        ),
        (
            "notice_comment",
            &t.notice_comment,
            &mut templates.notice_comment,
        ),
        (
            "writeback_comment",
            &t.writeback_comment,
            &mut templates.writeback_comment,
        ),
    ];
    for (name, text, slot) in slots {
        if let Some(text) = text {
            *slot = Template::parse(text)
                .map_err(|e| invalid(&format!("policy.templates.{name}"), e.to_string()))?;
        }
    }
    policy.templates = templates;
    Ok(policy)
}

fn check_azure(
    file: &ConfigFile,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    for (i, w) in file.workspaces.iter().enumerate() {
        if let Some(id) = &w.workspace_id
            && uuid::Uuid::try_parse(id).is_err()
        {
            return Err(invalid(
                &format!("workspaces[{i}].workspace_id"),
                format!("{id:?} is not a workspace id (the workspace's customerId, a GUID)"),
            ));
        }
    }
    let cloud = file.azure.cloud.as_deref().unwrap_or("public");
    match (cloud, &file.azure.endpoints) {
        ("public" | "usgov" | "usgov_dod" | "china", None) | ("custom", Some(_)) => {}
        ("public" | "usgov" | "usgov_dod" | "china", Some(_)) => {
            return Err(invalid(
                "azure.endpoints",
                format!("endpoints are given only with cloud = \"custom\" (cloud is {cloud:?})"),
            ));
        }
        ("custom", None) => {
            return Err(invalid(
                "azure.endpoints",
                "cloud = \"custom\" needs [azure.endpoints] with authority, arm, arm_scope, log_analytics and log_analytics_scope".into(),
            ));
        }
        (other, _) => {
            return Err(invalid(
                "azure.cloud",
                format!("{other:?} is not a cloud (public, usgov, usgov_dod, china or custom)"),
            ));
        }
    }
    if file.sync.backend.as_deref().and_then(Backend::parse) == Some(Backend::Graph) {
        if cloud == "china" {
            return Err(invalid(
                "sync.backend",
                "Microsoft Graph's security API (incidents, alerts_v2) is not available in Azure operated by 21Vianet (China): use backend = \"sentinel\" there".into(),
            ));
        }
        if file.policy.writeback == Some(true) {
            return Err(invalid(
                "policy.writeback",
                "writeback (setting DfC alerts InProgress) is not available with backend = \"graph\" yet".into(),
            ));
        }
        if let Some(e) = &file.azure.endpoints
            && (e.graph.is_none() || e.graph_scope.is_none())
        {
            return Err(invalid(
                "azure.endpoints.graph",
                "backend = \"graph\" with cloud = \"custom\" needs graph and graph_scope in [azure.endpoints]".into(),
            ));
        }
    }
    if let Some(e) = &file.azure.endpoints {
        let graph = e.graph.clone().unwrap_or_else(|| "https://".into());
        for (key, url) in [
            ("azure.endpoints.authority", &e.authority),
            ("azure.endpoints.arm", &e.arm),
            ("azure.endpoints.log_analytics", &e.log_analytics),
            ("azure.endpoints.graph", &graph),
        ] {
            if !url.starts_with("https://") {
                return Err(invalid(
                    key,
                    format!(
                        "{url:?} must be an https:// URL (Azure endpoints are never plain http)"
                    ),
                ));
            }
        }
    }
    if let Some(m) = &file.auth.method
        && ![
            "auto",
            "managed_identity",
            "workload_identity",
            "client_secret",
            "azure_cli",
        ]
        .contains(&m.as_str())
    {
        return Err(invalid(
            "auth.method",
            format!(
                "{m:?} is not a method (auto, managed_identity, workload_identity, client_secret, azure_cli)"
            ),
        ));
    }
    for (i, w) in file.workspaces.iter().enumerate() {
        for (key, v) in [
            ("subscription_id", &w.subscription_id),
            ("resource_group", &w.resource_group),
            ("name", &w.name),
        ] {
            if v.trim().is_empty() {
                return Err(invalid(
                    &format!("workspaces[{i}].{key}"),
                    "is empty".into(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Classification, ClassificationReason};

    #[test]
    fn the_backend_is_read_and_checked() {
        assert_eq!(
            Config::parse("", "x.toml").unwrap().sync.backend,
            Backend::Sentinel
        );
        let c = Config::parse("[sync]\nbackend = \"graph\"\n", "x.toml").unwrap();
        assert_eq!(c.sync.backend, Backend::Graph);
        let err = Config::parse("[sync]\nbackend = \"xdr\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sync.backend") && err.contains("\"xdr\""),
            "{err}"
        );
        let err = Config::parse(
            "[azure]\ncloud = \"china\"\n[sync]\nbackend = \"graph\"\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("not available in Azure operated by 21Vianet"),
            "{err}"
        );
        let custom = "[azure]\ncloud = \"custom\"\n[azure.endpoints]\nauthority = \"https://a\"\narm = \"https://a\"\narm_scope = \"https://m/.default\"\nlog_analytics = \"https://a\"\nlog_analytics_scope = \"https://l/.default\"\n";
        let err = Config::parse(&format!("{custom}[sync]\nbackend = \"graph\"\n"), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("azure.endpoints.graph"), "{err}");
        let ok = format!(
            "{custom}graph = \"https://g\"\ngraph_scope = \"https://graph.microsoft.com/.default\"\n[sync]\nbackend = \"graph\"\n"
        );
        assert_eq!(
            Config::parse(&ok, "x.toml").unwrap().sync.backend,
            Backend::Graph
        );
        let env = |k: &str| (k == "DFCSYNC_BACKEND").then(|| "graph".to_owned());
        let c = Config::load_with_env(None, &env).unwrap();
        assert_eq!(c.sync.backend, Backend::Graph);
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = Config::parse("", "x.toml").unwrap();
        assert_eq!(c.policy.max_age, chrono::TimeDelta::days(90));
        assert_eq!(c.policy.reopen, ReopenPolicy::Own);
        assert!(c.policy.respect_manual_changes);
        assert!(!c.policy.writeback);
    }

    #[test]
    fn policy_keys_are_read() {
        let c = Config::parse(
            r#"
            [policy]
            max_age = "30d"
            reopen = "never"
            writeback = true
            [policy.dismissed]
            classification = "FalsePositive"
            reason = "InaccurateData"
            [policy.templates]
            close_comment = "closed {alert_ids}"
            "#,
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.policy.max_age, chrono::TimeDelta::days(30));
        assert_eq!(c.policy.reopen, ReopenPolicy::Never);
        assert!(c.policy.writeback);
        assert_eq!(
            c.policy.dismissed.classification(),
            Classification::FalsePositive
        );
        assert_eq!(
            c.policy.dismissed.reason(),
            Some(ClassificationReason::InaccurateData)
        );
        assert_eq!(
            c.policy.templates.close_comment.source(),
            "closed {alert_ids}"
        );
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let cases = [
            (
                "[policy.resolved]\nclassification = \"TruePositive\"\nreason = \"InaccurateData\"",
                "x.toml: key policy.resolved: classification TruePositive cannot have reason InaccurateData",
            ),
            (
                "[policy.dismissed]\nclassification = \"Undetermined\"",
                "x.toml: key policy.dismissed: an automatic close needs",
            ),
            (
                "[policy]\nmax_age = \"soon\"",
                "x.toml: key policy.max_age: \"soon\" is not a duration",
            ),
            (
                "[policy]\nmax_age = \"101y\"",
                "x.toml: key policy.max_age: \"101y\" is out of range (more than 0s, at most 100y)",
            ),
            (
                "[policy]\nmax_age = \"0s\"",
                "x.toml: key policy.max_age: \"0s\" is out of range",
            ),
            (
                "[policy.templates]\nnotice_comment = \"{nope}\"",
                "x.toml: key policy.templates.notice_comment: unknown placeholder {nope}",
            ),
            (
                "[azure]\ncloud = \"mars\"",
                "x.toml: key azure.cloud: \"mars\" is not a cloud",
            ),
            (
                "[azure]\ncloud = \"custom\"\n[azure.endpoints]\nauthority = \"http://x\"\narm = \"https://a\"\narm_scope = \"s\"\nlog_analytics = \"https://l\"\nlog_analytics_scope = \"s\"",
                "x.toml: key azure.endpoints.authority: \"http://x\" must be an https:// URL",
            ),
        ];
        for (text, want) in cases {
            let err = Config::parse(text, "x.toml").unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}\n  wanted: {want}");
        }
        let err = Config::parse("[policy]\nbogus = 1", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml") && err.contains("bogus"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[policy]\nwriteback = false\n[sync]\ninterval = \"60s\"\n",
        )
        .unwrap();
        let c = Config::load_with_env(
            Some(&path),
            &env(&[
                ("DFCSYNC_WRITEBACK", "true"),
                ("DFCSYNC_INTERVAL", "5m"),
                ("DFCSYNC_WORKSPACES", "sub1/rg1/ws1, /subscriptions/sub2/resourceGroups/rg2/providers/Microsoft.OperationalInsights/workspaces/ws2"),
                ("DFCSYNC_AUTH_METHOD", "managed_identity"),
            ]),
        )
        .unwrap();
        assert!(c.policy.writeback);
        assert_eq!(c.sync.interval, std::time::Duration::from_secs(300));
        assert_eq!(c.file.workspaces.len(), 2);
        assert_eq!(c.file.workspaces[1].name, "ws2");
        assert_eq!(c.file.workspaces[1].resource_group, "rg2");
        assert_eq!(c.file.auth.method.as_deref(), Some("managed_identity"));
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let err = Config::load_with_env(None, &env(&[("DFCSYNC_WRITEBACK", "maybe")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "environment variable DFCSYNC_WRITEBACK: key policy.writeback: \"maybe\" is not true or false"
        );
        let err = Config::load_with_env(None, &env(&[("DFCSYNC_WORKSPACES", "just-a-name")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("environment variable DFCSYNC_WORKSPACES: key workspaces:"),
            "{err}"
        );
        let err = Config::load_with_env(None, &env(&[("DFCSYNC_AUTH_METHOD", "password")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.method"), "{err}");
    }

    #[test]
    fn sync_settings_are_checked() {
        let err = Config::parse("[sync]\nconcurrency = 0", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.toml: key sync.concurrency: 0 is not between 1 and 64"),
            "{err}"
        );
        let err = Config::parse("[sync]\nlisten = \"here\"", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml: key sync.listen:"), "{err}");
        let c = Config::parse("[sync]\nresync = \"30m\"\nfeed_overlap = \"5m\"", "x.toml").unwrap();
        assert_eq!(c.sync.resync, std::time::Duration::from_secs(1800));
        assert_eq!(c.sync.feed_overlap, chrono::TimeDelta::minutes(5));
        for (text, key) in [
            ("resync = \"10s\"", "sync.resync"),
            ("feed_overlap = \"30s\"", "sync.feed_overlap"),
            ("feed_overlap = \"2d\"", "sync.feed_overlap"),
            ("feed_overlap = \"soon\"", "sync.feed_overlap"),
        ] {
            let err = Config::parse(&format!("[sync]\n{text}"), "x.toml")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("x.toml: key {key}:")), "{err}");
        }
        let c = Config::load_with_env(
            None,
            &env(&[("DFCSYNC_RESYNC", "2h"), ("DFCSYNC_FEED_OVERLAP", "15m")]),
        )
        .unwrap();
        assert_eq!(c.sync.resync, std::time::Duration::from_secs(7200));
        assert_eq!(c.sync.feed_overlap, chrono::TimeDelta::minutes(15));
        let err = Config::load_with_env(None, &env(&[("DFCSYNC_RESYNC", "often")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("environment variable DFCSYNC_RESYNC: key sync.resync:"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The documented example is a valid configuration, and its policy is the default one.
    #[test]
    fn the_example_file_parses_to_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dfcsync.example.toml");
        let c = Config::load(Path::new(path)).unwrap();
        let d = Policy::default();
        assert_eq!(c.policy.templates, d.templates);
        assert_eq!(c.policy.max_age, d.max_age);
        assert_eq!(c.policy.product_names, d.product_names);
        assert_eq!(c.policy.resolved, d.resolved);
        assert_eq!(c.policy.dismissed, d.dismissed);
    }

    /// Every key of every section, and every environment variable, is in the example (a
    /// key added to a section without a line in the example fails here).
    #[test]
    fn the_example_file_documents_every_key_and_variable() {
        let example = include_str!("../../../dfcsync.example.toml");
        let source = include_str!("config.rs");
        let mut missing = Vec::new();
        let mut sections = 0;
        for block in source.split("pub struct ").skip(1) {
            let Some((name, body)) = block.split_once('{') else {
                continue;
            };
            if !name.trim().ends_with("Section") {
                continue;
            }
            sections += 1;
            let body = body.split("\n}").next().unwrap_or("");
            for line in body.lines() {
                let Some(field) = line.trim().strip_prefix("pub ") else {
                    continue;
                };
                let Some((key, _)) = field.split_once(':') else {
                    continue;
                };
                // A key, or a table of its own (`[policy.resolved]`).
                if !example.contains(&format!("{key} =")) && !example.contains(&format!(".{key}]"))
                {
                    missing.push(format!("{}.{key}", name.trim()));
                }
            }
        }
        assert!(sections >= 10, "{sections} sections found");
        for (var, _) in ENV_OVERRIDES {
            if !example.contains(var) {
                missing.push((*var).to_owned());
            }
        }
        assert!(
            missing.is_empty(),
            "not in dfcsync.example.toml: {missing:?}"
        );
    }
}
