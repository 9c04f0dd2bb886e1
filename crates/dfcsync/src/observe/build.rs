//! Folding rows into the snapshot.
//!
//! Rows arrive in any order. Each incident keeps its newest row, a short history entry per
//! row (enough to find when the current status began), and the marks seen in any row; each
//! alert keeps its newest row and its status history. The result does not depend on the
//! order of the rows: ties on `TimeGenerated` are broken by the row's content.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use chrono::{DateTime, Utc};

use super::records::{AlertRecord, IncidentRecord, alert_identity, incident_identity};
use super::rows::{Row, RowsError, read_rows, read_rows_in};
use crate::model::snapshot::slot_number;
use crate::model::{
    AlertAddress, AlertMap, AlertRef, AlertState, AlertStatus, HeldInput, IncidentState,
    IncidentStatus, Mark, MarkSource, ObservedMark, Snapshot,
};

/// Why a whole input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{table} rows: {source}")]
    Rows {
        table: &'static str,
        #[source]
        source: RowsError,
    },
    #[error("{table} rows: none of the {rows} rows has a {column} (is this the right file?)")]
    NoIdentity {
        table: &'static str,
        column: &'static str,
        rows: usize,
    },
}

/// Reads incident and alert rows (each a Log Analytics response or an array of row objects)
/// into a snapshot.
pub fn build_snapshot(incidents: impl Read, alerts: impl Read) -> Result<Snapshot, SnapshotError> {
    let mut builder = SnapshotBuilder::default();
    read_table(incidents, "SecurityIncident", "IncidentName", &mut |r| {
        builder.add_incident_row(r)
    })?;
    read_table(alerts, "SecurityAlert", "SystemAlertId", &mut |r| {
        builder.add_alert_row(r)
    })?;
    Ok(builder.finish())
}

/// Reads the answer to [`sync_query`](super::query::sync_query), held in memory as a cycle
/// holds it: one table whose `Table` column says which rows are incidents and which are
/// alerts.
pub fn build_snapshot_combined(response: &[u8]) -> Result<Snapshot, SnapshotError> {
    build_combined(|on_row| read_rows_in(response, on_row))
}

/// [`build_snapshot_combined`] from a reader (a file), streamed: the document is never held.
pub fn build_snapshot_combined_from_reader(response: impl Read) -> Result<Snapshot, SnapshotError> {
    build_combined(|on_row| read_rows(response, on_row))
}

/// The snapshots of each workspace in one answer to a read over several workspaces (the
/// query body's `workspaces`), by the rows' workspace id (`TenantId`), with the service's
/// clock of the answer. A workspace the answer has no row of is not in the map.
#[derive(Debug, Default)]
pub struct WorkspaceSnapshots {
    pub by_workspace: std::collections::BTreeMap<String, Snapshot>,
    pub server_now: Option<DateTime<Utc>>,
    /// Rows the answer held (the clock row included).
    pub rows: usize,
}

/// Reads an answer to [`read_query`](super::query::read_query) over one or many
/// workspaces into one snapshot per workspace.
pub fn build_snapshots_by_workspace(response: &[u8]) -> Result<WorkspaceSnapshots, SnapshotError> {
    use super::query::WORKSPACE_COLUMN;
    let mut builders: std::collections::BTreeMap<String, SnapshotBuilder> = Default::default();
    let (server_now, unknown, rows) =
        fold_combined(|on_row| read_rows_in(response, on_row), &mut |kind, r| {
            let ws = r
                .get(WORKSPACE_COLUMN)
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let builder = match builders.get_mut(ws) {
                Some(b) => b,
                None => builders.entry(ws.to_owned()).or_default(),
            };
            kind.add(builder, r);
        })?;
    let by_workspace = builders
        .into_iter()
        .map(|(ws, b)| {
            let mut snapshot = b.finish();
            snapshot.server_now = server_now;
            if unknown > 0 {
                snapshot.warnings.push(unknown_rows_warning(unknown));
            }
            (ws, snapshot)
        })
        .collect();
    Ok(WorkspaceSnapshots {
        by_workspace,
        server_now,
        rows,
    })
}

fn build_combined(
    read: impl FnOnce(&mut dyn FnMut(&dyn Row)) -> Result<usize, RowsError>,
) -> Result<Snapshot, SnapshotError> {
    let mut builder = SnapshotBuilder::default();
    let (server_now, unknown, _) = fold_combined(read, &mut |kind, r| kind.add(&mut builder, r))?;
    let mut snapshot = builder.finish();
    snapshot.server_now = server_now;
    if unknown > 0 {
        snapshot.warnings.push(unknown_rows_warning(unknown));
    }
    Ok(snapshot)
}

/// Which table a row of a combined answer is from.
#[derive(Clone, Copy)]
enum RowKind {
    Incident,
    Alert,
}

impl RowKind {
    fn add(self, builder: &mut SnapshotBuilder, row: &dyn Row) {
        match self {
            RowKind::Incident => builder.add_incident_row(row),
            RowKind::Alert => builder.add_alert_row(row),
        };
    }
}

/// Reads the rows of a combined answer, handing each incident or alert row to `on_row`.
/// Returns the service's clock, the rows of no known table, and the rows read.
fn fold_combined(
    read: impl FnOnce(&mut dyn FnMut(&dyn Row)) -> Result<usize, RowsError>,
    on_row: &mut dyn FnMut(RowKind, &dyn Row),
) -> Result<(Option<DateTime<Utc>>, usize, usize), SnapshotError> {
    use super::query::{ALERT_TABLE, CLOCK_TABLE, INCIDENT_TABLE};
    let mut unknown = 0usize;
    let mut server_now = None;
    let rows = read(&mut |r| match r.get("Table").and_then(|v| v.as_str()) {
        Some(CLOCK_TABLE) => {
            server_now = r
                .get("TimeGenerated")
                .and_then(|v| v.as_str())
                .and_then(super::records::parse_time);
        }
        Some(INCIDENT_TABLE) => on_row(RowKind::Incident, r),
        Some(ALERT_TABLE) => on_row(RowKind::Alert, r),
        _ => unknown += 1,
    })
    .map_err(|source| SnapshotError::Rows {
        table: "query result",
        source,
    })?;
    Ok((server_now, unknown, rows))
}

fn unknown_rows_warning(unknown: usize) -> String {
    format!(
        "{unknown} rows of the query result have no Table column saying SecurityIncident or SecurityAlert"
    )
}

fn read_table(
    reader: impl Read,
    table: &'static str,
    column: &'static str,
    add: &mut dyn FnMut(&dyn Row) -> bool,
) -> Result<(), SnapshotError> {
    let mut attributed = 0usize;
    let rows = read_rows(reader, &mut |r| {
        if add(r) {
            attributed += 1;
        }
    })
    .map_err(|source| SnapshotError::Rows { table, source })?;
    if rows > 0 && attributed == 0 {
        return Err(SnapshotError::NoIdentity {
            table,
            column,
            rows,
        });
    }
    Ok(())
}

/// Accumulates rows; [`finish`](Self::finish) gives the snapshot.
///
/// Memory is the point of its shape. Each incident and alert is kept once, already in the
/// snapshot's form (its newest row so far; texts that repeat across rows shared through one
/// interner), in the vectors the snapshot will own; what only the fold needs (each row's
/// order and status, marks, errors) sits beside them in flat lists that `finish` sorts,
/// reads and frees. So rows are never held, and the snapshot is never built beside a second
/// copy of itself.
#[derive(Default)]
pub struct SnapshotBuilder {
    incident_slots: HashMap<Arc<str>, u32>,
    /// The newest readable row of each incident, in the snapshot's form (placeholders until
    /// one is read; what the history tells is filled in by `finish`).
    incidents: Vec<IncidentState>,
    incident_progress: Vec<IncidentProgress>,
    /// One entry per readable row.
    incident_rows: Vec<IncidentRow>,
    /// Marks seen in any row: the incident's slot, the mark, and `None` for a classification
    /// comment or the creation time of the comment that holds it.
    incident_marks: Vec<(u32, Mark, Option<DateTime<Utc>>)>,
    incident_errors: HashMap<u32, BTreeSet<String>>,
    alert_slots: HashMap<Arc<str>, u32>,
    /// The newest readable row of each alert (`Err("")` until one is read).
    alerts: Vec<(Arc<str>, Result<AlertState, String>)>,
    alert_newest: Vec<Option<RowKey>>,
    /// One entry per readable row: the alert's slot, the row's order and status.
    alert_rows: Vec<(u32, RowKey, AlertStatus)>,
    alert_errors: HashMap<u32, BTreeSet<String>>,
    interner: Interner,
    unattributed: usize,
}

/// One copy of each text that repeats across rows (titles, people, products, alert ids).
#[derive(Default)]
struct Interner(HashSet<Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = s.into();
        self.0.insert(shared.clone());
        shared
    }

    fn opt(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        s.map(|s| self.get(s))
    }
}

/// What the fold keeps of each readable incident row: enough to find when the current status
/// began and who set it.
struct IncidentRow {
    slot: u32,
    key: RowKey,
    status: IncidentStatus,
    last_modified: DateTime<Utc>,
    modified_by: Arc<str>,
}

/// What the fold knows of an incident besides its newest row.
#[derive(Clone, Copy, Default)]
struct IncidentProgress {
    /// The order of the newest readable row; `None` while no row could be read.
    newest: Option<RowKey>,
    /// Whether a row carried a `Comments` column.
    comments_known: bool,
    /// The smallest `IncidentNumber` any row gave (an unreadable row may still give it):
    /// what a held incident is reported with. Rows that disagree (only a damaged answer has
    /// such rows) give the same number whatever their order (bug 4, docs/reliability.md).
    number_seen: Option<i64>,
}

/// The order of rows: `TimeGenerated`, then (incidents) `LastModifiedTime`, then a hash of
/// the content so that equal times still order the same way whatever the input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RowKey(DateTime<Utc>, DateTime<Utc>, u64);

impl SnapshotBuilder {
    /// Adds a `SecurityIncident` row. Returns false when the row names no incident.
    pub fn add_incident_row(&mut self, row: &dyn Row) -> bool {
        let (name, number) = incident_identity(row);
        let Some(name) = name else {
            self.unattributed += 1;
            return false;
        };
        let slot = match self.incident_slots.get(name.as_str()) {
            Some(&slot) => slot,
            None => {
                let slot = slot_number(self.incidents.len());
                let name: Arc<str> = name.into();
                self.incident_slots.insert(name.clone(), slot);
                self.incidents.push(placeholder_incident(name));
                self.incident_progress.push(IncidentProgress::default());
                slot
            }
        };
        let progress = &mut self.incident_progress[slot as usize];
        progress.number_seen = match (progress.number_seen, number) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match IncidentRecord::from_row(row) {
            Ok(rec) => self.fold_incident(slot, rec),
            Err(e) => {
                self.incident_errors
                    .entry(slot)
                    .or_default()
                    .insert(e.to_string());
            }
        }
        true
    }

    fn fold_incident(&mut self, slot: u32, rec: IncidentRecord) {
        let i = slot as usize;
        let interner = &mut self.interner;
        let key = RowKey(rec.time_generated, rec.last_modified, hash_incident(&rec));
        let modified_by = interner.get(&rec.modified_by);
        self.incident_rows.push(IncidentRow {
            slot,
            key,
            status: rec.status.clone(),
            last_modified: rec.last_modified,
            modified_by: modified_by.clone(),
        });
        let classification_marks = Mark::find_all(&rec.classification_comment);
        for &mark in &classification_marks {
            self.incident_marks.push((slot, mark, None));
        }
        let progress = &mut self.incident_progress[i];
        if let Some(comments) = &rec.comments {
            progress.comments_known = true;
            for c in comments {
                for mark in Mark::find_all(&c.message) {
                    self.incident_marks.push((slot, mark, Some(c.created)));
                }
            }
        }
        if progress.newest.is_some_and(|newest| key <= newest) {
            return;
        }
        progress.newest = Some(key);
        let state = &mut self.incidents[i];
        state.number = rec.number;
        state.title = interner.get(&rec.title);
        state.status = rec.status;
        state.status_since = rec.last_modified;
        state.status_set_by = modified_by;
        state.created = rec.created;
        state.last_row_at = rec.time_generated;
        state.last_modified = rec.last_modified;
        state.classification = interner.opt(rec.classification.as_deref());
        state.classification_reason = interner.opt(rec.classification_reason.as_deref());
        state.owner = interner.opt(rec.owner.as_deref());
        state.alert_ids = rec
            .alert_ids
            .iter()
            .map(|id| AlertRef::new(interner.get(id)))
            .collect();
        state.product_names = rec.product_names.iter().map(|p| interner.get(p)).collect();
        state.alerts_count = rec.alerts_count;
        state.marks = classification_marks
            .into_iter()
            .map(|mark| ObservedMark {
                mark,
                source: MarkSource::ClassificationComment { current: true },
            })
            .collect();
    }

    /// Adds a `SecurityAlert` row. Returns false when the row names no alert.
    pub fn add_alert_row(&mut self, row: &dyn Row) -> bool {
        let Some(id) = alert_identity(row) else {
            self.unattributed += 1;
            return false;
        };
        let slot = match self.alert_slots.get(id.as_str()) {
            Some(&slot) => slot,
            None => {
                let slot = slot_number(self.alerts.len());
                let id = self.interner.get(&id);
                self.alert_slots.insert(id.clone(), slot);
                self.alerts.push((id, Err(String::new())));
                self.alert_newest.push(None);
                slot
            }
        };
        match AlertRecord::from_row(row) {
            Ok(rec) => self.fold_alert(slot, rec),
            Err(e) => {
                self.alert_errors
                    .entry(slot)
                    .or_default()
                    .insert(e.to_string());
            }
        }
        true
    }

    fn fold_alert(&mut self, slot: u32, rec: AlertRecord) {
        let i = slot as usize;
        let interner = &mut self.interner;
        let key = RowKey(rec.time_generated, rec.time_generated, hash_alert(&rec));
        self.alert_rows.push((slot, key, rec.status.clone()));
        if self.alert_newest[i].is_some_and(|newest| key <= newest) {
            return;
        }
        self.alert_newest[i] = Some(key);
        let address = AlertAddress::from_alert_link(&rec.link).map(|a| AlertAddress {
            name: if rec.vendor_original_id.is_empty() {
                a.name
            } else {
                rec.vendor_original_id.clone()
            },
            subscription_id: interner.get(&a.subscription_id),
            resource_group: interner.opt(a.resource_group.as_deref()),
            location: interner.get(&a.location),
        });
        let (id, state) = &mut self.alerts[i];
        *state = Ok(AlertState {
            id: id.clone(),
            status: rec.status,
            changed_at: rec.time_generated,
            last_row_at: rec.time_generated,
            finished_since: None,
            product_name: interner.get(&rec.product_name),
            display_name: interner.get(&rec.display_name),
            link: rec.link,
            address,
        });
    }

    pub fn finish(self) -> Snapshot {
        let Self {
            incident_slots,
            mut incidents,
            incident_progress,
            mut incident_rows,
            mut incident_marks,
            incident_errors,
            alert_slots,
            mut alerts,
            alert_newest,
            mut alert_rows,
            alert_errors,
            interner,
            unattributed,
        } = self;
        drop((incident_slots, interner));
        let mut snapshot = Snapshot::default();
        if unattributed > 0 {
            snapshot.warnings.push(format!(
                "{unattributed} rows name no incident or alert and were skipped"
            ));
        }

        // Alerts: where the current status (and the current finished run) began.
        alert_rows.sort_unstable_by_key(|&(slot, key, _)| (slot, key));
        for history in alert_rows.chunk_by(|a, b| a.0 == b.0) {
            let slot = history[0].0;
            if let (_, Ok(state)) = &mut alerts[slot as usize] {
                state.changed_at = history[run_start(history, |(_, _, s)| *s == state.status)]
                    .1
                    .0;
                state.finished_since = state
                    .status
                    .is_terminal()
                    .then(|| history[run_start(history, |(_, _, s)| s.is_terminal())].1.0);
            }
        }
        drop(alert_rows);
        for (slot, (id, state)) in alerts.iter_mut().enumerate() {
            if let Some(first) = alert_errors
                .get(&slot_number(slot))
                .and_then(|errors| errors.first())
            {
                *state = Err(format!("alert {id}: unreadable row: {first}"));
            } else if alert_newest[slot].is_none() {
                *state = Err(format!("alert {id}: no readable row"));
            }
        }
        drop((alert_newest, alert_errors));
        snapshot.alerts = AlertMap::from_parts(alert_slots, alerts);

        // Incidents: where the current status began, the marks, the alerts' slots.
        incident_rows.sort_unstable_by_key(|row| (row.slot, row.key));
        for history in incident_rows.chunk_by(|a, b| a.slot == b.slot) {
            let state = &mut incidents[history[0].slot as usize];
            let began = &history[run_start(history, |row| row.status == state.status)];
            state.status_since = began.last_modified;
            state.status_set_by = began.modified_by.clone();
        }
        drop(incident_rows);
        incident_marks.sort_unstable();
        incident_marks.dedup();
        for marks in incident_marks.chunk_by(|a, b| a.0 == b.0) {
            let state = &mut incidents[marks[0].0 as usize];
            for &(_, mark, created) in marks {
                let source = match created {
                    Some(at) => MarkSource::Comment { created: at },
                    None if state.marks.iter().any(|m| m.mark == mark) => continue,
                    None => MarkSource::ClassificationComment { current: false },
                };
                state.marks.push(ObservedMark { mark, source });
            }
            state.marks.shrink_to_fit();
        }
        drop(incident_marks);
        let mut readable = Vec::with_capacity(incidents.len());
        for (slot, state) in incidents.iter_mut().enumerate() {
            let progress = incident_progress[slot];
            state.comments_known = progress.comments_known;
            let held = |reason: String| HeldInput {
                incident: state.name.to_string(),
                incident_number: progress.number_seen,
                reason,
            };
            let problem = if let Some(errors) = incident_errors.get(&slot_number(slot)) {
                let first = errors.first().map_or("", String::as_str);
                Some(match errors.len() - 1 {
                    0 => format!("unreadable row: {first}"),
                    more => format!("unreadable row: {first} (and {more} more)"),
                })
            } else if progress.newest.is_none() {
                Some("no readable row".to_owned())
            } else {
                None
            };
            if let Some(reason) = problem {
                snapshot.unreadable_incidents.push(held(reason));
                readable.push(false);
                continue;
            }
            readable.push(true);
            for alert in &mut state.alert_ids {
                *alert = snapshot.alerts.reference(alert.id());
            }
        }
        let mut keep = readable.into_iter();
        incidents.retain(|_| keep.next().unwrap_or(false));
        incidents.sort_unstable_by(|a, b| (a.number, &a.name).cmp(&(b.number, &b.name)));
        snapshot.incidents = incidents;
        snapshot
    }
}

/// An incident named by a row that could not be read (yet): replaced by its first readable
/// row, or reported as unreadable by `finish`.
fn placeholder_incident(name: Arc<str>) -> IncidentState {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let empty: Arc<str> = Arc::from("");
    IncidentState {
        name,
        number: 0,
        title: empty.clone(),
        status: IncidentStatus::New,
        status_since: epoch,
        status_set_by: empty,
        created: epoch,
        last_row_at: epoch,
        last_modified: epoch,
        classification: None,
        classification_reason: None,
        owner: None,
        alert_ids: Vec::new(),
        product_names: Vec::new(),
        alerts_count: None,
        marks: Vec::new(),
        comments_known: false,
    }
}

/// The index of the oldest row of the newest unbroken run of rows in `history` (sorted,
/// oldest first, not empty) that `in_run` accepts: where the current status began.
fn run_start<T>(history: &[T], in_run: impl Fn(&T) -> bool) -> usize {
    history
        .iter()
        .rposition(|h| !in_run(h))
        .map_or(0, |i| i + 1)
}

/// The whole record, so that rows tied on their times order by everything the state keeps
/// (hashing only some fields let the row order pick, e.g., the title: found by the
/// `la_response` cargo-fuzz target, docs/reliability.md).
fn hash_incident(r: &IncidentRecord) -> u64 {
    let mut h = DefaultHasher::new();
    r.hash(&mut h);
    h.finish()
}

fn hash_alert(r: &AlertRecord) -> u64 {
    let mut h = DefaultHasher::new();
    r.hash(&mut h);
    h.finish()
}
