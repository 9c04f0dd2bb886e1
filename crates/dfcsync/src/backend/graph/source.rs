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
//! - **Marks**: from `resolvingComment` (a close's, written with its PATCH: shown as the
//!   classification comment's, current while resolved) and the comments (dated by
//!   `createdDateTime` or `createdTime`; undated ones keep their marks). The sink writes a
//!   status before its comment, so a mark always means its change landed; marks are never
//!   hidden. Without a `resolvingComment` mark, "closed by this tool" is read as: resolved, and
//!   the newest dated marked comment is a close mark no older than a minute before
//!   `status_since` (shown to the engine as the classification comment's close mark).
//!
//! The reads, by the page (docs/graph.md, "Reads"): a whole read lists the DfC alerts of the
//! window (alerts_v2 by `serviceSource`, pages of 1,000) and the incidents created within it
//! with their alerts (`$expand=alerts`, pages of 50); a change read lists the DfC alerts and
//! the incidents updated since the watermark, answers an unmoved all-DfC incident of a changed
//! alert from the [`Memory`], and reads the others one by one. Where the service refuses the
//! expansion, incidents are listed without it and the candidates' alerts read by incident. The
//! watermark is the `Date` of the read's first answer (the service's clock).

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    let marks = read_own_close(observed_marks(i, &status), &status, updated);
    let status_since = updated;
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
        // Graph lists an incident's alerts whole (by the page): there is no cut to detect.
        alerts_count: None,
        marks,
        comments_known: true,
    })
}

/// The marks on the incident: in `resolvingComment` (written with the close's PATCH itself,
/// so it proves the close landed: the classification comment's part in Sentinel, current
/// while the incident is resolved) and in its comments (dated by `createdDateTime` or
/// `createdTime`; a comment whose time cannot be read keeps its marks, undated).
fn observed_marks(i: &GraphIncident, status: &IncidentStatus) -> Vec<ObservedMark> {
    let mut marks = Vec::new();
    if let Some(note) = &i.resolving_comment {
        for mark in Mark::find_all(note) {
            marks.push(ObservedMark {
                mark,
                source: MarkSource::ClassificationComment {
                    current: *status == IncidentStatus::Closed,
                },
            });
        }
    }
    for c in &i.comments {
        let source = match c.created_date_time.as_deref().and_then(parse_time) {
            Some(created) => MarkSource::Comment { created },
            None => MarkSource::UndatedComment,
        };
        for mark in Mark::find_all(&c.comment) {
            marks.push(ObservedMark { mark, source });
        }
    }
    marks
}

/// Reads whether dfcsync closed the incident: it is resolved and either its
/// `resolvingComment` carries a close mark (written with the PATCH), or its newest dated
/// marked comment is a close mark created no earlier than [`OWN_STATUS_TOLERANCE`] before
/// `lastUpdateDateTime` (`updated`; the rule semantics.md gives activate and reopen: the sink
/// comments right after its PATCH, and the comment moves `lastUpdateDateTime` again). Such a
/// comment mark is shown to the engine as the close mark of the classification comment.
///
/// Marks are never hidden: the sink writes a status change before its comment, so a mark on
/// a Graph incident means its change landed, and a mark on an incident whose status is now
/// something else means someone else changed it since (guard 1 leaves it).
fn read_own_close(
    mut marks: Vec<ObservedMark>,
    status: &IncidentStatus,
    updated: DateTime<Utc>,
) -> Vec<ObservedMark> {
    if *status != IncidentStatus::Closed
        || marks.iter().any(|m| {
            m.mark.action == ActionKind::Close
                && m.source == (MarkSource::ClassificationComment { current: true })
        })
    {
        return marks;
    }
    let created = |m: &ObservedMark| match m.source {
        MarkSource::Comment { created } => Some(created),
        MarkSource::ClassificationComment { .. } | MarkSource::UndatedComment => None,
    };
    let Some(newest) = marks.iter().filter_map(created).max() else {
        return marks;
    };
    let own = marks
        .iter()
        .find(|m| created(m) == Some(newest) && m.mark.action == ActionKind::Close)
        .filter(|_| newest >= updated - OWN_STATUS_TOLERANCE)
        .map(|m| m.mark);
    if let Some(mark) = own {
        marks.push(ObservedMark {
            mark,
            source: MarkSource::ClassificationComment { current: true },
        });
    }
    marks
}

/// What the source keeps between the reads of one process: which incidents hold a DfC
/// alert, and, for those whose every alert is a DfC one, the incident as last read (its
/// alerts, and only the comments that carry a mark). A change read answers an alert change
/// of such an incident from this memory and the alert pages, without reading the incident:
/// an incident that is not among those updated since the watermark has not changed since it
/// was read (the change feed's own reasoning), and its alerts are all in the DfC pages.
#[derive(Debug, Default)]
pub struct Memory {
    pub dfc_incidents: BTreeSet<String>,
    pub pure: HashMap<String, GraphIncident>,
    /// Set once the service refused `$expand=alerts` on a list (an HTTP 500 on large
    /// tenants has been reported): from then on incidents are listed without their alerts,
    /// and the alerts of each candidate are read by incident.
    pub no_expand: bool,
}

/// What the source read: the snapshot, and what the feed needs.
#[derive(Debug, Default)]
pub struct GraphRead {
    pub snapshot: Snapshot,
    /// The `Date` of the first answer (the watermark's clock).
    pub server_now: Option<DateTime<Utc>>,
    /// Incidents found to hold a DfC alert (for the next change reads).
    pub dfc_incidents: BTreeSet<String>,
    /// The incidents read whose every alert is a DfC one, as the memory keeps them.
    pub pure: HashMap<String, GraphIncident>,
    /// Incidents read that are not pure any more (their memory is dropped).
    pub mixed: BTreeSet<String>,
    /// Graph requests made.
    pub requests: u32,
    /// Whether the service refused `$expand=alerts` during this read.
    pub expand_refused: bool,
}

/// The DfC alerts of a list, by the id of their incident.
fn by_incident(alerts: Vec<GraphAlert>) -> HashMap<String, Vec<GraphAlert>> {
    let mut out: HashMap<String, Vec<GraphAlert>> = HashMap::new();
    for a in alerts {
        if let Some(id) = a.incident_id.clone() {
            out.entry(id).or_default().push(a);
        }
    }
    out
}

/// An incident and its alerts, or how its alerts are still to be read.
enum Found {
    /// The alerts are known (expanded, from the pages, or from the memory).
    Complete(GraphIncident, Vec<GraphAlert>),
    /// The incident is known, its alerts are to be read (`incidents/{id}/alerts`).
    NeedsAlerts(GraphIncident),
    /// The incident is to be read, with its alerts.
    NeedsIncident,
}

/// The alerts of an incident listed with `$expand=alerts`, completed with the DfC alerts the
/// pages give for it; `None` when the pages name an alert the expansion lacks (the expansion
/// is then not trusted: the incident's alerts are read by incident).
fn merged(i: &mut GraphIncident, paged: Option<&Vec<GraphAlert>>) -> Option<Vec<GraphAlert>> {
    let mut alerts = i.alerts.take()?;
    for a in paged.into_iter().flatten() {
        match alerts.iter_mut().find(|x| x.id.eq_ignore_ascii_case(&a.id)) {
            Some(x) if x.last_update_date_time < a.last_update_date_time => *x = a.clone(),
            Some(_) => {}
            None => return None,
        }
    }
    Some(alerts)
}

/// Lists incidents by `filter`, with their alerts unless the service refuses the expansion.
async fn list_candidates(
    client: &GraphClient,
    filter: &str,
    memory: &Memory,
    read: &mut GraphRead,
) -> Result<Vec<GraphIncident>, AzureError> {
    let expand = !memory.no_expand && !read.expand_refused;
    read.requests += 1;
    match client.list_incidents_with(Some(filter), expand).await {
        Err(e) if expand && expansion_refused(&e) => {
            tracing::warn!(error = %e, "the service refuses to list incidents with $expand=alerts: listing them without, and reading the alerts of each candidate by incident from now on");
            read.expand_refused = true;
            read.requests += 1;
            Ok(client.list_incidents_with(Some(filter), false).await?.value)
        }
        r => Ok(r?.value),
    }
}

/// Whether a list's failure is the service refusing `$expand` (a 5xx that outlived the
/// retries, or a 400 naming the option).
fn expansion_refused(e: &AzureError) -> bool {
    match e {
        AzureError::Http {
            status, message, ..
        } => *status >= 500 || (*status == 400 && message.contains("expand")),
        _ => false,
    }
}

/// Reads what [`Found`] says is missing, keeps the incidents that hold a DfC alert, and
/// builds the snapshot; an incident that cannot be read is held (and read again by name).
async fn snapshot_of(
    client: &GraphClient,
    found: BTreeMap<String, Found>,
    read: &mut GraphRead,
    now: DateTime<Utc>,
) {
    let mut alerts = AlertMap::default();
    let mut with_alerts: Vec<(GraphIncident, Vec<GraphAlert>)> = Vec::new();
    let unreadable = |read: &mut GraphRead, id: &str, reason: String| {
        read.snapshot.unreadable_incidents.push(HeldInput {
            incident: id.to_owned(),
            incident_number: id.parse().ok(),
            reason,
        });
    };
    for (id, f) in found {
        let (incident, list) = match f {
            Found::Complete(i, list) => (i, list),
            Found::NeedsAlerts(i) => {
                read.requests += 1;
                match client.incident_alerts(&i.id).await {
                    Ok(list) => (i, list),
                    Err(e) => {
                        unreadable(read, &id, format!("its alerts could not be read: {e}"));
                        continue;
                    }
                }
            }
            Found::NeedsIncident => {
                read.requests += 1;
                let expand = !read.expand_refused;
                match client.get_incident_with(&id, expand).await {
                    Ok(a) => {
                        let mut i = a.value;
                        match i.alerts.take() {
                            Some(list) if expand => (i, list),
                            _ => {
                                read.requests += 1;
                                match client.incident_alerts(&i.id).await {
                                    Ok(list) => (i, list),
                                    Err(e) => {
                                        unreadable(
                                            read,
                                            &id,
                                            format!("its alerts could not be read: {e}"),
                                        );
                                        continue;
                                    }
                                }
                            }
                        }
                    }
                    Err(AzureError::Http { status: 404, .. }) => continue,
                    Err(e) => {
                        unreadable(read, &id, format!("the incident could not be read: {e}"));
                        continue;
                    }
                }
            }
        };
        if !list.iter().any(is_dfc) {
            continue;
        }
        for a in &list {
            alerts.insert(alert_key(&a.id).into(), alert_state(a, now));
        }
        read.dfc_incidents.insert(incident.id.clone());
        if list.iter().all(is_dfc) {
            let mut kept = incident.clone();
            kept.comments
                .retain(|c| !Mark::find_all(&c.comment).is_empty());
            kept.alerts = Some(list.clone());
            read.pure.insert(kept.id.clone(), kept);
        } else {
            read.mixed.insert(incident.id.clone());
        }
        with_alerts.push((incident, list));
    }
    for (i, list) in &with_alerts {
        match incident_state(i, list, &alerts) {
            Ok(s) => read.snapshot.incidents.push(s),
            Err(reason) => unreadable(read, &i.id, reason),
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

/// A whole read: every incident created within `max_age` that holds a DfC alert, with a
/// memory of nothing (see [`read_whole_with`]).
pub async fn read_whole(client: &GraphClient, max_age: TimeDelta) -> Result<GraphRead, AzureError> {
    read_whole_with(client, max_age, &Memory::default()).await
}

/// A whole read, by the page: the DfC alerts updated since a day before the window
/// (alerts_v2 by `serviceSource`, pages of [`ALERTS_PAGE_SIZE`](crate::azure::graph::ALERTS_PAGE_SIZE)),
/// and the incidents created within the window with their alerts (`$expand=alerts`, pages
/// of 50). An incident's alerts are read by incident only where the pages disagree with its
/// expansion, or where the service refuses the expansion (then for the incidents the DfC
/// pages name).
pub async fn read_whole_with(
    client: &GraphClient,
    max_age: TimeDelta,
    memory: &Memory,
) -> Result<GraphRead, AzureError> {
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
    let paged = by_incident(
        client
            .dfc_alerts_updated_since(
                since
                    .checked_sub_signed(TimeDelta::days(1))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
            )
            .await?
            .value,
    );
    let filter = format!("createdDateTime ge {}", odata_time(since));
    let listed = list_candidates(client, &filter, memory, &mut read).await?;
    let mut found = BTreeMap::new();
    for mut i in listed {
        let id = i.id.clone();
        let named = paged.get(&id);
        let f = match merged(&mut i, named) {
            Some(list) => Found::Complete(i, list),
            None if named.is_some() => Found::NeedsAlerts(i),
            // Listed without alerts and named by no DfC alert: holds none.
            None => continue,
        };
        found.insert(id, f);
    }
    snapshot_of(client, found, &mut read, now).await;
    Ok(read)
}

/// A change read: what changed since the selection's watermark (see [`read_changed_with`]),
/// with a memory of the incidents known to hold a DfC alert (`known`; `None`: every changed
/// incident is a candidate, as a stateless `--changed-within` read knows none).
pub async fn read_changed(
    client: &GraphClient,
    selection: &Selection,
    known: Option<&BTreeSet<String>>,
) -> Result<GraphRead, AzureError> {
    let memory = Memory {
        dfc_incidents: known.cloned().unwrap_or_default(),
        ..Memory::default()
    };
    read_changed_with(client, selection, known.map(|_| &memory)).await
}

/// A change read, by the page: the DfC alerts updated since the watermark, the incidents
/// updated since it (with their alerts), and the incidents named to read again. An incident
/// of a changed DfC alert that is not among the updated ones is answered from the memory
/// when all its alerts are DfC's (the pages hold every change of them), and read (one GET,
/// with its alerts) otherwise. `memory` is `None` for a stateless read.
pub async fn read_changed_with(
    client: &GraphClient,
    selection: &Selection,
    memory: Option<&Memory>,
) -> Result<GraphRead, AzureError> {
    let Selection::Changed { since, also } = selection else {
        return Err(AzureError::Config(
            "a change read needs a Changed selection".into(),
        ));
    };
    let empty = Memory::default();
    let mem = memory.unwrap_or(&empty);
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
    let paged = by_incident(changed_alerts.value);
    let filter = format!("lastUpdateDateTime ge {}", odata_time(since));
    let updated = list_candidates(client, &filter, mem, &mut read).await?;
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    for mut i in updated {
        let id = i.id.clone();
        let named = paged.get(&id);
        let f = match merged(&mut i, named) {
            Some(list) => Found::Complete(i, list),
            None if named.is_some() => Found::NeedsAlerts(i),
            // Listed without its alerts: a candidate if known to hold a DfC alert (every
            // incident, for a stateless read).
            None if memory.is_none_or(|m| m.dfc_incidents.contains(&id)) => Found::NeedsAlerts(i),
            None => continue,
        };
        found.insert(id, f);
    }
    for (id, alerts) in &paged {
        if found.contains_key(id) {
            continue;
        }
        let f = match mem.pure.get(id) {
            Some(kept) => {
                let mut i = kept.clone();
                match merged(&mut i, Some(alerts)) {
                    Some(list) => Found::Complete(i, list),
                    None => Found::NeedsIncident,
                }
            }
            None => Found::NeedsIncident,
        };
        found.insert(id.clone(), f);
    }
    for id in also {
        found.entry(id.clone()).or_insert(Found::NeedsIncident);
    }
    let now = read.server_now.unwrap_or_else(Utc::now);
    snapshot_of(client, found, &mut read, now).await;
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

/// Adds what a read learnt to the memory.
fn remember(m: &mut Memory, whole: bool, read: &mut GraphRead) {
    m.no_expand |= read.expand_refused;
    if whole {
        m.dfc_incidents = std::mem::take(&mut read.dfc_incidents);
        m.pure = std::mem::take(&mut read.pure);
    } else {
        m.dfc_incidents.extend(read.dfc_incidents.iter().cloned());
        for id in &read.mixed {
            m.pure.remove(id);
        }
        m.pure.extend(std::mem::take(&mut read.pure));
    }
}

#[async_trait::async_trait]
impl PieceReader for TenantRead<'_> {
    async fn next(&mut self) -> Option<Piece> {
        let read = self.read.take()?;
        // One read at a time uses the memory (held across the read's requests).
        let mut memory = self.backend.memory.lock().await;
        let result = match (&self.conn.graph, &read) {
            (None, _) => Err(AzureError::Config(
                "this cloud has no Microsoft Graph endpoint".into(),
            )),
            (Some(g), Read::Whole) => read_whole_with(g, self.policy.max_age, &memory).await,
            (Some(g), Read::Changed(selection)) => {
                // A stateless read (`--changed-within`) knows no incident yet: every changed
                // one is a candidate.
                let stateless = matches!(
                    selection,
                    Selection::Changed {
                        since: Since::Within(_),
                        ..
                    }
                );
                read_changed_with(g, selection, (!stateless).then_some(&*memory)).await
            }
        };
        let result = match result {
            Ok(mut r) => {
                remember(&mut memory, self.outcome.whole, &mut r);
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
            etags: crate::backend::EtagHint::Unknown,
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
    fn marks_are_never_hidden_whatever_the_times() {
        let close = mark(ActionKind::Close);
        // A close mark on an incident that is not resolved: dfcsync writes the status first,
        // so someone reopened it since, however close the times (the same instant, a tick
        // either way): the mark stays, and guard 1 leaves the incident.
        for updated in [
            "2026-12-06T10:00:00Z",
            "2026-12-06T10:00:00.001Z",
            "2026-12-06T09:59:59.999Z",
            "2026-12-06T11:00:00Z",
        ] {
            for status in ["active", "inProgress"] {
                let s = incident(status, updated, &[("2026-12-06T10:00:00Z", close)]);
                assert_eq!(s.marks.len(), 1, "{status} at {updated}");
                assert_eq!(s.status_since, parse_time(updated).unwrap());
            }
        }
    }

    #[test]
    fn comments_in_both_documented_shapes_and_without_a_time() {
        let close = mark(ActionKind::Close);
        let doc = serde_json::json!({
            "id": "10001",
            "status": "Resolved",
            "classification": "TruePositive",
            "determination": "Other",
            "createdDateTime": "2026-12-06T08:00:00Z",
            "lastUpdateDateTime": "2026-12-06T10:00:01Z",
            "comments": [
                {"comment": format!("closed {close}"), "createdBy": "dfcsync", "createdTime": "2026-12-06T10:00:00.9Z"},
                {"comment": "an analyst's note", "createdByDisplayName": "analyst", "createdDateTime": "2026-12-06T09:00:00Z"},
                {"comment": format!("undated {}", mark(ActionKind::Notice)), "createdBy": "dfcsync"},
                {"comment": "unknown fields are ignored", "createdAt": "yesterday", "extra": {"a": 1}}
            ],
            "someFutureProperty": [1, 2, 3]
        });
        let i: GraphIncident = serde_json::from_value(doc).unwrap();
        assert_eq!(i.status, "resolved", "PascalCase read as the enum's member");
        assert_eq!(i.classification.as_deref(), Some("truePositive"));
        assert_eq!(i.determination.as_deref(), Some("other"));
        assert_eq!(
            i.comments[0].created_by_display_name.as_deref(),
            Some("dfcsync")
        );
        let s = incident_state(&i, &[], &AlertMap::default()).unwrap();
        assert_eq!(s.status, IncidentStatus::Closed);
        assert!(
            crate::decide::status_set_by_tool(&s),
            "the createdTime comment is dfcsync's close: {:?}",
            s.marks
        );
        assert!(
            s.marks
                .iter()
                .any(|m| m.mark.action == ActionKind::Notice
                    && m.source == MarkSource::UndatedComment),
            "a comment without a readable time keeps its marks: {:?}",
            s.marks
        );
        let unknown: GraphIncident =
            serde_json::from_value(serde_json::json!({"id": "1", "status": "Archived"})).unwrap();
        assert_eq!(
            incident_status(&unknown),
            IncidentStatus::Other("Archived".into()),
            "an unknown value is kept as sent, and held"
        );
    }
}
