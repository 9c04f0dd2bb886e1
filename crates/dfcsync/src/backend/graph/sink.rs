//! The Graph sink: carries out a plan against Defender XDR incidents through Microsoft Graph.
//!
//! Graph has no ETag (graph-xdr.md §2.5), so each incident is read again immediately before
//! it is written, and written only if its status and `lastUpdateDateTime` are the ones the
//! decision was made on; otherwise it is decided again from the fresh state (its comments and
//! its alerts read again), as the Sentinel sink does on a 409.
//!
//! A status change is written **first**, and its audit comment (with the mark) after it, so
//! that a mark on a Graph incident always means its change landed: Graph has no ETag and no
//! row history, and the order of two of its timestamps cannot tell a PATCH that never landed
//! from a person's change that came after it. A **close** also writes its reason and its
//! mark into the incident's `resolvingComment` in the PATCH itself (updatable since
//! December 2024, Graph's changelog), as Sentinel's classification comment carries it: a
//! close whose audit comment never lands is then repaired (the comment posted) by a later
//! cycle. Where the service refuses `resolvingComment` (a 400 naming it), the sink warns
//! once and writes the close without it from then on. An activate or reopen whose comment
//! never lands stays unmarked: the incident reads as set by someone else, which can only
//! make dfcsync do less later (guard 2, `reopen = "own"`). A PATCH that fails leaves no mark,
//! so the next cycle decides the same action again and its retry lands. Graph comments have
//! no id of ours: the comment is posted only when no comment of the fresh read carries the
//! mark; another writer between that read and the POST is what the lease excludes, and
//! every reading of marks is indifferent to how many comments carry one.
//!
//! "Already done" for a status change is decided from what the incident is: before a PATCH
//! the incident is read once more, and a status (and, for a close, classification) that is
//! already the planned one is not written again; a status that moved to anything else is
//! someone else's change, left for the next cycle to decide again. The race left is the time
//! between that read and the PATCH (one round trip); docs/reliability.md says how it is
//! detected afterwards.
//!
//! PATCH bodies (graph-xdr.md §3): a close sets `status` `resolved` with the classification
//! mapped from the policy's Sentinel one (TruePositive → `truePositive`, BenignPositive →
//! `informationalExpectedActivity`, FalsePositive → `falsePositive`, Undetermined →
//! `unknown`) and determination `other` (valid with each; `unknown` with `unknown`); an
//! activate or reopen sets `inProgress` (Sentinel's Active; PATCH of `inProgress` is
//! UNCONFIRMED, reference §2.3: a refusal is reported as the action's failure).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use super::GraphBackend;
use super::source::{alert_key, alert_state, incident_state, incident_status};
use crate::act::{ActOptions, ActReport, ActionOutcome, ActionResult, per_incident};
use crate::azure::AzureError;
use crate::azure::graph::{GraphClient, GraphIncident, IncidentUpdate};
use crate::backend::Sink;
use crate::connect::Connection;
use crate::decide::{Decision, Plan, PlannedAction, decide_incident};
use crate::model::{ActionKind, AlertMap, Classification, IncidentState, IncidentStatus, Snapshot};
use crate::observe::records::parse_time;
use crate::policy::Policy;

/// Graph's classification for a Sentinel classification (graph-xdr.md §3).
pub fn graph_classification(c: Classification) -> (&'static str, &'static str) {
    match c {
        Classification::TruePositive => ("truePositive", "other"),
        Classification::BenignPositive => ("informationalExpectedActivity", "other"),
        Classification::FalsePositive => ("falsePositive", "other"),
        Classification::Undetermined => ("unknown", "unknown"),
    }
}

/// The PATCH an action makes (`None`: a comment-only action).
pub fn update_for(a: &PlannedAction) -> Option<IncidentUpdate> {
    match a.kind {
        ActionKind::Close => {
            let (classification, determination) = graph_classification(
                a.closure
                    .map_or(Classification::Undetermined, |c| c.classification()),
            );
            Some(IncidentUpdate {
                status: Some("resolved".into()),
                classification: Some(classification.into()),
                determination: Some(determination.into()),
                resolving_comment: a.classification_comment.clone(),
            })
        }
        ActionKind::Activate | ActionKind::Reopen => Some(IncidentUpdate {
            status: Some("inProgress".into()),
            ..Default::default()
        }),
        ActionKind::Notice | ActionKind::Writeback => None,
    }
}

#[async_trait::async_trait]
impl Sink for GraphBackend {
    async fn act(
        &self,
        conn: &Connection,
        _target: usize,
        snapshot: &Snapshot,
        plan: &Plan,
        policy: &Policy,
        opts: &ActOptions,
        on_done: &(dyn Fn(usize) + Sync),
    ) -> ActReport {
        let Some(graph) = &conn.graph else {
            return ActReport::all_failed(plan, "this cloud has no Microsoft Graph endpoint");
        };
        act_with(
            graph,
            (&snapshot.incidents, &snapshot.alerts),
            plan,
            policy,
            opts,
            on_done,
            &self.no_resolving_comment,
        )
        .await
    }
}

struct Ctx<'a> {
    graph: &'a GraphClient,
    alerts: &'a AlertMap,
    policy: &'a Policy,
    now: DateTime<Utc>,
    /// Set once the service refused `resolvingComment` (for the rest of the process).
    no_resolving_comment: &'a AtomicBool,
}

fn outcome(a: &PlannedAction, result: ActionResult) -> ActionOutcome {
    crate::act::outcome(a, result, 0)
}

/// Carries out `plan` (made from the snapshot whose incidents are `incidents` and alerts
/// `alerts`). `on_done` is called after each incident with its number of actions.
pub async fn act(
    graph: &GraphClient,
    incidents: &[IncidentState],
    alerts: &AlertMap,
    plan: &Plan,
    policy: &Policy,
    opts: &ActOptions,
    on_done: &(dyn Fn(usize) + Sync),
) -> ActReport {
    act_with(
        graph,
        (incidents, alerts),
        plan,
        policy,
        opts,
        on_done,
        &AtomicBool::new(false),
    )
    .await
}

/// [`act`], remembering in `no_resolving_comment` whether the service refused
/// `resolvingComment` (the backend keeps it for the rest of the process).
async fn act_with(
    graph: &GraphClient,
    (incidents, alerts): (&[IncidentState], &AlertMap),
    plan: &Plan,
    policy: &Policy,
    opts: &ActOptions,
    on_done: &(dyn Fn(usize) + Sync),
    no_resolving_comment: &AtomicBool,
) -> ActReport {
    let ctx = Ctx {
        graph,
        alerts,
        policy,
        now: plan.now,
        no_resolving_comment,
    };
    let repairs = repair(&ctx, plan).await;
    let mut order: Vec<&str> = Vec::new();
    let mut by_incident: HashMap<&str, Vec<PlannedAction>> = HashMap::new();
    for a in &plan.actions {
        let entry = by_incident.entry(&*a.incident).or_default();
        if entry.is_empty() {
            order.push(&*a.incident);
        }
        entry.push(a.clone());
    }
    let states: HashMap<&str, &IncidentState> = incidents.iter().map(|i| (&*i.name, i)).collect();
    let work: Vec<_> = order
        .iter()
        .map(|name| {
            (
                states.get(name).copied(),
                by_incident.remove(name).unwrap_or_default(),
            )
        })
        .collect();
    let ctx = &ctx;
    let outcomes = per_incident(work, opts, on_done, |state, planned| {
        act_incident(ctx, state, planned)
    })
    .await;
    ActReport {
        outcomes,
        repairs,
        ..ActReport::default()
    }
}

fn fail_all(planned: &[PlannedAction], e: &AzureError) -> Vec<ActionOutcome> {
    tracing::warn!(error = %e, request_id = e.request_id().unwrap_or(""), "incident could not be updated");
    planned
        .iter()
        .map(|a| outcome(a, ActionResult::Failed(e.to_string())))
        .collect()
}

/// Whether the incident as Graph shows it now is the one the decision was made on.
fn unchanged(state: &IncidentState, fresh: &GraphIncident) -> bool {
    incident_status(fresh) == state.status
        && parse_time(&fresh.last_update_date_time) == Some(state.last_modified)
}

/// Decides again for one incident from its fresh state and its alerts read again. `None`
/// when nothing is needed any more.
async fn redecide(
    ctx: &Ctx<'_>,
    fresh: &GraphIncident,
) -> Result<Option<(IncidentState, Vec<PlannedAction>)>, AzureError> {
    let list = ctx.graph.incident_alerts(&fresh.id).await?;
    let mut alerts = ctx.alerts.clone();
    for a in &list {
        alerts.insert(alert_key(&a.id).into(), alert_state(a, ctx.now));
    }
    let state = incident_state(fresh, &list, &alerts).map_err(|m| AzureError::Decode {
        what: format!("incident {}", fresh.id),
        message: m,
    })?;
    Ok(
        match decide_incident(&state, &alerts, ctx.policy, ctx.now) {
            Decision::Act(list) => Some((state, list)),
            Decision::Nothing | Decision::Held(_) => None,
        },
    )
}

/// Carries out the actions of one incident.
async fn act_incident(
    ctx: &Ctx<'_>,
    state: &IncidentState,
    planned: Vec<PlannedAction>,
) -> Vec<ActionOutcome> {
    let fresh = match ctx.graph.get_incident(&state.name).await {
        Ok(a) => a.value,
        Err(e) => return fail_all(&planned, &e),
    };
    let mut planned = planned;
    let mut decided_on = state.status.clone();
    if !unchanged(state, &fresh) {
        match redecide(ctx, &fresh).await {
            Ok(Some((s, list))) => {
                decided_on = s.status;
                planned = list;
            }
            Ok(None) => {
                return planned
                    .iter()
                    .map(|a| {
                        outcome(
                            a,
                            ActionResult::Skipped(
                                "the incident changed since it was read; decided again: nothing to do"
                                    .into(),
                            ),
                        )
                    })
                    .collect();
            }
            Err(e) => return fail_all(&planned, &e),
        }
    }
    let mut comments = fresh.comments.clone();
    // The read just made is the last look before the first write.
    let mut look = Some(fresh);
    let mut results = Vec::new();
    for a in &planned {
        let result = act_one(ctx, a, &mut comments, &decided_on, &mut look).await;
        let failed = matches!(result, ActionResult::Failed(_));
        if let ActionResult::Failed(e) = &result {
            tracing::warn!(incident = a.incident_number, action = %a.kind, error = %e, "action failed");
        } else if result == ActionResult::Applied {
            tracing::info!(incident = a.incident_number, action = %a.kind, fingerprint = %a.fingerprint, "incident updated through Graph");
        }
        results.push(outcome(a, result));
        if failed {
            break;
        }
    }
    // Actions after a failure are left for the next cycle.
    for a in planned.iter().skip(results.len()) {
        results.push(outcome(
            a,
            ActionResult::Deferred("an earlier action of the incident failed".into()),
        ));
    }
    results
}

/// The status an action sets (`None`: a comment-only action).
fn target_status(a: &PlannedAction) -> Option<IncidentStatus> {
    match a.kind {
        ActionKind::Close => Some(IncidentStatus::Closed),
        ActionKind::Activate | ActionKind::Reopen => Some(IncidentStatus::Active),
        ActionKind::Notice | ActionKind::Writeback => None,
    }
}

/// Whether the incident already is what the action makes it: the status, and for a close
/// the classification.
fn already_done(a: &PlannedAction, incident: &GraphIncident, update: &IncidentUpdate) -> bool {
    target_status(a).is_some_and(|t| incident_status(incident) == t)
        && (a.kind != ActionKind::Close
            || incident.classification.as_deref() == update.classification.as_deref())
}

/// Whether an error is the service refusing `resolvingComment` (a 400 naming it).
fn refuses_resolving_comment(e: &AzureError) -> bool {
    matches!(e, AzureError::Http { status: 400, message, .. } if message.contains("resolvingComment"))
}

/// How many times a comment is posted before the action is reported failed (each retry
/// after a fresh read: a POST that failed may still have landed). An activate or reopen whose
/// comment never lands stays unmarked for good (module doc), so the bound is generous: with
/// three, the chaos test (a POST failing about one time in three) lost one now and then.
const COMMENT_ATTEMPTS: u32 = 6;

/// Posts the action's comment unless a comment of `comments` carries its mark. A POST that
/// fails is retried after reading the incident's comments again, a bounded number of times.
async fn comment_once(
    ctx: &Ctx<'_>,
    a: &PlannedAction,
    comments: &mut Vec<crate::azure::graph::GraphComment>,
) -> Result<(), AzureError> {
    let mark = a.mark.to_string();
    let mut attempt = 1;
    loop {
        if comments.iter().any(|c| c.comment.contains(&mark)) {
            return Ok(());
        }
        match ctx.graph.post_comment(&a.incident, &a.comment).await {
            Ok(list) => {
                *comments = list;
                return Ok(());
            }
            Err(e) if attempt >= COMMENT_ATTEMPTS || !retryable(&e) => return Err(e),
            Err(e) => {
                tracing::info!(incident = a.incident_number, attempt, error = %e, "posting the comment failed: reading the incident's comments again");
                *comments = ctx.graph.get_incident(&a.incident).await?.value.comments;
                attempt += 1;
            }
        }
    }
}

/// Whether a failed POST is worth another try (the service's or the network's fault, not a
/// refusal of the request).
fn retryable(e: &AzureError) -> bool {
    match e.status() {
        Some(s) => s == 408 || s == 429 || s >= 500,
        None => matches!(e, AzureError::Transport { .. }),
    }
}

/// One action: the PATCH of a status change (a close carrying its mark in
/// `resolvingComment`, unless the service refuses it), then the comment.
async fn act_one(
    ctx: &Ctx<'_>,
    a: &PlannedAction,
    comments: &mut Vec<crate::azure::graph::GraphComment>,
    decided_on: &IncidentStatus,
    look: &mut Option<GraphIncident>,
) -> ActionResult {
    if let Some(mut update) = update_for(a) {
        if ctx.no_resolving_comment.load(Ordering::Relaxed) {
            update.resolving_comment = None;
        }
        let mut written = patch(ctx, a, &update, decided_on, look).await;
        if let Err(e) = &written
            && update.resolving_comment.is_some()
            && refuses_resolving_comment(e)
        {
            if !ctx.no_resolving_comment.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "the service refuses resolvingComment on incidents: closes are written without it from now on (the audit comment carries the mark)");
            }
            update.resolving_comment = None;
            written = patch(ctx, a, &update, decided_on, look).await;
        }
        match written {
            Ok(true) => {}
            Ok(false) => {
                return ActionResult::Deferred(
                    "the incident's status changed just before the write: left for the next cycle to decide again"
                        .into(),
                );
            }
            Err(e) => return ActionResult::Failed(e.to_string()),
        }
    }
    match comment_once(ctx, a, comments).await {
        Ok(()) => ActionResult::Applied,
        Err(e) if target_status(a).is_some() => ActionResult::Failed(format!(
            "the incident was updated, but its audit comment was not posted: {e}"
        )),
        Err(e) => ActionResult::Failed(e.to_string()),
    }
}

/// The last look before the write, then the PATCH: `Ok(false)` when the status moved to
/// something else since the decision; `Ok(true)` when the incident is as planned (written
/// now, or already). `look` is a read made just before (the incident read for this very
/// write, or the answer of the last PATCH); without one, the incident is read.
async fn patch(
    ctx: &Ctx<'_>,
    a: &PlannedAction,
    update: &IncidentUpdate,
    decided_on: &IncidentStatus,
    look: &mut Option<GraphIncident>,
) -> Result<bool, AzureError> {
    let now = match look.take() {
        Some(i) => i,
        None => ctx.graph.get_incident(&a.incident).await?.value,
    };
    if already_done(a, &now, update) {
        *look = Some(now);
        return Ok(true);
    }
    if incident_status(&now) != *decided_on {
        return Ok(false);
    }
    *look = Some(ctx.graph.update_incident(&a.incident, update).await?);
    Ok(true)
}

/// Posts the audit comments of [`Plan::repairs`]: closes whose `resolvingComment` carries
/// the mark but whose comment never landed (read again first: the comment may be there).
async fn repair(ctx: &Ctx<'_>, plan: &Plan) -> Vec<ActionOutcome> {
    let mut out = Vec::new();
    for a in &plan.repairs {
        let result = match ctx.graph.get_incident(&a.incident).await {
            Ok(fresh) => {
                let mut comments = fresh.value.comments;
                let mark = a.mark.to_string();
                if comments.iter().any(|c| c.comment.contains(&mark)) {
                    ActionResult::Skipped("the audit comment is there (the read lagged)".into())
                } else {
                    match comment_once(ctx, a, &mut comments).await {
                        Ok(()) => ActionResult::Applied,
                        Err(e) => ActionResult::Failed(e.to_string()),
                    }
                }
            }
            Err(e) => ActionResult::Failed(e.to_string()),
        };
        out.push(outcome(a, result));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifications_map_to_graph_pairs() {
        assert_eq!(
            graph_classification(Classification::TruePositive),
            ("truePositive", "other")
        );
        assert_eq!(
            graph_classification(Classification::BenignPositive),
            ("informationalExpectedActivity", "other")
        );
        assert_eq!(
            graph_classification(Classification::FalsePositive),
            ("falsePositive", "other")
        );
        assert_eq!(
            graph_classification(Classification::Undetermined),
            ("unknown", "unknown")
        );
    }
}
