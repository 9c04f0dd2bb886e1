//! The Logs Ingestion API over HTTP (`docs/azure-services.md` §3):
//! `POST {base}/ingest/dataCollectionRules/{immutableId}/streams/{stream}?api-version=2023-01-01`
//! (`{base}/ingest` stands for the DCR's `logsIngestion` endpoint). Tokens of audience
//! `https://monitor.azure.com`, Monitoring Metrics Publisher on the DCR, a JSON array body
//! (gzip accepted), the 1 MB limit compressed and uncompressed, the per-DCR request rate, 204
//! on success, and the service's `{"error":{"code","message"}}` with `x-ms-error-code`. The
//! rows land in the workspace's custom table, visible after its ingestion delay.

use std::io::Read;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::{Req, Resp, Shared};
use crate::ingest::{API_VERSIONS, MAX_BODY};
use crate::tokens::{MONITOR_AUDIENCES, TokenError};

/// Where the ingestion endpoint's paths start.
pub const PREFIX: &str = "/ingest/";

/// The data action Monitoring Metrics Publisher grants for ingestion.
const INGEST_ACTION: &str = "Microsoft.Insights/Telemetry/Write";

fn error(status: u16, code: &str, message: &str) -> Resp {
    Resp::json(status, json!({"error": {"code": code, "message": message}}))
        .with("x-ms-error-code", code)
}

/// Reads a body, gunzipped when `Content-Encoding: gzip`; `Err` is the error answer. Both
/// the body as sent and as read must fit the limit.
fn body(req: &Req) -> Result<Vec<u8>, Resp> {
    let too_large = || {
        error(
            413,
            "ContentLengthLimitExceeded",
            &format!("Maximum allowed content length: {MAX_BODY} bytes (1 MB)."),
        )
    };
    if req.body.len() > MAX_BODY {
        return Err(too_large());
    }
    let gzip = req
        .header("Content-Encoding")
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(req.body.to_vec());
    }
    let mut out = Vec::new();
    // Read one byte past the limit: enough to know it is passed, never more.
    let mut dec = flate2::read::GzDecoder::new(&req.body[..]).take(MAX_BODY as u64 + 1);
    dec.read_to_end(&mut out).map_err(|_| {
        error(
            400,
            "InvalidContentEncoding",
            "The request body could not be decompressed (Content-Encoding: gzip).",
        )
    })?;
    if out.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(out)
}

/// Handles an ingestion request; returns the response and the caller's principal name.
pub fn handle(shared: &Shared, req: &Req) -> (Resp, Option<String>) {
    let (wall, now) = {
        let st = shared.lock();
        (st.clock.wall_now(), st.clock.now())
    };
    let claims = match shared
        .issuer
        .check(req.header("Authorization"), MONITOR_AUDIENCES, wall)
    {
        Ok(c) => c,
        Err(e) => {
            // The code is UNCONFIRMED (§3.2); the message names what failed.
            let message = match e {
                TokenError::Missing => "The request does not carry an access token.".to_string(),
                TokenError::Expired { .. } => "The access token has expired.".to_string(),
                TokenError::WrongAudience(aud) => {
                    format!("The access token's audience '{aud}' is not https://monitor.azure.com.")
                }
                TokenError::Malformed => "The access token is not valid.".to_string(),
            };
            return (
                error(401, "InvalidAuthenticationToken", &message).with(
                    "WWW-Authenticate",
                    "Bearer resource=\"https://monitor.azure.com\"",
                ),
                None,
            );
        }
    };
    let rest = req.path.strip_prefix(PREFIX).unwrap_or_default();
    let segs: Vec<&str> = rest.split('/').collect();
    let (id, stream) = match segs.as_slice() {
        ["dataCollectionRules", id, "streams", stream] => (*id, *stream),
        _ => {
            return (
                error(404, "NotFound", "The requested resource was not found."),
                None,
            );
        }
    };
    if req.method != "POST" {
        return (
            error(
                405,
                "MethodNotAllowed",
                &format!("The HTTP method '{}' is not allowed.", req.method),
            ),
            None,
        );
    }
    match req.q("api-version") {
        Some(v) if API_VERSIONS.contains(&v) => {}
        Some(v) => {
            return (
                error(
                    400,
                    "InvalidApiVersion",
                    &format!(
                        "The api-version '{v}' is not supported. Supported versions: {}.",
                        API_VERSIONS.join(", ")
                    ),
                ),
                None,
            );
        }
        None => {
            return (
                error(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                ),
                None,
            );
        }
    }
    let mut st = shared.lock();
    let principal = st.platform.principal(&claims.oid);
    let name = principal.map(|p| st.platform.principals[p].name.clone());
    let found = st
        .platform
        .workspaces
        .iter()
        .enumerate()
        .find_map(|(w, ws)| {
            ws.dcr
                .as_ref()
                .filter(|d| d.immutable_id.eq_ignore_ascii_case(id))
                .map(|d| (w, d.clone()))
        });
    let Some((ws, dcr)) = found else {
        drop(st);
        let m = format!("Data collection rule with immutable Id '{id}' not found.");
        return (error(404, "NotFound", &m), name);
    };
    let allowed = principal.is_some_and(|p| {
        st.platform
            .authorized_data(p, INGEST_ACTION, &dcr.arm_id, now)
    });
    if !allowed {
        drop(st);
        let m = format!(
            "The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '{id}'."
        );
        return (error(403, "OperationFailed", &m), name);
    }
    let limits = st.platform.limits.clone();
    if let Err(retry) = st.throttles.ingest(&limits, &dcr.immutable_id) {
        drop(st);
        let r = error(
            429,
            "TooManyRequests",
            "The request rate of the data collection rule is over its limit. Retry after the time in the Retry-After header.",
        )
        .with("Retry-After", retry.to_string());
        return (r, name);
    }
    if !dcr.stream.eq_ignore_ascii_case(stream) {
        drop(st);
        let m = format!(
            "Stream '{stream}' is not defined in the data collection rule with immutable Id '{id}'."
        );
        return (error(404, "NotFound", &m), name);
    }
    drop(st);
    let bytes = match body(req) {
        Ok(b) => b,
        Err(r) => return (r, name),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        // Observed: an empty body is a 500 without an error code.
        return (Resp::empty(500), name);
    }
    let doc: Json = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(e) => {
            let m = format!("The request body is not valid JSON: {e}");
            return (error(400, "InvalidRequestBody", &m), name);
        }
    };
    let mut st = shared.lock();
    let now = st.clock.now();
    let w = &st.platform.workspaces[ws];
    let visible = now + w.ingestion_delay;
    let rows = match dcr.rows(&doc, &w.customer_id, now, visible) {
        Ok(r) => r,
        Err(m) => {
            drop(st);
            return (error(400, "InvalidRequestBody", &m), name);
        }
    };
    if !rows.is_empty() {
        let p = Arc::make_mut(&mut st.platform);
        p.tables[ws].push_rows(&dcr.table, rows);
        p.version += 1;
    }
    drop(st);
    (Resp::empty(204), name)
}
