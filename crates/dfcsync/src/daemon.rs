//! `dfcsync run`: a cycle every `interval` (plus jitter) until SIGTERM or SIGINT, with
//! `/healthz`, `/readyz` and Prometheus `/metrics` served beside the loop. The cycles share
//! one [`Syncer`]: every in-scope incident is read at start and every `resync`, and only
//! what changed in between (the change feed).
//!
//! On a signal the cycle under way stops starting new incidents, finishes the writes in
//! flight, and the process exits. `/readyz` answers 200 once a cycle has reached every
//! workspace, and 503 again when no cycle has succeeded for three intervals.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::connect::Connection;
use crate::cycle::{Mode, ReadMode, Syncer};
use crate::events::{Event, Observer};
use crate::metrics::Metrics;
use crate::report;

/// What the HTTP endpoints read.
pub struct Shared {
    pub metrics: Metrics,
    /// Unix seconds of the last successful cycle (0: none yet).
    last_success: AtomicI64,
    interval: Duration,
}

impl Shared {
    pub fn new(interval: Duration) -> Self {
        Self {
            metrics: Metrics::new(),
            last_success: AtomicI64::new(0),
            interval,
        }
    }

    /// Records a finished cycle (metrics, and the time of the last success).
    fn cycle_done(&self, report: &crate::cycle::CycleReport) {
        self.metrics.record(report);
        if report.succeeded() {
            self.last_success
                .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        }
    }

    fn ready(&self) -> bool {
        let last = self.last_success.load(Ordering::Relaxed);
        last > 0 && chrono::Utc::now().timestamp() - last <= 3 * self.interval.as_secs() as i64 + 60
    }
}

/// The endpoints watch the loop: each finished cycle updates them.
impl Observer for Shared {
    fn on(&self, event: &Event<'_>) {
        if let Event::CycleDone { report } = event {
            self.cycle_done(report);
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
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if shared.ready() => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "no successful cycle recently\n".to_owned(),
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
pub async fn run_loop(
    conn: &Connection,
    config: &Config,
    shared: &Arc<Shared>,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    let mut cycle_no = 0u64;
    // The workspaces, their groups and change feeds, from one cycle to the next.
    let mut syncer = Syncer::new(config, ReadMode::Feed);
    syncer.observe(shared.clone());
    loop {
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
}
