//! The Graph backend's source: Defender XDR incidents and alerts, read through Microsoft Graph, turned
//! into the engine's [`Snapshot`] (the engine does not change; docs/graph.md is the page of
//! this module's readings).
//!
//! In scope: incidents created within `max_age` that hold a Defender for Cloud alert
//! (`serviceSource` `microsoftDefenderForCloud`), with all their alerts, of every product.
//! What Graph cannot tell is read in the direction that never closes wrongly and never
//! overrules a person:
//!
//! - **Status** (incident): `active` → New, `inProgress` → Active, `awaitingAction` → Active
//!   (someone is on it), `resolved` → Closed; `redirected` (merged) → held, naming the
//!   incident it was merged into; any other value → held.
//! - **Status** (alert): `new` → New, `inProgress` → InProgress, `resolved` → Dismissed when
//!   classified `informationalExpectedActivity` with determination `other` (how a DfC
//!   dismissal reaches XDR), else Resolved; any other value → held.
//! - **`changed_at`** of an alert: `resolvedDateTime` for a resolved alert, else
//!   `lastUpdateDateTime`. Ids: a DfC alert's XDR id is `dc` + its Sentinel `SystemAlertId`;
//!   the prefix is dropped, so the marks (the fingerprint) are the same through both backends.
//! - **`status_since` / `status_set_by`**: `lastUpdateDateTime` / `lastModifiedBy`. Graph has
//!   no history: an update that is not a status change makes `status_since` later than it
//!   really is, which can only turn a status change into a notice (guard 2), never the reverse.
//! - **Marks**: from the incident's comments. A close's mark lives in its audit comment only
//!   (`resolvingComment` is UNCONFIRMED for PATCH), so "closed by this tool" is read as: the
//!   incident is resolved and its newest marked comment is a close mark created no earlier than
//!   a minute before `status_since` (the rule semantics.md gives activate and reopen); such a
//!   mark is shown to the engine as the close mark of the classification comment. A close
//!   mark in a comment created at or after `status_since` on an incident that is not resolved
//!   is a close whose PATCH never landed (the sink writes the comment first): it is not shown,
//!   so the close is taken again (and its comment, already there, is not posted twice).
//!
//! The reads: a whole read lists the DfC alerts created within the window (alerts_v2 by
//! `serviceSource`), then the incidents created within it, and reads the alerts of each
//! incident that holds one; a change read takes the incidents updated since the watermark,
//! the incidents of DfC alerts updated since it (an alert change need not move its
//! incident's time), and the incidents to retry, among the incidents known to hold a DfC
//! alert. The watermark is the `Date` of the read's first answer (the service's clock).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::{GraphBackend, TENANT_LABEL};
use crate::azure::AzureError;
use crate::azure::graph::{DFC_SERVICE_SOURCE, GraphAlert, GraphClient, GraphIncident, odata_time};
use crate::backend::{Piece, PieceFailure, PieceReader, ReadOutcome, Resolution, Source};
use crate::connect::Connection;
use crate::model::{
    ActionKind, AlertMap, AlertRef, AlertState, AlertStatus, HeldInput, IncidentState,
    IncidentStatus, Mark, MarkSource, ObservedMark, Snapshot,
};
use crate::observe::change_feed::Read;
use crate::observe::query::{Selection, Since};
use crate::observe::records::parse_time;
use crate::policy::Policy;

/// How close before `status_since` dfcsync's own marked comment may be for the status to
/// count as dfcsync's (semantics.md: one minute).
const OWN_STATUS_TOLERANCE: TimeDelta = TimeDelta::minutes(1);
/// Product name given to a DfC alert that names none.
pub const DFC_PRODUCT_NAME: &str = "Microsoft Defender for Cloud";

/// The incident status as the engine knows it (see the module's table).
pub fn incident_status(i: &GraphIncident) -> IncidentStatus {
    match i.status.as_str() {
        "active" => IncidentStatus::New,
        "inProgress" | "awaitingAction" => IncidentStatus::Active,
        "resolved" => IncidentStatus::Closed,
        "redirected" => IncidentStatus::Other(format!(
            "redirected (merged into incident {})",
            i.redirect_incident_id.as_deref().unwrap_or("unknown")
        )),
        other => IncidentStatus::Other(other.to_owned()),
    }
}

/// The alert status as the engine knows it (see the module's table).
pub fn alert_status(a: &GraphAlert) -> AlertStatus {
    match a.status.as_str() {
        "new" => AlertStatus::New,
        "inProgress" => AlertStatus::InProgress,
        "resolved"
            if a.classification.as_deref() == Some("informationalExpectedActivity")
                && a.determination.as_deref() == Some("other") =>
        {
            AlertStatus::Dismissed
        }
        "resolved" => AlertStatus::Resolved,
        "unknown" => AlertStatus::Unknown,
        other => AlertStatus::Other(other.to_owned()),
    }
}

/// The Sentinel classification name of a Graph classification (graph-xdr.md §3), for the
/// templates; `None` when not set.
pub fn sentinel_classification(c: Option<&str>) -> Option<&'static str> {
    match c? {
        "truePositive" => Some("TruePositive"),
        "informationalExpectedActivity" => Some("BenignPositive"),
        "falsePositive" => Some("FalsePositive"),
        _ => None,
    }
}

/// The engine's id of an XDR alert: a DfC alert's XDR id is `dc` + its `SystemAlertId`
/// (a GUID); others keep their id.
pub fn alert_key(xdr_id: &str) -> &str {
    match xdr_id.strip_prefix("dc") {
        Some(rest) if uuid::Uuid::try_parse(rest).is_ok() => rest,
        _ => xdr_id,
    }
}

/// Whether an alert is a Defender for Cloud one.
pub fn is_dfc(a: &GraphAlert) -> bool {
    a.service_source.as_deref() == Some(DFC_SERVICE_SOURCE)
}

fn time(what: &str, v: &str) -> Result<DateTime<Utc>, String> {
    parse_time(v).ok_or_else(|| format!("{what} is not an RFC 3339 date and time: {v:?}"))
}

/// One alert's state, or why it cannot be read. `read_at` is when it was read (Graph reads
/// the alert itself, not a window of rows: the read is its newest "row").
pub fn alert_state(a: &GraphAlert, read_at: DateTime<Utc>) -> Result<AlertState, String> {
    let updated = time(
        &format!("alert {}: lastUpdateDateTime", a.id),
        &a.last_update_date_time,
    )?;
    let status = alert_status(a);
    let resolved = match a.resolved_date_time.as_deref() {
        Some(r) if status.is_terminal() => {
            Some(time(&format!("alert {}: resolvedDateTime", a.id), r)?)
        }
        _ => None,
    };
    let changed_at = resolved.unwrap_or(updated);
    let link = a.alert_web_url.clone().unwrap_or_default();
    Ok(AlertState {
        id: alert_key(&a.id).into(),
        finished_since: status.is_terminal().then_some(changed_at),
        status,
        changed_at,
        last_row_at: read_at.max(updated),
        product_name: a
            .product_name
            .as_deref()
            .unwrap_or(if is_dfc(a) { DFC_PRODUCT_NAME } else { "" })
            .into(),
        display_name: a.title.as_deref().unwrap_or_default().into(),
        link,
        address: None,
    })
}

/// One incident's state from Graph, with its alerts' references resolved against `alerts`.
pub fn incident_state(
    i: &GraphIncident,
    incident_alerts: &[GraphAlert],
    alerts: &AlertMap,
) -> Result<IncidentState, String> {
    let created = time(
        &format!("incident {}: createdDateTime", i.id),
        &i.created_date_time,
    )?;
    let updated = time(
        &format!("incident {}: lastUpdateDateTime", i.id),
        &i.last_update_date_time,
    )?;
    let number: i64 =
        i.id.parse()
            .map_err(|_| format!("incident id {:?} is not a number", i.id))?;
    let status = incident_status(i);
    let mut marks = Vec::new();
    for c in &i.comments {
        let Some(created) = c.created_date_time.as_deref().and_then(parse_time) else {
            continue;
        };
        for mark in Mark::find_all(&c.comment) {
            marks.push(ObservedMark {
                mark,
                source: MarkSource::Comment { created },
            });
        }
    }
    let (marks, unfinished_close) = read_close_marks(marks, &status, updated);
    // An unfinished close: the last update was dfcsync's own comment (the mark is not older
    // than it), written after a decision to close that passed guard 2 with the status as it
    // still is. When that status was set is unknown (Graph has no history, and the comment
    // moved `lastUpdateDateTime`): the incident's creation stands for it, so that the close
    // is taken again rather than turned into a notice by dfcsync's own comment.
    let status_since = if unfinished_close { created } else { updated };
    let mut product_names: Vec<Arc<str>> = Vec::new();
    for a in incident_alerts {
        let p: Arc<str> = a
            .product_name
            .as_deref()
            .unwrap_or(if is_dfc(a) { DFC_PRODUCT_NAME } else { "" })
            .into();
        if !p.is_empty() && !product_names.contains(&p) {
            product_names.push(p);
        }
    }
    let mut alert_ids: Vec<AlertRef> = Vec::new();
    for a in incident_alerts {
        let r = alerts.reference(alert_key(&a.id));
        if !alert_ids.contains(&r) {
            alert_ids.push(r);
        }
    }
    Ok(IncidentState {
        name: i.id.as_str().into(),
        number,
        title: i.display_name.as_deref().unwrap_or_default().into(),
        status,
        status_since,
        status_set_by: i
            .last_modified_by
            .as_deref()
            .unwrap_or("someone (Graph does not say)")
            .into(),
        created,
        last_row_at: updated,
        last_modified: updated,
        classification: sentinel_classification(i.classification.as_deref()).map(Into::into),
        classification_reason: None,
        owner: i
            .assigned_to
            .as_deref()
            .filter(|o| !o.is_empty())
            .map(Into::into),
        alert_ids,
        product_names,
        marks,
        comments_known: true,
    })
}

/// The two readings of close marks (module docs): a resolved incident whose newest marked
/// comment is a close mark near `status_since` was closed by this tool (shown as the close
/// mark of the classification comment); a close mark written at or after `status_since` on an
/// incident that is not resolved is a close that never landed (not shown; `true` then).
fn read_close_marks(
    mut marks: Vec<ObservedMark>,
    status: &IncidentStatus,
    status_since: DateTime<Utc>,
) -> (Vec<ObservedMark>, bool) {
    let created = |m: &ObservedMark| match m.source {
        MarkSource::Comment { created } => Some(created),
        MarkSource::ClassificationComment { .. } => None,
    };
    if *status == IncidentStatus::Closed {
        let newest = marks.iter().filter_map(created).max();
        let own_close = newest.and_then(|newest| {
            marks
                .iter()
                .find(|m| created(m) == Some(newest) && m.mark.action == ActionKind::Close)
                .filter(|_| newest >= status_since - OWN_STATUS_TOLERANCE)
                .map(|m| m.mark)
        });
        if let Some(mark) = own_close {
            marks.push(ObservedMark {
                mark,
                source: MarkSource::ClassificationComment { current: true },
            });
        }
        (marks, false)
    } else {
        let before = marks.len();
        marks.retain(|m| {
            !(m.mark.action == ActionKind::Close && created(m).is_some_and(|c| c >= status_since))
        });
        let unfinished = marks.len() < before;
        (marks, unfinished)
    }
}

/// What the source read: the snapshot, and what the feed needs.
#[derive(Debug, Default)]
pub struct GraphRead {
    pub snapshot: Snapshot,
    /// The `Date` of the first answer (the watermark's clock).
    pub server_now: Option<DateTime<Utc>>,
    /// Incidents found to hold a DfC alert (for the next change reads).
    pub dfc_incidents: BTreeSet<String>,
    /// Graph requests made.
    pub requests: u32,
}

/// Builds the snapshot of `incidents` (those holding a DfC alert) with their alerts read
/// one incident at a time; an incident whose alerts cannot be read is held.
async fn snapshot_of(
    client: &GraphClient,
    incidents: Vec<GraphIncident>,
    read: &mut GraphRead,
    now: DateTime<Utc>,
) {
    let mut alerts = AlertMap::default();
    let mut with_alerts: Vec<(GraphIncident, Vec<GraphAlert>)> = Vec::new();
    for i in incidents {
        read.requests += 1;
        match client.incident_alerts(&i.id).await {
            Ok(list) => {
                if !list.iter().any(is_dfc) {
                    continue;
                }
                for a in &list {
                    alerts.insert(alert_key(&a.id).into(), alert_state(a, now));
                }
                read.dfc_incidents.insert(i.id.clone());
                with_alerts.push((i, list));
            }
            Err(e) => read.snapshot.unreadable_incidents.push(HeldInput {
                incident: i.id.clone(),
                incident_number: i.id.parse().ok(),
                reason: format!("its alerts could not be read: {e}"),
            }),
        }
    }
    for (i, list) in &with_alerts {
        match incident_state(i, list, &alerts) {
            Ok(s) => read.snapshot.incidents.push(s),
            Err(reason) => read.snapshot.unreadable_incidents.push(HeldInput {
                incident: i.id.clone(),
                incident_number: i.id.parse().ok(),
                reason,
            }),
        }
    }
    read.snapshot
        .incidents
        .sort_by(|a, b| (a.number, &a.name).cmp(&(b.number, &b.name)));
    read.snapshot.alerts = alerts;
    read.snapshot.server_now = read.server_now;
}

/// The service's clock: the `Date` of an empty list (the local clock if the answer has
/// none).
async fn server_clock(client: &GraphClient) -> Result<DateTime<Utc>, AzureError> {
    let probe = client
        .list_incidents(Some("createdDateTime ge 9999-01-01T00:00:00Z"))
        .await?;
    Ok(probe.server_now.unwrap_or_else(Utc::now))
}

/// A whole read: every incident created within `max_age` that holds a DfC alert. The DfC
/// alerts updated since a day before the window (an alert is updated when it is created)
/// name the candidates; only their alerts are read.
pub async fn read_whole(client: &GraphClient, max_age: TimeDelta) -> Result<GraphRead, AzureError> {
    let mut read = GraphRead::default();
    // The window is on the service's clock (never the local one): an empty list brings its
    // `Date` first, which is also the read's clock.
    read.requests += 1;
    let now = server_clock(client).await?;
    read.server_now = Some(now);
    let since = now
        .checked_sub_signed(max_age)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    read.requests += 1;
    let dfc = client
        .dfc_alerts_updated_since(
            since
                .checked_sub_signed(TimeDelta::days(1))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        )
        .await?;
    let candidates: BTreeSet<&str> = dfc
        .value
        .iter()
        .filter_map(|a| a.incident_id.as_deref())
        .collect();
    let filter = format!("createdDateTime ge {}", odata_time(since));
    read.requests += 1;
    let listed = client.list_incidents(Some(&filter)).await?;
    let incidents: Vec<GraphIncident> = listed
        .value
        .into_iter()
        .filter(|i| candidates.contains(i.id.as_str()))
        .collect();
    snapshot_of(client, incidents, &mut read, now).await;
    Ok(read)
}

/// A change read: what changed since the selection's watermark, among the incidents known
/// to hold a DfC alert (`known`; `None`: every changed incident, as a stateless
/// `--changed-within` read knows none), plus the incidents of DfC alerts that changed, plus
/// the incidents named to retry.
pub async fn read_changed(
    client: &GraphClient,
    selection: &Selection,
    known: Option<&BTreeSet<String>>,
) -> Result<GraphRead, AzureError> {
    let Selection::Changed { since, also } = selection else {
        return Err(AzureError::Config(
            "a change read needs a Changed selection".into(),
        ));
    };
    let mut read = GraphRead::default();
    let since = match since {
        Since::At(t) => *t,
        // Measured back from the service's clock.
        Since::Within(d) => {
            read.requests += 1;
            server_clock(client).await? - *d
        }
    };
    read.requests += 1;
    let changed_alerts = client.dfc_alerts_updated_since(since).await?;
    read.server_now = changed_alerts.server_now;
    let filter = format!("lastUpdateDateTime ge {}", odata_time(since));
    read.requests += 1;
    let changed = client.list_incidents(Some(&filter)).await?;
    let mut wanted: BTreeMap<String, Option<GraphIncident>> = BTreeMap::new();
    for i in changed.value {
        if known.is_none_or(|k| k.contains(&i.id)) {
            wanted.insert(i.id.clone(), Some(i));
        }
    }
    for a in &changed_alerts.value {
        if let Some(id) = &a.incident_id {
            wanted.entry(id.clone()).or_insert(None);
        }
    }
    for id in also {
        wanted.entry(id.clone()).or_insert(None);
    }
    let mut incidents = Vec::new();
    for (id, listed) in wanted {
        match listed {
            Some(i) => incidents.push(i),
            None => {
                read.requests += 1;
                match client.get_incident(&id).await {
                    Ok(a) => incidents.push(a.value),
                    Err(AzureError::Http { status: 404, .. }) => {}
                    Err(e) => read.snapshot.unreadable_incidents.push(HeldInput {
                        incident: id.clone(),
                        incident_number: id.parse().ok(),
                        reason: format!("the incident could not be read: {e}"),
                    }),
                }
            }
        }
    }
    let now = read.server_now.unwrap_or_else(Utc::now);
    snapshot_of(client, incidents, &mut read, now).await;
    Ok(read)
}

#[async_trait::async_trait]
impl Source for GraphBackend {
    fn targets(&self) -> Vec<String> {
        vec![TENANT_LABEL.into()]
    }

    fn group_limit(&self) -> usize {
        1
    }

    /// The tenant is the credential's: there is nothing to look up.
    async fn resolve(&mut self, _conn: &Connection) -> Vec<Resolution> {
        if std::mem::replace(&mut self.announced, true) {
            Vec::new()
        } else {
            vec![Resolution::Found(0)]
        }
    }

    fn read<'a>(
        &'a self,
        conn: &'a Connection,
        policy: &'a Policy,
        _members: &'a [usize],
        read: &Read,
    ) -> Box<dyn PieceReader + 'a> {
        Box::new(TenantRead {
            backend: self,
            conn,
            policy,
            read: Some(read.clone()),
            outcome: ReadOutcome {
                whole: *read == Read::Whole,
                ..ReadOutcome::default()
            },
        })
    }
}

/// One read of the tenant: a single piece.
struct TenantRead<'a> {
    backend: &'a GraphBackend,
    conn: &'a Connection,
    policy: &'a Policy,
    /// The read to make; `None` once made.
    read: Option<Read>,
    outcome: ReadOutcome,
}

impl TenantRead<'_> {
    fn known(&self) -> BTreeSet<String> {
        self.backend
            .dfc_incidents
            .lock()
            .map(|k| k.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn remember(&self, whole: bool, found: &BTreeSet<String>) {
        let mut known = self
            .backend
            .dfc_incidents
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if whole {
            known.clone_from(found);
        } else {
            known.extend(found.iter().cloned());
        }
    }
}

#[async_trait::async_trait]
impl PieceReader for TenantRead<'_> {
    async fn next(&mut self) -> Option<Piece> {
        let read = self.read.take()?;
        let result = match (&self.conn.graph, &read) {
            (None, _) => Err(AzureError::Config(
                "this cloud has no Microsoft Graph endpoint".into(),
            )),
            (Some(g), Read::Whole) => read_whole(g, self.policy.max_age).await,
            (Some(g), Read::Changed(selection)) => {
                // A stateless read (`--changed-within`) knows no incident yet: every changed
                // one is a candidate.
                let known = match selection {
                    Selection::Changed {
                        since: Since::Within(_),
                        ..
                    } => None,
                    _ => Some(self.known()),
                };
                read_changed(g, selection, known.as_ref()).await
            }
        };
        let result = match result {
            Ok(r) => {
                self.remember(self.outcome.whole, &r.dfc_incidents);
                self.outcome.complete = r.server_now.is_some();
                self.outcome.seen_until = r.server_now;
                // Incidents whose read failed are read again by name.
                self.outcome.read_again = r
                    .snapshot
                    .unreadable_incidents
                    .iter()
                    .map(|h| h.incident.clone())
                    .collect();
                Ok(vec![(0, r.snapshot)])
            }
            Err(error) => Err(PieceFailure {
                what: "reading the tenant through Microsoft Graph".into(),
                error,
                one_target_may_cause: false,
            }),
        };
        Some(Piece {
            share: None,
            result,
        })
    }

    fn outcome(&self) -> ReadOutcome {
        self.outcome.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::graph::GraphComment;
    use crate::model::Fingerprint;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn alert(id: &str, status: &str, class: Option<&str>, det: Option<&str>) -> GraphAlert {
        GraphAlert {
            id: id.into(),
            status: status.into(),
            classification: class.map(Into::into),
            determination: det.map(Into::into),
            service_source: Some(DFC_SERVICE_SOURCE.into()),
            last_update_date_time: "2026-12-06T10:00:00Z".into(),
            resolved_date_time: (status == "resolved").then(|| "2026-12-06T09:00:00.7Z".into()),
            ..Default::default()
        }
    }

    #[test]
    fn statuses_are_mapped_and_unknown_ones_held() {
        let mut i = GraphIncident {
            id: "10001".into(),
            ..Default::default()
        };
        for (graph, engine) in [
            ("active", IncidentStatus::New),
            ("inProgress", IncidentStatus::Active),
            ("awaitingAction", IncidentStatus::Active),
            ("resolved", IncidentStatus::Closed),
            (
                "unknownFutureValue",
                IncidentStatus::Other("unknownFutureValue".into()),
            ),
        ] {
            i.status = graph.into();
            assert_eq!(incident_status(&i), engine, "{graph}");
        }
        i.status = "redirected".into();
        i.redirect_incident_id = Some("10007".into());
        assert!(
            matches!(incident_status(&i), IncidentStatus::Other(s) if s.contains("10007")),
            "a merged incident is held, naming its target"
        );
        let dismissed = alert(
            "a",
            "resolved",
            Some("informationalExpectedActivity"),
            Some("other"),
        );
        assert_eq!(alert_status(&dismissed), AlertStatus::Dismissed);
        let resolved = alert("a", "resolved", Some("truePositive"), Some("other"));
        assert_eq!(alert_status(&resolved), AlertStatus::Resolved);
        let expected_but_other = alert(
            "a",
            "resolved",
            Some("informationalExpectedActivity"),
            Some("securityTesting"),
        );
        assert_eq!(alert_status(&expected_but_other), AlertStatus::Resolved);
        assert_eq!(
            alert_status(&alert("a", "new", None, None)),
            AlertStatus::New
        );
        assert_eq!(
            alert_status(&alert("a", "inProgress", None, None)),
            AlertStatus::InProgress
        );
        assert!(!alert_status(&alert("a", "unknownFutureValue", None, None)).is_known());
    }

    #[test]
    fn alert_ids_drop_the_dfc_prefix_and_changed_at_is_the_resolution() {
        let id = "dc5d3c1c2e-7a7e-4b61-9d1e-0c4c2b9e0001";
        assert_eq!(alert_key(id), "5d3c1c2e-7a7e-4b61-9d1e-0c4c2b9e0001");
        assert_eq!(
            alert_key("da637551227677560813_-961444813"),
            "da637551227677560813_-961444813"
        );
        let mut a = alert(id, "resolved", None, None);
        let s = alert_state(&a, t("2026-12-06T11:00:00Z")).unwrap();
        assert_eq!(s.changed_at, t("2026-12-06T09:00:00.7Z"));
        assert_eq!(s.finished_since, Some(s.changed_at));
        assert_eq!(&*s.product_name, DFC_PRODUCT_NAME);
        a.status = "new".into();
        let s = alert_state(&a, t("2026-12-06T11:00:00Z")).unwrap();
        assert_eq!(s.changed_at, t("2026-12-06T10:00:00Z"));
        assert_eq!(s.finished_since, None);
        a.last_update_date_time = "yesterday".into();
        let e = alert_state(&a, t("2026-12-06T11:00:00Z")).unwrap_err();
        assert!(
            e.contains("lastUpdateDateTime") && e.contains("yesterday"),
            "{e}"
        );
    }

    fn mark(action: ActionKind) -> Mark {
        Mark {
            action,
            fingerprint: Fingerprint::parse_hex("0123456789abcdef").unwrap(),
        }
    }

    fn incident(status: &str, updated: &str, comments: &[(&str, Mark)]) -> IncidentState {
        let i = GraphIncident {
            id: "10001".into(),
            status: status.into(),
            created_date_time: "2026-12-06T08:00:00Z".into(),
            last_update_date_time: updated.into(),
            comments: comments
                .iter()
                .map(|(at, m)| GraphComment {
                    comment: format!("did it {m}"),
                    created_by_display_name: None,
                    created_date_time: Some((*at).into()),
                })
                .collect(),
            ..Default::default()
        };
        incident_state(&i, &[], &AlertMap::default()).unwrap()
    }

    #[test]
    fn a_close_mark_near_the_status_change_is_dfcsyncs_close() {
        let close = mark(ActionKind::Close);
        // Comment first, then the PATCH 10 s later: dfcsync's close.
        let s = incident(
            "resolved",
            "2026-12-06T10:00:10Z",
            &[("2026-12-06T10:00:00Z", close)],
        );
        assert!(crate::decide::status_set_by_tool(&s));
        // A status set long after dfcsync's comment: someone else's.
        let s = incident(
            "resolved",
            "2026-12-06T11:00:00Z",
            &[("2026-12-06T10:00:00Z", close)],
        );
        assert!(!crate::decide::status_set_by_tool(&s));
        // A newer notice: the newest marked comment is not a close.
        let s = incident(
            "resolved",
            "2026-12-06T10:00:10Z",
            &[
                ("2026-12-06T10:00:00Z", close),
                ("2026-12-06T10:00:05Z", mark(ActionKind::Notice)),
            ],
        );
        assert!(!crate::decide::status_set_by_tool(&s));
    }

    #[test]
    fn a_close_whose_patch_never_landed_is_not_shown() {
        let close = mark(ActionKind::Close);
        // The comment moved lastUpdateDateTime; the status never changed.
        let s = incident(
            "active",
            "2026-12-06T10:00:00Z",
            &[("2026-12-06T10:00:00Z", close)],
        );
        assert!(s.marks.is_empty());
        // Reopened by someone after dfcsync's close: the mark stays (already done).
        let s = incident(
            "inProgress",
            "2026-12-06T11:00:00Z",
            &[("2026-12-06T10:00:00Z", close)],
        );
        assert_eq!(s.marks.len(), 1);
    }
}
