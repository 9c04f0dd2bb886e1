//! Azure Blob Storage over HTTP, path style as Azurite serves it:
//! `{base}/storage/{account}/{container}/{blob}` (`docs/azure-services.md` §1). Put Blob,
//! Get Blob Properties (`HEAD`), Set Blob Metadata (`?comp=metadata`) and Lease Blob
//! (`?comp=lease`) over the model of `crate::blob`, with Entra ID tokens of audience
//! `https://storage.azure.com`, the Storage RBAC data actions, the service's response headers
//! and its XML error body with `x-ms-error-code`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Req, Resp, Shared, State};
use crate::blob::{LeaseAction, StorageError, check_lease_id};
use crate::tokens::{STORAGE_AUDIENCES, TokenError};

/// Where the Blob endpoint's paths start (`{base}/storage` is the account's blob endpoint's
/// parent: `{base}/storage/{account}`).
pub const PREFIX: &str = "/storage/";

/// The `x-ms-version` answered when the request sends none.
pub const DEFAULT_VERSION: &str = "2025-11-05";

/// The data action of a blob write (Put Blob, Set Blob Metadata, Lease Blob).
const BLOB_WRITE: &str = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write";
/// The data action of a blob read (Get Blob Properties).
const BLOB_READ: &str = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read";

/// An HTTP date (RFC 1123), as Storage writes `Date` and `Last-Modified`.
fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What every Storage answer carries.
struct Common {
    request_id: String,
    version: String,
    now: DateTime<Utc>,
    head: bool,
}

impl Common {
    fn finish(&self, resp: Resp) -> Resp {
        resp.with("x-ms-request-id", self.request_id.clone())
            .with("x-ms-version", self.version.clone())
            .with("Date", http_date(self.now))
    }

    /// An error: XML body `<Error><Code/><Message/></Error>` (none for `HEAD`) and
    /// `x-ms-error-code`.
    fn error(&self, status: u16, code: &str, message: &str, extra: &str) -> Resp {
        let mut resp = if self.head {
            Resp::empty(status)
        } else {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{}\nRequestId:{}\nTime:{}</Message>{extra}</Error>",
                xml_escape(message),
                self.request_id,
                crate::xdr::graph_time(self.now),
            );
            Resp::raw_json(status, body.into_bytes()).with("Content-Type", "application/xml")
        };
        resp = resp.with("x-ms-error-code", code);
        self.finish(resp)
    }

    fn storage_error(&self, e: &StorageError, req: &Req) -> Resp {
        let extra = match e {
            StorageError::InvalidHeaderValue(h) => format!(
                "<HeaderName>{}</HeaderName><HeaderValue>{}</HeaderValue>",
                xml_escape(h),
                xml_escape(req.header(h).unwrap_or_default())
            ),
            StorageError::MissingRequiredHeader(h) => {
                format!("<HeaderName>{}</HeaderName>", xml_escape(h))
            }
            _ => String::new(),
        };
        self.error(e.status(), e.code(), &e.to_string(), &extra)
    }
}

/// The `x-ms-meta-*` headers of a request (names as sent, after the prefix).
fn metadata_of(req: &Req) -> BTreeMap<String, String> {
    req.headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix("x-ms-meta-")?;
            Some((name.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect()
}

/// Checks the lease headers of a Lease Blob request.
fn lease_action(req: &Req) -> Result<LeaseAction, StorageError> {
    let header = |h: &str| req.header(h).map(str::trim);
    let need = |h: &str| header(h).ok_or_else(|| StorageError::MissingRequiredHeader(h.into()));
    let id = |h: &str| need(h).and_then(|v| check_lease_id(h, v));
    let action = need("x-ms-lease-action")?.to_ascii_lowercase();
    if action != "acquire" && header("x-ms-lease-duration").is_some() {
        // "only allowed and required on an acquire" ([LB]).
        return Err(StorageError::InvalidHeaderValue(
            "x-ms-lease-duration".into(),
        ));
    }
    if action != "break" && header("x-ms-lease-break-period").is_some() {
        return Err(StorageError::InvalidHeaderValue(
            "x-ms-lease-break-period".into(),
        ));
    }
    Ok(match action.as_str() {
        "acquire" => {
            let d = need("x-ms-lease-duration")?;
            let d: i64 = d
                .parse()
                .ok()
                .filter(|d| *d == -1 || (15..=60).contains(d))
                .ok_or_else(|| StorageError::InvalidHeaderValue("x-ms-lease-duration".into()))?;
            let proposed = match header("x-ms-proposed-lease-id") {
                Some(p) => Some(check_lease_id("x-ms-proposed-lease-id", p)?),
                None => None,
            };
            LeaseAction::Acquire {
                duration: (d > 0).then_some(d),
                proposed,
            }
        }
        "renew" => LeaseAction::Renew {
            id: id("x-ms-lease-id")?,
        },
        "change" => LeaseAction::Change {
            id: id("x-ms-lease-id")?,
            proposed: id("x-ms-proposed-lease-id")?,
        },
        "release" => LeaseAction::Release {
            id: id("x-ms-lease-id")?,
        },
        "break" => {
            let period = match header("x-ms-lease-break-period") {
                None => None,
                Some(p) => Some(
                    p.parse::<i64>()
                        .ok()
                        .filter(|p| (0..=60).contains(p))
                        .ok_or_else(|| {
                            StorageError::InvalidHeaderValue("x-ms-lease-break-period".into())
                        })?,
                ),
            };
            LeaseAction::Break { period }
        }
        _ => return Err(StorageError::InvalidHeaderValue("x-ms-lease-action".into())),
    })
}

/// Handles a Storage request; returns the response and the caller's principal name.
pub fn handle(shared: &Shared, req: &Req) -> (Resp, Option<String>) {
    let (now, request_id) = {
        let mut st = shared.lock();
        (st.clock.now(), st.rng.guid())
    };
    let c = Common {
        request_id,
        version: req
            .header("x-ms-version")
            .unwrap_or(DEFAULT_VERSION)
            .to_string(),
        now,
        head: req.method == "HEAD",
    };
    // Token.
    let wall = shared.lock().clock.wall_now();
    let claims = shared
        .issuer
        .check(req.header("Authorization"), STORAGE_AUDIENCES, wall);
    let claims = match claims {
        Ok(c) => c,
        Err(e) => {
            let (code, message) = match e {
                TokenError::Missing => (
                    "NoAuthenticationInformation",
                    "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
                ),
                TokenError::Expired { .. } => (
                    "InvalidAuthenticationInfo",
                    "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
                ),
                _ => (
                    "InvalidAuthenticationInfo",
                    "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
                ),
            };
            let r = c.error(401, code, message, "").with(
                "WWW-Authenticate",
                format!(
                    "Bearer authorization_uri=https://login.microsoftonline.com/{}/oauth2/authorize resource_id=https://storage.azure.com",
                    shared.tenant_id
                ),
            );
            return (r, None);
        }
    };
    let rest = req.path.strip_prefix(PREFIX).unwrap_or_default();
    let mut segs = rest.splitn(3, '/');
    let (account, container, blob) = (
        segs.next().unwrap_or_default(),
        segs.next().unwrap_or_default(),
        segs.next().unwrap_or_default(),
    );
    let blob = percent_encoding::percent_decode_str(blob)
        .decode_utf8_lossy()
        .to_string();
    let mut st = shared.lock();
    let principal = st.platform.principal(&claims.oid);
    let name = principal.map(|p| st.platform.principals[p].name.clone());
    let Some(acct) = st.platform.storage.account(account) else {
        drop(st);
        let r = c.error(
            404,
            "ResourceNotFound",
            "The specified resource does not exist.",
            "",
        );
        return (r, name);
    };
    if container.is_empty() || blob.is_empty() {
        drop(st);
        let r = c.error(
            400,
            "InvalidUri",
            "The requested URI does not represent any resource on the server.",
            "",
        );
        return (r, name);
    }
    let comp = req.q("comp").unwrap_or_default().to_ascii_lowercase();
    let action = match (req.method.as_str(), comp.as_str()) {
        ("HEAD" | "GET", _) => BLOB_READ,
        _ => BLOB_WRITE,
    };
    let scope = st.platform.storage.accounts[acct].container_id(container);
    let allowed = principal.is_some_and(|p| st.platform.authorized_data(p, action, &scope, now));
    if !allowed {
        drop(st);
        let r = c.error(
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
            "",
        );
        return (r, name);
    }
    let State { platform, rng, .. } = &mut *st;
    let p = Arc::make_mut(platform);
    let lease_id = req.header("x-ms-lease-id").map(str::trim);
    let resp = match (req.method.as_str(), comp.as_str()) {
        ("PUT", "") => {
            match req.header("x-ms-blob-type") {
                Some(t) if t.eq_ignore_ascii_case("BlockBlob") => {}
                Some(_) => {
                    return (
                        c.storage_error(
                            &StorageError::InvalidHeaderValue("x-ms-blob-type".into()),
                            req,
                        ),
                        name,
                    );
                }
                None => {
                    return (
                        c.storage_error(
                            &StorageError::MissingRequiredHeader("x-ms-blob-type".into()),
                            req,
                        ),
                        name,
                    );
                }
            }
            let if_none = req.header("If-None-Match").is_some_and(|v| v.trim() == "*");
            match p.storage.put_blob(
                acct,
                container,
                &blob,
                req.body.len(),
                metadata_of(req),
                lease_id,
                if_none,
                rng,
                now,
            ) {
                Ok((etag, at)) => c.finish(
                    Resp::empty(201)
                        .with("ETag", etag)
                        .with("Last-Modified", http_date(at))
                        .with("x-ms-request-server-encrypted", "true"),
                ),
                Err(e) => c.storage_error(&e, req),
            }
        }
        ("PUT", "metadata") => match p.storage.set_metadata(
            acct,
            container,
            &blob,
            metadata_of(req),
            lease_id,
            rng,
            now,
        ) {
            Ok((etag, at)) => c.finish(
                Resp::empty(200)
                    .with("ETag", etag)
                    .with("Last-Modified", http_date(at))
                    .with("x-ms-request-server-encrypted", "true"),
            ),
            Err(e) => c.storage_error(&e, req),
        },
        ("PUT", "lease") => match lease_action(req)
            .and_then(|a| p.storage.lease(acct, container, &blob, a, rng, now))
        {
            Ok(o) => {
                let mut r = Resp::empty(o.status)
                    .with("ETag", o.etag)
                    .with("Last-Modified", http_date(o.last_modified));
                if let Some(id) = o.lease_id {
                    r = r.with("x-ms-lease-id", id);
                }
                if let Some(t) = o.lease_time {
                    r = r.with("x-ms-lease-time", t.to_string());
                }
                c.finish(r)
            }
            Err(e) => c.storage_error(&e, req),
        },
        ("HEAD", "") => match p.storage.blob_mut(acct, container, &blob, now) {
            Ok(b) => {
                let mut r = Resp::empty(200)
                    .with("ETag", b.etag.clone())
                    .with("Last-Modified", http_date(b.last_modified))
                    .with("x-ms-creation-time", http_date(b.created))
                    .with("x-ms-blob-type", "BlockBlob")
                    .with("x-ms-lease-state", b.lease.name())
                    .with("x-ms-lease-status", b.lease.status())
                    .with("Content-Length", b.content_length.to_string())
                    .with("x-ms-server-encrypted", "true");
                if let Some(d) = b.lease.duration_kind() {
                    r = r.with("x-ms-lease-duration", d);
                }
                for (k, v) in &b.metadata {
                    r = r.with(&format!("x-ms-meta-{k}"), v.clone());
                }
                c.finish(r)
            }
            Err(e) => c.storage_error(&e, req),
        },
        (m, _) => c.error(
            405,
            "UnsupportedHttpVerb",
            &format!("The resource doesn't support specified Http Verb {m}."),
            "",
        ),
    };
    (resp, name)
}
