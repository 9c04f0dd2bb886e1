//! The act step's shared vocabulary: how a sink runs ([`ActOptions`]), what became of each
//! planned action ([`ActionOutcome`], [`ActionResult`]) and of a target's plan
//! ([`ActReport`]), and the bounded-concurrency driver every sink uses
//! ([`per_incident`]). The sinks themselves, which write, are the backends'
//! (`backend::sentinel::sink`, `backend::graph::sink`).

use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;

use crate::decide::PlannedAction;
use crate::model::ActionKind;

/// How the act step runs.
#[derive(Debug, Clone)]
pub struct ActOptions {
    pub concurrency: usize,
    pub conflict_retries: u32,
    /// Set on SIGTERM/SIGINT: incidents not yet started are left for the next run; writes in
    /// flight finish.
    pub stop: std::sync::Arc<AtomicBool>,
    /// What share of the workspace's in-scope incidents the snapshot holds: 1 for a whole
    /// read, the partition's modulus for a partition; `None` for a change read, where the
    /// snapshot says nothing of the rest. With it, ETags are read from list pages only when
    /// the pages are few against the incidents to update (a list returns every incident
    /// created since the oldest of them, most of which a partition does not need).
    pub snapshot_share: Option<u32>,
}

/// What became of one planned action.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionOutcome {
    pub incident: String,
    pub incident_number: i64,
    pub kind: ActionKind,
    pub fingerprint: String,
    pub result: ActionResult,
    /// 409s met on the way.
    pub conflicts: u32,
    pub why: String,
    /// When the result came (the write's time, for an applied action).
    pub at: chrono::DateTime<chrono::Utc>,
    /// When the incident's alerts last changed (from the plan).
    pub alerts_changed_at: chrono::DateTime<chrono::Utc>,
    /// For a close: `Classification/Reason` written.
    pub classification: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ActionResult {
    Applied,
    /// Not done, on purpose: the fresh state needs nothing, or something else, and that is
    /// settled (nothing to read again).
    Skipped(String),
    /// Not done yet, on purpose: left for the next cycle, which reads the incident again
    /// (stopping; a status that moved just before the write; an earlier action of the
    /// incident failed). Reported as "skipped".
    Deferred(String),
    Failed(String),
}

impl ActionResult {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Skipped(_) | Self::Deferred(_) => "skipped",
            Self::Failed(_) => "failed",
        }
    }

    /// Why it was skipped or failed; `None` when applied.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Applied => None,
            Self::Skipped(d) | Self::Deferred(d) | Self::Failed(d) => Some(d),
        }
    }

    /// Whether the incident is to be read again by name in the next cycle (the action
    /// failed, or was left for later).
    pub fn read_again(&self) -> bool {
        matches!(self, Self::Deferred(_) | Self::Failed(_))
    }
}

/// What the act step did in one workspace.
#[derive(Debug, Clone, Default)]
pub struct ActReport {
    pub outcomes: Vec<ActionOutcome>,
    /// Audit comments of earlier closes, posted again (see `Plan::repairs`).
    pub repairs: Vec<ActionOutcome>,
    /// Roles found missing (reported once per run each).
    pub missing_roles: Vec<String>,
}

impl ActReport {
    /// Every action and repair of `plan` failed for one reason (the sink could not start).
    pub fn all_failed(plan: &crate::decide::Plan, why: &str) -> ActReport {
        let failed = |a: &PlannedAction| outcome(a, ActionResult::Failed(why.to_owned()), 0);
        ActReport {
            outcomes: plan.actions.iter().map(failed).collect(),
            repairs: plan.repairs.iter().map(failed).collect(),
            missing_roles: Vec::new(),
        }
    }
}

/// Works on each incident's actions with `act_incident`, up to `opts.concurrency` at once:
/// an incident not started when `opts.stop` is set is left for the next run, one missing
/// from the snapshot (`None`) fails. Returns the outcomes sorted by incident. Shared by the
/// Sentinel and the Graph sinks.
pub async fn per_incident<W, F, Fut>(
    work: Vec<(Option<W>, Vec<PlannedAction>)>,
    opts: &ActOptions,
    on_done: &(dyn Fn(usize) + Sync),
    act_incident: F,
) -> Vec<ActionOutcome>
where
    F: Fn(W, Vec<PlannedAction>) -> Fut,
    Fut: std::future::Future<Output = Vec<ActionOutcome>>,
{
    let act_incident = &act_incident;
    let outcomes: Vec<Vec<ActionOutcome>> = futures::stream::iter(work)
        .map(|(state, planned)| async move {
            let n = planned.len();
            let out = if opts.stop.load(Ordering::Relaxed) {
                planned
                    .iter()
                    .map(|a| {
                        outcome(
                            a,
                            ActionResult::Deferred("stopping: left for the next run".into()),
                            0,
                        )
                    })
                    .collect()
            } else {
                match state {
                    Some(state) => act_incident(state, planned).await,
                    None => planned
                        .iter()
                        .map(|a| {
                            outcome(
                                a,
                                ActionResult::Failed("incident not in the snapshot".into()),
                                0,
                            )
                        })
                        .collect(),
                }
            };
            on_done(n);
            out
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut outcomes: Vec<ActionOutcome> = outcomes.into_iter().flatten().collect();
    outcomes
        .sort_by(|a, b| (a.incident_number, &a.incident).cmp(&(b.incident_number, &b.incident)));
    outcomes
}

/// The outcome of `a` with `result`.
pub fn outcome(a: &PlannedAction, result: ActionResult, conflicts: u32) -> ActionOutcome {
    ActionOutcome {
        incident: a.incident.to_string(),
        incident_number: a.incident_number,
        kind: a.kind,
        fingerprint: a.fingerprint.to_string(),
        result,
        conflicts,
        why: a.why.clone(),
        at: chrono::Utc::now(),
        alerts_changed_at: a.alerts_changed_at,
        classification: a.closure.map(|c| match c.reason() {
            Some(r) => format!("{}/{r}", c.classification()),
            None => c.classification().to_string(),
        }),
    }
}
