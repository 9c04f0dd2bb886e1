//! The Blob service calls of a lease (Azure Storage REST API, `docs/azure-services.md` §1):
//! create an empty block blob if absent, read its properties, set its metadata, and the five
//! lease actions. A thin client on the shared HTTP policy (its CA, timeouts, retries and
//! request counts), not the SDK's storage crate: a lease is these few calls, and every other
//! Azure call of dfcsync goes through the same policy (Cargo.toml says so too).
//!
//! Requests send `x-ms-version` [`VERSION`] (OAuth needs 2017-11-09 or later) and a bearer
//! token of Storage's audience. Errors carry the service's code (`LeaseAlreadyPresent`, …)
//! from the XML body or the `x-ms-error-code` header.

use std::collections::BTreeMap;

use reqwest::Method;
use url::Url;

use super::error::{AzureError, Service};
use super::http::{ApiRequest, ApiResponse, AzureHttp, segment};

/// The Blob service REST version sent.
pub const VERSION: &str = "2021-12-02";

/// A blob's lease as `Get Blob Properties` tells it, and its metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobLease {
    /// `available`, `leased`, `expired`, `breaking`, `broken`.
    pub state: String,
    /// `locked` or `unlocked`.
    pub status: String,
    /// `x-ms-meta-*`, the prefix dropped.
    pub metadata: BTreeMap<String, String>,
}

/// What a lease action answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseAnswer {
    pub lease_id: Option<String>,
    /// `x-ms-lease-time` (break: seconds until the lease is broken).
    pub lease_time: Option<u64>,
}

/// The lease actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAction<'a> {
    /// Acquire for `duration` seconds (15 to 60, or -1), proposing `id`.
    Acquire {
        duration: i32,
        id: &'a str,
    },
    Renew {
        id: &'a str,
    },
    Release {
        id: &'a str,
    },
    /// Break now (period 0) or after `period` seconds.
    Break {
        period: u32,
    },
}

/// One blob's client.
#[derive(Debug, Clone)]
pub struct BlobClient {
    http: AzureHttp,
    url: Url,
    scope: String,
}

impl BlobClient {
    /// The blob `name` of `container` at `account_url` (`https://<account>.blob.core.windows.net`,
    /// or a path-style endpoint such as the emulator's).
    pub fn new(
        http: AzureHttp,
        account_url: &str,
        container: &str,
        name: &str,
        scope: &str,
    ) -> Result<BlobClient, AzureError> {
        let url = Url::parse(&format!(
            "{}/{}/{}",
            account_url.trim_end_matches('/'),
            segment(container),
            segment(name)
        ))
        .map_err(|e| AzureError::Config(format!("lease blob URL {account_url}: {e}")))?;
        Ok(BlobClient {
            http,
            url,
            scope: scope.to_owned(),
        })
    }

    /// The blob's URL (for messages).
    pub fn url(&self) -> &Url {
        &self.url
    }

    fn request(&self, method: Method, comp: Option<&str>) -> ApiRequest {
        let mut url = self.url.clone();
        if let Some(c) = comp {
            url.query_pairs_mut().append_pair("comp", c);
        }
        let mut req = ApiRequest::new(Service::Storage, method, url, &self.scope);
        req.headers.push(("x-ms-version", VERSION.to_owned()));
        req.headers
            .push(("x-ms-date", httpdate(std::time::SystemTime::now())));
        req
    }

    /// `Put Blob` of an empty block blob, only if there is none (`If-None-Match: *`): `true`
    /// when created, `false` when it was there.
    pub async fn create_if_absent(&self) -> Result<bool, AzureError> {
        let mut req = self.request(Method::PUT, None);
        req.headers.push(("x-ms-blob-type", "BlockBlob".to_owned()));
        req.headers.push(("If-None-Match", "*".to_owned()));
        req.body = Some(Vec::new());
        match self.http.send(req).await {
            Ok(_) => Ok(true),
            Err(e) if has_code(&e, "BlobAlreadyExists") || e.status() == Some(412) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `Get Blob Properties`: the lease's state and the metadata.
    pub async fn properties(&self) -> Result<BlobLease, AzureError> {
        let resp = self.http.send(self.request(Method::HEAD, None)).await?;
        let header = |n: &str| {
            resp.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let metadata = resp
            .headers
            .iter()
            .filter_map(|(k, v)| {
                let k = k.as_str().strip_prefix("x-ms-meta-")?;
                Some((k.to_owned(), v.to_str().ok()?.to_owned()))
            })
            .collect();
        Ok(BlobLease {
            state: header("x-ms-lease-state"),
            status: header("x-ms-lease-status"),
            metadata,
        })
    }

    /// `Set Blob Metadata` (replaces all of it), under the lease `lease_id`.
    pub async fn set_metadata(
        &self,
        lease_id: &str,
        metadata: &[(&'static str, String)],
    ) -> Result<(), AzureError> {
        let mut req = self.request(Method::PUT, Some("metadata"));
        req.headers.push(("x-ms-lease-id", lease_id.to_owned()));
        for (k, v) in metadata {
            req.headers.push((k, v.clone()));
        }
        self.http.send(req).await.map(|_| ())
    }

    /// `Lease Blob`.
    pub async fn lease(&self, action: LeaseAction<'_>) -> Result<LeaseAnswer, AzureError> {
        let mut req = self.request(Method::PUT, Some("lease"));
        let h = &mut req.headers;
        match action {
            LeaseAction::Acquire { duration, id } => {
                h.push(("x-ms-lease-action", "acquire".into()));
                h.push(("x-ms-lease-duration", duration.to_string()));
                h.push(("x-ms-proposed-lease-id", id.to_owned()));
            }
            LeaseAction::Renew { id } => {
                h.push(("x-ms-lease-action", "renew".into()));
                h.push(("x-ms-lease-id", id.to_owned()));
            }
            LeaseAction::Release { id } => {
                h.push(("x-ms-lease-action", "release".into()));
                h.push(("x-ms-lease-id", id.to_owned()));
            }
            LeaseAction::Break { period } => {
                h.push(("x-ms-lease-action", "break".into()));
                h.push(("x-ms-lease-break-period", period.to_string()));
            }
        }
        // A lease action sets a state: safe to repeat after no answer (a renew or release of
        // our own id; an acquire that landed answers LeaseAlreadyPresent with our id, which
        // the caller reads as its own).
        req.idempotent = true;
        let resp: ApiResponse = self.http.send(req).await?;
        let header = |n: &str| {
            resp.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(LeaseAnswer {
            lease_id: header("x-ms-lease-id"),
            lease_time: header("x-ms-lease-time").and_then(|t| t.parse().ok()),
        })
    }
}

/// Whether `e` is the service's error `code`.
pub fn has_code(e: &AzureError, code: &str) -> bool {
    matches!(e, AzureError::Http { code: Some(c), .. } if c.eq_ignore_ascii_case(code))
}

/// An HTTP date (RFC 7231 IMF-fixdate), as `x-ms-date` wants it.
fn httpdate(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_codes() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_000_000);
        assert_eq!(httpdate(t), "Mon, 30 Nov 2026 00:53:20 GMT");
        let e = AzureError::Http {
            service: Service::Storage,
            status: 409,
            code: Some("LeaseAlreadyPresent".into()),
            message: "There is already a lease present.".into(),
            request_id: None,
        };
        assert!(has_code(&e, "LeaseAlreadyPresent"));
        assert!(!has_code(&e, "LeaseLost"));
    }
}
