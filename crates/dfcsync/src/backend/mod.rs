//! Backends: where snapshots come from and where plans go.
//!
//! A backend is one module with two halves, the [`Source`] and the [`Sink`] of one type:
//!
//! - the **source** names the targets the cycle reports on (the configured workspaces, or
//!   the tenant), finds them ([`Source::resolve`]), and reads a group of them piece by piece
//!   ([`Source::read`] → [`PieceReader`]): a whole read (partitioned where the service
//!   needs it) or a change read, as the group's change feed chooses. Each piece is one
//!   [`Snapshot`] per target it covers. What the backend cannot tell is decided here, in the
//!   safe direction, and written down in the module.
//! - the **sink** carries out one target's [`Plan`] and says what became of each action
//!   ([`Sink::act`] → [`ActReport`]).
//!
//! The one loop ([`crate::cycle`]) drives any backend the same way; the backend is chosen
//! once, at start-up, by [`from_config`]. To add a third backend: a module here with a type
//! that implements both traits (the Sentinel and Graph modules are the examples), its arm in
//! [`from_config`], and its value in `[sync] backend`. Nothing else in the loop, the engine
//! or the reports changes.

pub mod graph;
pub mod sentinel;

use chrono::{DateTime, Utc};

use crate::act::{ActOptions, ActReport};
pub use crate::act::{Candidates, EtagHint};
use crate::azure::AzureError;
use crate::config::{Backend as BackendName, Config};
use crate::connect::Connection;
use crate::decide::Plan;
use crate::model::Snapshot;
use crate::observe::change_feed::{Read, WholeRead};
use crate::policy::Policy;

/// A target looked up by [`Source::resolve`].
#[derive(Debug)]
pub enum Resolution {
    /// Found: it joins a group and is read from this cycle on.
    Found(usize),
    /// Not found this time (the message says why; the lookup is tried again next cycle).
    Failed(usize, String),
}

/// One piece of a read.
#[derive(Debug)]
pub struct Piece {
    /// What the read knows beyond this piece (the sink's ETag reads use it).
    pub etags: EtagHint,
    /// One snapshot per target of the group (by index), or why the piece failed.
    pub result: Result<Vec<(usize, Snapshot)>, PieceFailure>,
}

/// Why a piece of a read failed.
#[derive(Debug)]
pub struct PieceFailure {
    /// What was being read, for the reports ("querying the workspace (partition 1/4)").
    pub what: String,
    pub error: AzureError,
    /// Whether one target of several may cause it (no access to it, or gone): a group of
    /// several is then split in two and each half read again.
    pub one_target_may_cause: bool,
}

/// How a read went, once its last piece was taken.
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub stats: ReadStats,
    /// Whether it was (or became) a whole read.
    pub whole: bool,
    /// Whether every piece was answered whole: the feed may then move its watermark.
    pub complete: bool,
    /// The service's clock of the earliest piece.
    pub seen_until: Option<DateTime<Utc>>,
    /// Incidents the read could not read, to read again by name next time.
    pub read_again: Vec<String>,
}

/// Counters of one group's reads, for the cycle's report and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Queries sent (counting queries included).
    pub queries: u32,
    /// Bytes of the answers.
    pub bytes: u64,
    /// Rows of the answers.
    pub rows: u64,
    /// Pieces answered whole.
    pub pieces: u32,
    /// Answers refused for their size or row count (then split).
    pub refused: u32,
    /// The partitions of the last whole read (0: no whole read).
    pub partitions: u32,
    /// The candidates of two-phase whole reads (phase one's answer).
    pub candidates: u64,
}

impl ReadStats {
    pub fn add(&mut self, other: &ReadStats) {
        self.queries += other.queries;
        self.bytes += other.bytes;
        self.rows += other.rows;
        self.pieces += other.pieces;
        self.refused += other.refused;
        self.partitions = self.partitions.max(other.partitions);
        self.candidates += other.candidates;
    }
}

/// One read of a group of targets, piece by piece.
#[async_trait::async_trait]
pub trait PieceReader: Send {
    /// The next piece, or `None` when the read is over.
    async fn next(&mut self) -> Option<Piece>;
    /// How the read went (after the last piece).
    fn outcome(&self) -> ReadOutcome;
}

/// The source half of a backend.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// The report label of each target, in configuration order (indexes are the targets').
    fn targets(&self) -> Vec<String>;
    /// The most targets one read may cover.
    fn group_limit(&self) -> usize;
    /// How whole reads are made (`--read`); a backend with one way ignores it.
    fn set_whole_read(&mut self, _whole_read: WholeRead) {}
    /// Looks up the targets not found yet.
    async fn resolve(&mut self, conn: &Connection) -> Vec<Resolution>;
    /// Starts reading `members` (found targets, at most [`Source::group_limit`]).
    fn read<'a>(
        &'a self,
        conn: &'a Connection,
        policy: &'a Policy,
        members: &'a [usize],
        read: &Read,
    ) -> Box<dyn PieceReader + 'a>;
}

/// The sink half of a backend.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Carries out `plan`, made from `snapshot`, for the target `target`. `on_done` is called
    /// after each incident with its number of actions.
    #[allow(clippy::too_many_arguments)]
    async fn act(
        &self,
        conn: &Connection,
        target: usize,
        snapshot: &Snapshot,
        plan: &Plan,
        policy: &Policy,
        opts: &ActOptions,
        on_done: &(dyn Fn(usize) + Sync),
    ) -> ActReport;
}

/// A backend: a source and a sink.
pub trait Backend: Source + Sink {}

impl<T: Source + Sink> Backend for T {}

/// The backend `[sync] backend` names.
pub fn from_config(config: &Config) -> Box<dyn Backend> {
    match config.sync.backend {
        BackendName::Sentinel => Box::new(sentinel::SentinelBackend::new(config)),
        BackendName::Graph => Box::new(graph::GraphBackend::new()),
    }
}
