//! Health where the SOC looks: dfcsync's own rows in a workspace's `DfcSync_CL` table, sent
//! through the Logs Ingestion API (`docs/health.md` has the schema, the workbook and the
//! rules that read them).
//!
//! The sink watches the loop ([`Observer`]): a `held` row for each incident a piece's plan
//! holds, an `action` row for each action and repair as soon as a piece's plan is carried out
//! (with the write's time and when the alerts last changed: the latency), and a `cycle` row at
//! the end of each cycle (the heartbeat). Watching never waits: a row goes into a bounded
//! buffer and a background task sends the buffer, in calls of at most 1 MB, gzip-compressed.
//! A failed call keeps its rows and is tried again after a pause (doubling up to a minute),
//! with a warning and the sink's counters; the buffer holds at most `[health] buffer` rows,
//! and past that drops its oldest `cycle` and `held` rows first, then its oldest `action`
//! rows, counting them. A one-shot `sync` sends what is left at its end, for at most 30 s.
//! Rows carry no secret: incident names and numbers, actions, reasons, counts and times.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::act::ActionOutcome;
use crate::azure::AzureError;
use crate::azure::logs_ingestion::{LogsIngestionClient, batches};
use crate::config::{Config, HealthSettings};
use crate::decide::Plan;
use crate::events::{Event, Observer};
use crate::report::CycleReport;

/// The columns of `DfcSync_CL`, name and type, in the order the template's table and data
/// collection rule declare them (docs/health.md): every row this sink writes uses these
/// names, each kind a part of them.
pub const COLUMNS: &[(&str, &str)] = &[
    ("TimeGenerated", "datetime"),
    ("RunId", "string"),
    ("Kind", "string"),
    ("Version", "string"),
    ("Backend", "string"),
    ("Workspace", "string"),
    ("ReadMode", "string"),
    ("WorkspacesReached", "int"),
    ("WorkspacesFailed", "int"),
    ("Queries", "int"),
    ("Bytes", "long"),
    ("Applied", "int"),
    ("Skipped", "int"),
    ("Failed", "int"),
    ("Held", "int"),
    ("DurationMs", "long"),
    ("Succeeded", "boolean"),
    ("Stopped", "boolean"),
    ("ActionCounts", "dynamic"),
    ("Error", "string"),
    ("IncidentNumber", "long"),
    ("IncidentName", "string"),
    ("Action", "string"),
    ("Result", "string"),
    ("Classification", "string"),
    ("Why", "string"),
    ("Detail", "string"),
    ("AlertsChangedAt", "datetime"),
    ("WrittenAt", "datetime"),
    ("Reason", "string"),
    ("HoldKind", "string"),
];

/// The rows of one call at most (beside the 1 MB limit).
const ROWS_PER_CALL: usize = 5_000;
/// The longest pause between two tries of a failing endpoint.
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Counters of the sink.
#[derive(Debug, Default)]
pub struct HealthStats {
    pub rows_sent: AtomicU64,
    pub rows_dropped: AtomicU64,
    pub calls_failed: AtomicU64,
    pub buffered: AtomicU64,
}

/// A row waiting to be sent.
struct Pending {
    action: bool,
    row: Value,
}

struct Inner {
    client: LogsIngestionClient,
    run_id: String,
    backend: &'static str,
    bound: usize,
    buffer: Mutex<VecDeque<Pending>>,
    /// The service's clock less this machine's, as the last read told it: the rows' times
    /// are on the service's clock (a skewed local clock must not move the latencies).
    skew: Mutex<chrono::TimeDelta>,
    /// One sender at a time (the background task, or a flush): a row is sent once.
    sending: tokio::sync::Mutex<()>,
    wake: Notify,
    stats: HealthStats,
}

/// The health sink (cheap to clone).
#[derive(Clone)]
pub struct HealthSink {
    inner: Arc<Inner>,
}

/// The Azure Monitor audience of a cloud (`docs/azure-services.md` §3).
pub fn monitor_scope(cloud: &str) -> &'static str {
    match cloud {
        "usgov" | "usgov_dod" => "https://monitor.azure.us/.default",
        "china" => "https://monitor.azure.cn/.default",
        _ => "https://monitor.azure.com/.default",
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl HealthSink {
    /// The sink `[health]` describes (`None` when off), sending through `http`; its sending
    /// task runs until the process ends.
    pub fn from_config(
        config: &Config,
        http: &crate::azure::http::AzureHttp,
    ) -> Result<Option<HealthSink>, AzureError> {
        let Some(h) = &config.health else {
            return Ok(None);
        };
        let cloud = config.file.azure.cloud.as_deref().unwrap_or("public");
        let sink = Self::new(h, http, monitor_scope(cloud), config.sync.backend)?;
        tokio::spawn(sink.clone().send_loop());
        Ok(Some(sink))
    }

    fn new(
        h: &HealthSettings,
        http: &crate::azure::http::AzureHttp,
        default_scope: &str,
        backend: crate::config::Backend,
    ) -> Result<HealthSink, AzureError> {
        let scope = h.scope.clone().unwrap_or_else(|| default_scope.to_owned());
        Ok(HealthSink {
            inner: Arc::new(Inner {
                client: LogsIngestionClient::new(
                    http.clone(),
                    &h.endpoint,
                    &h.dcr_immutable_id,
                    &h.stream,
                    &scope,
                )?,
                run_id: crate::azure::http::run_id().to_owned(),
                backend: match backend {
                    crate::config::Backend::Sentinel => "sentinel",
                    crate::config::Backend::Graph => "graph",
                },
                bound: h.buffer.max(1),
                buffer: Mutex::new(VecDeque::new()),
                skew: Mutex::new(chrono::TimeDelta::zero()),
                sending: tokio::sync::Mutex::new(()),
                wake: Notify::new(),
                stats: HealthStats::default(),
            }),
        })
    }

    /// The sink's counters.
    pub fn stats(&self) -> &HealthStats {
        &self.inner.stats
    }

    /// This run's id (the `RunId` of its rows).
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// A local instant on the service's clock.
    fn service_time(&self, local: DateTime<Utc>) -> DateTime<Utc> {
        local + *self.inner.skew.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A row with the columns every kind fills.
    fn row(&self, kind: &str, workspace: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "TimeGenerated".into(),
            json!(time(self.service_time(Utc::now()))),
        );
        m.insert("RunId".into(), json!(self.inner.run_id));
        m.insert("Kind".into(), json!(kind));
        m.insert("Version".into(), json!(env!("CARGO_PKG_VERSION")));
        m.insert("Backend".into(), json!(self.inner.backend));
        m.insert("Workspace".into(), json!(workspace));
        m
    }

    fn push(&self, action: bool, row: Map<String, Value>) {
        let mut b = self.inner.buffer.lock().unwrap_or_else(|e| e.into_inner());
        while b.len() >= self.inner.bound {
            // The oldest cycle or held row goes first; action rows last.
            let victim = b.iter().position(|p| !p.action).unwrap_or(0);
            b.remove(victim);
            self.inner
                .stats
                .rows_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        b.push_back(Pending {
            action,
            row: Value::Object(row),
        });
        self.inner
            .stats
            .buffered
            .store(b.len() as u64, Ordering::Relaxed);
    }

    fn action_row(&self, workspace: &str, o: &ActionOutcome, repair: bool) -> Map<String, Value> {
        let mut m = self.row("action", workspace);
        m.insert("IncidentNumber".into(), json!(o.incident_number));
        m.insert("IncidentName".into(), json!(o.incident));
        m.insert(
            "Action".into(),
            json!(if repair { "repair" } else { o.kind.as_str() }),
        );
        m.insert("Result".into(), json!(o.result.label()));
        m.insert("Classification".into(), json!(o.classification));
        m.insert("Why".into(), json!(o.why));
        m.insert(
            "Detail".into(),
            json!(o.result.detail().unwrap_or_default()),
        );
        m.insert("AlertsChangedAt".into(), json!(time(o.alerts_changed_at)));
        m.insert("WrittenAt".into(), json!(time(self.service_time(o.at))));
        m
    }

    fn decided(&self, workspace: &str, snapshot: &crate::model::Snapshot, plan: &Plan) {
        if let Some(server) = snapshot.server_now {
            *self.inner.skew.lock().unwrap_or_else(|e| e.into_inner()) = server - Utc::now();
        }
        for h in &plan.held {
            let mut m = self.row("held", workspace);
            m.insert("IncidentNumber".into(), json!(h.incident_number));
            m.insert("IncidentName".into(), json!(h.incident));
            m.insert("Reason".into(), json!(h.reason));
            m.insert("HoldKind".into(), json!(h.kind.as_str()));
            self.push(false, m);
        }
    }

    fn acted(&self, workspace: &str, report: &crate::act::ActReport) {
        for o in &report.outcomes {
            self.push(true, self.action_row(workspace, o, false));
        }
        for o in &report.repairs {
            self.push(true, self.action_row(workspace, o, true));
        }
        self.inner.wake.notify_one();
    }

    fn cycle_done(&self, r: &CycleReport) {
        let mut m = self.row("cycle", "");
        let read_mode = match (r.whole_reads, r.change_reads) {
            (0, 0) => "none",
            (_, 0) => "whole",
            (0, _) => "changes",
            _ => "mixed",
        };
        let (mut applied, mut skipped, mut failed) = (0u64, 0u64, 0u64);
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        for a in r.workspaces.iter().filter_map(|w| w.act.as_ref()) {
            let all = a
                .outcomes
                .iter()
                .map(|o| (o, o.kind.as_str()))
                .chain(a.repairs.iter().map(|o| (o, "repair")));
            for (o, kind) in all {
                match o.result.label() {
                    "applied" => applied += 1,
                    "failed" => failed += 1,
                    _ => skipped += 1,
                }
                *counts
                    .entry(format!("{kind}/{}", o.result.label()))
                    .or_default() += 1;
            }
        }
        let reached = r
            .workspaces
            .iter()
            .filter(|w| w.plan.is_some() && w.error.is_none())
            .count();
        let failed_ws = r.workspaces.iter().filter(|w| w.error.is_some()).count();
        let held: usize = r
            .workspaces
            .iter()
            .filter_map(|w| w.plan.as_ref())
            .map(|p| p.held.len())
            .sum();
        m.insert("ReadMode".into(), json!(read_mode));
        m.insert("WorkspacesReached".into(), json!(reached));
        m.insert("WorkspacesFailed".into(), json!(failed_ws));
        m.insert("Queries".into(), json!(r.reads.queries));
        m.insert("Bytes".into(), json!(r.reads.bytes));
        m.insert("Applied".into(), json!(applied));
        m.insert("Skipped".into(), json!(skipped));
        m.insert("Failed".into(), json!(failed));
        m.insert("Held".into(), json!(held));
        m.insert("DurationMs".into(), json!(r.duration.as_millis() as u64));
        m.insert("Succeeded".into(), json!(r.succeeded()));
        m.insert("Stopped".into(), json!(r.stopped));
        m.insert("ActionCounts".into(), json!(counts));
        m.insert(
            "Error".into(),
            json!(
                r.workspaces
                    .iter()
                    .find_map(|w| w.error.clone())
                    .unwrap_or_default()
            ),
        );
        self.push(false, m);
        self.inner.wake.notify_one();
    }

    /// Sends what the buffer holds, call by call; `Err` with the first failure (the rows of
    /// the failed call and after stay in the buffer).
    async fn send_buffered(&self) -> Result<(), AzureError> {
        let _one = self.inner.sending.lock().await;
        loop {
            let rows: Vec<Value> = {
                let b = self.inner.buffer.lock().unwrap_or_else(|e| e.into_inner());
                b.iter()
                    .take(ROWS_PER_CALL)
                    .map(|p| p.row.clone())
                    .collect()
            };
            if rows.is_empty() {
                return Ok(());
            }
            let first = batches(&rows).into_iter().next().unwrap_or(0..rows.len());
            let n = first.len();
            self.inner.client.send(&rows[first]).await?;
            let mut b = self.inner.buffer.lock().unwrap_or_else(|e| e.into_inner());
            // The rows sent are the oldest: only pushes (at the back) and drops (of the
            // oldest, when full) happened meanwhile.
            let gone = n.min(b.len());
            b.drain(..gone);
            self.inner
                .stats
                .buffered
                .store(b.len() as u64, Ordering::Relaxed);
            self.inner
                .stats
                .rows_sent
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// The background task: sends when woken (or every few seconds), pausing after a failure.
    async fn send_loop(self) {
        let mut pause = Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            match self.send_buffered().await {
                Ok(()) => pause = Duration::from_secs(1),
                Err(e) => {
                    self.inner
                        .stats
                        .calls_failed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, buffered = self.inner.stats.buffered.load(Ordering::Relaxed), "sending health rows failed: they are kept and sent again (syncing goes on)");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }

    /// Sends what is left, for at most `deadline` (the end of a one-shot run); what cannot be
    /// sent in time is counted as dropped, with a warning.
    pub async fn flush(&self, deadline: Duration) {
        let end = tokio::time::Instant::now() + deadline;
        let mut pause = Duration::from_millis(500);
        loop {
            match tokio::time::timeout_at(end, self.send_buffered()).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => {
                    self.inner
                        .stats
                        .calls_failed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "sending health rows failed at the end of the run");
                }
                Err(_) => break,
            }
            if tokio::time::Instant::now() + pause >= end {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(8));
        }
        let left = self.inner.buffer.lock().map(|b| b.len()).unwrap_or(0);
        if left > 0 {
            self.inner
                .stats
                .rows_dropped
                .fetch_add(left as u64, Ordering::Relaxed);
            tracing::warn!(
                rows = left,
                "health rows not sent before the run ended: dropped"
            );
        }
    }
}

impl Observer for HealthSink {
    fn on(&self, event: &Event<'_>) {
        match event {
            Event::Decided {
                target,
                snapshot,
                plan,
            } => self.decided(target, snapshot, plan),
            Event::Acted { target, report } => self.acted(target, report),
            Event::CycleDone { report } => self.cycle_done(report),
            Event::LookupFailed { .. } | Event::GroupSplit { .. } | Event::ReadFailed { .. } => {}
        }
    }
}
