//! Folding rows into the snapshot.
//!
//! Rows arrive in any order. Each incident keeps its newest record, a short history entry per
//! row (enough to find when the current status began), and the marks seen in any row; each
//! alert keeps its newest record and its status history. The result does not depend on the
//! order of the rows: ties on `TimeGenerated` are broken by the row's content.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use chrono::{DateTime, Utc};

use super::records::{AlertRecord, IncidentRecord, alert_identity, incident_identity};
use super::rows::{Row, RowsError, read_rows};
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

/// Reads the answer to [`sync_query`](super::query::sync_query): one table whose `Table`
/// column says which rows are incidents and which are alerts.
pub fn build_snapshot_combined(response: impl Read) -> Result<Snapshot, SnapshotError> {
    use super::query::{ALERT_TABLE, CLOCK_TABLE, INCIDENT_TABLE};
    let mut builder = SnapshotBuilder::default();
    let mut unknown = 0usize;
    let mut server_now = None;
    read_rows(
        response,
        &mut |r| match r.get("Table").and_then(|v| v.as_str()) {
            Some(CLOCK_TABLE) => {
                server_now = r
                    .get("TimeGenerated")
                    .and_then(|v| v.as_str())
                    .and_then(super::records::parse_time);
            }
            Some(INCIDENT_TABLE) => {
                builder.add_incident_row(r);
            }
            Some(ALERT_TABLE) => {
                builder.add_alert_row(r);
            }
            _ => unknown += 1,
        },
    )
    .map_err(|source| SnapshotError::Rows {
        table: "query result",
        source,
    })?;
    let mut snapshot = builder.finish();
    snapshot.server_now = server_now;
    if unknown > 0 {
        snapshot.warnings.push(format!(
            "{unknown} rows of the query result have no Table column saying SecurityIncident or SecurityAlert"
        ));
    }
    Ok(snapshot)
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
/// Memory is the point of its shape: each incident and alert is folded in place as its rows
/// arrive (the newest row already in the snapshot's form, texts that repeat across rows
/// shared through one interner), and `finish` moves the folds into the snapshot, so the
/// rows are never held and the snapshot is not built beside a second copy of itself.
#[derive(Default)]
pub struct SnapshotBuilder {
    incident_slots: HashMap<Arc<str>, u32>,
    incidents: Vec<IncidentFold>,
    alert_slots: HashMap<Arc<str>, u32>,
    alerts: Vec<AlertFold>,
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

#[derive(Default)]
struct IncidentFold {
    /// The newest row, already in the snapshot's form (what its history tells is filled in
    /// by `finish`).
    newest: Option<Box<(RowKey, IncidentState)>>,
    /// Per row: its order, status, `LastModifiedTime` and `ModifiedBy`.
    history: Vec<(RowKey, IncidentStatus, DateTime<Utc>, Arc<str>)>,
    /// Marks seen in any row: in a classification comment (`None`) or in a comment created
    /// at that time. A set, so rows repeating a comment count it once.
    marks: BTreeSet<(Mark, Option<DateTime<Utc>>)>,
    comments_known: bool,
    number: Option<i64>,
    name: Arc<str>,
    errors: BTreeSet<String>,
}

struct AlertFold {
    id: Arc<str>,
    /// The newest row, in the snapshot's form (`changed_at` and `finished_since` are filled
    /// in by `finish`).
    newest: Option<(RowKey, AlertState)>,
    history: Vec<(RowKey, AlertStatus)>,
    errors: BTreeSet<String>,
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
            Some(&slot) => slot as usize,
            None => {
                let slot = self.incidents.len();
                let name: Arc<str> = name.into();
                self.incident_slots
                    .insert(name.clone(), u32::try_from(slot).unwrap_or(u32::MAX));
                self.incidents.push(IncidentFold {
                    name,
                    ..IncidentFold::default()
                });
                slot
            }
        };
        let fold = &mut self.incidents[slot];
        if fold.number.is_none() {
            fold.number = number;
        }
        match IncidentRecord::from_row(row) {
            Ok(rec) => fold.add(rec, &mut self.interner),
            Err(e) => {
                fold.errors.insert(e.to_string());
            }
        }
        true
    }

    /// Adds a `SecurityAlert` row. Returns false when the row names no alert.
    pub fn add_alert_row(&mut self, row: &dyn Row) -> bool {
        let Some(id) = alert_identity(row) else {
            self.unattributed += 1;
            return false;
        };
        let slot = match self.alert_slots.get(id.as_str()) {
            Some(&slot) => slot as usize,
            None => {
                let slot = self.alerts.len();
                let id = self.interner.get(&id);
                self.alert_slots
                    .insert(id.clone(), u32::try_from(slot).unwrap_or(u32::MAX));
                self.alerts.push(AlertFold {
                    id,
                    newest: None,
                    history: Vec::new(),
                    errors: BTreeSet::new(),
                });
                slot
            }
        };
        let fold = &mut self.alerts[slot];
        match AlertRecord::from_row(row) {
            Ok(rec) => fold.add(rec, &mut self.interner),
            Err(e) => {
                fold.errors.insert(e.to_string());
            }
        }
        true
    }

    pub fn finish(self) -> Snapshot {
        let Self {
            incident_slots,
            incidents,
            alert_slots,
            alerts,
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
        snapshot.alerts = AlertMap::from_parts(
            alert_slots,
            alerts
                .into_iter()
                .map(|fold| (fold.id.clone(), fold.finish()))
                .collect(),
        );
        snapshot.incidents.reserve_exact(incidents.len());
        for fold in incidents {
            match fold.finish(&snapshot.alerts) {
                Ok(state) => snapshot.incidents.push(state),
                Err(held) => snapshot.unreadable_incidents.push(held),
            }
        }
        snapshot.incidents.shrink_to_fit();
        snapshot
            .incidents
            .sort_unstable_by(|a, b| (a.number, &a.name).cmp(&(b.number, &b.name)));
        snapshot
    }
}

impl IncidentFold {
    fn add(&mut self, rec: IncidentRecord, interner: &mut Interner) {
        let key = RowKey(rec.time_generated, rec.last_modified, hash_incident(&rec));
        let modified_by = interner.get(&rec.modified_by);
        self.history.push((
            key,
            rec.status.clone(),
            rec.last_modified,
            modified_by.clone(),
        ));
        for mark in Mark::find_all(&rec.classification_comment) {
            self.marks.insert((mark, None));
        }
        if let Some(comments) = &rec.comments {
            self.comments_known = true;
            for c in comments {
                for mark in Mark::find_all(&c.message) {
                    self.marks.insert((mark, Some(c.created)));
                }
            }
        }
        if self.newest.as_ref().is_some_and(|newest| key <= newest.0) {
            return;
        }
        let current_cc = Mark::find_all(&rec.classification_comment)
            .into_iter()
            .map(|mark| ObservedMark {
                mark,
                source: MarkSource::ClassificationComment { current: true },
            })
            .collect();
        let state = IncidentState {
            name: self.name.clone(),
            number: rec.number,
            title: interner.get(&rec.title),
            status: rec.status,
            status_since: rec.last_modified,
            status_set_by: modified_by,
            created: rec.created,
            last_row_at: rec.time_generated,
            last_modified: rec.last_modified,
            classification: interner.opt(rec.classification.as_deref()),
            classification_reason: interner.opt(rec.classification_reason.as_deref()),
            owner: interner.opt(rec.owner.as_deref()),
            alert_ids: rec
                .alert_ids
                .iter()
                .map(|id| AlertRef::new(interner.get(id)))
                .collect(),
            product_names: rec.product_names.iter().map(|p| interner.get(p)).collect(),
            marks: current_cc,
            comments_known: false,
        };
        match &mut self.newest {
            Some(newest) => **newest = (key, state),
            None => self.newest = Some(Box::new((key, state))),
        }
    }

    fn finish(mut self, alerts: &AlertMap) -> Result<IncidentState, HeldInput> {
        let held = |reason: String| HeldInput {
            incident: self.name.to_string(),
            incident_number: self.number,
            reason,
        };
        if let Some(first) = self.errors.first() {
            let more = self.errors.len() - 1;
            let reason = if more > 0 {
                format!("unreadable row: {first} (and {more} more)")
            } else {
                format!("unreadable row: {first}")
            };
            return Err(held(reason));
        }
        let Some(newest) = self.newest.take() else {
            return Err(held("no readable row".into()));
        };
        let (_, mut state) = *newest;
        self.history.sort_by_key(|h| h.0);
        let start = run_start(&self.history, |(_, status, _, _)| *status == state.status);
        let (_, _, status_since, status_set_by) = self.history.swap_remove(start);
        state.status_since = status_since;
        state.status_set_by = status_set_by;
        state.comments_known = self.comments_known;
        for &(mark, created) in &self.marks {
            let source = match created {
                Some(at) => MarkSource::Comment { created: at },
                None if state.marks.iter().any(|m| m.mark == mark) => continue,
                None => MarkSource::ClassificationComment { current: false },
            };
            state.marks.push(ObservedMark { mark, source });
        }
        state.marks.shrink_to_fit();
        for alert in &mut state.alert_ids {
            *alert = alerts.reference(alert.id());
        }
        Ok(state)
    }
}

impl AlertFold {
    fn add(&mut self, rec: AlertRecord, interner: &mut Interner) {
        let key = RowKey(rec.time_generated, rec.time_generated, hash_alert(&rec));
        self.history.push((key, rec.status.clone()));
        if self
            .newest
            .as_ref()
            .is_some_and(|(newest, _)| key <= *newest)
        {
            return;
        }
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
        let state = AlertState {
            id: self.id.clone(),
            status: rec.status,
            changed_at: rec.time_generated,
            last_row_at: rec.time_generated,
            finished_since: None,
            product_name: interner.get(&rec.product_name),
            display_name: interner.get(&rec.display_name),
            link: rec.link,
            address,
        };
        self.newest = Some((key, state));
    }

    fn finish(mut self) -> Result<AlertState, String> {
        let id = &self.id;
        if let Some(first) = self.errors.first() {
            return Err(format!("alert {id}: unreadable row: {first}"));
        }
        let Some((_, mut state)) = self.newest.take() else {
            return Err(format!("alert {id}: no readable row"));
        };
        self.history.sort_by_key(|h| h.0);
        state.changed_at = self.history[run_start(&self.history, |(_, s)| *s == state.status)]
            .0
            .0;
        state.finished_since = state.status.is_terminal().then(|| {
            self.history[run_start(&self.history, |(_, s)| s.is_terminal())]
                .0
                .0
        });
        Ok(state)
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

fn hash_incident(r: &IncidentRecord) -> u64 {
    let mut h = DefaultHasher::new();
    r.status.hash(&mut h);
    r.modified_by.hash(&mut h);
    r.classification.hash(&mut h);
    r.classification_comment.hash(&mut h);
    r.owner.hash(&mut h);
    r.alert_ids.hash(&mut h);
    if let Some(cs) = &r.comments {
        for c in cs {
            c.message.hash(&mut h);
            c.created.hash(&mut h);
        }
    }
    h.finish()
}

fn hash_alert(r: &AlertRecord) -> u64 {
    let mut h = DefaultHasher::new();
    r.status.hash(&mut h);
    r.product_name.hash(&mut h);
    r.vendor_original_id.hash(&mut h);
    r.link.hash(&mut h);
    h.finish()
}
