//! The Sentinel sink: carries out a plan against Sentinel incidents (ARM) and, with
//! writeback, Defender for Cloud alerts.
//!
//! Per incident, in order: read the incident (its ETag): from the one list of the workspace
//! a whole read may take, or one GET. The list is taken at most once per read and serves
//! every later piece of it (it keeps, page by page, the incidents of the piece and up to
//! 20,000 for the later pieces: a two-phase read's candidates, a partitioned read's open
//! incidents); it is taken when its pages cost less
//! than the GETs it saves, and a write from a list older than the rows meets a 409 and is
//! decided again like any other; if it changed since the rows the plan came from,
//! read its comments and decide again from the fresh state; write the change as a
//! conditional PUT with the etag, and the audit comment with its deterministic id (so a
//! repeated write never duplicates it): after the PUT for a close (whose classification
//! comment carries the mark), before it for an activate or reopen (whose only mark is the
//! comment). A 409 Conflict re-reads the incident, re-decides and
//! tries again, a bounded number of times; a held or failed incident never stops the others.
//! Incidents are worked on concurrently, up to a bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::SentinelBackend;
use crate::act::{
    ActOptions, ActReport, ActionOutcome, ActionResult, EtagReads, outcome, per_incident,
};
use crate::azure::AzureError;
use crate::azure::defender::DfcAction;
use crate::azure::sentinel::{Incident, IncidentComment, Workspace, comment_id};
use crate::backend::{EtagHint, Sink};
use crate::connect::Connection;
use crate::decide::{Decision, Plan, PlannedAction, decide_incident};
use crate::model::{
    ActionKind, IncidentState, IncidentStatus, Mark, MarkSource, ObservedMark, Snapshot,
};
use crate::observe::records::parse_time;
use crate::policy::Policy;

/// Above this many incidents to update in a read (and when the pages are few against them:
/// see [`list_pays`]), their ETags are read from list pages rather than one GET each.
const BULK_READ_THRESHOLD: usize = 25;

#[async_trait::async_trait]
impl Sink for SentinelBackend {
    /// The repairs of the plan (audit comments of earlier closes), then its actions.
    async fn act(
        &self,
        conn: &Connection,
        target: usize,
        snapshot: &Snapshot,
        plan: &Plan,
        policy: &Policy,
        opts: &ActOptions,
        on_done: &(dyn Fn(usize) + Sync),
    ) -> ActReport {
        let Some(ws) = self.workspace(target) else {
            let failed = |a: &PlannedAction| {
                outcome(
                    a,
                    ActionResult::Failed("the workspace was not found".into()),
                    0,
                )
            };
            return ActReport {
                outcomes: plan.actions.iter().map(failed).collect(),
                repairs: plan.repairs.iter().map(failed).collect(),
                ..ActReport::default()
            };
        };
        let mut report = ActReport {
            repairs: repair(conn, ws, plan).await,
            ..ActReport::default()
        };
        if !plan.actions.is_empty() {
            let mut book: EtagBook = opts.memo.take(target);
            let acted = act(
                conn, ws, snapshot, plan, policy, opts, &mut book, target, on_done,
            )
            .await;
            opts.memo.put(target, book);
            report.outcomes = acted.outcomes;
            report.missing_roles = acted.missing_roles;
            report.etag_reads = acted.etag_reads;
        }
        report
    }
}

struct Ctx<'a> {
    conn: &'a Connection,
    ws: &'a Workspace,
    snapshot: &'a Snapshot,
    policy: &'a Policy,
    now: DateTime<Utc>,
    opts: &'a ActOptions,
    writeback_forbidden: AtomicBool,
    missing_roles: Mutex<Vec<String>>,
    /// Incidents read one by one for their ETags.
    gets: AtomicU64,
}

/// The one list of a workspace a read may take, kept over the read ([`ActOptions::memo`]).
#[derive(Default)]
pub struct EtagBook {
    /// Whether the list was taken (it is not taken twice in one read).
    listed: bool,
    /// The listed incidents not used yet.
    incidents: HashMap<String, Incident>,
    /// GETs made so far in the read.
    gets: u64,
}

/// Posts the audit comments of [`Plan::repairs`] (comment-only writes under the close's
/// own comment id).
pub async fn repair(conn: &Connection, ws: &Workspace, plan: &Plan) -> Vec<ActionOutcome> {
    let mut out = Vec::new();
    for a in &plan.repairs {
        // The rows may lag behind the comments API: look before writing.
        let mark = a.mark.to_string();
        let result = match conn.sentinel.list_comments(ws, &a.incident).await {
            Ok(comments)
                if comments
                    .iter()
                    .any(|c| c.properties.message.contains(&mark)) =>
            {
                ActionResult::Skipped("the audit comment is there (the rows lagged)".into())
            }
            Ok(_) => {
                let id = comment_id(&a.incident, a.kind.as_str(), &a.fingerprint.to_string());
                match conn
                    .sentinel
                    .put_comment(ws, &a.incident, id, &a.comment)
                    .await
                {
                    Ok(_) => ActionResult::Applied,
                    Err(e) => ActionResult::Failed(e.to_string()),
                }
            }
            Err(e) => ActionResult::Failed(e.to_string()),
        };
        out.push(outcome(a, result, 0));
    }
    out
}

/// Carries out `plan`, made from `snapshot`, for the target `target`, with `book` the ETag
/// list of the read so far. `on_done` is called after each incident with its number of
/// actions (for progress bars).
#[allow(clippy::too_many_arguments)]
pub async fn act(
    conn: &Connection,
    ws: &Workspace,
    snapshot: &Snapshot,
    plan: &Plan,
    policy: &Policy,
    opts: &ActOptions,
    book: &mut EtagBook,
    target: usize,
    on_done: &(dyn Fn(usize) + Sync),
) -> ActReport {
    let actions = &plan.actions;
    let now = plan.now;
    let ctx = Ctx {
        conn,
        ws,
        snapshot,
        policy,
        now,
        opts,
        writeback_forbidden: AtomicBool::new(false),
        missing_roles: Mutex::new(Vec::new()),
        gets: AtomicU64::new(0),
    };
    // The actions of each incident, in plan order.
    let mut order: Vec<&str> = Vec::new();
    let mut by_incident: HashMap<&str, Vec<&PlannedAction>> = HashMap::new();
    for a in actions {
        let entry = by_incident.entry(&*a.incident).or_default();
        if entry.is_empty() {
            order.push(&*a.incident);
        }
        entry.push(a);
    }
    let states: HashMap<&str, &IncidentState> =
        snapshot.incidents.iter().map(|i| (&*i.name, i)).collect();
    let mut etag_reads = EtagReads::default();
    if !book.listed && list_pays(&order, &states, snapshot, &opts.etags, target, book.gets) {
        book.listed = true;
        let candidates = opts.etags.candidates(target);
        let oldest = oldest_created(&order, &states)
            .into_iter()
            .chain(candidates.and_then(|c| c.oldest_created))
            .min();
        if let Some(oldest) = oldest {
            let now_due: std::collections::HashSet<&str> = order.iter().copied().collect();
            // For the later pieces: a two-phase read's candidates; a full read's later
            // partitions are not known yet, so its open incidents (a close or an activate
            // needs them). Up to a bound, so that memory stays flat; past it, one GET each.
            let full_read = matches!(opts.etags, EtagHint::Share(_));
            let mut later = 0usize;
            let keep = |i: &Incident| {
                if now_due.contains(i.name.as_str()) {
                    return true;
                }
                let wanted = match candidates {
                    Some(c) => c.names.contains(&i.name),
                    None => full_read && i.properties.status != IncidentStatus::Closed.as_str(),
                };
                let kept = wanted && later < KEPT_FOR_LATER_PIECES;
                later += usize::from(kept);
                kept
            };
            let (listed, pages) = list_etags(&ctx, oldest, keep).await;
            etag_reads.lists += 1;
            etag_reads.list_pages += pages;
            book.incidents = listed;
        }
    }
    let mut prefetched: HashMap<String, Incident> = order
        .iter()
        .filter_map(|n| book.incidents.remove_entry(*n))
        .collect();

    let work: Vec<_> = order
        .iter()
        .map(|name| {
            let planned: Vec<PlannedAction> =
                by_incident[name].iter().map(|a| (*a).clone()).collect();
            let pre = prefetched.remove(*name);
            (states.get(name).map(|s| (*s, pre)), planned)
        })
        .collect();
    let ctx = &ctx;
    let outcomes = per_incident(work, opts, on_done, |(state, pre), planned| {
        act_incident(ctx, state, planned, pre)
    })
    .await;
    etag_reads.gets = ctx.gets.load(Ordering::Relaxed);
    book.gets += etag_reads.gets;
    ActReport {
        outcomes,
        repairs: Vec::new(),
        etag_reads,
        missing_roles: ctx
            .missing_roles
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone()),
    }
}

/// A list page (1,000 incidents) takes about as long as this many reads of one incident.
const PAGE_COST_IN_GETS: u64 = 10;

/// The most incidents a list keeps for the later pieces of a read (a two-phase read's
/// candidates, a full read's open incidents; about 2 KB each: ~40 MB at most); past it, they
/// are read one by one.
const KEPT_FOR_LATER_PIECES: usize = 20_000;

/// Whether one list of the workspace (every incident created since the oldest it must hold)
/// costs less than reading the incidents one by one: the incidents to update now, and those
/// read one by one earlier in the read (`gets_so_far`), which a list would have spared, so
/// that a read never spends much more than the cheaper of the two.
fn list_pays(
    names: &[&str],
    states: &HashMap<&str, &IncidentState>,
    snapshot: &Snapshot,
    hint: &EtagHint,
    target: usize,
    gets_so_far: u64,
) -> bool {
    let singles = names.len() as u64 + gets_so_far;
    if singles <= BULK_READ_THRESHOLD as u64 {
        return false;
    }
    let listed = match hint {
        EtagHint::Unknown => return false,
        // A partition holds about 1/share of the workspace.
        EtagHint::Share(share) => {
            let Some(oldest) = oldest_created(names, states) else {
                return false;
            };
            snapshot
                .incidents
                .iter()
                .filter(|i| i.created >= oldest)
                .count() as u64
                * u64::from((*share).max(1))
        }
        // Every incident of the window, at most.
        EtagHint::Candidates(_) => match hint.candidates(target) {
            Some(c) => c.incidents,
            None => return false,
        },
    };
    listed.div_ceil(1000) * PAGE_COST_IN_GETS <= singles
}

/// When the oldest of the incidents `names` was created (None when none is known).
fn oldest_created(
    names: &[&str],
    states: &HashMap<&str, &IncidentState>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    names
        .iter()
        .filter_map(|n| states.get(n))
        .map(|s| s.created)
        .min()
}

/// Lists the incidents created since `oldest` (pages of 1,000), keeping those `keep` wants,
/// page by page; with the pages read. What the list does not return is read one by one.
async fn list_etags(
    ctx: &Ctx<'_>,
    oldest: DateTime<Utc>,
    keep: impl FnMut(&Incident) -> bool,
) -> (HashMap<String, Incident>, u32) {
    let since = (oldest - chrono::TimeDelta::seconds(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let filter = format!("properties/createdTimeUtc ge {since}");
    let mut pages = 0;
    match ctx
        .conn
        .sentinel
        .list_incidents_keeping(ctx.ws, Some(&filter), Some(1000), &mut pages, keep)
        .await
    {
        Ok(list) => (
            list.into_iter().map(|i| (i.name.clone(), i)).collect(),
            pages,
        ),
        Err(e) => {
            tracing::warn!(error = %e, "listing incidents for their etags failed; reading them one by one");
            (HashMap::new(), pages)
        }
    }
}

/// Carries out the actions of one incident.
async fn act_incident(
    ctx: &Ctx<'_>,
    state: &IncidentState,
    planned: Vec<PlannedAction>,
    prefetched: Option<Incident>,
) -> Vec<ActionOutcome> {
    let name = &*state.name;
    let mut incident = match prefetched {
        Some(i) => i,
        None => {
            ctx.gets.fetch_add(1, Ordering::Relaxed);
            match ctx.conn.sentinel.get_incident(ctx.ws, name).await {
                Ok(i) => i,
                Err(e) => return fail_all(&planned, &e, 0),
            }
        }
    };
    let mut planned = planned;
    let mut conflicts = 0u32;
    let mut results = Vec::new();
    // Re-decide when the incident moved since the rows were read.
    if changed_since_read(state, &incident) {
        match redecide(ctx, state, &incident).await {
            Ok(Some(fresh)) => planned = fresh,
            Ok(None) => {
                return planned
                    .iter()
                    .map(|a| outcome(a, ActionResult::Skipped("the incident changed since it was read; decided again: nothing to do".into()), 0))
                    .collect();
            }
            Err(e) => return fail_all(&planned, &e, 0),
        }
    }
    let mut i = 0;
    while i < planned.len() {
        let a = planned[i].clone();
        let result = match a.kind {
            ActionKind::Notice => comment(ctx, &a).await,
            ActionKind::Writeback => writeback(ctx, &a).await,
            ActionKind::Close | ActionKind::Activate | ActionKind::Reopen => {
                // Where the mark lives decides the order. A close carries it in the
                // classification comment of the PUT itself, so the audit comment follows (and
                // is repaired if it never lands). An activate or reopen has it only in the
                // comment, so the comment goes first: a status change that then never lands is
                // recognised and taken again (decide, guard 1).
                let comment_first = a.kind != ActionKind::Close;
                if comment_first && let Err(e) = comment(ctx, &a).await {
                    results.push(outcome(&a, ActionResult::Failed(e.to_string()), conflicts));
                    i += 1;
                    continue;
                }
                let put = if comment_first {
                    // The comment may give the incident a new ETag (the emulator does; for
                    // Azure it is not confirmed): read it again rather than meet a 409 of our
                    // own making. A status that moved meanwhile is someone else's change, and
                    // is met as a conflict: decided again.
                    match ctx.conn.sentinel.get_incident(ctx.ws, &a.incident).await {
                        Ok(fresh) if fresh.properties.status == incident.properties.status => {
                            incident = fresh;
                            put_status(ctx, &incident, &a).await
                        }
                        Ok(fresh) => {
                            incident = fresh;
                            Put::Conflict(None)
                        }
                        Err(e) => Put::Failed(e),
                    }
                } else {
                    put_status(ctx, &incident, &a).await
                };
                match put {
                    Put::Written(written) => {
                        incident = *written;
                        tracing::info!(incident = a.incident_number, action = %a.kind, fingerprint = %a.fingerprint, "incident updated");
                        if comment_first {
                            Ok(())
                        } else {
                            comment(ctx, &a).await
                        }
                    }
                    Put::Conflict(_) if conflicts < ctx.opts.conflict_retries => {
                        conflicts += 1;
                        tracing::info!(
                            incident = a.incident_number,
                            attempt = conflicts,
                            "409 Conflict: reading the incident again and deciding again"
                        );
                        let fresh = match ctx.conn.sentinel.get_incident(ctx.ws, &a.incident).await
                        {
                            Ok(f) => f,
                            Err(e) => {
                                results.extend(fail_all(&planned[i..], &e, conflicts));
                                return results;
                            }
                        };
                        incident = fresh;
                        match redecide(ctx, state, &incident).await {
                            Ok(Some(fresh_plan)) => {
                                planned = fresh_plan;
                                i = 0;
                                continue;
                            }
                            Ok(None) => {
                                results.push(outcome(
                                    &a,
                                    ActionResult::Skipped(
                                        "changed concurrently (409); decided again: nothing to do"
                                            .into(),
                                    ),
                                    conflicts,
                                ));
                                return results;
                            }
                            Err(e) => {
                                results.extend(fail_all(&planned[i..], &e, conflicts));
                                return results;
                            }
                        }
                    }
                    Put::Conflict(Some(e)) | Put::Failed(e) => Err(e),
                    Put::Conflict(None) => Err(AzureError::Conflict {
                        resource: format!("incident {}", a.incident),
                        message: "its status kept changing under dfcsync".into(),
                        request_id: None,
                    }),
                }
            }
        };
        results.push(match result {
            Ok(()) => outcome(&a, ActionResult::Applied, conflicts),
            Err(e) => {
                tracing::warn!(incident = a.incident_number, action = %a.kind, error = %e, request_id = e.request_id().unwrap_or(""), "action failed");
                outcome(&a, ActionResult::Failed(e.to_string()), conflicts)
            }
        });
        i += 1;
    }
    results
}

/// How a conditional write of an incident's status ended.
enum Put {
    Written(Box<Incident>),
    /// The incident changed since it was read: the service's 409, or (`None`) a status that
    /// moved, seen on reading it again.
    Conflict(Option<AzureError>),
    Failed(AzureError),
}

/// Writes the action's change to `incident` (as read, with its ETag).
async fn put_status(ctx: &Ctx<'_>, incident: &Incident, a: &PlannedAction) -> Put {
    let mut changed = incident.clone();
    apply_to(&mut changed, a);
    match ctx.conn.sentinel.update_incident(ctx.ws, &changed).await {
        Ok(written) => Put::Written(Box::new(written)),
        Err(e @ AzureError::Conflict { .. }) => Put::Conflict(Some(e)),
        Err(e) => Put::Failed(e),
    }
}

fn fail_all(planned: &[PlannedAction], e: &AzureError, conflicts: u32) -> Vec<ActionOutcome> {
    tracing::warn!(error = %e, request_id = e.request_id().unwrap_or(""), "incident could not be updated");
    planned
        .iter()
        .map(|a| outcome(a, ActionResult::Failed(e.to_string()), conflicts))
        .collect()
}

/// Whether the incident as the API shows it is newer than the rows the plan came from.
fn changed_since_read(state: &IncidentState, incident: &Incident) -> bool {
    let status = IncidentStatus::parse(&incident.properties.status);
    let modified = incident
        .properties
        .last_modified_time_utc
        .as_deref()
        .and_then(parse_time);
    status != state.status || modified.is_some_and(|m| m > state.last_modified)
}

/// Decides again for one incident from its state in the API: status, classification
/// comment, owner, and the marks in its comments. `None` when nothing is needed any more.
async fn redecide(
    ctx: &Ctx<'_>,
    state: &IncidentState,
    incident: &Incident,
) -> Result<Option<Vec<PlannedAction>>, AzureError> {
    let comments = ctx
        .conn
        .sentinel
        .list_comments(ctx.ws, &incident.name)
        .await?;
    let fresh = overlay(state, incident, &comments);
    Ok(
        match decide_incident(&fresh, &ctx.snapshot.alerts, ctx.policy, ctx.now) {
            Decision::Act(list) => Some(list),
            Decision::Nothing | Decision::Held(_) => None,
        },
    )
}

/// The incident's state with what the API says now laid over the rows.
pub fn overlay(
    state: &IncidentState,
    incident: &Incident,
    comments: &[IncidentComment],
) -> IncidentState {
    let mut s = state.clone();
    let p = &incident.properties;
    let modified = p.last_modified_time_utc.as_deref().and_then(parse_time);
    let status = IncidentStatus::parse(&p.status);
    if status != s.status {
        s.status = status;
        s.status_since = modified.unwrap_or(s.status_since);
        s.status_set_by = "someone (seen in the Sentinel API)".into();
    }
    if let Some(m) = modified {
        s.last_modified = s.last_modified.max(m);
    }
    s.classification = p.classification.as_deref().map(Into::into);
    s.classification_reason = p.classification_reason.as_deref().map(Into::into);
    // The same rule as the rows' `Owner` column: object id, UPN, e-mail or name.
    s.owner = p
        .owner
        .as_ref()
        .and_then(|o| serde_json::to_value(o).ok())
        .and_then(|v| crate::observe::records::owner_of(&v))
        .map(Into::into);
    let classification_comment = p.classification_comment.as_deref().unwrap_or_default();
    let mut marks: Vec<ObservedMark> = Mark::find_all(classification_comment)
        .into_iter()
        .map(|mark| ObservedMark {
            mark,
            source: MarkSource::ClassificationComment { current: true },
        })
        .collect();
    for c in comments {
        let Some(created) = c
            .properties
            .created_time_utc
            .as_deref()
            .and_then(parse_time)
        else {
            continue;
        };
        for mark in Mark::find_all(&c.properties.message) {
            marks.push(ObservedMark {
                mark,
                source: MarkSource::Comment { created },
            });
        }
    }
    // Marks the rows showed but the API no longer does (a deleted comment) are kept: the
    // action they record was taken.
    for m in &state.marks {
        if !marks.iter().any(|x| x.mark == m.mark)
            && !matches!(
                m.source,
                MarkSource::ClassificationComment { current: true }
            )
        {
            marks.push(*m);
        }
    }
    s.marks = marks;
    s.comments_known = true;
    s
}

/// The change an action makes to the incident (every other property stays as read).
fn apply_to(incident: &mut Incident, a: &PlannedAction) {
    match a.kind {
        ActionKind::Close => {
            let (class, reason) = a.closure.map_or(("Undetermined", None), |c| {
                (c.classification().as_str(), c.reason().map(|r| r.as_str()))
            });
            incident.close(class, reason, a.classification_comment.as_deref());
        }
        ActionKind::Activate | ActionKind::Reopen => {
            // An Active incident carries no closing classification.
            incident.set_active().clear_classification();
        }
        ActionKind::Notice | ActionKind::Writeback => {}
    }
}

/// The audit (or notice) comment, under its deterministic id.
async fn comment(ctx: &Ctx<'_>, a: &PlannedAction) -> Result<(), AzureError> {
    let id = comment_id(&a.incident, a.kind.as_str(), &a.fingerprint.to_string());
    ctx.conn
        .sentinel
        .put_comment(ctx.ws, &a.incident, id, &a.comment)
        .await
        .map(|_| ())
}

/// Sets the alerts InProgress in DfC, then comments. A missing Security Admin role is
/// reported once per run, and the incident is left for the next run.
async fn writeback(ctx: &Ctx<'_>, a: &PlannedAction) -> Result<(), AzureError> {
    if ctx.writeback_forbidden.load(Ordering::Relaxed) {
        return Err(AzureError::Config(
            "writeback skipped: Security Admin is missing (reported above)".into(),
        ));
    }
    for target in &a.alerts_to_set_in_progress {
        match ctx
            .conn
            .defender
            .set_status(target, DfcAction::InProgress)
            .await
        {
            Ok(()) => {}
            Err(e @ AzureError::Forbidden { .. }) => {
                if !ctx.writeback_forbidden.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "writeback needs Security Admin on the alerts' subscriptions; skipping writeback for this run");
                    if let Ok(mut roles) = ctx.missing_roles.lock() {
                        roles.push(format!(
                            "Security Admin on subscription {} (writeback)",
                            target.subscription_id
                        ));
                    }
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
    comment(ctx, a).await
}
