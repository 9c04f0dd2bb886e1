//! A lease on an Azure Storage blob (the Blob service's `Lease Blob`, `docs/azure-services.md`
//! §1): an empty block blob per target in a container the deployment makes; the lease id is
//! the token. The service does not say who holds a lease nor until when, so the holder writes
//! both into the blob's metadata (`holder`, `renewed`, `duration`), under its lease, for the
//! others' messages and `doctor`.
//!
//! | the service answers | read as |
//! |---|---|
//! | acquire 201 | held (ours) |
//! | acquire 409 `LeaseAlreadyPresent`, `LeaseIsBreakingAndCannotBeAcquired` | taken: another holder |
//! | acquire 404 `BlobNotFound` | the blob is made (`If-None-Match: *`), then acquire again |
//! | renew 409 `LeaseIdMismatchWithLeaseOperation`, `LeaseIsBrokenAndCannotBeRenewed`, `LeaseNotPresentWithLeaseOperation`, 412 `LeaseLost` | lost |
//! | anything else | a failure (writes stop; the renewals go on while the lease may still be ours) |

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Acquired, Holding, LeaseError, LeaseStore};
use crate::azure::AzureError;
use crate::azure::http::AzureHttp;
use crate::azure::storage::{BlobClient, LeaseAction, has_code};

/// The codes that mean the lease is not ours.
const LOST: &[&str] = &[
    "LeaseIdMismatchWithLeaseOperation",
    "LeaseIsBrokenAndCannotBeRenewed",
    "LeaseNotPresentWithLeaseOperation",
    "LeaseLost",
    "LeaseIdMismatchWithBlobOperation",
];

/// The codes that mean another run holds the lease.
const TAKEN: &[&str] = &["LeaseAlreadyPresent", "LeaseIsBreakingAndCannotBeAcquired"];

/// A Blob lease.
pub struct BlobLease {
    blob: BlobClient,
}

impl BlobLease {
    pub fn new(
        http: AzureHttp,
        account_url: &str,
        container: &str,
        name: &str,
        scope: &str,
    ) -> Result<BlobLease, LeaseError> {
        Ok(BlobLease {
            blob: BlobClient::new(http, account_url, container, name, scope)?,
        })
    }

    /// Writes who holds the lease and since when (best effort: the lease stands without it).
    async fn stamp(&self, id: &str, holder: &str, duration: Duration) {
        let meta = [
            ("x-ms-meta-holder", holder.to_owned()),
            (
                "x-ms-meta-renewed",
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            ("x-ms-meta-duration", duration.as_secs().to_string()),
        ];
        if let Err(e) = self.blob.set_metadata(id, &meta).await {
            tracing::debug!(error = %e, "the lease blob's metadata was not written");
        }
    }

    async fn taken(&self) -> Result<Holding, LeaseError> {
        Ok(self.holder().await?.unwrap_or_default())
    }
}

fn any_code(e: &AzureError, codes: &[&str]) -> bool {
    codes.iter().any(|c| has_code(e, c))
}

#[async_trait::async_trait]
impl LeaseStore for BlobLease {
    fn describe(&self) -> String {
        format!("Azure Blob lease {}", self.blob.url())
    }

    async fn acquire(&self, holder: &str, duration: Duration) -> Result<Acquired, LeaseError> {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let secs = i32::try_from(duration.as_secs()).unwrap_or(60);
        let acquire = LeaseAction::Acquire {
            duration: secs,
            id: &id,
        };
        let result = match self.blob.lease(acquire.clone()).await {
            Err(e) if has_code(&e, "BlobNotFound") => {
                self.blob.create_if_absent().await?;
                self.blob.lease(acquire).await
            }
            r => r,
        };
        match result {
            Ok(_) => {
                self.stamp(&id, holder, duration).await;
                Ok(Acquired::Held { token: id })
            }
            Err(e) if any_code(&e, TAKEN) => Ok(Acquired::Taken(self.taken().await?)),
            Err(e) => Err(e.into()),
        }
    }

    async fn renew(
        &self,
        token: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<String, LeaseError> {
        match self.blob.lease(LeaseAction::Renew { id: token }).await {
            Ok(_) => {
                self.stamp(token, holder, duration).await;
                Ok(token.to_owned())
            }
            Err(e) if any_code(&e, LOST) || e.status() == Some(412) => {
                Err(LeaseError::Lost(e.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn release(&self, token: &str, _holder: &str) -> Result<(), LeaseError> {
        match self.blob.lease(LeaseAction::Release { id: token }).await {
            Ok(_) => Ok(()),
            // Not ours any more: nothing to give back.
            Err(e) if any_code(&e, LOST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn holder(&self) -> Result<Option<Holding>, LeaseError> {
        let p = match self.blob.properties().await {
            Ok(p) => p,
            Err(e) if has_code(&e, "BlobNotFound") || e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !matches!(p.state.as_str(), "leased" | "breaking") {
            return Ok(None);
        }
        let renewed = p
            .metadata
            .get("renewed")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let secs: Option<i64> = p.metadata.get("duration").and_then(|d| d.parse().ok());
        Ok(Some(Holding {
            holder: p.metadata.get("holder").cloned(),
            until: match (renewed, secs) {
                (Some(r), Some(s)) => Some(r + chrono::TimeDelta::seconds(s)),
                _ => None,
            },
        }))
    }
}
