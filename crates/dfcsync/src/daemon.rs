//! `dfcsync run`: a cycle every `interval` (plus jitter) until SIGTERM or SIGINT, with
//! `/healthz`, `/readyz` and Prometheus `/metrics` served beside the loop. The cycles share
//! one [`Syncer`]: every in-scope incident is read at start and every `resync`, and only
//! what changed in between (the change feed).
//!
//! On a signal the cycle under way stops between two reads or two writes, finishes the writes
//! in flight, and the process exits.
//!
//! The probes:
//! - `/healthz` (liveness) answers 200 while the loop is alive: a cycle finished, or a cycle
//!   made progress (a piece read and decided, a plan carried out), within 3 × `interval` plus a
//!   grace (60 s), counted from the start; 503 otherwise (a hung loop, which a restart cures).
//! - `/readyz` (readiness) answers 200 when the loop is alive and either its last finished
//!   cycle reached at least one workspace (or the tenant), or it stands by for the lease (a
//!   replica ready to take over: a rollout must not wait for it); 503 before the first cycle
//!   ends, and when the last one reached none (every workspace failed).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::connect::Connection;
use crate::cycle::{Mode, ReadMode, Syncer};
use crate::events::{Event, Observer};
use crate::lease::{Lease, LeaseStats};
use crate::metrics::Metrics;
use crate::report;

/// How long past 3 × `interval` the loop may go without a sign of life before `/healthz`
/// fails.
pub const LIVENESS_GRACE: Duration = Duration::from_secs(60);

/// What the HTTP endpoints read.
pub struct Shared {
    pub metrics: Metrics,
    /// When the process started (the liveness window counts from it until a first sign).
    start: Instant,
    /// Milliseconds since `start` of the last sign of life of the loop.
    last_alive_ms: AtomicI64,
    /// Whether the last finished cycle reached at least one target.
    reached: AtomicBool,
    /// Whether a cycle has finished yet.
    finished: AtomicBool,
    /// How long the loop may be silent: 3 × `interval` + the grace.
    silence: Duration,
}

impl Shared {
    pub fn new(interval: Duration) -> Self {
        Self::with_grace(interval, LIVENESS_GRACE)
    }

    /// With another grace than [`LIVENESS_GRACE`] (tests).
    pub fn with_grace(interval: Duration, grace: Duration) -> Self {
        Self {
            metrics: Metrics::new(),
            start: Instant::now(),
            last_alive_ms: AtomicI64::new(0),
            reached: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            silence: interval * 3 + grace,
        }
    }

    fn alive_now(&self) {
        let ms = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.last_alive_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the loop showed a sign of life within the allowed silence.
    pub fn alive(&self) -> bool {
        let last = Duration::from_millis(self.last_alive_ms.load(Ordering::Relaxed).max(0) as u64);
        self.start.elapsed().saturating_sub(last) <= self.silence
    }

    /// Whether the loop is alive and its last cycle reached at least one target.
    pub fn ready(&self) -> bool {
        self.alive()
            && self.finished.load(Ordering::Relaxed)
            && self.reached.load(Ordering::Relaxed)
    }

    /// Records whether this replica holds the lease. Standing by is a sign of life, and a
    /// replica standing by is ready (to take over).
    fn lease_state(&self, held: bool, stats: &LeaseStats) {
        self.metrics.lease(held, stats);
        if !held {
            self.alive_now();
            self.reached.store(true, Ordering::Relaxed);
            self.finished.store(true, Ordering::Relaxed);
        }
    }

    /// Records a finished cycle (metrics, liveness, readiness).
    fn cycle_done(&self, report: &crate::cycle::CycleReport) {
        self.metrics.record(report);
        self.alive_now();
        let reached = report
            .workspaces
            .iter()
            .any(|w| w.plan.is_some() && w.error.is_none());
        self.reached.store(reached, Ordering::Relaxed);
        self.finished.store(true, Ordering::Relaxed);
    }
}

/// The endpoints watch the loop: a finished cycle updates them, and every step of one is a
/// sign of life.
impl Observer for Shared {
    fn on(&self, event: &Event<'_>) {
        match event {
            Event::CycleDone { report } => self.cycle_done(report),
            _ => self.alive_now(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the health and metrics endpoints. Returns the bound address (useful with port 0).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), DaemonError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen { addr, source })?;
    Ok((listener, local))
}

/// Serves `/healthz`, `/readyz` and `/metrics` until the process ends.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, req.uri().path())) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn respond(shared: &Shared, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/healthz" if shared.alive() => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/healthz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the sync loop has shown no sign of life for 3 intervals: it is stuck\n".to_owned(),
        ),
        "/readyz" if shared.ready() => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
        "/readyz" if !shared.alive() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the sync loop is stuck\n".to_owned(),
        ),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the last cycle reached no workspace (or none has finished yet)\n".to_owned(),
        ),
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.metrics.render(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// Sets `stop` and wakes `wake` on SIGTERM or SIGINT.
pub fn on_signals(stop: Arc<AtomicBool>, wake: Arc<Notify>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("signal received: finishing the writes in flight, then stopping");
        stop.store(true, Ordering::SeqCst);
        wake.notify_waiters();
        wake.notify_one();
    });
}

/// The loop: cycles until `stop`. Each cycle's summary is logged.
///
/// With a lease, a cycle runs only while this process holds it: a replica that cannot take it
/// stands by, trying again every third of the lease's duration (at most every interval), so
/// that it takes over within the lease's duration and one such wait when the holder dies.
/// The lease is released when the loop ends.
pub async fn run_loop(
    conn: &Connection,
    config: &Config,
    shared: &Arc<Shared>,
    beside: Beside<'_>,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    let Beside { lease, health } = beside;
    let mut cycle_no = 0u64;
    // The workspaces, their groups and change feeds, from one cycle to the next.
    let mut syncer = Syncer::new(config, ReadMode::Feed);
    syncer.observe(shared.clone());
    if let Some(h) = health {
        syncer.observe(Arc::new(h.clone()));
    }
    loop {
        if let Some(h) = health {
            shared.metrics.health(h.stats());
        }
        if let Some(l) = lease {
            let standby = match l.acquire().await {
                Ok(None) => None,
                Ok(Some(holding)) => Some(holding.to_string()),
                Err(e) => Some(format!("the lease cannot be taken: {e}")),
            };
            shared.lease_state(standby.is_none(), &l.stats);
            if let Some(why) = standby {
                tracing::info!(lease = %l.describe(), "standing by: {why}");
                let wait = config.sync.interval.min(lease_wait(config));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.notified() => {}
                }
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                continue;
            }
        }
        cycle_no += 1;
        let report = syncer
            .cycle(conn, config, Mode::Sync, &stop, &|_, _| {})
            .await;
        report::log_cycle(&report, cycle_no);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let jitter = config.sync.jitter.as_millis() as u64;
        let pause = config.sync.interval
            + Duration::from_millis(if jitter > 0 {
                fastrand::u64(0..=jitter)
            } else {
                0
            });
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {}
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
    }
    if let Some(l) = lease {
        l.release().await;
        shared.metrics.lease_released();
    }
}

/// What runs beside the loop: the lease (one writer at a time) and the health sink.
#[derive(Default, Clone, Copy)]
pub struct Beside<'a> {
    pub lease: Option<&'a Lease>,
    pub health: Option<&'a crate::health::HealthSink>,
}

/// How long a standing-by replica waits between two tries of the lease: a third of its
/// duration.
fn lease_wait(config: &Config) -> Duration {
    use crate::config::LeaseSettings;
    match &config.lease {
        LeaseSettings::AzureBlob { duration, .. } | LeaseSettings::Kubernetes { duration, .. } => {
            *duration / 3
        }
        LeaseSettings::None => config.sync.interval,
    }
}
