//! One sync cycle over every configured workspace: observe (one Log Analytics query),
//! decide, and, unless it is a dry run, act. A workspace that fails is reported and the
//! others carry on.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::act::{ActOptions, ActReport, act};
use crate::config::{Config, WorkspaceSection};
use crate::connect::Connection;
use crate::decide::{Plan, decide};
use crate::model::Snapshot;
use crate::observe::build_snapshot_combined;
use crate::observe::query::sync_query;

/// Whether a cycle changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Observe and decide only.
    Plan,
    /// Observe, decide and act.
    Sync,
}

/// What happened in one workspace.
#[derive(Debug, Clone)]
pub struct WorkspaceReport {
    /// `subscription/resourceGroup/name`.
    pub workspace: String,
    pub plan: Option<Plan>,
    pub act: Option<ActReport>,
    /// Why the workspace could not be synced, if it could not.
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// Rows the query returned.
    pub incidents_seen: usize,
}

/// What happened in one cycle.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub started: DateTime<Utc>,
    pub duration: Duration,
    pub mode: Mode,
    pub workspaces: Vec<WorkspaceReport>,
    /// Azure answers during the cycle, by service and status.
    pub requests: Vec<(String, u16, u64)>,
    pub retries: u64,
    pub throttle_waits: u64,
    pub throttle_wait: Duration,
}

impl CycleReport {
    /// Whether every workspace was read and every action applied or skipped on purpose.
    pub fn succeeded(&self) -> bool {
        self.workspaces.iter().all(|w| {
            w.error.is_none()
                && w.act.as_ref().is_none_or(|a| {
                    a.outcomes
                        .iter()
                        .all(|o| !matches!(o.result, crate::act::ActionResult::Failed(_)))
                })
        })
    }

    /// Whether any workspace has planned actions.
    pub fn has_actions(&self) -> bool {
        self.workspaces
            .iter()
            .any(|w| w.plan.as_ref().is_some_and(|p| !p.actions.is_empty()))
    }
}

/// Observes and decides for one workspace (the `plan` half of a cycle).
pub async fn observe_and_decide(
    conn: &Connection,
    ws: &crate::azure::sentinel::Workspace,
    config: &Config,
) -> Result<(Snapshot, Plan), String> {
    let body = conn
        .log_analytics
        .query(&ws.customer_id, &sync_query(&config.policy), None)
        .await
        .map_err(|e| e.to_string())?;
    let snapshot =
        build_snapshot_combined(&body[..]).map_err(|e| format!("reading the query result: {e}"))?;
    // Decide at the service's clock when it says (a skewed local clock must not move the
    // max_age window).
    let now = snapshot.server_now.unwrap_or_else(Utc::now);
    let plan = decide(&snapshot, &config.policy, now);
    Ok((snapshot, plan))
}

/// Runs one cycle. `on_progress(done, total)` is called as incidents are updated.
pub async fn run_cycle(
    conn: &Connection,
    config: &Config,
    mode: Mode,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    on_progress: &(dyn Fn(usize, usize) + Sync),
) -> CycleReport {
    let started = Utc::now();
    let clock = Instant::now();
    let before_requests = conn.stats.requests();
    let before = snapshot_counters(conn);
    let mut workspaces = Vec::new();
    for w in &config.file.workspaces {
        workspaces.push(sync_workspace(conn, config, w, mode, stop, on_progress).await);
    }
    let after = snapshot_counters(conn);
    let requests = conn
        .stats
        .requests()
        .into_iter()
        .map(|(s, st, n)| {
            let was = before_requests
                .iter()
                .find(|(bs, bst, _)| *bs == s && *bst == st)
                .map_or(0, |b| b.2);
            (s.name().to_owned(), st, n - was)
        })
        .filter(|r| r.2 > 0)
        .collect();
    CycleReport {
        started,
        duration: clock.elapsed(),
        mode,
        workspaces,
        requests,
        retries: after.0 - before.0,
        throttle_waits: after.1 - before.1,
        throttle_wait: Duration::from_millis(after.2 - before.2),
    }
}

fn snapshot_counters(conn: &Connection) -> (u64, u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        conn.stats.retries.load(Relaxed),
        conn.stats.throttle_waits.load(Relaxed),
        conn.stats.throttle_wait_ms.load(Relaxed),
    )
}

async fn sync_workspace(
    conn: &Connection,
    config: &Config,
    w: &WorkspaceSection,
    mode: Mode,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    on_progress: &(dyn Fn(usize, usize) + Sync),
) -> WorkspaceReport {
    let label = format!("{}/{}/{}", w.subscription_id, w.resource_group, w.name);
    let mut report = WorkspaceReport {
        workspace: label.clone(),
        plan: None,
        act: None,
        error: None,
        warnings: Vec::new(),
        incidents_seen: 0,
    };
    let ws = match conn
        .sentinel
        .workspace(&w.subscription_id, &w.resource_group, &w.name)
        .await
    {
        Ok(ws) => ws,
        Err(e) => {
            tracing::error!(workspace = %label, error = %e, "workspace lookup failed");
            report.error = Some(format!("looking up the workspace: {e}"));
            return report;
        }
    };
    let (snapshot, plan) = match observe_and_decide(conn, &ws, config).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(workspace = %label, error = %e, "query failed");
            report.error = Some(format!("querying the workspace: {e}"));
            return report;
        }
    };
    report.incidents_seen = snapshot.incidents.len();
    report.warnings = snapshot.warnings.clone();
    tracing::info!(workspace = %label, incidents = snapshot.incidents.len(), actions = plan.actions.len(), held = plan.held.len(), "decided");
    for h in &plan.held {
        tracing::info!(workspace = %label, incident = h.incident_number, reason = %h.reason, "held");
    }
    let repaired = if mode == Mode::Sync && !plan.repairs.is_empty() {
        crate::act::repair(conn, &ws, &plan).await
    } else {
        Vec::new()
    };
    if mode == Mode::Sync && !plan.actions.is_empty() {
        let opts = ActOptions {
            concurrency: config.sync.concurrency,
            conflict_retries: config.sync.conflict_retries,
            stop: stop.clone(),
        };
        let total = plan.actions.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let report_act = act(conn, &ws, &snapshot, &plan, &config.policy, &opts, &|n| {
            let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            on_progress(d, total);
        })
        .await;
        report.act = Some(report_act);
    }
    if !repaired.is_empty() {
        report.act.get_or_insert_with(ActReport::default).repairs = repaired;
    }
    report.plan = Some(plan);
    report
}
