//! The decision engine: `(Snapshot, Policy, now) -> Plan`.
//!
//! A pure function (no I/O, no clock, no randomness) that implements every row and guard of
//! `semantics.md`: the verdict of an incident's alerts (step 1), the action the verdict and
//! the incident's status call for (step 2), and the guards that keep the tool from repeating
//! itself or overruling a person. Its output order depends only on the snapshot's content.

use std::cell::OnceCell;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use smallvec::SmallVec;

use crate::model::{
    ActionKind, AlertAddress, AlertMap, AlertState, AlertStatus, Closure, Fingerprint,
    IncidentState, IncidentStatus, Mark, MarkSource, Snapshot,
};
use crate::policy::{Placeholder, Policy, ReopenPolicy, Template};

/// Sentinel lists at most this many alerts on an incident; a longer list may be incomplete.
pub const MAX_ALERTS_PER_INCIDENT: usize = 150;

/// The longest comment the portals take (characters; the Defender portal's limit,
/// graph-xdr.md §2.4). A comment's alert list is shortened, with a count of the rest, to fit.
pub const MAX_COMMENT_CHARS: usize = 30_000;

/// Alert rows are read from the incident's creation minus this margin; an alert with no row
/// since then counts as missing (semantics.md, step 1).
pub const ALERT_ROW_MARGIN: TimeDelta = TimeDelta::days(1);

/// A comment created this long before the status change still counts as the tool's
/// (the comment is written after the status, but clocks and ingestion differ).
const OWN_STATUS_TOLERANCE: TimeDelta = TimeDelta::minutes(1);

/// What the engine decided for one workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub now: DateTime<Utc>,
    /// The actions, ordered by incident number (then name), and within an incident in the
    /// order they must be taken.
    pub actions: Vec<PlannedAction>,
    /// In-scope incidents the engine will not touch until their data is certain.
    pub held: Vec<Held>,
    /// Audit comments of earlier closes that never landed (the close's write did, its
    /// comment did not: a lost answer, a kill between the two writes). Each is a
    /// comment-only write under the close's own comment id, so it cannot duplicate.
    pub repairs: Vec<PlannedAction>,
}

/// One thing to do to one incident.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAction {
    pub incident: Arc<str>,
    pub incident_number: i64,
    pub title: Arc<str>,
    pub kind: ActionKind,
    /// The fingerprint of the incident's alerts this action answers.
    pub fingerprint: Fingerprint,
    pub mark: Mark,
    /// The incident's status after the action, when the action changes it.
    pub new_status: Option<IncidentStatus>,
    /// For a close: the classification and reason.
    pub closure: Option<Closure>,
    /// For a close: the incident's new `classificationComment`, ending with the mark.
    pub classification_comment: Option<String>,
    /// The audit (or notice) comment, ending with the mark.
    pub comment: String,
    /// For a writeback: the DfC alerts to set InProgress.
    pub alerts_to_set_in_progress: Vec<AlertAddress>,
    /// One line that says why.
    pub why: String,
    /// When the incident's alerts last changed (the newest `changed_at` among them): with
    /// the time of the write, the latency of the sync.
    pub alerts_changed_at: DateTime<Utc>,
}

/// An in-scope incident left alone because something about it is uncertain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub incident: String,
    pub incident_number: Option<i64>,
    pub kind: HoldKind,
    pub reason: String,
}

/// Why an incident is held, as a category (for metrics); the reason says the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HoldKind {
    /// An alert of the incident has no row in `SecurityAlert`.
    MissingAlert,
    /// An alert's status is `Unknown` or not a documented value.
    UnknownAlertStatus,
    /// The incident's status is not a documented value.
    UnknownIncidentStatus,
    /// More alerts than Sentinel lists, or none at all.
    AlertList,
    /// A row of the incident or of one of its alerts could not be read.
    UnreadableRow,
    /// Writeback cannot address an alert in Defender for Cloud.
    AlertAddress,
}

impl HoldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingAlert => "missing_alert",
            Self::UnknownAlertStatus => "unknown_alert_status",
            Self::UnknownIncidentStatus => "unknown_incident_status",
            Self::AlertList => "alert_list",
            Self::UnreadableRow => "unreadable_row",
            Self::AlertAddress => "alert_address",
        }
    }
}

/// Step 1's Hold: the incident is not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub kind: HoldKind,
    pub reason: String,
}

fn hold(kind: HoldKind, reason: impl Into<String>) -> Hold {
    Hold {
        kind,
        reason: reason.into(),
    }
}

/// Step 1: what the alerts of an incident say, taken together (or a [`Hold`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every alert finished; `any_resolved` picks the classification.
    Done {
        any_resolved: bool,
    },
    Working,
    Open,
}

/// Decides what each in-scope incident of `snapshot` needs.
pub fn decide(snapshot: &Snapshot, policy: &Policy, now: DateTime<Utc>) -> Plan {
    let mut incidents: Vec<&IncidentState> = snapshot.incidents.iter().collect();
    let order = |a: &&IncidentState, b: &&IncidentState| {
        a.number.cmp(&b.number).then_with(|| a.name.cmp(&b.name))
    };
    // The builder gives them in this order already: checking is cheaper than sorting.
    if !incidents.is_sorted_by(|a, b| order(a, b).is_le()) {
        incidents.sort_unstable_by(order);
    }

    let mut actions = Vec::new();
    let mut held: Vec<Held> = snapshot
        .unreadable_incidents
        .iter()
        .map(|h| Held {
            incident: h.incident.clone(),
            incident_number: h.incident_number,
            kind: HoldKind::UnreadableRow,
            reason: h.reason.clone(),
        })
        .collect();

    let mut repairs = Vec::new();
    for incident in incidents {
        if let Some(r) = repair_for(incident, &snapshot.alerts, policy, now) {
            repairs.push(r);
        }
        if let Err(h) = decide_into(incident, &snapshot.alerts, policy, now, &mut actions) {
            held.push(h);
        }
    }
    held.sort_by(|a, b| {
        (a.incident_number, &a.incident, &a.reason).cmp(&(
            b.incident_number,
            &b.incident,
            &b.reason,
        ))
    });
    Plan {
        now,
        actions,
        held,
        repairs,
    }
}

/// The audit comment of dfcsync's close, when the incident's classification comment carries
/// the close mark and no comment does (only known when the rows carry the comments).
pub fn repair_for(
    incident: &IncidentState,
    alerts: &AlertMap,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Option<PlannedAction> {
    if incident.status != IncidentStatus::Closed || !incident.comments_known {
        return None;
    }
    let close = incident.marks.iter().find(|m| {
        m.mark.action == ActionKind::Close
            && m.source == MarkSource::ClassificationComment { current: true }
    })?;
    let commented = incident.marks.iter().any(|m| {
        m.mark == close.mark
            && matches!(
                m.source,
                MarkSource::Comment { .. } | MarkSource::UndatedComment
            )
    });
    if commented || !in_window(incident, policy, now) {
        return None;
    }
    let (_, found) = verdict(incident, alerts).ok()?;
    let ctx = Context::new(incident, found, policy, Some(close.mark.fingerprint));
    let closure = incident
        .classification
        .as_deref()
        .and_then(|c| Closure::parse(c, incident.classification_reason.as_deref()).ok());
    Some(PlannedAction {
        incident: incident.name.clone(),
        incident_number: incident.number,
        title: incident.title.clone(),
        kind: ActionKind::Close,
        fingerprint: close.mark.fingerprint,
        mark: close.mark,
        new_status: None,
        closure: None,
        classification_comment: None,
        comment: ctx.render(&policy.templates.close_comment, closure, None, close.mark),
        alerts_to_set_in_progress: Vec::new(),
        why: "dfcsync closed this incident but the audit comment of that close never landed: posting it".into(),
        alerts_changed_at: ctx.last_alert_change,
    })
}

/// What one incident needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Nothing,
    Held(Held),
    /// The actions, in the order they must be taken.
    Act(Vec<PlannedAction>),
}

/// An incident's alerts, sorted by id (byte order). Incidents have one or a few alerts: they
/// live on the stack.
pub type Alerts<'a> = SmallVec<[&'a AlertState; 4]>;

/// Whether an incident is in scope: created within `max_age`, and holding an alert of a
/// configured product (by the alert's `ProductName` or the incident's `alertProductNames`).
/// An alert whose rows cannot be read might be one: such an incident counts as in scope, so
/// that it is held rather than silently skipped.
pub fn in_scope(
    incident: &IncidentState,
    alerts: &AlertMap,
    policy: &Policy,
    now: DateTime<Utc>,
) -> bool {
    in_window(incident, policy, now) && holds_product(incident, alerts, policy)
}

fn in_window(incident: &IncidentState, policy: &Policy, now: DateTime<Utc>) -> bool {
    // A window reaching back before the first representable date holds every incident
    // (`now - max_age` would panic; the configuration keeps max_age to 100 years anyway).
    now.checked_sub_signed(policy.max_age)
        .is_none_or(|since| incident.created >= since)
}

fn holds_product(incident: &IncidentState, alerts: &AlertMap, policy: &Policy) -> bool {
    incident
        .product_names
        .iter()
        .any(|p| policy.is_product_in_scope(p))
        || incident.alert_ids.iter().any(|r| match alerts.at(r) {
            Some(Ok(a)) => policy.is_product_in_scope(&a.product_name),
            Some(Err(_)) => true,
            None => false,
        })
}

/// Step 1 of semantics.md: the verdict, with the alerts it was reached from (sorted by id,
/// byte order); `Err` is a hold, with its reason.
pub fn verdict<'a>(
    incident: &IncidentState,
    alerts: &'a AlertMap,
) -> Result<(Verdict, Alerts<'a>), Hold> {
    let mut found = Alerts::new();
    for alert in &incident.alert_ids {
        let id = alert.id();
        match alerts.at(alert) {
            None => {
                return Err(hold(
                    HoldKind::MissingAlert,
                    format!(
                        "alert {id} has no row in SecurityAlert (never act on an alert we cannot see)"
                    ),
                ));
            }
            Some(Err(reason)) => return Err(hold(HoldKind::UnreadableRow, reason.clone())),
            Some(Ok(a)) if a.last_row_at < incident.created - ALERT_ROW_MARGIN => {
                return Err(hold(
                    HoldKind::MissingAlert,
                    format!(
                        "alert {id} has no row in SecurityAlert since the incident was created (minus one day)"
                    ),
                ));
            }
            Some(Ok(a)) => found.push(a),
        }
    }
    if let Some(a) = found.iter().find(|a| !a.status.is_known()) {
        return Err(hold(
            HoldKind::UnknownAlertStatus,
            format!(
                "alert {} has status {:?}, which dfcsync does not act on",
                a.id,
                a.status.as_str()
            ),
        ));
    }
    let listed = incident.alert_ids.len();
    if let Some(count) = incident.alerts_count.filter(|&c| c as usize > listed) {
        return Err(hold(
            HoldKind::AlertList,
            format!(
                "the incident holds {count} alerts (AdditionalData.alertsCount) but lists {listed}: the alerts not listed cannot be seen"
            ),
        ));
    }
    if listed >= MAX_ALERTS_PER_INCIDENT {
        return Err(hold(
            HoldKind::AlertList,
            format!(
                "the incident lists {listed} alerts, Sentinel's cap of {MAX_ALERTS_PER_INCIDENT}: the list may be cut"
            ),
        ));
    }
    if found.is_empty() {
        return Err(hold(HoldKind::AlertList, "the incident lists no alerts"));
    }
    found.sort_unstable_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
    let v = if found.iter().all(|a| a.status.is_terminal()) {
        Verdict::Done {
            any_resolved: found.iter().any(|a| a.status == AlertStatus::Resolved),
        }
    } else if found.iter().any(|a| a.status == AlertStatus::InProgress) {
        Verdict::Working
    } else {
        Verdict::Open
    };
    Ok((v, found))
}

/// An activate or reopen comment whose status change never landed: the incident is not
/// Active and its status has not changed since the comment was written.
fn unfinished_status_change(incident: &IncidentState, m: &crate::model::ObservedMark) -> bool {
    matches!(m.mark.action, ActionKind::Activate | ActionKind::Reopen)
        && incident.status != IncidentStatus::Active
        && matches!(m.source, MarkSource::Comment { created } if created >= incident.status_since)
}

/// Whether a close mark was left (in a comment) after every alert entered its current run of
/// finished statuses.
fn closed_this_episode(incident: &IncidentState, alerts: &[&AlertState]) -> bool {
    let Some(Some(all_finished_at)) = alerts
        .iter()
        .map(|a| a.finished_since)
        .try_fold(None, |latest: Option<DateTime<Utc>>, at| {
            at.map(|at| Some(latest.map_or(at, |l| l.max(at))))
        })
    else {
        return false;
    };
    incident.marks.iter().any(|m| {
        m.mark.action == ActionKind::Close
            && matches!(m.source, MarkSource::Comment { created } if created >= all_finished_at)
    })
}

/// Whether the incident's current status was set by this tool (semantics.md, "Idempotency").
pub fn status_set_by_tool(incident: &IncidentState) -> bool {
    match incident.status {
        IncidentStatus::Closed => incident.marks.iter().any(|m| {
            m.mark.action == ActionKind::Close
                && m.source == MarkSource::ClassificationComment { current: true }
        }),
        IncidentStatus::Active => {
            let newest = incident
                .marks
                .iter()
                .filter_map(|m| match m.source {
                    MarkSource::Comment { created } => Some(created),
                    MarkSource::ClassificationComment { .. } | MarkSource::UndatedComment => None,
                })
                .max();
            newest.is_some_and(|newest| {
                newest >= incident.status_since - OWN_STATUS_TOLERANCE
                    && incident.marks.iter().any(|m| {
                        m.source == MarkSource::Comment { created: newest }
                            && matches!(m.mark.action, ActionKind::Activate | ActionKind::Reopen)
                    })
            })
        }
        _ => false,
    }
}

/// Decides what one incident needs (the body of [`decide`], for one incident: the act step
/// calls it again after re-reading an incident that changed under it).
pub fn decide_incident(
    incident: &IncidentState,
    alerts: &AlertMap,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Decision {
    let mut planned = Vec::new();
    match decide_into(incident, alerts, policy, now, &mut planned) {
        Err(h) => Decision::Held(h),
        Ok(()) if planned.is_empty() => Decision::Nothing,
        Ok(()) => Decision::Act(planned),
    }
}

/// [`decide_incident`], appending the incident's actions to `out` (in the order they must be
/// taken); `Err` when the incident is held.
fn decide_into(
    incident: &IncidentState,
    alerts: &AlertMap,
    policy: &Policy,
    now: DateTime<Utc>,
    out: &mut Vec<PlannedAction>,
) -> Result<(), Held> {
    let held = |h: Hold| Held {
        incident: incident.name.to_string(),
        incident_number: Some(incident.number),
        kind: h.kind,
        reason: h.reason,
    };
    if !in_window(incident, policy, now) || !holds_product(incident, alerts, policy) {
        return Ok(());
    }
    let (verdict, found) = verdict(incident, alerts).map_err(held)?;
    if let IncidentStatus::Other(s) = &incident.status {
        return Err(held(hold(
            HoldKind::UnknownIncidentStatus,
            format!("incident status {s:?} is not one dfcsync knows"),
        )));
    }
    let ctx = Context::new(incident, found, policy, None);
    // Guard 1: already done. One exception: an activate or reopen writes its comment (the
    // mark) before the status; a mark with no status change since, on an incident that is not
    // Active, is a write that never landed (a kill, a lost answer), and is taken again.
    // (Without marks there is nothing to compare: the fingerprint waits for an action.)
    if !incident.marks.is_empty()
        && incident.marks.iter().any(|m| {
            m.mark.fingerprint == ctx.fingerprint() && !unfinished_status_change(incident, m)
        })
    {
        return Ok(());
    }
    // Guard 1, for the echo: dfcsync closed the incident after every alert had finished, and
    // none has been active since; alerts that only moved from one finished status to another
    // (the platform's echo of that close) do not call for a second close.
    if matches!(verdict, Verdict::Done { .. }) && closed_this_episode(incident, &ctx.alerts) {
        return Ok(());
    }
    let by_tool = status_set_by_tool(incident);
    let last_alert_change = ctx.last_alert_change;

    let start = out.len();
    if let Some(w) = writeback(&ctx, &verdict, by_tool) {
        out.push(w.map_err(|reason| held(hold(HoldKind::AlertAddress, reason)))?);
    }
    let wrote_back = out.len() > start;

    let main = match (&incident.status, &verdict) {
        (IncidentStatus::New | IncidentStatus::Active, Verdict::Done { any_resolved }) => {
            Some(StatusChange::Close(if *any_resolved {
                policy.resolved
            } else {
                policy.dismissed
            }))
        }
        (IncidentStatus::New, Verdict::Working) => Some(StatusChange::Activate(
            "an alert is InProgress in Defender for Cloud while the incident is New",
        )),
        // A writeback turns the New alerts InProgress: the incident follows in the same step,
        // so that deciding again after the plan is applied finds nothing more to do.
        (IncidentStatus::New, Verdict::Open) if wrote_back => Some(StatusChange::Activate(
            "the incident has an owner and dfcsync sets its alerts InProgress in Defender for Cloud",
        )),
        (IncidentStatus::Closed, Verdict::Open | Verdict::Working) => {
            let may = match policy.reopen {
                ReopenPolicy::Never => false,
                ReopenPolicy::Own => by_tool,
                ReopenPolicy::Always => true,
            };
            (may && last_alert_change > incident.status_since).then_some(StatusChange::Reopen)
        }
        _ => None,
    };

    if let Some(change) = main {
        // Guard 2: a person acted after the alert changed (every change here sets a status).
        let person_acted_later = !by_tool
            && incident.status_since > last_alert_change
            && incident.status != IncidentStatus::New;
        out.push(if person_acted_later && policy.respect_manual_changes {
            ctx.notice(change)
        } else {
            match change {
                StatusChange::Close(closure) => ctx.close(closure),
                StatusChange::Activate(why) => ctx.activate(why),
                StatusChange::Reopen => ctx.reopen(by_tool),
            }
        });
    }
    Ok(())
}

/// The status change an incident's alerts call for, before guard 2 has its say.
#[derive(Debug, Clone, Copy)]
enum StatusChange {
    Close(Closure),
    /// With why.
    Activate(&'static str),
    Reopen,
}

impl StatusChange {
    /// What the change would do, in a few words (for notices).
    fn describe(self) -> String {
        match self {
            Self::Close(c) => format!("closed as {}", c.classification()),
            Self::Activate(_) => "set Active".to_owned(),
            Self::Reopen => "reopened".to_owned(),
        }
    }

    fn closure(self) -> Option<Closure> {
        match self {
            Self::Close(c) => Some(c),
            Self::Activate(_) | Self::Reopen => None,
        }
    }
}

/// The optional other direction: a person works the incident, so its New alerts are set
/// InProgress in DfC. `Err` holds the incident when an alert cannot be addressed in DfC.
fn writeback(
    ctx: &Context<'_>,
    verdict: &Verdict,
    by_tool: bool,
) -> Option<Result<PlannedAction, String>> {
    let incident = ctx.incident;
    if !ctx.policy.writeback || !matches!(verdict, Verdict::Open | Verdict::Working) {
        return None;
    }
    let taken_by_person = match incident.status {
        IncidentStatus::Active => !by_tool || incident.owner.is_some(),
        IncidentStatus::New => incident.owner.is_some(),
        _ => false,
    };
    if !taken_by_person {
        return None;
    }
    // Only the incident's Defender for Cloud alerts (the configured products) are written
    // back: another product's alert has no address in DfC, and is left as it is.
    let new_alerts: Vec<&AlertState> = ctx
        .alerts
        .iter()
        .copied()
        .filter(|a| a.status == AlertStatus::New && ctx.policy.is_product_in_scope(&a.product_name))
        .collect();
    if new_alerts.is_empty() {
        return None;
    }
    let mut targets = Vec::new();
    for a in &new_alerts {
        match &a.address {
            Some(addr) => targets.push(addr.clone()),
            None => {
                return Some(Err(format!(
                    "writeback: alert {} has no AlertLink that says where it lives in Defender for Cloud",
                    a.id
                )));
            }
        }
    }
    let who = if incident.status == IncidentStatus::Active && !by_tool {
        format!(
            "{} set the incident Active",
            display_who(&incident.status_set_by)
        )
    } else {
        format!(
            "the incident is assigned to {}",
            incident.owner.as_deref().unwrap_or("someone")
        )
    };
    let mut action = ctx.action(
        ActionKind::Writeback,
        None,
        None,
        &ctx.policy.templates.writeback_comment,
        format!(
            "{who}; {} alert(s) still New in Defender for Cloud",
            new_alerts.len()
        ),
    );
    action.alerts_to_set_in_progress = targets;
    Some(Ok(action))
}

fn display_who(s: &str) -> &str {
    if s.is_empty() { "someone" } else { s }
}

/// What every action of one incident is built from.
struct Context<'a> {
    incident: &'a IncidentState,
    /// The incident's alerts, sorted by id (byte order).
    alerts: Alerts<'a>,
    policy: &'a Policy,
    /// The fingerprint of the alerts, computed when first asked for (most incidents of a
    /// cycle need none: no mark to compare with, no action to mark).
    fingerprint: OnceCell<Fingerprint>,
    last_alert_change: DateTime<Utc>,
    /// The most alerts a list placeholder writes (set while a comment is fitted to
    /// [`MAX_COMMENT_CHARS`]).
    list_limit: std::cell::Cell<usize>,
}

impl<'a> Context<'a> {
    /// The context of an incident's actions: its alerts as [`verdict`] gives them (sorted by
    /// id, byte order), and the newest change among them (`last_alert_change`).
    fn new(
        incident: &'a IncidentState,
        alerts: Alerts<'a>,
        policy: &'a Policy,
        fingerprint: Option<Fingerprint>,
    ) -> Self {
        debug_assert!(alerts.is_sorted_by(|a, b| a.id.as_bytes() <= b.id.as_bytes()));
        let last_alert_change = alerts
            .iter()
            .map(|a| a.changed_at)
            .max()
            .unwrap_or(incident.created);
        Self {
            incident,
            alerts,
            policy,
            fingerprint: fingerprint.map(OnceCell::from).unwrap_or_default(),
            last_alert_change,
            list_limit: std::cell::Cell::new(usize::MAX),
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        *self.fingerprint.get_or_init(|| {
            Fingerprint::of_sorted_alerts(
                self.alerts
                    .iter()
                    .map(|a| (&*a.id, &a.status, a.changed_at)),
            )
        })
    }

    fn close(&self, closure: Closure) -> PlannedAction {
        let mut why = String::with_capacity(96);
        why.push_str("every alert is finished in Defender for Cloud (");
        self.write_status_summary(&mut why);
        why.push_str("); close as ");
        why.push_str(closure.classification().as_str());
        let mut action = self.action(
            ActionKind::Close,
            Some(IncidentStatus::Closed),
            Some(closure),
            &self.policy.templates.close_comment,
            why,
        );
        action.classification_comment = Some(self.render(
            &self.policy.templates.classification_comment,
            Some(closure),
            None,
            action.mark,
        ));
        action
    }

    fn activate(&self, why: &'static str) -> PlannedAction {
        self.action(
            ActionKind::Activate,
            Some(IncidentStatus::Active),
            None,
            &self.policy.templates.activate_comment,
            why.to_owned(),
        )
    }

    fn reopen(&self, by_tool: bool) -> PlannedAction {
        let closer = if by_tool {
            "dfcsync"
        } else {
            display_who(&self.incident.status_set_by)
        };
        let mut why = format!(
            "{closer} closed the incident at {}, and an alert changed to ",
            rfc3339(self.incident.status_since)
        );
        self.write_status_summary(&mut why);
        let _ = write!(why, " at {}", rfc3339(self.last_alert_change));
        self.action(
            ActionKind::Reopen,
            Some(IncidentStatus::Active),
            None,
            &self.policy.templates.reopen_comment,
            why,
        )
    }

    /// Guard 2: instead of `instead`, a comment that says what happened and is left alone.
    fn notice(&self, instead: StatusChange) -> PlannedAction {
        let would = instead.describe();
        let mut why = String::with_capacity(160);
        why.push_str(display_who(&self.incident.status_set_by));
        why.push_str(" set the incident ");
        why.push_str(self.incident.status.as_str());
        why.push_str(" at ");
        crate::model::push_rfc3339_seconds(&mut why, self.incident.status_since);
        why.push_str(", after the alerts last changed at ");
        crate::model::push_rfc3339_seconds(&mut why, self.last_alert_change);
        why.push_str(": not ");
        why.push_str(&would);
        let mark = Mark::new(ActionKind::Notice, self.fingerprint());
        PlannedAction {
            incident: self.incident.name.clone(),
            incident_number: self.incident.number,
            title: self.incident.title.clone(),
            kind: ActionKind::Notice,
            fingerprint: self.fingerprint(),
            mark,
            new_status: None,
            closure: None,
            classification_comment: None,
            comment: self.render(
                &self.policy.templates.notice_comment,
                instead.closure(),
                Some(&would),
                mark,
            ),
            alerts_to_set_in_progress: Vec::new(),
            why,
            alerts_changed_at: self.last_alert_change,
        }
    }

    fn action(
        &self,
        kind: ActionKind,
        new_status: Option<IncidentStatus>,
        closure: Option<Closure>,
        template: &Template,
        why: String,
    ) -> PlannedAction {
        let mark = Mark::new(kind, self.fingerprint());
        PlannedAction {
            incident: self.incident.name.clone(),
            incident_number: self.incident.number,
            title: self.incident.title.clone(),
            kind,
            fingerprint: self.fingerprint(),
            mark,
            new_status,
            closure,
            classification_comment: None,
            comment: self.render(template, closure, None, mark),
            alerts_to_set_in_progress: Vec::new(),
            why,
            alerts_changed_at: self.last_alert_change,
        }
    }

    /// The template's text followed by the mark on a paragraph of its own, at most
    /// [`MAX_COMMENT_CHARS`] characters: the alert lists are shortened (with a count of the
    /// alerts left out) until it fits, and a text still too long is cut before the mark.
    fn render(
        &self,
        template: &Template,
        closure: Option<Closure>,
        would: Option<&str>,
        mark: Mark,
    ) -> String {
        let budget = MAX_COMMENT_CHARS - Mark::TEXT_LEN - 2;
        let text = |limit: usize| {
            self.list_limit.set(limit);
            let mut out = String::with_capacity(256 + 300 * self.alerts.len().min(limit));
            template.render_into(&mut out, &mut |p, out| {
                self.write_placeholder(out, p, closure, would)
            });
            out.truncate(out.trim_end().len());
            out
        };
        let mut out = text(usize::MAX);
        let mut chars = out.chars().count();
        if chars > budget {
            // Shorten the lists in proportion to what is over, until it fits.
            let mut limit = self.alerts.len();
            while chars > budget && limit > 0 {
                let keep = (limit as u64 * budget as u64 / chars as u64) as usize;
                limit = keep.min(limit - 1);
                out = text(limit);
                chars = out.chars().count();
            }
            if chars > budget {
                let cut = out
                    .char_indices()
                    .nth(budget - 1)
                    .map_or(out.len(), |(i, _)| i);
                out.truncate(cut);
                out.push('…');
            }
        }
        self.list_limit.set(usize::MAX);
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        mark.push_to(&mut out);
        // A plan of a first run holds tens of thousands of these: keep what the text needs
        // (shrinking in place is cheap; it does not copy).
        out.shrink_to_fit();
        out
    }

    /// "… and N more alert(s)" when a list was shortened to fit a comment.
    fn write_left_out(&self, out: &mut String, separator: &str) {
        let shown = self.alerts.len().min(self.list_limit.get());
        let left = self.alerts.len() - shown;
        if left > 0 {
            if shown > 0 {
                out.push_str(separator);
            }
            let _ = write!(
                out,
                "… and {left} more alert(s) (the comment is kept under {MAX_COMMENT_CHARS} characters)"
            );
        }
    }

    /// The distinct statuses of the alerts, in a fixed order: `Resolved, Dismissed`.
    fn write_status_summary(&self, out: &mut String) {
        let order = [
            AlertStatus::New,
            AlertStatus::InProgress,
            AlertStatus::Resolved,
            AlertStatus::Dismissed,
        ];
        let mut first = true;
        for s in order
            .iter()
            .filter(|s| self.alerts.iter().any(|a| &a.status == *s))
        {
            if !first {
                out.push_str(", ");
            }
            first = false;
            out.push_str(s.as_str());
        }
    }

    fn write_placeholder(
        &self,
        out: &mut String,
        p: Placeholder,
        closure: Option<Closure>,
        would: Option<&str>,
    ) {
        let time = |out: &mut String, t| crate::model::push_rfc3339_seconds(out, t);
        match p {
            Placeholder::AlertStatus => self.write_status_summary(out),
            Placeholder::AlertIds => {
                for (i, a) in self.alerts.iter().take(self.list_limit.get()).enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(alert_name(a));
                }
                self.write_left_out(out, ", ");
            }
            Placeholder::AlertLink => {
                let mut first = true;
                for a in self
                    .alerts
                    .iter()
                    .take(self.list_limit.get())
                    .filter(|a| !a.link.is_empty())
                {
                    if !first {
                        out.push(' ');
                    }
                    first = false;
                    out.push_str(&a.link);
                }
            }
            Placeholder::Alerts => {
                for (i, a) in self.alerts.iter().take(self.list_limit.get()).enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    out.push_str("- ");
                    out.push_str(alert_name(a));
                    out.push_str(" (");
                    out.push_str(if a.display_name.is_empty() {
                        &a.id
                    } else {
                        &a.display_name
                    });
                    out.push_str("): ");
                    out.push_str(a.status.as_str());
                    out.push_str(" since ");
                    time(out, a.changed_at);
                    if !a.link.is_empty() {
                        out.push(' ');
                        out.push_str(&a.link);
                    }
                }
                self.write_left_out(out, "\n- ");
            }
            Placeholder::ChangedAt => time(out, self.last_alert_change),
            Placeholder::Classification => {
                if let Some(c) = closure {
                    out.push_str(c.classification().as_str());
                }
            }
            Placeholder::ClassificationReason => {
                if let Some(r) = closure.and_then(|c| c.reason()) {
                    out.push_str(r.as_str());
                }
            }
            Placeholder::IncidentNumber => {
                let _ = write!(out, "{}", self.incident.number);
            }
            Placeholder::IncidentStatus => out.push_str(self.incident.status.as_str()),
            Placeholder::StatusSince => time(out, self.incident.status_since),
            Placeholder::StatusSetBy => out.push_str(display_who(&self.incident.status_set_by)),
            Placeholder::Would => out.push_str(would.unwrap_or_default()),
        }
    }
}

/// RFC 3339 in UTC, whole seconds: how dfcsync writes instants for people.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    let mut s = String::with_capacity(20);
    crate::model::push_rfc3339_seconds(&mut s, t);
    s
}

/// How comments name an alert: its DfC name where known, else its Sentinel id.
fn alert_name(a: &AlertState) -> &str {
    a.address.as_ref().map_or(&*a.id, |addr| &addr.name)
}
