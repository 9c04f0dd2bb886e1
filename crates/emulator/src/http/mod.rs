//! The HTTP layer: a thin shell over the platform model. One dispatcher classifies each
//! request by path (token, managed identity, ARM, Log Analytics, Microsoft Graph, control API), applies fault
//! rules, calls the service's handler and logs the exchange.

pub mod arm;
pub mod blob;
pub mod control;
pub mod graph;
pub mod identity;
pub mod ingest;
pub mod kube;
pub mod la;
pub mod la_answer;
pub mod token;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value as Json, json};

use crate::clock::Clock;
use crate::faults::Faults;
use crate::ids::IdGen;
use crate::platform::Platform;
use crate::reqlog::{Entry, RequestLog};
use crate::throttle::Throttles;
use crate::tokens::TokenIssuer;

/// The mutable state of a running emulator.
pub struct State {
    /// Shared with the scenario's initial state until the first write (copy on write).
    pub platform: Arc<Platform>,
    pub clock: Clock,
    pub faults: Faults,
    pub log: RequestLog,
    pub throttles: Throttles,
    pub rng: IdGen,
}

/// Everything the handlers share.
pub struct Shared {
    pub state: Mutex<State>,
    /// `http://127.0.0.1:PORT`: the plain-HTTP listener of the managed identity endpoints.
    pub identity_base_url: String,
    pub issuer: TokenIssuer,
    pub base_url: String,
    pub identity_header: String,
    pub ca_path: std::path::PathBuf,
    pub initial: Arc<Platform>,
    pub tenant_id: String,
}

impl Shared {
    /// Locks the state (a poisoned lock is taken over: the model has no invariants that a
    /// panicking handler could break half way that matter more than staying up).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request, read whole.
#[derive(Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// The query string as sent (without `?`; empty without one).
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    pub remote: SocketAddr,
}

impl Req {
    /// A query parameter (case-insensitive name), the first one.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Json>,
    /// The body already serialised (a Log Analytics answer, written once under its size
    /// limit); sent instead of `body`.
    pub raw: Option<Bytes>,
    /// Rows in a Log Analytics query answer (request log).
    pub rows: Option<usize>,
}

impl Resp {
    /// A JSON response.
    pub fn json(status: u16, body: Json) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: Some(body),
            raw: None,
            rows: None,
        }
    }

    /// A response without a body.
    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: None,
            raw: None,
            rows: None,
        }
    }

    /// ARM's error body.
    pub fn arm_error(status: u16, code: &str, message: impl Into<String>) -> Resp {
        Resp::json(
            status,
            json!({"error": {"code": code, "message": message.into()}}),
        )
    }

    /// A JSON response whose body is already serialised.
    pub fn raw_json(status: u16, body: Vec<u8>) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: None,
            raw: Some(Bytes::from(body)),
            rows: None,
        }
    }

    /// Serialises the JSON body into `raw` (once), so its size is known before it is sent.
    fn seal(&mut self) {
        if let Some(b) = self.body.take() {
            self.raw = Some(Bytes::from(b.to_string()));
        }
    }

    /// Adds a header.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Resp {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// Which service a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Token,
    Identity,
    Arm,
    LogAnalytics,
    Graph,
    Storage,
    Kubernetes,
    LogsIngestion,
    Control,
    Unknown,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Token => "token",
            Service::Identity => "identity",
            Service::Arm => "arm",
            Service::LogAnalytics => "log_analytics",
            Service::Graph => "graph",
            Service::Storage => "storage",
            Service::Kubernetes => "kubernetes",
            Service::LogsIngestion => "logs_ingestion",
            Service::Control => "control",
            Service::Unknown => "unknown",
        }
    }
}

/// Classifies a path.
pub fn classify(path: &str) -> Service {
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/_emulator/") || lower == "/_emulator" {
        Service::Control
    } else if lower.starts_with("/subscriptions/") {
        Service::Arm
    } else if lower.starts_with("/v1/") {
        Service::LogAnalytics
    } else if lower.starts_with(graph::PREFIX) {
        Service::Graph
    } else if path.starts_with(blob::PREFIX) {
        Service::Storage
    } else if path.starts_with(kube::PREFIX) {
        Service::Kubernetes
    } else if path.starts_with(ingest::PREFIX) {
        Service::LogsIngestion
    } else if lower == identity::APP_SERVICE_PATH || lower == identity::IMDS_PATH {
        Service::Identity
    } else if lower.contains("/oauth2/") {
        Service::Token
    } else {
        Service::Unknown
    }
}

/// Serves one HTTP request.
pub async fn serve(
    shared: Arc<Shared>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    serve_on(shared, remote, req, true).await
}

/// Serves one request of the plain-HTTP listener, which (as on an Azure host) serves the
/// managed identity endpoints only.
pub async fn serve_plain(
    shared: Arc<Shared>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    serve_on(shared, remote, req, false).await
}

async fn serve_on(
    shared: Arc<Shared>,
    remote: SocketAddr,
    req: Request<Incoming>,
    tls: bool,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let path = parts.uri.path().to_string();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let mut headers = parts.headers;
    // HTTP/2 carries the host as `:authority` (in the URI), not as a Host header.
    if !headers.contains_key(hyper::header::HOST)
        && let Some(a) = parts.uri.authority()
        && let Ok(v) = hyper::header::HeaderValue::from_str(a.as_str())
    {
        headers.insert(hyper::header::HOST, v);
    }
    let req = Req {
        method: parts.method.as_str().to_string(),
        path,
        raw_query: parts.uri.query().unwrap_or_default().to_string(),
        query,
        headers,
        body,
        remote,
    };
    if !tls && classify(&req.path) != Service::Identity {
        return to_hyper(Resp::arm_error(
            404,
            "NotFound",
            "Only the managed identity endpoints are served over plain HTTP; use HTTPS.",
        ));
    }
    let resp = dispatch(&shared, req).await;
    to_hyper(resp)
}

async fn dispatch(shared: &Arc<Shared>, req: Req) -> Resp {
    let req = Arc::new(req);
    let service = classify(&req.path);
    if service == Service::Control {
        if !req.remote.ip().is_loopback() {
            return Resp::arm_error(
                403,
                "Forbidden",
                "The control API is served on loopback only.",
            );
        }
        return control::handle(shared, &req);
    }
    // Fault rules.
    let hit = {
        let mut st = shared.lock();
        let now = st.clock.now();
        let State { faults, rng, .. } = &mut *st;
        faults.check(
            &crate::faults::Request {
                method: &req.method,
                path: &req.path,
                query: &req.raw_query,
                headers: &req.headers,
            },
            now,
            rng,
        )
    };
    if let Some(d) = hit.delay {
        tokio::time::sleep(d).await;
    }
    let (resp, principal) = if let Some(status) = hit.status {
        let mut r = fault_response(service, status);
        if let Some(ra) = hit.retry_after {
            r = r.with("Retry-After", ra.as_secs_f64().ceil().max(0.0).to_string());
        }
        (r, None)
    } else {
        match service {
            Service::Token => token::handle(shared, &req),
            Service::Identity => identity::handle(shared, &req),
            Service::Arm => arm::handle(shared, &req),
            Service::Graph => graph::handle(shared, &req),
            Service::Storage => blob::handle(shared, &req),
            Service::Kubernetes => kube::handle(shared, &req),
            Service::LogsIngestion => ingest::handle(shared, &req),
            Service::LogAnalytics => {
                let shared2 = shared.clone();
                let req2 = req.clone();
                match tokio::task::spawn_blocking(move || la::handle(&shared2, &req2)).await {
                    Ok((mut resp, principal)) => {
                        resp.seal();
                        log(shared, &req, service, &resp, principal);
                        return resp;
                    }
                    Err(_) => (
                        Resp::json(
                            500,
                            json!({"error": {"code": "InternalServerError", "message": "The query failed."}}),
                        ),
                        None,
                    ),
                }
            }
            _ => (
                Resp::arm_error(
                    404,
                    "NotFound",
                    format!(
                        "No HTTP resource was found that matches the request URI '{}'.",
                        req.path
                    ),
                ),
                None,
            ),
        }
    };
    let mut resp = resp;
    resp.seal();
    log(shared, &req, service, &resp, principal);
    resp
}

fn log(shared: &Shared, req: &Req, service: Service, resp: &Resp, principal: Option<String>) {
    let mut st = shared.lock();
    let time = crate::table::format_time(st.clock.now());
    st.log.push(Entry {
        seq: 0,
        method: req.method.clone(),
        path: req.path.clone(),
        status: resp.status,
        principal,
        time,
        service: service.name().to_string(),
        response_bytes: resp.raw.as_ref().map_or(0, Bytes::len),
        user_agent: req.header("user-agent").map(str::to_string),
        rows: resp.rows,
    });
}

fn fault_response(service: Service, status: u16) -> Resp {
    let (code, message) = match status {
        429 => (
            "TooManyRequests",
            "The request is being throttled as the limit has been reached for operation type. (injected fault)",
        ),
        500 => (
            "InternalServerError",
            "An internal server error occurred. (injected fault)",
        ),
        502 => (
            "BadGateway",
            "The gateway did not receive a response. (injected fault)",
        ),
        503 => (
            "ServiceUnavailable",
            "The service is unavailable. (injected fault)",
        ),
        504 => (
            "GatewayTimeout",
            "The gateway did not receive a response within the specified time. (injected fault)",
        ),
        409 => (
            "Conflict",
            "The request conflicts with the current state. (injected fault)",
        ),
        _ => ("InjectedFault", "An injected fault."),
    };
    match service {
        Service::Token | Service::Identity => Resp::json(
            status,
            json!({"error": "temporarily_unavailable", "error_description": message}),
        ),
        Service::Storage => {
            let (code, message) = match status {
                500 => (
                    "InternalError",
                    "The server encountered an internal error. Please retry the request. (injected fault)",
                ),
                503 => (
                    "ServerBusy",
                    "The server is currently unable to receive requests. Please retry your request. (injected fault)",
                ),
                _ => (code, message),
            };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            );
            Resp::raw_json(status, body.into_bytes())
                .with("x-ms-error-code", code)
                .with("Content-Type", "application/xml")
        }
        Service::Kubernetes => {
            let reason = match status {
                429 => "TooManyRequests",
                500 => "InternalError",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                409 => "Conflict",
                _ => "InternalError",
            };
            Resp::json(
                status,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": message, "reason": reason, "code": status}),
            )
        }
        _ => Resp::arm_error(status, code, message),
    }
}

fn to_hyper(resp: Resp) -> Response<Full<Bytes>> {
    let has_body = resp.body.is_some() || resp.raw.is_some();
    let body = match (resp.raw, &resp.body) {
        (Some(raw), _) => raw,
        (None, Some(b)) => Bytes::from(b.to_string()),
        (None, None) => Bytes::new(),
    };
    let mut builder = Response::builder().status(resp.status);
    // JSON unless the response names its own type (Storage's XML errors).
    let typed = resp
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if has_body && !typed {
        builder = builder.header("Content-Type", "application/json; charset=utf-8");
    }
    for (k, v) in &resp.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// .NET-style `M/d/yyyy h:mm:ss tt`, as ARM writes times in its token errors.
pub fn dotnet_time(t: DateTime<Utc>) -> String {
    t.format("%-m/%-d/%Y %-I:%M:%S %p").to_string()
}

/// Parses a JSON request body.
pub fn json_body(req: &Req) -> Result<Json, String> {
    if req.body.is_empty() {
        return Err("The request content was empty.".into());
    }
    serde_json::from_slice(&req.body).map_err(|e| e.to_string())
}
