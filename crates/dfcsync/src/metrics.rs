//! Prometheus metrics of `dfcsync run`: cycles, and per workspace (or the tenant, through
//! Graph) actions and repairs by kind and result, held incidents by reason, errors and the
//! time of its last success; Azure requests by service and status, throttling waits, cycle
//! duration and the time of the last successful cycle. Fed from each cycle's report,
//! rendered on `/metrics`.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::cycle::CycleReport;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    workspace: String,
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    workspace: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkspaceLabel {
    workspace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    status: String,
}

/// The metrics of one process.
pub struct Metrics {
    registry: Registry,
    cycles: Family<ResultLabel, Counter>,
    actions: Family<ActionLabels, Counter>,
    held: Family<ReasonLabel, Gauge>,
    requests: Family<RequestLabels, Counter>,
    throttle_waits: Counter,
    throttle_wait_seconds: Counter<f64, AtomicU64>,
    cycle_duration: Histogram,
    reads: Family<ReadLabel, Counter>,
    query_bytes: Counter,
    queries: Counter,
    refused_answers: Counter,
    partitions: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    workspace_last_success: Family<WorkspaceLabel, Gauge<f64, AtomicU64>>,
    workspace_errors: Family<WorkspaceLabel, Counter>,
    lease_held: Gauge,
    lease_standby: Counter,
    lease_renewals: Gauge,
    lease_renew_failures: Gauge,
    lease_losses: Gauge,
    health_rows_sent: Gauge,
    health_rows_dropped: Gauge,
    health_calls_failed: Gauge,
    health_rows_buffered: Gauge,
    /// The (workspace, reason) pairs of the held gauge seen so far (reset to 0 when gone).
    held_reasons: Mutex<Vec<(String, String)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dfcsync");
        let cycles = Family::<ResultLabel, Counter>::default();
        let actions = Family::<ActionLabels, Counter>::default();
        let held = Family::<ReasonLabel, Gauge>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let throttle_waits = Counter::default();
        let throttle_wait_seconds = Counter::<f64, AtomicU64>::default();
        let cycle_duration = Histogram::new([
            0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        ]);
        let last_success = Gauge::<f64, AtomicU64>::default();
        let reads = Family::<ReadLabel, Counter>::default();
        let query_bytes = Counter::default();
        let queries = Counter::default();
        let refused_answers = Counter::default();
        let partitions = Gauge::default();
        let workspace_last_success = Family::<WorkspaceLabel, Gauge<f64, AtomicU64>>::default();
        let workspace_errors = Family::<WorkspaceLabel, Counter>::default();
        let lease_held = Gauge::default();
        let lease_standby = Counter::default();
        let lease_renewals = Gauge::default();
        let lease_renew_failures = Gauge::default();
        let lease_losses = Gauge::default();
        let health_rows_sent = Gauge::default();
        let health_rows_dropped = Gauge::default();
        let health_calls_failed = Gauge::default();
        let health_rows_buffered = Gauge::default();
        registry.register(
            "health_rows_sent_since_start",
            "Rows sent to the workspace's DfcSync_CL table, since this process started",
            health_rows_sent.clone(),
        );
        registry.register(
            "health_rows_dropped_since_start",
            "Health rows dropped because the buffer was full while the endpoint failed, since this process started",
            health_rows_dropped.clone(),
        );
        registry.register(
            "health_calls_failed_since_start",
            "Calls to the Logs Ingestion API that failed (their rows kept), since this process started",
            health_calls_failed.clone(),
        );
        registry.register(
            "health_rows_buffered",
            "Health rows waiting to be sent",
            health_rows_buffered.clone(),
        );
        registry.register(
            "lease_held",
            "1 while this process holds the lease (one writer at a time), 0 otherwise",
            lease_held.clone(),
        );
        registry.register(
            "lease_standby",
            "Tries of the lease that found another holder (this replica stood by)",
            lease_standby.clone(),
        );
        registry.register(
            "lease_renewals_since_start",
            "Renewals of the lease since this process started",
            lease_renewals.clone(),
        );
        registry.register(
            "lease_renew_failures_since_start",
            "Renewals of the lease that failed (writes stopped until one succeeded), since this process started",
            lease_renew_failures.clone(),
        );
        registry.register(
            "lease_losses_since_start",
            "Times the lease was lost while held (writes stopped), since this process started",
            lease_losses.clone(),
        );
        registry.register(
            "workspace_last_success_timestamp_seconds",
            "Unix time of the end of the last cycle that read the workspace (or the tenant) and applied or settled every action",
            workspace_last_success.clone(),
        );
        registry.register(
            "workspace_errors",
            "Cycles in which the workspace (or the tenant) could not be read, or an action or repair failed",
            workspace_errors.clone(),
        );
        registry.register(
            "reads",
            "Reads of a group of workspaces, by kind (whole, changes)",
            reads.clone(),
        );
        registry.register(
            "log_analytics_answer_bytes",
            "Bytes of the Log Analytics answers read",
            query_bytes.clone(),
        );
        registry.register(
            "log_analytics_queries",
            "Log Analytics queries sent (counting queries included)",
            queries.clone(),
        );
        registry.register(
            "log_analytics_answers_too_large",
            "Answers refused by Log Analytics for their size or row count (the partition was split)",
            refused_answers.clone(),
        );
        registry.register(
            "read_partitions",
            "Partitions of the last whole read (0 when the cycle read only changes)",
            partitions.clone(),
        );
        registry.register("cycles", "Sync cycles, by result", cycles.clone());
        registry.register(
            "actions",
            "Planned actions and repairs (kind repair: the audit comment of an earlier close posted again), by workspace, kind and result (applied, skipped, failed, planned in dry runs)",
            actions.clone(),
        );
        registry.register(
            "held_incidents",
            "Incidents held, by workspace and reason, as of the last cycle that read every in-scope incident",
            held.clone(),
        );
        registry.register(
            "azure_requests",
            "Azure answers, by service and HTTP status",
            requests.clone(),
        );
        registry.register(
            "throttle_waits",
            "Waits for Retry-After or the ARM limiter",
            throttle_waits.clone(),
        );
        registry.register(
            "throttle_wait_seconds",
            "Time spent waiting for Retry-After or the ARM limiter",
            throttle_wait_seconds.clone(),
        );
        registry.register(
            "cycle_duration_seconds",
            "Duration of sync cycles",
            cycle_duration.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the end of the last successful cycle",
            last_success.clone(),
        );
        Self {
            registry,
            cycles,
            actions,
            held,
            requests,
            throttle_waits,
            throttle_wait_seconds,
            cycle_duration,
            reads,
            query_bytes,
            queries,
            refused_answers,
            partitions,
            last_success,
            workspace_last_success,
            workspace_errors,
            lease_held,
            lease_standby,
            lease_renewals,
            lease_renew_failures,
            lease_losses,
            health_rows_sent,
            health_rows_dropped,
            health_calls_failed,
            health_rows_buffered,
            held_reasons: Mutex::new(Vec::new()),
        }
    }

    /// Adds what one cycle did.
    pub fn record(&self, report: &CycleReport) {
        for (kind, n) in [
            ("whole", report.whole_reads),
            ("changes", report.change_reads),
        ] {
            if n > 0 {
                self.reads
                    .get_or_create(&ReadLabel { kind: kind.into() })
                    .inc_by(u64::from(n));
            }
        }
        self.query_bytes.inc_by(report.reads.bytes);
        self.queries.inc_by(u64::from(report.reads.queries));
        self.refused_answers.inc_by(u64::from(report.reads.refused));
        self.partitions.set(i64::from(report.reads.partitions));
        let ok = report.succeeded();
        self.cycles
            .get_or_create(&ResultLabel {
                result: if ok { "success" } else { "failure" }.into(),
            })
            .inc();
        let end = report.started + chrono::TimeDelta::from_std(report.duration).unwrap_or_default();
        let mut held_now: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for w in &report.workspaces {
            let label = |kind: &str, result: &str| ActionLabels {
                workspace: w.workspace.clone(),
                kind: kind.into(),
                result: result.into(),
            };
            if let Some(plan) = &w.plan {
                for h in &plan.held {
                    *held_now
                        .entry((w.workspace.clone(), h.kind.as_str().to_owned()))
                        .or_default() += 1;
                }
                if w.act.is_none() {
                    for a in &plan.actions {
                        self.actions
                            .get_or_create(&label(a.kind.as_str(), "planned"))
                            .inc();
                    }
                    for _ in &plan.repairs {
                        self.actions
                            .get_or_create(&label("repair", "planned"))
                            .inc();
                    }
                }
            }
            if let Some(act) = &w.act {
                for o in &act.outcomes {
                    self.actions
                        .get_or_create(&label(o.kind.as_str(), o.result.label()))
                        .inc();
                }
                for o in &act.repairs {
                    self.actions
                        .get_or_create(&label("repair", o.result.label()))
                        .inc();
                }
            }
            let ws = WorkspaceLabel {
                workspace: w.workspace.clone(),
            };
            if w.succeeded() {
                if w.plan.is_some() {
                    self.workspace_last_success
                        .get_or_create(&ws)
                        .set(end.timestamp_millis() as f64 / 1000.0);
                }
            } else {
                self.workspace_errors.get_or_create(&ws).inc();
            }
        }
        // Held is a gauge of the last cycle that read everything (a change read sees only
        // the incidents that changed): reasons that went away go to zero.
        let read_everything = report.whole_reads > 0 && report.change_reads == 0;
        if read_everything && let Ok(mut known) = self.held_reasons.lock() {
            for (w, r) in known.iter() {
                if !held_now.contains_key(&(w.clone(), r.clone())) {
                    self.held
                        .get_or_create(&ReasonLabel {
                            workspace: w.clone(),
                            reason: r.clone(),
                        })
                        .set(0);
                }
            }
            for ((w, r), n) in &held_now {
                self.held
                    .get_or_create(&ReasonLabel {
                        workspace: w.clone(),
                        reason: r.clone(),
                    })
                    .set(*n);
                if !known.contains(&(w.clone(), r.clone())) {
                    known.push((w.clone(), r.clone()));
                }
            }
        }
        for (service, status, n) in &report.requests {
            self.requests
                .get_or_create(&RequestLabels {
                    service: service.clone(),
                    status: status.to_string(),
                })
                .inc_by(*n);
        }
        self.throttle_waits.inc_by(report.throttle_waits);
        self.throttle_wait_seconds
            .inc_by(report.throttle_wait.as_secs_f64());
        self.cycle_duration.observe(report.duration.as_secs_f64());
        if ok {
            self.last_success
                .set(end.timestamp_millis() as f64 / 1000.0);
        }
    }

    /// The lease's state: held or standing by, and its counters.
    pub fn lease(&self, held: bool, stats: &crate::lease::LeaseStats) {
        use std::sync::atomic::Ordering::Relaxed;
        self.lease_held.set(i64::from(held));
        if !held {
            self.lease_standby.inc();
        }
        let n =
            |a: &std::sync::atomic::AtomicU64| i64::try_from(a.load(Relaxed)).unwrap_or(i64::MAX);
        self.lease_renewals.set(n(&stats.renewals));
        self.lease_renew_failures.set(n(&stats.renew_failures));
        self.lease_losses.set(n(&stats.losses));
    }

    /// The health sink's counters.
    pub fn health(&self, stats: &crate::health::HealthStats) {
        use std::sync::atomic::Ordering::Relaxed;
        let n =
            |a: &std::sync::atomic::AtomicU64| i64::try_from(a.load(Relaxed)).unwrap_or(i64::MAX);
        self.health_rows_sent.set(n(&stats.rows_sent));
        self.health_rows_dropped.set(n(&stats.rows_dropped));
        self.health_calls_failed.set(n(&stats.calls_failed));
        self.health_rows_buffered.set(n(&stats.buffered));
    }

    /// The lease was given back.
    pub fn lease_released(&self) {
        self.lease_held.set(0);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
