//! The Azure Monitor Logs Ingestion API (`docs/azure-services.md` §3): `POST
//! {endpoint}/dataCollectionRules/{immutableId}/streams/{stream}?api-version=2023-01-01`, a
//! JSON array of rows, gzip-compressed, at most 1 MB (compressed and not), answered 204. A
//! token of Azure Monitor's audience (`https://monitor.azure.com`); the identity needs
//! Monitoring Metrics Publisher on the rule. 429 with `Retry-After` is waited out by the
//! shared HTTP policy; other failures are the caller's (the health sink keeps the rows).

use std::io::Write;

use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::error::{AzureError, Service};
use super::http::{ApiRequest, AzureHttp, segment};

/// The API version of the Logs Ingestion API.
pub const API_VERSION: &str = "2023-01-01";
/// The most one call may carry (compressed, and uncompressed), in bytes.
pub const MAX_BODY: usize = 1_000_000;

/// One data collection rule's stream.
#[derive(Debug, Clone)]
pub struct LogsIngestionClient {
    http: AzureHttp,
    url: Url,
    scope: String,
}

impl LogsIngestionClient {
    pub fn new(
        http: AzureHttp,
        endpoint: &str,
        dcr_immutable_id: &str,
        stream: &str,
        scope: &str,
    ) -> Result<LogsIngestionClient, AzureError> {
        let mut url = Url::parse(&format!(
            "{}/dataCollectionRules/{}/streams/{}",
            endpoint.trim_end_matches('/'),
            segment(dcr_immutable_id),
            segment(stream)
        ))
        .map_err(|e| AzureError::Config(format!("health endpoint {endpoint}: {e}")))?;
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        Ok(LogsIngestionClient {
            http,
            url,
            scope: scope.to_owned(),
        })
    }

    /// Sends `rows` (one call: the caller keeps each call under [`MAX_BODY`]).
    pub async fn send(&self, rows: &[Value]) -> Result<(), AzureError> {
        let json = serde_json::to_vec(rows)
            .map_err(|e| AzureError::Config(format!("health rows: {e}")))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&json)
            .and_then(|()| gz.try_finish())
            .map_err(|e| AzureError::Config(format!("compressing health rows: {e}")))?;
        let body = gz
            .finish()
            .map_err(|e| AzureError::Config(format!("compressing health rows: {e}")))?;
        let mut req = ApiRequest::new(
            Service::LogsIngestion,
            Method::POST,
            self.url.clone(),
            &self.scope,
        );
        req.headers.push(("Content-Encoding", "gzip".to_owned()));
        req.body = Some(body);
        self.http.send(req).await.map(|_| ())
    }
}

/// Rows cut into calls of at most [`MAX_BODY`] bytes of JSON each (a row too large alone is
/// sent alone; the service truncates fields over 64 KB).
pub fn batches(rows: &[Value]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 2usize);
    for (i, r) in rows.iter().enumerate() {
        let n = serde_json::to_vec(r).map_or(0, |v| v.len()) + 1;
        if i > start && size + n > MAX_BODY {
            out.push(start..i);
            start = i;
            size = 2;
        }
        size += n;
    }
    if start < rows.len() {
        out.push(start..rows.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_under_the_limit() {
        let row = serde_json::json!({"Why": "x".repeat(9_000)});
        let rows = vec![row; 250];
        let b = batches(&rows);
        assert!(b.len() >= 3, "{b:?}");
        for r in &b {
            let n = serde_json::to_vec(&rows[r.clone()]).unwrap().len();
            assert!(n <= MAX_BODY, "{n}");
        }
        assert_eq!(b.iter().map(|r| r.len()).sum::<usize>(), 250);
        assert!(batches(&[]).is_empty());
    }
}
