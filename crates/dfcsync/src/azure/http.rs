//! The one HTTP policy every Azure call goes through.
//!
//! - TLS: rustls with the ring provider; Mozilla's roots (bundled) plus an optional extra
//!   trusted root CA (`tls_ca_file`, for TLS-inspecting proxies and the emulator). The same
//!   `reqwest` client is handed to the Azure SDK's credentials as their transport, so token
//!   requests trust the same roots.
//! - Timeouts: a connect timeout and a per-attempt timeout (a Log Analytics query gets its
//!   `Prefer: wait` plus a margin).
//! - Retries with exponential backoff and jitter on connection errors, timeouts, 408 and 5xx,
//!   for idempotent requests only; `Retry-After` (or `retry-after-ms`) honoured on 429 for
//!   every request (a 429 was not processed), up to a ceiling beyond which the caller gets
//!   [`AzureError::Throttled`].
//! - A client-side limiter for ARM: it reads `x-ms-ratelimit-remaining-subscription-*` (and
//!   the `-global-` variants) and, when a subscription's bucket runs low, paces requests at
//!   the bucket's refill rate so that ARM never has to say no.
//! - `User-Agent: dfcsync/<version> run/<run id>`, a fresh `x-ms-client-request-id` per request (kept
//!   across its retries), and the service's request ids in logs and errors.
//! - Counters of requests by service and status, retries and throttle waits ([`Stats`]).
//!
//! Tokens are fetched per attempt from the [`TokenSource`] (cached there) and are never
//! logged: logs carry method, path, status, ids and timings only.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use url::Url;
use uuid::Uuid;

use super::cloud::Cloud;
use super::error::{AzureError, Service, from_answer};
use super::token::TokenSource;

/// `dfcsync/<version>`.
pub const USER_AGENT: &str = concat!("dfcsync/", env!("CARGO_PKG_VERSION"));

/// This process's run id: 8 random hex digits, the same for every request it sends (in its
/// `User-Agent`, `dfcsync/<version> run/<id>`), its health rows and its lease holder name, so
/// that the runs of one deployment can be told apart in any log.
pub fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned())
}

/// Timeouts, retries and throttling. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// TCP and TLS connect timeout.
    pub connect_timeout: Duration,
    /// Per-attempt timeout (Log Analytics adds its `Prefer: wait`).
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff; doubles each retry, with jitter.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` we wait for; longer ones end as [`AzureError::Throttled`].
    pub max_retry_after: Duration,
    /// Pace ARM requests once a bucket's remaining count is at or below this.
    pub arm_low_water: u64,
    /// ARM's refill rates per second (reference §4: reads 25, writes 10, deletes 10).
    pub arm_read_rate: f64,
    pub arm_write_rate: f64,
    /// Log Analytics `InsufficientAccessError` before the first successful query (a fresh
    /// role assignment): how many retries, and the first wait (doubling).
    pub access_retries: u32,
    pub access_retry_delay: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            arm_low_water: 20,
            arm_read_rate: 25.0,
            arm_write_rate: 10.0,
            access_retries: 4,
            access_retry_delay: Duration::from_secs(15),
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    requests: Mutex<BTreeMap<(Service, u16), u64>>,
    /// Retries of any cause.
    pub retries: AtomicU64,
    /// 429 answers seen.
    pub throttled: AtomicU64,
    /// Waits for `Retry-After` or for the ARM limiter, and their total in milliseconds.
    pub throttle_waits: AtomicU64,
    pub throttle_wait_ms: AtomicU64,
    /// Attempts that got no answer (connection errors, timeouts).
    pub transport_errors: AtomicU64,
}

impl Stats {
    fn record(&self, service: Service, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((service, status)).or_default() += 1;
    }

    fn waited(&self, d: Duration) {
        self.throttle_waits.fetch_add(1, Ordering::Relaxed);
        self.throttle_wait_ms
            .fetch_add(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Answers by service and status.
    pub fn requests(&self) -> Vec<(Service, u16, u64)> {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(&(s, st), &n)| (s, st, n)).collect()
    }

    /// Answers of one service with one status.
    pub fn count(&self, service: Service, status: u16) -> u64 {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&(service, status)).copied().unwrap_or(0)
    }

    /// All answers of one service.
    pub fn total(&self, service: Service) -> u64 {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter(|((s, _), _)| *s == service)
            .map(|(_, n)| n)
            .sum()
    }
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub service: Service,
    pub method: Method,
    pub url: Url,
    /// The token scope.
    pub scope: String,
    /// A JSON body.
    pub body: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, String)>,
    /// Safe to repeat after an error without an answer (GET, PUT, DELETE, and POSTs that
    /// read or set a state).
    pub idempotent: bool,
    /// Overrides the per-attempt timeout.
    pub timeout: Option<Duration>,
    /// What the request is about, for error messages (a path or a workspace id).
    pub resource: String,
}

impl ApiRequest {
    /// Whether it changes a resource of the synced services (see [`WriteGate`]).
    pub fn is_write(&self) -> bool {
        matches!(self.service, Service::Arm | Service::Graph)
            && !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    /// A request without a body.
    pub fn new(service: Service, method: Method, url: Url, scope: &str) -> ApiRequest {
        let idempotent = method != Method::POST && method != Method::PATCH;
        let resource = url.path().to_owned();
        ApiRequest {
            service,
            method,
            url,
            scope: scope.to_owned(),
            body: None,
            headers: Vec::new(),
            idempotent,
            timeout: None,
            resource,
        }
    }

    /// With a JSON body.
    pub fn json(mut self, body: &serde_json::Value) -> ApiRequest {
        self.body = Some(body.to_string().into_bytes());
        self
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The service's request id (`x-ms-request-id`, or the correlation id).
    pub request_id: Option<String>,
}

/// `s` as one URL path segment, percent-encoded: names that come from the data (incident
/// and alert names, ids) never add a segment, a query or a fragment to a path.
pub fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A page's link to the next page, checked to stay on the service's origin (`base`, the
/// service called `service` in errors): the token goes only where the service is. `key`
/// names the link's property in errors.
pub(crate) fn next_page(
    link: &str,
    base: &Url,
    service: &str,
    key: &str,
    what: &str,
) -> Result<Url, AzureError> {
    let u = Url::parse(link).map_err(|e| AzureError::decode(what, format!("{key}: {e}")))?;
    if u.origin() != base.origin() {
        return Err(AzureError::decode(
            what,
            format!(
                "{key} points away from {service} ({})",
                u.origin().ascii_serialization()
            ),
        ));
    }
    Ok(u)
}

impl ApiResponse {
    /// The JSON body as `T`; a body of another shape is [`AzureError::Decode`] naming `what`
    /// (and the request id).
    pub fn decode<T: for<'de> serde::Deserialize<'de>>(&self, what: &str) -> Result<T, AzureError> {
        serde_json::from_slice(&self.body).map_err(|e| AzureError::Decode {
            what: match &self.request_id {
                Some(r) => format!("{what} (request id {r})"),
                None => what.to_owned(),
            },
            message: e.to_string(),
        })
    }
}

/// The ARM operation types, as the throttling headers name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OpKind {
    Reads,
    Writes,
    Deletes,
}

impl OpKind {
    fn of(method: &Method) -> OpKind {
        if method == Method::GET || method == Method::HEAD {
            OpKind::Reads
        } else if method == Method::DELETE {
            OpKind::Deletes
        } else {
            OpKind::Writes
        }
    }

    fn name(self) -> &'static str {
        match self {
            OpKind::Reads => "reads",
            OpKind::Writes => "writes",
            OpKind::Deletes => "deletes",
        }
    }
}

#[derive(Debug)]
struct Pace {
    remaining: Option<u64>,
    next: Instant,
}

/// The ARM limiter: per subscription and operation type, the last remaining count seen and
/// the next free slot.
#[derive(Debug, Default)]
struct Limiter {
    state: Mutex<HashMap<(String, OpKind), Pace>>,
}

impl Limiter {
    /// The wait before the next request, reserving its slot.
    fn reserve(&self, key: (String, OpKind), opts: &HttpOptions) -> Duration {
        let now = Instant::now();
        let mut m = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let p = m.entry(key.clone()).or_insert(Pace {
            remaining: None,
            next: now,
        });
        let Some(remaining) = p.remaining else {
            return Duration::ZERO;
        };
        // Count this request against the estimate until its answer says better.
        p.remaining = Some(remaining.saturating_sub(1));
        if remaining > opts.arm_low_water {
            return Duration::ZERO;
        }
        let rate = match key.1 {
            OpKind::Reads => opts.arm_read_rate,
            _ => opts.arm_write_rate,
        }
        .max(0.01);
        let low = opts.arm_low_water.max(1) as f64;
        // Between one and two refill intervals: never faster than the bucket refills.
        let step = (1.0 + (low - remaining as f64).max(0.0) / low) / rate;
        let slot = p.next.max(now);
        p.next = slot + Duration::from_secs_f64(step);
        slot - now
    }

    fn observe(&self, key: (String, OpKind), headers: &HeaderMap) {
        let kind = key.1.name();
        let read = |name: String| {
            headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let own = read(format!("x-ms-ratelimit-remaining-subscription-{kind}"));
        // The shared subscription bucket is 15 times larger (reference §4): scale it down so
        // that one low-water mark serves both.
        let global = read(format!(
            "x-ms-ratelimit-remaining-subscription-global-{kind}"
        ))
        .map(|g| g / 15);
        let remaining = match (own, global) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(r) = remaining {
            let mut m = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let p = m.entry(key).or_insert(Pace {
                remaining: None,
                next: Instant::now(),
            });
            p.remaining = Some(r);
        }
    }
}

struct Inner {
    client: reqwest::Client,
    opts: HttpOptions,
    stats: Arc<Stats>,
    limiter: Limiter,
    /// Checked before each attempt of a write (see [`WriteGate`]).
    gate: std::sync::RwLock<Option<Arc<dyn WriteGate>>>,
}

/// What a write must pass before it is sent: the lease (one writer at a time). A write is a
/// request that changes a resource of the services dfcsync syncs: an ARM or Graph request
/// other than a read (incidents, comments, DfC alert status). Reads, queries, tokens, the
/// lease's own requests (Storage) and health rows (Logs Ingestion) are never gated.
pub trait WriteGate: Send + Sync {
    /// `Err` says why the write may not go now.
    fn check(&self) -> Result<(), String>;
}

/// The shared HTTP policy (cheap to clone).
#[derive(Clone)]
pub struct AzureHttp {
    inner: Arc<Inner>,
    tokens: Option<Arc<dyn TokenSource>>,
}

impl std::fmt::Debug for AzureHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureHttp")
            .field("opts", &self.inner.opts)
            .field("credential", &self.tokens.as_ref().map(|t| t.describe()))
            .finish_non_exhaustive()
    }
}

/// Builds an [`AzureHttp`].
#[derive(Debug, Default)]
pub struct AzureHttpBuilder {
    ca_file: Option<std::path::PathBuf>,
    ca_pem: Option<Vec<u8>>,
    opts: HttpOptions,
}

impl AzureHttpBuilder {
    /// An extra trusted root CA from a PEM file (`[azure] tls_ca_file`).
    pub fn ca_file(mut self, path: Option<&Path>) -> Self {
        self.ca_file = path.map(Path::to_path_buf);
        self
    }

    /// An extra trusted root CA as PEM text.
    pub fn ca_pem(mut self, pem: &[u8]) -> Self {
        self.ca_pem = Some(pem.to_vec());
        self
    }

    /// Timeouts, retries and throttling.
    pub fn options(mut self, opts: HttpOptions) -> Self {
        self.opts = opts;
        self
    }

    pub fn build(self) -> Result<AzureHttp, AzureError> {
        let mut extra = Vec::new();
        if let Some(p) = &self.ca_file {
            let pem = std::fs::read(p).map_err(|e| {
                AzureError::Config(format!("tls_ca_file {}: cannot read: {e}", p.display()))
            })?;
            extra.push((p.display().to_string(), pem));
        }
        if let Some(pem) = self.ca_pem {
            extra.push(("<extra CA>".to_owned(), pem));
        }
        let tls = tls_config(&extra)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(format!("{USER_AGENT} run/{}", run_id()))
            .connect_timeout(self.opts.connect_timeout)
            .timeout(self.opts.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| AzureError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(AzureHttp {
            inner: Arc::new(Inner {
                client,
                opts: self.opts,
                stats: Arc::new(Stats::default()),
                limiter: Limiter::default(),
                gate: std::sync::RwLock::new(None),
            }),
            tokens: None,
        })
    }
}

/// rustls on ring: Mozilla's roots plus the extra CAs.
fn tls_config(extra: &[(String, Vec<u8>)]) -> Result<rustls::ClientConfig, AzureError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for (origin, pem) in extra {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                AzureError::Config(format!("tls_ca_file {origin}: not a PEM certificate: {e}"))
            })?;
            roots.add(cert).map_err(|e| {
                AzureError::Config(format!("tls_ca_file {origin}: unusable certificate: {e}"))
            })?;
            n += 1;
        }
        if n == 0 {
            return Err(AzureError::Config(format!(
                "tls_ca_file {origin}: no PEM certificate in it"
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AzureError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The service's request id of an answer.
fn request_id_of(h: &HeaderMap) -> Option<String> {
    [
        "x-ms-request-id",
        "x-ms-correlation-request-id",
        "request-id",
    ]
    .iter()
    .find_map(|n| header_str(h, n))
    .map(str::to_owned)
}

/// `Retry-After` (seconds or an HTTP date), or Azure's `retry-after-ms`.
pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = header_str(h, name).and_then(|v| v.trim().parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    let v = header_str(h, "retry-after")?.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let d = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(d.to_std().unwrap_or(Duration::ZERO))
}

/// A random fraction in [0, 1) (from the OS RNG, through uuid).
fn random_fraction() -> f64 {
    (Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}

/// The subscription of an ARM path.
fn subscription_of(url: &Url) -> String {
    let mut segs = url.path_segments().into_iter().flatten();
    while let Some(s) = segs.next() {
        if s.eq_ignore_ascii_case("subscriptions") {
            return segs.next().unwrap_or_default().to_ascii_lowercase();
        }
    }
    String::new()
}

impl AzureHttp {
    /// A builder for `cloud` (the cloud is not needed for the policy itself; it is taken so
    /// that later per-cloud settings have a place).
    pub fn builder(_cloud: &Cloud) -> AzureHttpBuilder {
        AzureHttpBuilder::default()
    }

    /// The same policy, sending tokens from `tokens`.
    pub fn with_credential(&self, tokens: Arc<dyn TokenSource>) -> AzureHttp {
        AzureHttp {
            inner: self.inner.clone(),
            tokens: Some(tokens),
        }
    }

    /// The underlying client (for the SDK's transport and hand-written token requests).
    pub fn reqwest_client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    /// The counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.inner.stats.clone()
    }

    /// The options.
    pub fn options(&self) -> &HttpOptions {
        &self.inner.opts
    }

    /// The backoff before retry `attempt` (0-based): exponential, capped, with jitter
    /// (between half and all of it).
    pub(crate) fn backoff(&self, attempt: u32, base: Duration) -> Duration {
        let exp = base.saturating_mul(1u32 << attempt.min(16));
        let capped = exp.min(self.inner.opts.max_delay);
        capped.mul_f64(0.5 + 0.5 * random_fraction())
    }

    /// Sends a request under the policy. `Ok` is a 2xx answer; every other final answer is
    /// an [`AzureError`] (see [`super::error`]).
    /// Puts every write of this policy (and of its clones) behind `gate`.
    pub fn set_write_gate(&self, gate: Arc<dyn WriteGate>) {
        if let Ok(mut g) = self.inner.gate.write() {
            *g = Some(gate);
        }
    }

    /// Whether `req` may be sent now: a write must pass the gate, if there is one.
    fn pass_gate(&self, req: &ApiRequest) -> Result<(), AzureError> {
        if !req.is_write() {
            return Ok(());
        }
        let gate = self.inner.gate.read().ok().and_then(|g| g.clone());
        match gate {
            Some(g) => g.check().map_err(AzureError::Fenced),
            None => Ok(()),
        }
    }

    pub async fn send(&self, req: ApiRequest) -> Result<ApiResponse, AzureError> {
        let tokens = self.tokens.as_ref().ok_or_else(|| {
            AzureError::Config("the HTTP policy has no credential (use with_credential)".into())
        })?;
        let opts = &self.inner.opts;
        let stats = &self.inner.stats;
        let client_request_id = Uuid::new_v4().to_string();
        let arm_key = (req.service == Service::Arm)
            .then(|| (subscription_of(&req.url), OpKind::of(&req.method)));
        let path = req.url.path().to_owned();
        let mut attempt: u32 = 0;
        let mut renewed_token = false;
        loop {
            if let Some(key) = &arm_key {
                let wait = self.inner.limiter.reserve(key.clone(), opts);
                if !wait.is_zero() {
                    stats.waited(wait);
                    tracing::debug!(
                        service = req.service.name(),
                        wait_ms = wait.as_millis() as u64,
                        subscription = %key.0,
                        kind = key.1.name(),
                        "ARM bucket low: pacing"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
            // Every attempt of a write checks the lease: a retry after the lease was lost is
            // not sent.
            self.pass_gate(&req)?;
            let token = tokens.token(&req.scope).await?;
            let mut rb = self
                .inner
                .client
                .request(req.method.clone(), req.url.clone())
                .bearer_auth(token.secret())
                .header("x-ms-client-request-id", &client_request_id)
                .header("x-ms-return-client-request-id", "true");
            for (k, v) in &req.headers {
                rb = rb.header(*k, v);
            }
            if let Some(t) = req.timeout {
                rb = rb.timeout(t);
            }
            rb = match &req.body {
                Some(b) => rb
                    .header("Content-Type", HeaderValue::from_static("application/json"))
                    .body(b.clone()),
                None if req.method == Method::POST || req.method == Method::PUT => {
                    rb.header("Content-Length", "0")
                }
                None => rb,
            };
            let started = Instant::now();
            let result = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => Ok((status, headers, body)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let can_retry = attempt < opts.max_retries;
            match result {
                Err(e) => {
                    stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                    let timeout = e.is_timeout();
                    let message = transport_message(&e);
                    if req.idempotent && can_retry {
                        let wait = self.backoff(attempt, opts.base_delay);
                        tracing::warn!(
                            service = req.service.name(),
                            method = %req.method,
                            path = %path,
                            client_request_id = %client_request_id,
                            attempt,
                            wait_ms = wait.as_millis() as u64,
                            error = %message,
                            "no answer; retrying"
                        );
                        stats.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    tracing::warn!(
                        service = req.service.name(),
                        method = %req.method,
                        path = %path,
                        client_request_id = %client_request_id,
                        attempt,
                        error = %message,
                        "no answer; giving up"
                    );
                    return Err(AzureError::Transport {
                        service: req.service,
                        url: format!(
                            "{}://{}{}",
                            req.url.scheme(),
                            req.url.host_str().unwrap_or(""),
                            path
                        ),
                        message,
                        timeout,
                    });
                }
                Ok((status, headers, body)) => {
                    stats.record(req.service, status);
                    if let Some(key) = &arm_key {
                        self.inner.limiter.observe(key.clone(), &headers);
                    }
                    let request_id = request_id_of(&headers);
                    tracing::debug!(
                        service = req.service.name(),
                        method = %req.method,
                        path = %path,
                        status,
                        client_request_id = %client_request_id,
                        request_id = request_id.as_deref().unwrap_or(""),
                        attempt,
                        elapsed_ms,
                        "answer"
                    );
                    if (200..300).contains(&status) {
                        return Ok(ApiResponse {
                            status,
                            headers,
                            body,
                            request_id,
                        });
                    }
                    if status == 429 {
                        stats.throttled.fetch_add(1, Ordering::Relaxed);
                        let ra = retry_after(&headers);
                        let wait = ra.unwrap_or_else(|| self.backoff(attempt, opts.base_delay));
                        if can_retry && wait <= opts.max_retry_after {
                            tracing::warn!(
                                service = req.service.name(),
                                method = %req.method,
                                path = %path,
                                client_request_id = %client_request_id,
                                request_id = request_id.as_deref().unwrap_or(""),
                                attempt,
                                wait_ms = wait.as_millis() as u64,
                                "throttled (429); waiting as told"
                            );
                            stats.retries.fetch_add(1, Ordering::Relaxed);
                            stats.waited(wait);
                            tokio::time::sleep(wait).await;
                            attempt += 1;
                            continue;
                        }
                        return Err(AzureError::Throttled {
                            service: req.service,
                            retry_after: ra,
                            request_id,
                        });
                    }
                    // ARM answers 401, Log Analytics 403 `InvalidAuthenticationToken`
                    // (reference §2.5).
                    let header_code = headers
                        .get("x-ms-error-code")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    if (status == 401 || status == 403)
                        && !renewed_token
                        && token_refused(&body, header_code.as_deref())
                    {
                        // A token the cache thought good was refused (clock skew, early
                        // expiry): one more try with a new one. The request was not processed.
                        tracing::warn!(
                            service = req.service.name(),
                            client_request_id = %client_request_id,
                            request_id = request_id.as_deref().unwrap_or(""),
                            "token refused (401): renewing it once"
                        );
                        tokens.invalidate(&req.scope).await;
                        renewed_token = true;
                        stats.retries.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if (status >= 500 || status == 408) && req.idempotent && can_retry {
                        let wait = self.backoff(attempt, opts.base_delay);
                        tracing::warn!(
                            service = req.service.name(),
                            method = %req.method,
                            path = %path,
                            status,
                            client_request_id = %client_request_id,
                            request_id = request_id.as_deref().unwrap_or(""),
                            attempt,
                            wait_ms = wait.as_millis() as u64,
                            "server error; retrying"
                        );
                        stats.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    let err = from_answer(
                        req.service,
                        status,
                        &body,
                        header_code.as_deref(),
                        request_id,
                        &req.resource,
                    );
                    tracing::debug!(
                        service = req.service.name(),
                        client_request_id = %client_request_id,
                        error = %err,
                        "request failed"
                    );
                    return Err(err);
                }
            }
        }
    }
}

/// Whether a 401 (or Log Analytics' 403) says the token itself is no good (expired or invalid), as opposed to a
/// missing header or a wrong audience (a new token for the same scope would not help).
/// Whether an answer refuses the token itself (expired, or not valid): ARM's and Log
/// Analytics' `ExpiredAuthenticationToken` / `InvalidAuthenticationToken`, Azure Storage's
/// `InvalidAuthenticationInfo` (its code in the `x-ms-error-code` header, its body XML, or
/// none for a HEAD).
fn token_refused(body: &[u8], header_code: Option<&str>) -> bool {
    let (code, _, _) = super::error::error_parts(body);
    code.as_deref().or(header_code).is_some_and(|c| {
        c.eq_ignore_ascii_case("ExpiredAuthenticationToken")
            || c.eq_ignore_ascii_case("InvalidAuthenticationToken")
            || c.eq_ignore_ascii_case("InvalidAuthenticationInfo")
    })
}

/// A transport error's message with its causes (reqwest's own message is terse).
fn transport_message(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_is_known_by_each_service_s_code() {
        assert!(token_refused(
            br#"{"error":{"code":"ExpiredAuthenticationToken","message":"x"}}"#,
            None
        ));
        // Azure Storage: an XML body, or none (a HEAD), and the code in a header.
        assert!(token_refused(
            b"<?xml version=\"1.0\"?><Error><Code>InvalidAuthenticationInfo</Code><Message>m</Message></Error>",
            None
        ));
        assert!(token_refused(b"", Some("InvalidAuthenticationInfo")));
        assert!(!token_refused(b"", Some("AuthorizationPermissionMismatch")));
        assert!(!token_refused(
            br#"{"error":{"code":"AuthorizationFailed"}}"#,
            None
        ));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn limiter_paces_when_low() {
        let opts = HttpOptions {
            arm_low_water: 10,
            arm_read_rate: 10.0,
            ..HttpOptions::default()
        };
        let l = Limiter::default();
        let key = ("s".to_owned(), OpKind::Reads);
        assert_eq!(l.reserve(key.clone(), &opts), Duration::ZERO);
        let mut h = HeaderMap::new();
        h.insert(
            "x-ms-ratelimit-remaining-subscription-reads",
            HeaderValue::from_static("100"),
        );
        l.observe(key.clone(), &h);
        assert_eq!(l.reserve(key.clone(), &opts), Duration::ZERO);
        h.insert(
            "x-ms-ratelimit-remaining-subscription-reads",
            HeaderValue::from_static("0"),
        );
        l.observe(key.clone(), &h);
        assert_eq!(l.reserve(key.clone(), &opts), Duration::ZERO);
        let second = l.reserve(key.clone(), &opts);
        assert!(second >= Duration::from_millis(150), "{second:?}");
        let u = Url::parse("https://x/subscriptions/ABC/resourceGroups/r").unwrap();
        assert_eq!(subscription_of(&u), "abc");
    }
}
