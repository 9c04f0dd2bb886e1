//! The Sentinel backend's source: the Log Analytics reads of one group of workspaces (up to
//! [`MAX_WORKSPACES_PER_QUERY`], one query reading them all through the body's
//! `workspaces`), piece by piece.
//!
//! A change read is one query. A whole read first counts the rows of the window
//! ([`count_query`]) to choose how many partitions to read ([`partition`]),
//! then reads them one after the other, so a cycle holds one partition's rows at a time and
//! its memory does not grow with the workspace. An answer refused for its size or row count
//! (a `PartialError`) is never used: the partition is split in two and read again; a change
//! read refused so becomes a whole read. Any other failure fails that piece only, and the
//! read goes on with the next.
//!
//! Each piece answered whole is handed over as one snapshot per workspace (split by the rows'
//! `TenantId`; a query of one workspace leaves the column out, and its rows are under the
//! empty id); the loop decides and acts on it before asking for the next.
//!
//! A whole read is made in two phases by default ([`WholeRead::TwoPhase`]): the candidate
//! query ([`candidate_query`]) names the incidents the engine could act on, hold or repair,
//! and only those are read, by name, [`NAMES_PER_QUERY`] a query; on a settled workspace
//! that is a small list and little else. `--read full` reads every in-scope incident instead
//! (partitioned as above), to compare. A candidate answer refused for its size is split by
//! `IncidentNumber` as partitions are; a by-name read refused so is split in two halves.
//!
//! The workspaces are found in ARM first ([`Source::resolve`]): the query API wants their
//! workspace id (`customerId`).

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};

use super::SentinelBackend;
use crate::azure::AzureError;
use crate::azure::log_analytics::LogAnalyticsClient;
use crate::azure::sentinel::Workspace;
use crate::backend::{
    Candidates, EtagHint, Piece as TargetPiece, PieceFailure, PieceReader, ReadOutcome, ReadStats,
    Resolution, Source,
};
use crate::connect::Connection;
use crate::model::Snapshot;
use crate::observe::build::{WorkspaceSnapshots, build_snapshots_by_workspace};
use crate::observe::change_feed::{Read, WholeRead};
use crate::observe::partition::{self, ReadSize};
use crate::observe::query::{
    CANDIDATE_TABLE, CLOCK_TABLE, NAMES_PER_QUERY, Partition, SIZE_TABLE, Selection,
    WORKSPACE_COLUMN, candidate_query, count_query, read_query,
};
use crate::observe::records::parse_time;
use crate::observe::rows::read_rows_in;
use crate::policy::Policy;

/// The query API reads at most this many workspaces in one query.
pub const MAX_WORKSPACES_PER_QUERY: usize = 100;

/// What one piece of a read is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceKind {
    /// A partition of a whole read ([`Partition::WHOLE`] when it is not split).
    Partition(Partition),
    /// A change read.
    Changed,
    /// Phase one of a two-phase whole read (a partition of the candidate query).
    Candidates(Partition),
    /// Phase two: by-name read `batch` (from 1) of `of`; `0 of 0` when there was no candidate.
    Named { batch: usize, of: usize },
}

impl std::fmt::Display for PieceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PieceKind::Partition(p) if *p == Partition::WHOLE => f.write_str("whole read"),
            PieceKind::Partition(p) => write!(f, "partition {p}"),
            PieceKind::Changed => f.write_str("change read"),
            PieceKind::Candidates(p) if *p == Partition::WHOLE => f.write_str("candidate query"),
            PieceKind::Candidates(p) => write!(f, "candidate query, partition {p}"),
            PieceKind::Named { of: 0, .. } => f.write_str("two-phase read, no candidate"),
            PieceKind::Named { batch, of } => write!(f, "read of the candidates, {batch}/{of}"),
        }
    }
}

/// One piece of a read: the snapshots of the group's workspaces, or why it failed.
#[derive(Debug)]
pub struct Piece {
    pub kind: PieceKind,
    pub result: Result<WorkspaceSnapshots, AzureError>,
}

/// Reads one group of workspaces, piece by piece ([`next`](Self::next)).
pub struct GroupReader<'a> {
    client: &'a LogAnalyticsClient,
    /// The workspace ids (`customerId`) of the group; the first is the query's target.
    workspaces: Vec<String>,
    policy: &'a Policy,
    state: State,
    stats: ReadStats,
    /// Whether every piece so far was answered whole.
    complete: bool,
    /// The earliest service clock among the pieces answered.
    earliest_clock: Option<DateTime<Utc>>,
    /// Whether the read became (or was) whole.
    whole: bool,
    /// How a whole read is made.
    whole_read: WholeRead,
    /// Phase one's findings, by workspace id (`""`: the rows of a one-workspace query).
    candidates: BTreeMap<String, Candidates>,
    /// The by-name batches of phase two (known once phase one is over).
    batches: usize,
}

enum State {
    /// A change read, not sent yet.
    Changed(Selection),
    /// A whole read: not counted yet.
    Count,
    /// A whole read: the partitions left.
    Partitions(VecDeque<Partition>),
    /// Phase one of a two-phase whole read: the partitions of the candidate query left.
    Candidates(VecDeque<Partition>),
    /// Phase two: the batches of candidates left to read by name.
    Named(VecDeque<Vec<String>>),
    Done,
}

impl<'a> GroupReader<'a> {
    /// A reader of `read` over `workspaces` (at least one, at most
    /// [`MAX_WORKSPACES_PER_QUERY`]), whole reads made as `whole_read` says.
    pub fn new(
        client: &'a LogAnalyticsClient,
        workspaces: Vec<String>,
        policy: &'a Policy,
        read: &Read,
        whole_read: WholeRead,
    ) -> Self {
        let (state, whole) = match read {
            Read::Whole => (State::Count, true),
            Read::Changed(selection) => (State::Changed(selection.clone()), false),
        };
        Self {
            client,
            workspaces,
            policy,
            state,
            stats: ReadStats::default(),
            complete: true,
            earliest_clock: None,
            whole,
            whole_read,
            candidates: BTreeMap::new(),
            batches: 0,
        }
    }

    /// What phase one of a two-phase read found, by workspace id (empty before, and for
    /// other reads).
    pub fn candidates(&self) -> &BTreeMap<String, Candidates> {
        &self.candidates
    }

    /// The next piece, or `None` when the read is over.
    pub async fn next(&mut self) -> Option<Piece> {
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return None,
                State::Changed(selection) => {
                    match self
                        .query(&read_query(
                            self.policy,
                            &selection,
                            self.workspaces.len() > 1,
                        ))
                        .await
                    {
                        Err(e) if e.is_answer_too_large() => {
                            tracing::warn!(error = %e, "the change read is too large for one answer: reading everything, in partitions");
                            self.stats.refused += 1;
                            self.whole = true;
                            self.state = State::Count;
                        }
                        result => return Some(self.piece(PieceKind::Changed, result)),
                    }
                }
                State::Count if self.whole_read == WholeRead::TwoPhase => {
                    self.state = State::Candidates(VecDeque::from([Partition::WHOLE]));
                }
                State::Candidates(mut queue) => {
                    let Some(p) = queue.pop_front() else {
                        // Phase one is over: the candidates, by name, in batches.
                        let mut names: Vec<String> = self
                            .candidates
                            .values()
                            .flat_map(|c| c.names.iter().cloned())
                            .collect();
                        names.sort_unstable();
                        names.dedup();
                        self.stats.candidates += names.len() as u64;
                        let batches: VecDeque<Vec<String>> = names
                            .chunks(NAMES_PER_QUERY)
                            .map(<[String]>::to_vec)
                            .collect();
                        self.batches = batches.len();
                        if batches.is_empty() && self.complete {
                            // Nothing to decide: one empty piece, so that each workspace is
                            // reported as read, at the candidate query's clock.
                            self.stats.pieces += 1;
                            return Some(Piece {
                                kind: PieceKind::Named { batch: 0, of: 0 },
                                result: Ok(WorkspaceSnapshots {
                                    by_workspace: BTreeMap::new(),
                                    server_now: self.earliest_clock,
                                    rows: 0,
                                }),
                            });
                        }
                        self.state = State::Named(batches);
                        continue;
                    };
                    let text = candidate_query(self.policy, p, self.workspaces.len() > 1);
                    match self.query(&text).await {
                        Err(e) if e.is_answer_too_large() => {
                            self.stats.refused += 1;
                            match partition::split(p) {
                                Some([a, b]) => {
                                    tracing::info!(partition = %p, "candidate answer too large: splitting it in two");
                                    queue.push_front(b);
                                    queue.push_front(a);
                                    self.state = State::Candidates(queue);
                                }
                                None => {
                                    self.state = State::Candidates(queue);
                                    self.complete = false;
                                    return Some(Piece {
                                        kind: PieceKind::Candidates(p),
                                        result: Err(e),
                                    });
                                }
                            }
                        }
                        Err(e) => {
                            self.state = State::Candidates(queue);
                            self.complete = false;
                            return Some(Piece {
                                kind: PieceKind::Candidates(p),
                                result: Err(e),
                            });
                        }
                        Ok(body) => {
                            self.state = State::Candidates(queue);
                            if let Err(e) = self.take_candidates(&body) {
                                self.complete = false;
                                return Some(Piece {
                                    kind: PieceKind::Candidates(p),
                                    result: Err(e),
                                });
                            }
                        }
                    }
                }
                State::Named(mut queue) => {
                    let batch = queue.pop_front()?;
                    let n = self.batches - queue.len();
                    let result = self
                        .query(&read_query(
                            self.policy,
                            &Selection::Named(batch.clone()),
                            self.workspaces.len() > 1,
                        ))
                        .await;
                    let kind = PieceKind::Named {
                        batch: n,
                        of: self.batches,
                    };
                    match result {
                        Err(e) if e.is_answer_too_large() && batch.len() > 1 => {
                            self.stats.refused += 1;
                            tracing::info!(
                                incidents = batch.len(),
                                "by-name answer too large: reading the batch in two halves"
                            );
                            let mut batch = batch;
                            let second = batch.split_off(batch.len() / 2);
                            queue.push_front(second);
                            queue.push_front(batch);
                            self.batches += 1;
                            self.state = State::Named(queue);
                        }
                        result => {
                            self.state = State::Named(queue);
                            return Some(self.piece(kind, result));
                        }
                    }
                }
                State::Count => match self.count().await {
                    Ok(size) => {
                        let modulus = partition::modulus_for(size);
                        tracing::debug!(?size, modulus, "sized the whole read");
                        self.stats.partitions = modulus;
                        self.state = State::Partitions(partition::partitions(modulus).collect());
                    }
                    Err(e) => {
                        return Some(self.piece(PieceKind::Partition(Partition::WHOLE), Err(e)));
                    }
                },
                State::Partitions(mut queue) => {
                    let p = queue.pop_front()?;
                    let result = self
                        .query(&read_query(
                            self.policy,
                            &Selection::Partition(p),
                            self.workspaces.len() > 1,
                        ))
                        .await;
                    match result {
                        Err(e) if e.is_answer_too_large() => {
                            self.stats.refused += 1;
                            match partition::split(p) {
                                Some([a, b]) => {
                                    tracing::info!(partition = %p, "answer too large: splitting the partition in two");
                                    self.stats.partitions = self.stats.partitions.max(a.modulus);
                                    queue.push_front(b);
                                    queue.push_front(a);
                                    self.state = State::Partitions(queue);
                                }
                                None => {
                                    self.state = State::Partitions(queue);
                                    return Some(self.piece(PieceKind::Partition(p), Err(e)));
                                }
                            }
                        }
                        result => {
                            self.state = State::Partitions(queue);
                            return Some(self.piece(PieceKind::Partition(p), result));
                        }
                    }
                }
            }
        }
    }

    /// Whether every piece was answered whole (the feed may then move its watermark).
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// Whether the read was a whole read (or became one).
    pub fn was_whole(&self) -> bool {
        self.whole
    }

    /// The service's clock of the earliest piece: everything ingested before it was seen,
    /// when the read is complete.
    pub fn seen_until(&self) -> Option<DateTime<Utc>> {
        self.earliest_clock
    }

    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    fn piece(&mut self, kind: PieceKind, answer: Result<bytes::Bytes, AzureError>) -> Piece {
        let result = answer.and_then(|body| {
            build_snapshots_by_workspace(&body).map_err(|e| AzureError::Decode {
                what: format!("the {kind} of the Log Analytics query"),
                message: e.to_string(),
            })
        });
        match &result {
            Ok(s) => {
                self.stats.pieces += 1;
                self.stats.rows += s.rows as u64;
                match s.server_now {
                    Some(now) => {
                        self.earliest_clock = Some(self.earliest_clock.map_or(now, |e| e.min(now)));
                    }
                    // No clock row: the answer cannot place a watermark.
                    None => self.complete = false,
                }
            }
            Err(_) => self.complete = false,
        }
        Piece { kind, result }
    }

    async fn query(&mut self, text: &str) -> Result<bytes::Bytes, AzureError> {
        self.stats.queries += 1;
        let (first, more) = self
            .workspaces
            .split_first()
            .ok_or_else(|| AzureError::Config("a read of no workspace".into()))?;
        let body = self
            .client
            .query_workspaces(first, more, text, None)
            .await?;
        self.stats.bytes += body.len() as u64;
        Ok(body)
    }

    /// Takes in an answer of the candidate query: the candidates and the size of each
    /// workspace, and the clock.
    fn take_candidates(&mut self, body: &[u8]) -> Result<(), AzureError> {
        let mut clock = None;
        let mut problem = None;
        let found = &mut self.candidates;
        read_rows_in(body, &mut |r| {
            let text = |c: &str| r.get(c).and_then(serde_json::Value::as_str);
            let workspace = text(WORKSPACE_COLUMN).unwrap_or_default().to_owned();
            match text("Table") {
                Some(CANDIDATE_TABLE) => {
                    let (Some(name), Some(created)) = (
                        text("IncidentName").filter(|n| !n.is_empty()),
                        text("CreatedTime").and_then(parse_time),
                    ) else {
                        problem = Some("a candidate row without IncidentName or CreatedTime");
                        return;
                    };
                    let c = found.entry(workspace).or_default();
                    c.names.insert(name.to_owned());
                    c.oldest_created = Some(c.oldest_created.map_or(created, |o| o.min(created)));
                }
                Some(SIZE_TABLE) => {
                    let n = r
                        .get("Incidents")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0);
                    found.entry(workspace).or_default().incidents += n;
                }
                Some(CLOCK_TABLE) => clock = text("TimeGenerated").and_then(parse_time),
                _ => problem = Some("a row of no known Table"),
            }
        })
        .map_err(|e| AzureError::decode("the answer of the candidate query", e))?;
        if let Some(why) = problem {
            return Err(AzureError::decode("the answer of the candidate query", why));
        }
        match clock {
            Some(now) => {
                self.earliest_clock = Some(self.earliest_clock.map_or(now, |e| e.min(now)));
            }
            None => self.complete = false,
        }
        Ok(())
    }

    /// The counting query: the rows a whole read of the group answers at most.
    async fn count(&mut self) -> Result<ReadSize, AzureError> {
        let body = self.query(&count_query(self.policy)).await?;
        let mut size = ReadSize::default();
        let mut bad = None;
        read_rows_in(&body, &mut |r| {
            let cell = |c: &str| r.get(c).and_then(serde_json::Value::as_u64);
            size.incident_rows += cell("IncidentRows").unwrap_or(0);
            size.alert_rows += cell("AlertRows").unwrap_or(0);
            if r.get("IncidentRows").is_none() && r.get("AlertRows").is_none() {
                bad = Some("no IncidentRows or AlertRows column");
            }
        })
        .map_err(|e| AzureError::decode("the answer of the counting query", e))?;
        if let Some(why) = bad {
            return Err(AzureError::decode("the answer of the counting query", why));
        }
        Ok(size)
    }
}

#[async_trait::async_trait]
impl Source for SentinelBackend {
    fn targets(&self) -> Vec<String> {
        self.configured.iter().map(|c| c.label.clone()).collect()
    }

    fn group_limit(&self) -> usize {
        MAX_WORKSPACES_PER_QUERY
    }

    fn set_whole_read(&mut self, whole_read: WholeRead) {
        self.whole_read = whole_read;
    }

    async fn resolve(&mut self, conn: &Connection) -> Vec<Resolution> {
        let mut out = Vec::new();
        for (i, c) in self.configured.iter().enumerate() {
            if self.resolved[i].is_some() {
                continue;
            }
            if let Some(id) = &c.workspace_id {
                self.resolved[i] = Some(Workspace {
                    subscription_id: c.subscription_id.clone(),
                    resource_group: c.resource_group.clone(),
                    name: c.name.clone(),
                    id: format!(
                        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}",
                        c.subscription_id, c.resource_group, c.name
                    ),
                    customer_id: id.clone(),
                    location: None,
                });
                out.push(Resolution::Found(i));
                continue;
            }
            match conn
                .sentinel
                .workspace(&c.subscription_id, &c.resource_group, &c.name)
                .await
            {
                Ok(ws) => {
                    self.resolved[i] = Some(ws);
                    out.push(Resolution::Found(i));
                }
                Err(e) => out.push(Resolution::Failed(
                    i,
                    format!("looking up the workspace: {e}"),
                )),
            }
        }
        out
    }

    fn read<'a>(
        &'a self,
        conn: &'a Connection,
        policy: &'a Policy,
        members: &'a [usize],
        read: &Read,
    ) -> Box<dyn PieceReader + 'a> {
        let ids: Vec<String> = members
            .iter()
            .filter_map(|&i| self.workspace(i))
            .map(|w| w.customer_id.clone())
            .collect();
        Box::new(MembersReader {
            backend: self,
            members,
            reader: GroupReader::new(
                &conn.log_analytics,
                ids.clone(),
                policy,
                read,
                self.whole_read,
            ),
            ids,
            first: true,
            candidates: None,
        })
    }
}

/// A [`GroupReader`] whose pieces are handed over by target.
struct MembersReader<'a> {
    backend: &'a SentinelBackend,
    members: &'a [usize],
    reader: GroupReader<'a>,
    /// The members' workspace ids.
    ids: Vec<String>,
    /// Whether no piece was handed over yet.
    first: bool,
    /// Phase one's candidates by target, once known.
    candidates: Option<std::sync::Arc<std::collections::HashMap<usize, Candidates>>>,
}

impl MembersReader<'_> {
    /// Phase one's candidates, by target.
    fn candidates_by_target(
        &mut self,
    ) -> std::sync::Arc<std::collections::HashMap<usize, Candidates>> {
        if let Some(c) = &self.candidates {
            return c.clone();
        }
        let found = self.reader.candidates();
        let mut by_target = std::collections::HashMap::new();
        for &i in self.members {
            let Some(ws) = self.backend.workspace(i) else {
                continue;
            };
            let c = found
                .get(&ws.customer_id)
                .or_else(|| (self.members.len() == 1).then(|| found.get("")).flatten());
            if let Some(c) = c {
                by_target.insert(i, c.clone());
            }
        }
        let c = std::sync::Arc::new(by_target);
        self.candidates = Some(c.clone());
        c
    }
}

#[async_trait::async_trait]
impl PieceReader for MembersReader<'_> {
    async fn next(&mut self) -> Option<TargetPiece> {
        let piece = self.reader.next().await?;
        let first = std::mem::replace(&mut self.first, false);
        // What the read knows of the rest of each workspace, for the sink's ETag reads.
        let etags = match &piece.kind {
            PieceKind::Partition(p) => EtagHint::Share(p.modulus),
            PieceKind::Changed | PieceKind::Candidates(_) => EtagHint::Unknown,
            PieceKind::Named { .. } => EtagHint::Candidates(self.candidates_by_target()),
        };
        let snapshots = match piece.result {
            Ok(s) => s,
            Err(error) => {
                return Some(TargetPiece {
                    etags,
                    result: Err(PieceFailure {
                        what: format!("querying the workspace ({})", piece.kind),
                        one_target_may_cause: first && one_workspace_may_cause(&error, &self.ids),
                        error,
                    }),
                });
            }
        };
        let mut by_workspace = snapshots.by_workspace;
        let mut out: Vec<(usize, Snapshot)> = Vec::new();
        for &i in self.members {
            let Some(ws) = self.backend.workspace(i) else {
                continue;
            };
            // A workspace with no row in the answer has nothing in scope in this piece; the
            // rows of a query of one workspace do not name it.
            let mut snapshot = by_workspace
                .remove(&ws.customer_id)
                .or_else(|| {
                    (self.members.len() == 1)
                        .then(|| by_workspace.remove(""))
                        .flatten()
                })
                .unwrap_or_default();
            snapshot.server_now = snapshot.server_now.or(snapshots.server_now);
            out.push((i, snapshot));
        }
        let strangers: usize = by_workspace
            .into_iter()
            .filter(|(id, _)| !id.is_empty())
            .map(|(_, s)| s.incidents.len())
            .sum();
        if strangers > 0 {
            tracing::warn!(
                incidents = strangers,
                "rows of a workspace not asked for: ignored"
            );
        }
        Some(TargetPiece {
            etags,
            result: Ok(out),
        })
    }

    fn outcome(&self) -> ReadOutcome {
        ReadOutcome {
            stats: self.reader.stats(),
            whole: self.reader.was_whole(),
            complete: self.reader.complete(),
            seen_until: self.reader.seen_until(),
            read_again: Vec::new(),
        }
    }
}

/// Whether a query's failure may come from one workspace of several (no access to it, or
/// it cannot be found, or an answer that names one of them), rather than from the service or
/// the query text (a query the service refuses as such fails the same way for every
/// workspace: splitting would not help).
fn one_workspace_may_cause(e: &AzureError, ids: &[String]) -> bool {
    let names_one = |text: &str| {
        let t = text.to_ascii_lowercase();
        t.contains("workspace") || ids.iter().any(|id| t.contains(&id.to_ascii_lowercase()))
    };
    match e {
        AzureError::InsufficientAccess { .. } | AzureError::Forbidden { .. } => true,
        AzureError::Http {
            status: 403 | 404, ..
        } => true,
        AzureError::Http {
            status: 400,
            message,
            ..
        } => names_one(message),
        // Not one refused for its size (that one is split into partitions instead).
        AzureError::PartialError {
            message, details, ..
        } => std::iter::once(message)
            .chain(details)
            .any(|m| names_one(m)),
        _ => false,
    }
}
