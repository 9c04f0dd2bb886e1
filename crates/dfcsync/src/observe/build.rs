//! Folding rows into the snapshot.
//!
//! Rows arrive in any order. Each incident keeps its newest record, a short history entry per
//! row (enough to find when the current status began), and the marks seen in any row; each
//! alert keeps its newest record and its status history. The result does not depend on the
//! order of the rows: ties on `TimeGenerated` are broken by the row's content.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;

use chrono::{DateTime, Utc};

use super::records::{AlertRecord, IncidentRecord, alert_identity, incident_identity};
use super::rows::{Row, RowsError, read_rows};
use crate::model::{
    AlertAddress, AlertState, AlertStatus, HeldInput, IncidentState, IncidentStatus, Mark,
    MarkSource, ObservedMark, Snapshot,
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
#[derive(Default)]
pub struct SnapshotBuilder {
    incidents: HashMap<String, IncidentFold>,
    alerts: HashMap<String, AlertFold>,
    unattributed: usize,
}

#[derive(Default)]
struct IncidentFold {
    newest: Option<(RowKey, IncidentRecord)>,
    history: Vec<(RowKey, IncidentStatus, DateTime<Utc>, String)>,
    /// Marks seen in any row: in a classification comment (`None`) or in a comment created
    /// at that time. A set, so rows repeating a comment count it once.
    marks: BTreeSet<(Mark, Option<DateTime<Utc>>)>,
    comments_known: bool,
    number: Option<i64>,
    errors: BTreeSet<String>,
}

#[derive(Default)]
struct AlertFold {
    newest: Option<(RowKey, AlertRecord)>,
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
        let fold = self.incidents.entry(name).or_default();
        // Rows that disagree on the number (only a damaged answer has such rows) give the
        // smallest, whatever their order.
        fold.number = match (fold.number, number) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match IncidentRecord::from_row(row) {
            Ok(rec) => fold.add(rec),
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
        let fold = self.alerts.entry(id).or_default();
        match AlertRecord::from_row(row) {
            Ok(rec) => {
                let key = RowKey(rec.time_generated, rec.time_generated, hash_alert(&rec));
                fold.history.push((key, rec.status.clone()));
                if fold.newest.as_ref().is_none_or(|(k, _)| key > *k) {
                    fold.newest = Some((key, rec));
                }
            }
            Err(e) => {
                fold.errors.insert(e.to_string());
            }
        }
        true
    }

    pub fn finish(self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        if self.unattributed > 0 {
            snapshot.warnings.push(format!(
                "{} rows name no incident or alert and were skipped",
                self.unattributed
            ));
        }
        for (name, fold) in self.incidents {
            match fold.finish(&name) {
                Ok(state) => snapshot.incidents.push(state),
                Err(held) => snapshot.unreadable_incidents.push(held),
            }
        }
        for (id, fold) in self.alerts {
            let state = fold.finish(&id);
            snapshot.alerts.insert(id, state);
        }
        snapshot
    }
}

impl IncidentFold {
    fn add(&mut self, rec: IncidentRecord) {
        let key = RowKey(rec.time_generated, rec.last_modified, hash_incident(&rec));
        self.history.push((
            key,
            rec.status.clone(),
            rec.last_modified,
            rec.modified_by.clone(),
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
        if self.newest.as_ref().is_none_or(|(k, _)| key > *k) {
            self.newest = Some((key, rec));
        }
    }

    fn finish(mut self, name: &str) -> Result<IncidentState, HeldInput> {
        let held = |reason: String| HeldInput {
            incident: name.to_owned(),
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
        let Some((_, rec)) = self.newest.take() else {
            return Err(held("no readable row".into()));
        };
        self.history.sort_by_key(|h| h.0);
        let start = run_start(&self.history, |(_, status, _, _)| *status == rec.status);
        let (_, _, status_since, status_set_by) = self.history[start].clone();

        let current_cc: Vec<Mark> = Mark::find_all(&rec.classification_comment);
        let mut marks: Vec<ObservedMark> = current_cc
            .iter()
            .map(|&mark| ObservedMark {
                mark,
                source: MarkSource::ClassificationComment { current: true },
            })
            .collect();
        for &(mark, created) in &self.marks {
            let source = match created {
                Some(at) => MarkSource::Comment { created: at },
                None if current_cc.contains(&mark) => continue,
                None => MarkSource::ClassificationComment { current: false },
            };
            marks.push(ObservedMark { mark, source });
        }

        Ok(IncidentState {
            name: rec.name,
            number: rec.number,
            title: rec.title,
            status: rec.status,
            status_since,
            status_set_by,
            created: rec.created,
            last_row_at: rec.time_generated,
            last_modified: rec.last_modified,
            modified_by: rec.modified_by,
            classification: rec.classification,
            classification_reason: rec.classification_reason,
            classification_comment: rec.classification_comment,
            owner: rec.owner,
            alert_ids: rec.alert_ids,
            product_names: rec.product_names,
            provider_name: rec.provider_name,
            marks,
            comments_known: self.comments_known,
        })
    }
}

impl AlertFold {
    fn finish(mut self, id: &str) -> Result<AlertState, String> {
        if let Some(first) = self.errors.first() {
            return Err(format!("alert {id}: unreadable row: {first}"));
        }
        let Some((_, rec)) = self.newest.take() else {
            return Err(format!("alert {id}: no readable row"));
        };
        self.history.sort_by_key(|h| h.0);
        let changed_at = self.history[run_start(&self.history, |(_, s)| *s == rec.status)]
            .0
            .0;
        let finished_since = rec.status.is_terminal().then(|| {
            self.history[run_start(&self.history, |(_, s)| s.is_terminal())]
                .0
                .0
        });
        let address = AlertAddress::from_alert_link(&rec.link).map(|mut a| {
            if !rec.vendor_original_id.is_empty() {
                a.name = rec.vendor_original_id.clone();
            }
            a
        });
        Ok(AlertState {
            id: rec.id,
            status: rec.status,
            changed_at,
            last_row_at: rec.time_generated,
            finished_since,
            product_name: rec.product_name,
            display_name: rec.display_name,
            link: rec.link,
            address,
        })
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
