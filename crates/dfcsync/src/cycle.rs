//! Sync cycles over every configured workspace: observe, decide and, unless it is a dry
//! run, act. A workspace, or a piece of a read, that fails is reported and the others carry
//! on.
//!
//! Workspaces are looked up in ARM once (their workspace id does not change) and read in
//! groups of up to 100, one Log Analytics query a group (the query body's `workspaces`), so
//! that hundreds of workspaces cost a handful of queries a cycle. Which read a group makes
//! is its [`ChangeFeed`]'s choice: a whole read first and every `resync`, partitioned when
//! large, and in between only what changed. A group whose query fails for one of its
//! workspaces (no access, gone) is split in two and both halves are read again, so one bad
//! workspace never holds the others. Each piece of a read is decided and acted on before
//! the next is read.
//!
//! [`Syncer`] keeps that state between the cycles of `dfcsync run`; [`run_cycle`] is one
//! cycle of a fresh state (a whole read), as `dfcsync sync` makes it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::act::{ActOptions, ActReport, ActionResult, act};
use crate::azure::AzureError;
use crate::azure::sentinel::Workspace;
use crate::config::Config;
use crate::connect::Connection;
use crate::decide::{Plan, decide};
use crate::model::Snapshot;
use crate::observe::change_feed::{ChangeFeed, FeedSettings, Read};
use crate::observe::log_analytics::{GroupReader, MAX_WORKSPACES_PER_QUERY, PieceKind, ReadStats};
use crate::observe::query::{Selection, Since};

/// Whether a cycle changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Observe and decide only.
    Plan,
    /// Observe, decide and act.
    Sync,
}

/// What happened in one workspace.
#[derive(Debug, Clone)]
pub struct WorkspaceReport {
    /// `subscription/resourceGroup/name`.
    pub workspace: String,
    pub plan: Option<Plan>,
    pub act: Option<ActReport>,
    /// Why the workspace, or a piece of its read, could not be synced.
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// In-scope incidents read.
    pub incidents_seen: usize,
}

/// What happened in one cycle.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub started: DateTime<Utc>,
    pub duration: Duration,
    pub mode: Mode,
    pub workspaces: Vec<WorkspaceReport>,
    /// Azure answers during the cycle, by service and status.
    pub requests: Vec<(String, u16, u64)>,
    pub retries: u64,
    pub throttle_waits: u64,
    pub throttle_wait: Duration,
    /// The Log Analytics reads of the cycle, summed over the groups.
    pub reads: ReadStats,
    /// Groups read whole, and groups read through the change feed.
    pub whole_reads: u32,
    pub change_reads: u32,
}

impl CycleReport {
    /// Whether every workspace was read and every action applied or skipped on purpose.
    pub fn succeeded(&self) -> bool {
        self.workspaces.iter().all(|w| {
            w.error.is_none()
                && w.act.as_ref().is_none_or(|a| {
                    a.outcomes
                        .iter()
                        .all(|o| !matches!(o.result, ActionResult::Failed(_)))
                })
        })
    }

    /// Whether any workspace has planned actions.
    pub fn has_actions(&self) -> bool {
        self.workspaces
            .iter()
            .any(|w| w.plan.as_ref().is_some_and(|p| !p.actions.is_empty()))
    }
}

/// Which read a cycle makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// The change feed's choice (a whole read first and every `resync`).
    Feed,
    /// Only what changed within this long before the service's clock (`--changed-within`:
    /// stateless, for a job run on a schedule).
    ChangedWithin(chrono::TimeDelta),
}

/// A configured workspace found in ARM.
struct Resolved {
    label: String,
    ws: Workspace,
}

/// Workspaces read by one query, and their feed.
struct Group {
    /// Indexes into `Syncer::resolved`.
    members: Vec<usize>,
    feed: ChangeFeed,
}

/// The state of a run's cycles: the workspaces found, their groups and their feeds.
pub struct Syncer {
    read_mode: ReadMode,
    feed: FeedSettings,
    /// One entry per configured workspace, in configuration order: found, or not yet.
    resolved: Vec<Option<Resolved>>,
    groups: Vec<Group>,
    /// The Graph backend's state, when `[sync] backend = "graph"`: it runs the cycle.
    graph: Option<crate::cycle_graph::GraphSyncer>,
}

impl Syncer {
    pub fn new(config: &Config, read_mode: ReadMode) -> Self {
        Self {
            read_mode,
            feed: FeedSettings {
                resync: config.sync.resync,
                overlap: config.sync.feed_overlap,
            },
            resolved: config.file.workspaces.iter().map(|_| None).collect(),
            groups: Vec::new(),
            graph: (config.sync.backend == crate::config::Backend::Graph)
                .then(|| crate::cycle_graph::GraphSyncer::new(config, read_mode)),
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
        if let Some(graph) = &mut self.graph {
            return graph.cycle(conn, config, mode, stop, on_progress).await;
        }
        let started = Utc::now();
        let clock = Instant::now();
        let before_requests = conn.stats.requests();
        let before = snapshot_counters(conn);
        let mut reports: Vec<WorkspaceReport> = config
            .file
            .workspaces
            .iter()
            .map(|w| WorkspaceReport {
                workspace: format!("{}/{}/{}", w.subscription_id, w.resource_group, w.name),
                plan: None,
                act: None,
                error: None,
                warnings: Vec::new(),
                incidents_seen: 0,
            })
            .collect();
        self.resolve(conn, config, &mut reports).await;
        let mut reads = ReadStats::default();
        let (mut whole_reads, mut change_reads) = (0, 0);
        let mut queue: Vec<Group> = std::mem::take(&mut self.groups);
        queue.reverse();
        let mut done: Vec<Group> = Vec::new();
        while let Some(mut group) = queue.pop() {
            let read = match self.read_mode {
                ReadMode::Feed => group.feed.next_read(Instant::now()),
                ReadMode::ChangedWithin(d) => Read::Changed(Selection::Changed {
                    since: Since::Within(d),
                    also: Vec::new(),
                }),
            };
            let ids: Vec<String> = group
                .members
                .iter()
                .filter_map(|&i| self.resolved[i].as_ref())
                .map(|r| r.ws.customer_id.clone())
                .collect();
            let outcome = sync_group(
                conn,
                config,
                &self.resolved,
                &group.members,
                &ids,
                &read,
                mode,
                stop,
                on_progress,
                &mut reports,
            )
            .await;
            reads.add(&outcome.stats);
            match outcome.split_for {
                // A query that one of several workspaces makes fail: read each half alone.
                Some(e) if group.members.len() > 1 => {
                    tracing::warn!(workspaces = group.members.len(), error = %e, "a query over several workspaces failed: reading each half of them alone");
                    let half = group.members.len() / 2;
                    let second = group.members.split_off(half);
                    queue.push(Group {
                        members: second,
                        feed: group.feed.clone(),
                    });
                    queue.push(group);
                    continue;
                }
                Some(e) => {
                    for &i in &group.members {
                        set_error(&mut reports[i], format!("querying the workspace: {e}"));
                    }
                }
                None => {}
            }
            if outcome.whole {
                whole_reads += 1;
            } else {
                change_reads += 1;
            }
            if let Some(seen) = outcome.seen_until.filter(|_| outcome.complete) {
                group.feed.read_done(outcome.whole, seen, Instant::now());
            }
            group.feed.retry_later(outcome.retry);
            done.push(group);
        }
        self.groups = done;
        let after = snapshot_counters(conn);
        let requests = conn
            .stats
            .requests()
            .into_iter()
            .map(|(s, st, n)| {
                let was = before_requests
                    .iter()
                    .find(|(bs, bst, _)| *bs == s && *bst == st)
                    .map_or(0, |b| b.2);
                (s.name().to_owned(), st, n - was)
            })
            .filter(|r| r.2 > 0)
            .collect();
        CycleReport {
            started,
            duration: clock.elapsed(),
            mode,
            workspaces: reports,
            requests,
            retries: after.0 - before.0,
            throttle_waits: after.1 - before.1,
            throttle_wait: Duration::from_millis(after.2 - before.2),
            reads,
            whole_reads,
            change_reads,
        }
    }

    /// Looks up in ARM the workspaces not found yet; those found join a new group (read
    /// whole first), in groups of at most [`MAX_WORKSPACES_PER_QUERY`].
    async fn resolve(
        &mut self,
        conn: &Connection,
        config: &Config,
        reports: &mut [WorkspaceReport],
    ) {
        let mut found = Vec::new();
        for (i, w) in config.file.workspaces.iter().enumerate() {
            if self.resolved[i].is_some() {
                continue;
            }
            match conn
                .sentinel
                .workspace(&w.subscription_id, &w.resource_group, &w.name)
                .await
            {
                Ok(ws) => {
                    self.resolved[i] = Some(Resolved {
                        label: reports[i].workspace.clone(),
                        ws,
                    });
                    found.push(i);
                }
                Err(e) => {
                    tracing::error!(workspace = %reports[i].workspace, error = %e, "workspace lookup failed");
                    reports[i].error = Some(format!("looking up the workspace: {e}"));
                }
            }
        }
        for chunk in found.chunks(MAX_WORKSPACES_PER_QUERY) {
            self.groups.push(Group {
                members: chunk.to_vec(),
                feed: ChangeFeed::new(self.feed),
            });
        }
    }
}

/// Runs one cycle of a fresh [`Syncer`]: the workspaces looked up, each group read whole.
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

fn snapshot_counters(conn: &Connection) -> (u64, u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        conn.stats.retries.load(Relaxed),
        conn.stats.throttle_waits.load(Relaxed),
        conn.stats.throttle_wait_ms.load(Relaxed),
    )
}

/// What one group's read came to.
struct GroupOutcome {
    stats: ReadStats,
    whole: bool,
    complete: bool,
    seen_until: Option<DateTime<Utc>>,
    /// Incidents to read again by name (their actions failed or were left).
    retry: Vec<String>,
    /// The read failed before any piece, with an error one workspace of several may cause.
    split_for: Option<AzureError>,
}

/// Reads one group piece by piece; decides and acts on each piece for each workspace.
#[allow(clippy::too_many_arguments)]
async fn sync_group(
    conn: &Connection,
    config: &Config,
    resolved: &[Option<Resolved>],
    members: &[usize],
    ids: &[String],
    read: &Read,
    mode: Mode,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    on_progress: &(dyn Fn(usize, usize) + Sync),
    reports: &mut [WorkspaceReport],
) -> GroupOutcome {
    let mut reader = GroupReader::new(&conn.log_analytics, ids, &config.policy, read);
    let mut retry = Vec::new();
    let mut first = true;
    while let Some(piece) = reader.next().await {
        let snapshots = match piece.result {
            Ok(s) => s,
            Err(e) if first && members.len() > 1 && one_workspace_may_cause(&e) => {
                return GroupOutcome {
                    stats: reader.stats(),
                    whole: reader.was_whole(),
                    complete: false,
                    seen_until: None,
                    retry,
                    split_for: Some(e),
                };
            }
            Err(e) => {
                tracing::error!(piece = %piece.kind, error = %e, "query failed");
                for &i in members {
                    set_error(
                        &mut reports[i],
                        format!("querying the workspace ({}): {e}", piece.kind),
                    );
                }
                first = false;
                continue;
            }
        };
        first = false;
        let mut by_workspace = snapshots.by_workspace;
        for &i in members {
            let Some(r) = resolved[i].as_ref() else {
                continue;
            };
            // A workspace with no row in the answer has nothing in scope in this piece; the
            // rows of a query of one workspace do not name it.
            let mut snapshot = by_workspace
                .remove(&r.ws.customer_id)
                .or_else(|| {
                    (members.len() == 1)
                        .then(|| by_workspace.remove(""))
                        .flatten()
                })
                .unwrap_or_default();
            snapshot.server_now = snapshot.server_now.or(snapshots.server_now);
            // What share of the workspace the snapshot holds, for the act step's ETag reads.
            let share = match &piece.kind {
                PieceKind::Partition(p) => Some(p.modulus),
                PieceKind::Changed => None,
            };
            retry.extend(
                sync_snapshot(
                    conn,
                    config,
                    r,
                    (snapshot, share),
                    mode,
                    stop,
                    on_progress,
                    &mut reports[i],
                )
                .await,
            );
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
    }
    GroupOutcome {
        stats: reader.stats(),
        whole: reader.was_whole(),
        complete: reader.complete(),
        seen_until: reader.seen_until(),
        retry,
        split_for: None,
    }
}

/// Whether a query's failure may come from one workspace of several (no access to it, or
/// it cannot be found), rather than from the service or the query text (a query the service
/// refuses as such fails the same way for every workspace: splitting would not help).
fn one_workspace_may_cause(e: &AzureError) -> bool {
    match e {
        AzureError::InsufficientAccess { .. } | AzureError::Forbidden { .. } => true,
        AzureError::Http {
            status: 403 | 404, ..
        } => true,
        AzureError::Http {
            status: 400,
            message,
            ..
        } => message.to_ascii_lowercase().contains("workspace"),
        _ => false,
    }
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

/// Decides and acts on one workspace's snapshot of one piece, adding to its report.
/// Returns the incidents whose actions failed or were left (to read again).
#[allow(clippy::too_many_arguments)]
async fn sync_snapshot(
    conn: &Connection,
    config: &Config,
    r: &Resolved,
    (snapshot, snapshot_share): (Snapshot, Option<u32>),
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
    tracing::info!(workspace = %r.label, incidents = snapshot.incidents.len(), actions = plan.actions.len(), held = plan.held.len(), "decided");
    for h in &plan.held {
        tracing::info!(workspace = %r.label, incident = h.incident_number, reason = %h.reason, "held");
    }
    let mut act_report = None;
    if mode == Mode::Sync {
        let mut a = if plan.repairs.is_empty() {
            ActReport::default()
        } else {
            ActReport {
                repairs: crate::act::repair(conn, &r.ws, &plan).await,
                ..ActReport::default()
            }
        };
        if !plan.actions.is_empty() {
            let opts = ActOptions {
                concurrency: config.sync.concurrency,
                conflict_retries: config.sync.conflict_retries,
                stop: stop.clone(),
                snapshot_share,
            };
            let total = plan.actions.len();
            let done = std::sync::atomic::AtomicUsize::new(0);
            let acted = act(conn, &r.ws, &snapshot, &plan, &config.policy, &opts, &|n| {
                let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                on_progress(d, total);
            })
            .await;
            a.outcomes = acted.outcomes;
            a.missing_roles = acted.missing_roles;
        }
        if !plan.actions.is_empty() || !a.repairs.is_empty() {
            act_report = Some(a);
        }
    }
    let retry: Vec<String> = act_report
        .iter()
        .flat_map(|a| a.outcomes.iter().chain(&a.repairs))
        .filter(|o| !matches!(o.result, ActionResult::Applied))
        .filter(|o| match &o.result {
            ActionResult::Skipped(d) => d.starts_with("stopping"),
            _ => true,
        })
        .map(|o| o.incident.clone())
        .collect();
    merge_plan(&mut report.plan, plan);
    if let Some(a) = act_report {
        let into = report.act.get_or_insert_with(ActReport::default);
        into.outcomes.extend(a.outcomes);
        into.repairs.extend(a.repairs);
        for role in a.missing_roles {
            if !into.missing_roles.contains(&role) {
                into.missing_roles.push(role);
            }
        }
    }
    retry
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
