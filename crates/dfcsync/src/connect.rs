//! Connecting to Azure: from a checked configuration to the service clients, sharing
//! one HTTP policy and one credential.

use std::sync::Arc;

use crate::azure::AzureError;
use crate::azure::auth::{AuthOptions, Credential};
use crate::azure::cloud::Cloud;
use crate::azure::defender::DefenderClient;
use crate::azure::graph::GraphClient;
use crate::azure::http::{AzureHttp, HttpOptions, Stats};
use crate::azure::log_analytics::LogAnalyticsClient;
use crate::azure::sentinel::SentinelClient;
use crate::config::Config;

/// The clients of one run.
#[derive(Debug, Clone)]
pub struct Connection {
    pub cloud: Cloud,
    pub log_analytics: Arc<LogAnalyticsClient>,
    pub sentinel: SentinelClient,
    pub defender: DefenderClient,
    /// Microsoft Graph's security API, where the cloud has it (`None` in Azure China; the
    /// configuration refuses `backend = "graph"` there).
    pub graph: Option<GraphClient>,
    /// Which credential is used, and why (for `doctor` and the start-up log).
    pub credential: String,
    /// The credential itself (for `doctor`, which asks for a token per audience).
    pub tokens: Arc<Credential>,
    /// Requests by service and status, retries and throttling waits.
    pub stats: Arc<Stats>,
    /// The HTTP policy every client shares (with the credential): the lease's Blob calls go
    /// through it, and its writes go behind the lease's fence.
    pub http: AzureHttp,
}

impl Connection {
    /// Builds the clients `config` describes, taking managed-identity and workload-identity
    /// settings from the process environment.
    pub async fn open(config: &Config) -> Result<Connection, AzureError> {
        Self::open_with(config, AuthOptions::from_process(), HttpOptions::default()).await
    }

    pub async fn open_with(
        config: &Config,
        auth: AuthOptions,
        http: HttpOptions,
    ) -> Result<Connection, AzureError> {
        let cloud = Cloud::from_config(&config.file.azure)?;
        let http = AzureHttp::builder(&cloud)
            .ca_file(config.file.azure.tls_ca_file.as_deref())
            .options(http)
            .build()?;
        let credential = Credential::from_config(
            &config.file.auth,
            &cloud,
            config.file.azure.tenant_id.as_deref(),
            &http,
            auth,
        )
        .await?;
        let description = credential.describe();
        let tokens = Arc::new(credential);
        let http = http.with_credential(tokens.clone());
        Ok(Connection {
            log_analytics: Arc::new(LogAnalyticsClient::new(http.clone(), &cloud)),
            sentinel: SentinelClient::new(http.clone(), &cloud),
            defender: DefenderClient::new(http.clone(), &cloud),
            graph: GraphClient::new(http.clone(), &cloud).ok(),
            stats: http.stats(),
            http,
            credential: description,
            tokens,
            cloud,
        })
    }
}
