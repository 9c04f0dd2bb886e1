//! The sync loop: one cycle over every target of a backend (the configured workspaces, or
//! the tenant), for any backend. Resolve the targets, read them group by group and piece by
//! piece, decide each piece, act on it unless it is a dry run, and tell the observers. A
//! target, or a piece of a read, that fails is reported and the others carry on.
//!
//! ```text
//!             resolve          read (pieces)           decide         act
//! Syncer ──► Source ──► groups ──► PieceReader ──► Snapshot ──► Plan ──► Sink ──► ActReport
//!              │           │ ChangeFeed: whole / partitioned / changes  (pure)        │
//!              └───────────┴──────── events ──► observers (logs, metrics) ◄─────────┘
//! ```
//!
//! Targets found join groups of up to the source's limit (a Log Analytics query reads 100
//! workspaces), so that hundreds of workspaces cost a handful of reads a cycle. Which read a
//! group makes is its [`ChangeFeed`]'s choice: a whole read first and every `resync`, and in
//! between only what changed. A group whose read fails in a way one of its targets may cause
//! (no access, gone) is split in two and both halves are read again, so one bad workspace
//! never holds the others. Each piece of a read is decided and acted on before the next is
//! read. Which backend is [`backend::from_config`]'s choice, once; nothing here depends on it.
//!
//! [`Syncer`] keeps that state between the cycles of `dfcsync run`; [`run_cycle`] is one
//! cycle of a fresh state (a whole read), as `dfcsync sync` makes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::act::ReadMemo;
use crate::act::{ActOptions, ActReport};
use crate::backend::{self, Backend, EtagHint, Piece, ReadStats, Resolution};
use crate::config::Config;
use crate::connect::Connection;
use crate::decide::{Plan, decide};
use crate::events::{Event, LogEvents, Observer};
use crate::model::Snapshot;
use crate::observe::change_feed::{ChangeFeed, FeedSettings, Read, WholeRead};
use crate::observe::query::{Selection, Since};
pub use crate::report::{CycleReport, Mode, WorkspaceReport};

/// Which read a cycle makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// The change feed's choice (a whole read first and every `resync`).
    Feed,
    /// Only what changed within this long before the service's clock (`--changed-within`:
    /// stateless, for a job run on a schedule).
    ChangedWithin(chrono::TimeDelta),
}

/// Targets read together, and their feed.
struct Group {
    /// Indexes of the targets.
    members: Vec<usize>,
    feed: ChangeFeed,
}

/// The state of a run's cycles: the backend (with the targets it found), the groups and
/// their feeds, and who watches.
pub struct Syncer {
    read_mode: ReadMode,
    feed: FeedSettings,
    backend: Box<dyn Backend>,
    groups: Vec<Group>,
    /// Whether a group was split since the groups were last whole: split groups merge back
    /// when they are due a whole read.
    split: bool,
    observers: Vec<Arc<dyn Observer>>,
}

impl Syncer {
    /// A syncer over the backend `config` names, logging its events.
    pub fn new(config: &Config, read_mode: ReadMode) -> Self {
        Self::with_backend(config, read_mode, backend::from_config(config))
    }

    /// A syncer over `backend`.
    pub fn with_backend(config: &Config, read_mode: ReadMode, backend: Box<dyn Backend>) -> Self {
        Self {
            read_mode,
            feed: FeedSettings {
                resync: config.sync.resync,
                overlap: config.sync.feed_overlap,
            },
            backend,
            groups: Vec::new(),
            split: false,
            observers: vec![Arc::new(LogEvents)],
        }
    }

    /// Makes whole reads as `whole_read` says (`--read`; two-phase unless told).
    pub fn whole_read(&mut self, whole_read: WholeRead) -> &mut Self {
        self.backend.set_whole_read(whole_read);
        self
    }

    /// Adds an observer of the loop's events.
    pub fn observe(&mut self, observer: Arc<dyn Observer>) -> &mut Self {
        self.observers.push(observer);
        self
    }

    fn tell(&self, event: Event<'_>) {
        for o in &self.observers {
            o.on(&event);
        }
    }

    /// Runs one cycle. `on_progress(done, total)` is called as incidents are updated.
    pub async fn cycle(
        &mut self,
        conn: &Connection,
        config: &Config,
        mode: Mode,
        stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
        on_progress: &(dyn Fn(usize, usize) + Sync),
    ) -> CycleReport {
        let started = Utc::now();
        let clock = Instant::now();
        let before = Counters::of(conn);
        let mut reports: Vec<WorkspaceReport> = self
            .backend
            .targets()
            .into_iter()
            .map(|workspace| WorkspaceReport {
                workspace,
                plan: None,
                act: None,
                error: None,
                warnings: Vec::new(),
                incidents_seen: 0,
            })
            .collect();
        self.resolve(conn, &mut reports).await;
        self.merge_split_groups();
        let mut reads = ReadStats::default();
        let (mut whole_reads, mut change_reads) = (0, 0);
        let mut queue: Vec<Group> = std::mem::take(&mut self.groups);
        queue.reverse();
        let mut done: Vec<Group> = Vec::new();
        let mut stopped = false;
        while let Some(mut group) = queue.pop() {
            // A signal ends the cycle between reads as well as between writes: the groups not
            // read yet keep their feed as it was, for the next run.
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                stopped = true;
                done.push(group);
                done.extend(queue.drain(..).rev());
                break;
            }
            let read = match self.read_mode {
                ReadMode::Feed => group.feed.next_read(Instant::now()),
                ReadMode::ChangedWithin(d) => Read::Changed(Selection::Changed {
                    since: Since::Within(d),
                    also: Vec::new(),
                }),
            };
            let outcome = self
                .sync_group(
                    conn,
                    config,
                    &group.members,
                    &read,
                    mode,
                    stop,
                    on_progress,
                    &mut reports,
                )
                .await;
            reads.add(&outcome.stats);
            stopped |= outcome.stopped;
            if outcome.split {
                // A read that one of several targets makes fail: read each half alone, after
                // every other group (the queue pops from its end): a refusing workspace never
                // holds the others, nor its first-contact wait for a fresh role.
                self.split = true;
                let half = group.members.len() / 2;
                let second = group.members.split_off(half);
                queue.insert(
                    0,
                    Group {
                        members: second,
                        feed: group.feed.clone(),
                    },
                );
                queue.insert(0, group);
                continue;
            }
            if outcome.whole {
                whole_reads += 1;
            } else {
                change_reads += 1;
            }
            if let Some(seen) = outcome.seen_until.filter(|_| outcome.complete) {
                group.feed.read_done(outcome.whole, seen, Instant::now());
            }
            group.feed.retry_later(outcome.read_again);
            done.push(group);
        }
        self.groups = done;
        let after = Counters::of(conn);
        let report = CycleReport {
            started,
            duration: clock.elapsed(),
            mode,
            workspaces: reports,
            requests: after.requests_since(&before),
            retries: after.retries - before.retries,
            throttle_waits: after.throttle_waits - before.throttle_waits,
            throttle_wait: Duration::from_millis(after.throttle_wait_ms - before.throttle_wait_ms),
            reads,
            whole_reads,
            change_reads,
            stopped: stopped || stop.load(std::sync::atomic::Ordering::SeqCst),
        };
        self.tell(Event::CycleDone { report: &report });
        report
    }

    /// Split groups that are due a whole read (the next resync) merge back, up to the
    /// source's limit: a workspace that refused once is tried with the others again.
    fn merge_split_groups(&mut self) {
        if !self.split || self.read_mode != ReadMode::Feed {
            return;
        }
        let now = Instant::now();
        let (due, mut keep): (Vec<Group>, Vec<Group>) = std::mem::take(&mut self.groups)
            .into_iter()
            .partition(|g| g.feed.next_read(now) == Read::Whole);
        if due.len() > 1 {
            let mut members: Vec<usize> = due.into_iter().flat_map(|g| g.members).collect();
            members.sort_unstable();
            for chunk in members.chunks(self.backend.group_limit().max(1)) {
                keep.push(Group {
                    members: chunk.to_vec(),
                    feed: ChangeFeed::new(self.feed),
                });
            }
            let total: usize = keep.iter().map(|g| g.members.len()).sum();
            self.split = keep.len() > total.div_ceil(self.backend.group_limit().max(1));
        } else {
            keep.extend(due);
        }
        self.groups = keep;
    }

    /// Looks up the targets not found yet; those found join new groups (read whole first),
    /// of at most the source's limit.
    async fn resolve(&mut self, conn: &Connection, reports: &mut [WorkspaceReport]) {
        let mut found = Vec::new();
        for r in self.backend.resolve(conn).await {
            match r {
                Resolution::Found(i) => found.push(i),
                Resolution::Failed(i, message) => {
                    self.tell(Event::LookupFailed {
                        target: &reports[i].workspace,
                        message: &message,
                    });
                    set_error(&mut reports[i], message);
                }
            }
        }
        for chunk in found.chunks(self.backend.group_limit().max(1)) {
            self.groups.push(Group {
                members: chunk.to_vec(),
                feed: ChangeFeed::new(self.feed),
            });
        }
    }

    /// Reads one group piece by piece; decides and acts on each piece for each target.
    #[allow(clippy::too_many_arguments)]
    async fn sync_group(
        &self,
        conn: &Connection,
        config: &Config,
        members: &[usize],
        read: &Read,
        mode: Mode,
        stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
        on_progress: &(dyn Fn(usize, usize) + Sync),
        reports: &mut [WorkspaceReport],
    ) -> GroupOutcome {
        let mut reader = self.backend.read(conn, &config.policy, members, read);
        // What the sink keeps over this read (e.g. the one ETag list it may take).
        let memo = Arc::new(ReadMemo::default());
        let mut read_again = Vec::new();
        let mut first = true;
        let mut stopped = false;
        loop {
            // Between two pieces: a signal ends the read (incomplete: the watermark stays).
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                stopped = true;
                break;
            }
            let Some(Piece { etags, result }) = reader.next().await else {
                break;
            };
            let snapshots = match result {
                Ok(s) => s,
                Err(f) if first && members.len() > 1 && f.one_target_may_cause => {
                    self.tell(Event::GroupSplit {
                        targets: members.len(),
                        error: &f.error,
                    });
                    let o = reader.outcome();
                    return GroupOutcome {
                        stats: o.stats,
                        split: true,
                        ..GroupOutcome::default()
                    };
                }
                Err(f) => {
                    let labels: Vec<&str> =
                        members.iter().map(|&i| &*reports[i].workspace).collect();
                    self.tell(Event::ReadFailed {
                        targets: &labels,
                        what: &f.what,
                        error: &f.error,
                    });
                    for &i in members {
                        set_error(&mut reports[i], format!("{}: {}", f.what, f.error));
                    }
                    first = false;
                    continue;
                }
            };
            first = false;
            for (i, snapshot) in snapshots {
                read_again.extend(
                    self.sync_snapshot(
                        conn,
                        config,
                        i,
                        (snapshot, etags.clone(), memo.clone()),
                        mode,
                        stop,
                        on_progress,
                        &mut reports[i],
                    )
                    .await,
                );
            }
        }
        let o = reader.outcome();
        read_again.extend(o.read_again);
        GroupOutcome {
            stats: o.stats,
            whole: o.whole,
            complete: o.complete && !stopped,
            seen_until: o.seen_until,
            read_again,
            split: false,
            stopped,
        }
    }

    /// Decides and acts on one target's snapshot of one piece, adding to its report.
    /// Returns the incidents whose actions failed or were left (to read again).
    #[allow(clippy::too_many_arguments)]
    async fn sync_snapshot(
        &self,
        conn: &Connection,
        config: &Config,
        target: usize,
        (snapshot, etags, memo): (Snapshot, EtagHint, Arc<ReadMemo>),
        mode: Mode,
        stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
        on_progress: &(dyn Fn(usize, usize) + Sync),
        report: &mut WorkspaceReport,
    ) -> Vec<String> {
        // Decide at the service's clock when it says (a skewed local clock must not move the
        // max_age window).
        let now = snapshot.server_now.unwrap_or_else(Utc::now);
        let plan = decide(&snapshot, &config.policy, now);
        report.incidents_seen += snapshot.incidents.len();
        report.warnings.extend(snapshot.warnings.iter().cloned());
        self.tell(Event::Decided {
            target: &report.workspace,
            snapshot: &snapshot,
            plan: &plan,
        });
        let mut act_report = None;
        if mode == Mode::Sync && (!plan.actions.is_empty() || !plan.repairs.is_empty()) {
            let opts = ActOptions {
                concurrency: config.sync.concurrency,
                conflict_retries: config.sync.conflict_retries,
                stop: stop.clone(),
                etags,
                memo,
            };
            let total = plan.actions.len();
            let done = std::sync::atomic::AtomicUsize::new(0);
            let acted = self
                .backend
                .act(
                    conn,
                    target,
                    &snapshot,
                    &plan,
                    &config.policy,
                    &opts,
                    &|n| {
                        let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                        on_progress(d, total);
                    },
                )
                .await;
            self.tell(Event::Acted {
                target: &report.workspace,
                report: &acted,
            });
            act_report = Some(acted);
        }
        let read_again: Vec<String> = act_report
            .iter()
            .flat_map(|a| a.outcomes.iter().chain(&a.repairs))
            .filter(|o| o.result.read_again())
            .map(|o| o.incident.clone())
            .collect();
        merge_plan(&mut report.plan, plan);
        if let Some(a) = act_report {
            let into = report.act.get_or_insert_with(ActReport::default);
            into.outcomes.extend(a.outcomes);
            into.repairs.extend(a.repairs);
            into.etag_reads.add(&a.etag_reads);
            for role in a.missing_roles {
                if !into.missing_roles.contains(&role) {
                    into.missing_roles.push(role);
                }
            }
        }
        read_again
    }
}

/// Runs one cycle of a fresh [`Syncer`]: the targets looked up, each group read whole.
pub async fn run_cycle(
    conn: &Connection,
    config: &Config,
    mode: Mode,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    on_progress: &(dyn Fn(usize, usize) + Sync),
) -> CycleReport {
    Syncer::new(config, ReadMode::Feed)
        .cycle(conn, config, mode, stop, on_progress)
        .await
}

/// The connection's counters at one instant.
struct Counters {
    requests: Vec<(crate::azure::error::Service, u16, u64)>,
    retries: u64,
    throttle_waits: u64,
    throttle_wait_ms: u64,
}

impl Counters {
    fn of(conn: &Connection) -> Counters {
        use std::sync::atomic::Ordering::Relaxed;
        Counters {
            requests: conn.stats.requests(),
            retries: conn.stats.retries.load(Relaxed),
            throttle_waits: conn.stats.throttle_waits.load(Relaxed),
            throttle_wait_ms: conn.stats.throttle_wait_ms.load(Relaxed),
        }
    }

    /// Requests by service and status since `before`.
    fn requests_since(&self, before: &Counters) -> Vec<(String, u16, u64)> {
        self.requests
            .iter()
            .filter_map(|(service, status, n)| {
                let was = before
                    .requests
                    .iter()
                    .find(|(s, st, _)| s == service && st == status)
                    .map_or(0, |b| b.2);
                (*n > was).then(|| (service.name().to_owned(), *status, n - was))
            })
            .collect()
    }
}

/// What one group's read came to.
#[derive(Default)]
struct GroupOutcome {
    stats: ReadStats,
    whole: bool,
    complete: bool,
    seen_until: Option<DateTime<Utc>>,
    /// Incidents to read again by name (their actions failed or were left, or the read
    /// could not read them).
    read_again: Vec<String>,
    /// The read failed before any piece, in a way one target of several may cause.
    split: bool,
    /// A signal ended the read before its last piece.
    stopped: bool,
}

fn set_error(report: &mut WorkspaceReport, error: String) {
    match &mut report.error {
        Some(e) => {
            e.push_str("; ");
            e.push_str(&error);
        }
        None => report.error = Some(error),
    }
}

/// Adds a piece's plan to the workspace's (pieces hold different incidents).
fn merge_plan(into: &mut Option<Plan>, plan: Plan) {
    match into {
        None => *into = Some(plan),
        Some(p) => {
            p.now = p.now.max(plan.now);
            p.actions.extend(plan.actions);
            p.held.extend(plan.held);
            p.repairs.extend(plan.repairs);
            p.actions.sort_by(|a, b| {
                (a.incident_number, &a.incident).cmp(&(b.incident_number, &b.incident))
            });
            p.held.sort_by(|a, b| {
                (a.incident_number, &a.incident).cmp(&(b.incident_number, &b.incident))
            });
        }
    }
}
