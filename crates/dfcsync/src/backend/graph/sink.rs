//! The Graph sink: carries out a plan against Defender XDR incidents through Microsoft Graph.
//!
//! Graph has no ETag (graph-xdr.md §2.5), so each incident is read again immediately before
//! it is written, and written only if its status and `lastUpdateDateTime` are the ones the
//! decision was made on; otherwise it is decided again from the fresh state (its comments and
//! its alerts read again), as the Sentinel sink does on a 409.
//!
//! Every action writes its audit comment (with the mark) **first**, then the status: Graph
//! has no classification comment to carry a close's mark in the PATCH itself, so the mark
//! lives in the comment only, as it does for an activate or reopen in Sentinel. A status
//! change that never lands after its comment is recognised by the source and taken again
//! ([`super::source`]). Graph comments have no id of ours: the comment is posted only when no
//! comment of the fresh read carries the mark. Between that read and the POST another
//! replica may post the same comment (two replicas acting on one incident in the same
//! second); the duplicate says the same thing, and every reading of marks is indifferent to
//! how many comments carry one.
//!
//! After the comment the incident is read once more and patched only if its status is still
//! the one decided on (the comment itself moves `lastUpdateDateTime`). The race left is the
//! time between that read and the PATCH (one round trip); docs/reliability.md says how it is
//! detected afterwards.
//!
//! PATCH bodies (graph-xdr.md §3): a close sets `status` `resolved` with the classification
//! mapped from the policy's Sentinel one (TruePositive → `truePositive`, BenignPositive →
//! `informationalExpectedActivity`, FalsePositive → `falsePositive`, Undetermined →
//! `unknown`) and determination `other` (valid with each; `unknown` with `unknown`); an
//! activate or reopen sets `inProgress` (Sentinel's Active; PATCH of `inProgress` is
//! UNCONFIRMED, reference §2.3: a refusal is reported as the action's failure).

use std::collections::HashMap;

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
        act(
            graph,
            &snapshot.incidents,
            &snapshot.alerts,
            plan,
            policy,
            opts,
            on_done,
        )
        .await
    }
}

struct Ctx<'a> {
    graph: &'a GraphClient,
    alerts: &'a AlertMap,
    policy: &'a Policy,
    now: DateTime<Utc>,
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
    let ctx = Ctx {
        graph,
        alerts,
        policy,
        now: plan.now,
    };
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
    let mut comments = fresh.comments;
    let mut results = Vec::new();
    for a in &planned {
        let result = act_one(ctx, a, &mut comments, &decided_on).await;
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

/// One action: the comment (unless its mark is there), then the status.
async fn act_one(
    ctx: &Ctx<'_>,
    a: &PlannedAction,
    comments: &mut Vec<crate::azure::graph::GraphComment>,
    decided_on: &IncidentStatus,
) -> ActionResult {
    let mark = a.mark.to_string();
    if !comments.iter().any(|c| c.comment.contains(&mark)) {
        match ctx.graph.post_comment(&a.incident, &a.comment).await {
            Ok(list) => *comments = list,
            Err(e) => return ActionResult::Failed(e.to_string()),
        }
    }
    let Some(update) = update_for(a) else {
        return ActionResult::Applied;
    };
    // The last look before the write: the status must still be the one decided on.
    let now = match ctx.graph.get_incident(&a.incident).await {
        Ok(i) => i.value,
        Err(e) => return ActionResult::Failed(e.to_string()),
    };
    if incident_status(&now) != *decided_on {
        return ActionResult::Deferred(format!(
            "the incident's status changed to {:?} just before the write: left for the next cycle to decide again",
            now.status
        ));
    }
    match ctx.graph.update_incident(&a.incident, &update).await {
        Ok(_) => ActionResult::Applied,
        Err(e) => ActionResult::Failed(e.to_string()),
    }
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
