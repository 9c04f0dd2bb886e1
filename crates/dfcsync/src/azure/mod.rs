//! The I/O shell around the engine: authentication on the official Azure SDK, cloud
//! endpoints, one HTTP policy (TLS, timeouts, retries, throttling, request ids) and one thin
//! typed client per service (Log Analytics queries, Sentinel incidents and comments,
//! Defender for Cloud alerts). The clients know nothing of the engine: they move JSON, and
//! the caller decides. Facts come from `shared/reference/azure-apis.md`.
//!
//! Building the clients from a configuration:
//!
//! ```no_run
//! # async fn f(cfg: &dfcsync::config::Config) -> Result<(), dfcsync::azure::AzureError> {
//! use dfcsync::azure::{self, auth, http};
//! let cloud = azure::cloud::Cloud::from_config(&cfg.file.azure)?;
//! let http = http::AzureHttp::builder(&cloud)
//!     .ca_file(cfg.file.azure.tls_ca_file.as_deref())
//!     .build()?;
//! let cred = auth::Credential::from_config(
//!     &cfg.file.auth,
//!     &cloud,
//!     cfg.file.azure.tenant_id.as_deref(),
//!     &http,
//!     auth::AuthOptions::from_process(),
//! )
//! .await?;
//! println!("{}", cred.describe());
//! let http = http.with_credential(std::sync::Arc::new(cred));
//! let sentinel = azure::sentinel::SentinelClient::new(http.clone(), &cloud);
//! # let _ = sentinel; Ok(()) }
//! ```

pub mod auth;
pub mod cloud;
pub mod defender;
pub mod error;
pub mod graph;
pub mod http;
pub mod log_analytics;
pub mod logs_ingestion;
pub mod sentinel;
pub mod storage;
pub mod token;

pub use error::AzureError;
