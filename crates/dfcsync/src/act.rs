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
    /// What the read knows beyond the snapshot (a partition's share, a two-phase read's
    /// candidates): a sink that reads before it writes chooses from it between one list of
    /// the target and one read per incident.
    pub etags: EtagHint,
    /// What the sink keeps for the target over the whole read (a list taken for one piece
    /// serves the next ones); the loop makes one per read.
    pub memo: std::sync::Arc<ReadMemo>,
}

/// What a read knows of its targets beyond one piece, for the sink's reads before it writes
/// (the Sentinel sink's ETags: one list of the workspace, or one GET per incident to update).
#[derive(Debug, Clone, Default)]
pub enum EtagHint {
    /// Nothing (a change read): each incident to update is read by itself.
    #[default]
    Unknown,
    /// The piece is one of this many partitions of a whole read.
    Share(u32),
    /// A two-phase whole read: every incident its pieces may hand over, by target.
    Candidates(std::sync::Arc<std::collections::HashMap<usize, Candidates>>),
}

impl EtagHint {
    /// The candidates of `target`, in a two-phase read.
    pub fn candidates(&self, target: usize) -> Option<&Candidates> {
        match self {
            Self::Candidates(c) => c.get(&target),
            _ => None,
        }
    }
}

/// Phase one of a two-phase whole read, for one target.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// The incidents phase two reads.
    pub names: std::collections::HashSet<String>,
    /// When the oldest of them was created.
    pub oldest_created: Option<chrono::DateTime<chrono::Utc>>,
    /// The incidents created within `max_age`, of any product: what a list of the target
    /// from that long ago returns at most.
    pub incidents: u64,
}

/// What sinks keep per target over one read, whatever its type: the loop makes one per
/// read and drops it at the end, so nothing outlives the read.
#[derive(Default)]
pub struct ReadMemo(
    std::sync::Mutex<std::collections::HashMap<usize, Box<dyn std::any::Any + Send>>>,
);

impl std::fmt::Debug for ReadMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadMemo")
    }
}

impl ReadMemo {
    /// What was kept for `target` (taken out: put it back with [`put`](Self::put)), or a
    /// new value.
    pub fn take<T: Default + Send + 'static>(&self, target: usize) -> T {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&target)
            .and_then(|b| b.downcast::<T>().ok())
            .map_or_else(T::default, |b| *b)
    }

    /// Keeps `value` for `target` until the end of the read.
    pub fn put<T: Send + 'static>(&self, target: usize, value: T) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(target, Box::new(value));
    }
}

/// The reads a sink made before it wrote: list pages, and single reads of one incident.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EtagReads {
    /// Lists of the target taken (at most one per read).
    pub lists: u32,
    /// Their pages.
    pub list_pages: u32,
    /// Incidents read one by one.
    pub gets: u64,
}

impl EtagReads {
    pub fn add(&mut self, other: &EtagReads) {
        self.lists += other.lists;
        self.list_pages += other.list_pages;
        self.gets += other.gets;
    }
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
    /// The reads made to learn the incidents' ETags before writing.
    pub etag_reads: EtagReads,
}

impl ActReport {
    /// Every action and repair of `plan` failed for one reason (the sink could not start).
    pub fn all_failed(plan: &crate::decide::Plan, why: &str) -> ActReport {
        let failed = |a: &PlannedAction| outcome(a, ActionResult::Failed(why.to_owned()), 0);
        ActReport {
            outcomes: plan.actions.iter().map(failed).collect(),
            repairs: plan.repairs.iter().map(failed).collect(),
            missing_roles: Vec::new(),
            etag_reads: EtagReads::default(),
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
