//! The Graph backend's cycle: observe the tenant's Defender XDR incidents through Microsoft
//! Graph (`observe::graph`), decide with the same engine, act through Graph (`act_graph`).
//!
//! The target is the tenant of the credential: one report entry, `tenant (Microsoft Graph)`.
//! Which read a cycle makes is a [`ChangeFeed`]'s choice, as for Log Analytics: a whole read
//! first and every `resync`, and in between the incidents updated since the watermark (the
//! `Date` of the last complete read, minus the overlap), the incidents of DfC alerts updated
//! since it, and the incidents whose actions failed. `cycle::Syncer` hands its cycle to
//! [`GraphSyncer`] when `[sync] backend = "graph"`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::act::{ActOptions, ActReport, ActionResult};
use crate::config::Config;
use crate::connect::Connection;
use crate::cycle::{CycleReport, Mode, ReadMode, WorkspaceReport};
use crate::decide::decide;
use crate::observe::change_feed::{ChangeFeed, FeedSettings, Read};
use crate::observe::log_analytics::ReadStats;
use crate::observe::query::{Selection, Since};

/// The label of the Graph backend's one report entry.
pub const TENANT_LABEL: &str = "tenant (Microsoft Graph)";

/// The state of the Graph backend between cycles: the feed and the incidents known to hold
/// a Defender for Cloud alert.
#[derive(Debug, Clone)]
pub struct GraphSyncer {
    read_mode: ReadMode,
    feed: ChangeFeed,
    dfc_incidents: BTreeSet<String>,
}

impl GraphSyncer {
    pub fn new(config: &Config, read_mode: ReadMode) -> Self {
        Self {
            read_mode,
            feed: ChangeFeed::new(FeedSettings {
                resync: config.sync.resync,
                overlap: config.sync.feed_overlap,
            }),
            dfc_incidents: BTreeSet::new(),
        }
    }

    /// Runs one cycle. `on_progress(done, total)` is called as incidents are updated.
    pub async fn cycle(
        &mut self,
        conn: &Connection,
        config: &Config,
        mode: Mode,
        stop: &Arc<AtomicBool>,
        on_progress: &(dyn Fn(usize, usize) + Sync),
    ) -> CycleReport {
        let started = Utc::now();
        let clock = Instant::now();
        let before = counters(conn);
        let mut report = WorkspaceReport {
            workspace: TENANT_LABEL.into(),
            plan: None,
            act: None,
            error: None,
            warnings: Vec::new(),
            incidents_seen: 0,
        };
        let read = match self.read_mode {
            ReadMode::Feed => self.feed.next_read(Instant::now()),
            ReadMode::ChangedWithin(d) => Read::Changed(Selection::Changed {
                since: Since::Within(d),
                also: Vec::new(),
            }),
        };
        let whole = read == Read::Whole;
        // A stateless read (`--changed-within`) knows no incident yet: every changed one is
        // a candidate.
        let known = match self.read_mode {
            ReadMode::Feed => Some(&self.dfc_incidents),
            ReadMode::ChangedWithin(_) => None,
        };
        let result = match (&conn.graph, &read) {
            (None, _) => Err(crate::azure::AzureError::Config(
                "this cloud has no Microsoft Graph endpoint".into(),
            )),
            (Some(g), Read::Whole) => crate::observe::graph::read_whole(g, config.policy.max_age)
                .await
                .map(|r| (g, r)),
            (Some(g), Read::Changed(sel)) => crate::observe::graph::read_changed(g, sel, known)
                .await
                .map(|r| (g, r)),
        };
        match result {
            Ok((g, read)) => {
                if whole {
                    self.dfc_incidents = read.dfc_incidents.clone();
                } else {
                    self.dfc_incidents
                        .extend(read.dfc_incidents.iter().cloned());
                }
                let snapshot = read.snapshot;
                let now = snapshot.server_now.unwrap_or_else(Utc::now);
                let plan = decide(&snapshot, &config.policy, now);
                report.incidents_seen = snapshot.incidents.len();
                report.warnings.extend(snapshot.warnings.iter().cloned());
                tracing::info!(
                    backend = "graph",
                    incidents = snapshot.incidents.len(),
                    actions = plan.actions.len(),
                    held = plan.held.len(),
                    "decided"
                );
                for h in &plan.held {
                    tracing::info!(incident = h.incident_number, reason = %h.reason, "held");
                }
                let mut retry: Vec<String> = Vec::new();
                if mode == Mode::Sync && !plan.actions.is_empty() {
                    let opts = ActOptions {
                        concurrency: config.sync.concurrency,
                        conflict_retries: config.sync.conflict_retries,
                        stop: stop.clone(),
                        snapshot_share: None,
                    };
                    let total = plan.actions.len();
                    let done = std::sync::atomic::AtomicUsize::new(0);
                    let acted: ActReport = crate::act_graph::act(
                        g,
                        &snapshot.incidents,
                        &snapshot.alerts,
                        &plan,
                        &config.policy,
                        &opts,
                        &|n| {
                            let d = done.fetch_add(n, Ordering::Relaxed) + n;
                            on_progress(d, total);
                        },
                    )
                    .await;
                    retry = acted
                        .outcomes
                        .iter()
                        .filter(|o| match &o.result {
                            ActionResult::Applied => false,
                            ActionResult::Skipped(d) => !d.contains("nothing to do"),
                            ActionResult::Failed(_) => true,
                        })
                        .map(|o| o.incident.clone())
                        .collect();
                    report.act = Some(acted);
                }
                // Incidents whose read failed are read again by name too.
                retry.extend(
                    snapshot
                        .unreadable_incidents
                        .iter()
                        .map(|h| h.incident.clone()),
                );
                if let Some(seen) = read.server_now {
                    self.feed.read_done(whole, seen, Instant::now());
                }
                self.feed.retry_later(retry);
                report.plan = Some(plan);
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the tenant through Graph failed");
                report.error = Some(format!("reading the tenant through Microsoft Graph: {e}"));
            }
        }
        let after = counters(conn);
        let requests = conn
            .stats
            .requests()
            .into_iter()
            .filter_map(|(service, status, n)| {
                let was = before
                    .requests
                    .iter()
                    .find(|(s, st, _)| *s == service && *st == status)
                    .map_or(0, |b| b.2);
                (n > was).then(|| (service.name().to_owned(), status, n - was))
            })
            .collect();
        CycleReport {
            started,
            duration: clock.elapsed(),
            mode,
            workspaces: vec![report],
            requests,
            retries: after.retries - before.retries,
            throttle_waits: after.throttle_waits - before.throttle_waits,
            throttle_wait: Duration::from_millis(after.throttle_wait_ms - before.throttle_wait_ms),
            reads: ReadStats::default(),
            whole_reads: u32::from(whole),
            change_reads: u32::from(!whole),
        }
    }
}

struct Counters {
    requests: Vec<(crate::azure::error::Service, u16, u64)>,
    retries: u64,
    throttle_waits: u64,
    throttle_wait_ms: u64,
}

fn counters(conn: &Connection) -> Counters {
    Counters {
        requests: conn.stats.requests(),
        retries: conn.stats.retries.load(Ordering::Relaxed),
        throttle_waits: conn.stats.throttle_waits.load(Ordering::Relaxed),
        throttle_wait_ms: conn.stats.throttle_wait_ms.load(Ordering::Relaxed),
    }
}
