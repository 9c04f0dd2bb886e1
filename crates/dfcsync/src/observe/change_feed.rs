//! The change feed: which read a cycle makes, and the watermark that moves between cycles.
//!
//! A cycle reads only the incidents that may need a decision: those with a row, or an alert
//! with a row, ingested since the watermark (Kusto's `ingestion_time()`, read by
//! [`Selection::Changed`]). The engine decides on the same rows as a whole read would give
//! for those incidents, so the feed changes the cost of a cycle, never its result (an
//! incident's decision depends on its rows only, and each of its rows, once ingested, is
//! in some read: the watermark only moves to the service's clock of a read that was
//! answered whole).
//!
//! The watermark is the service's clock (the `Clock` row of the last whole answer, never the
//! local one) minus an overlap: a row's `ingestion_time()` is stamped by the service when it
//! is ingested, and it becomes visible to queries a little later; the overlap covers that and
//! the skew between the service's machines. It costs only re-reading, for that long, the
//! incidents that changed (docs/benchmarks.md); the default is ten minutes, where Azure
//! Monitor documents ingestion latencies of seconds to a few minutes.
//!
//! A feed alone can miss what it never saw (a cycle lost to a fault, a restart, a row that
//! became visible later than the overlap allows), so a whole read comes first and then
//! every `resync` (the controller's relist; kube-rs' watcher is the model). Incidents whose
//! actions failed are read again by name in the next read, without waiting for the resync.
//! Pure: no I/O; the caller gives the local instant for the resync schedule.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::query::{Selection, Since};

/// The most incidents carried to the next read by name; past it, the next read is whole.
pub const MAX_RETRY_NAMES: usize = 1_000;

/// The feed's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// A whole read at least this often (`[sync] resync`).
    pub resync: Duration,
    /// How far before the last read's clock the next read starts (`[sync] feed_overlap`).
    pub overlap: TimeDelta,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(3600),
            overlap: TimeDelta::minutes(10),
        }
    }
}

/// The read a cycle makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Every in-scope incident (partitioned as needed).
    Whole,
    /// Only what changed.
    Changed(Selection),
}

/// How a whole read is made (`--read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WholeRead {
    /// A query names the incidents the engine could act on, hold or repair (the
    /// candidates), and only those are read, by name (the default).
    #[default]
    TwoPhase,
    /// Every in-scope incident is read (partitioned as needed): for diagnosis, to compare.
    Full,
}

/// One group of workspaces' feed between cycles.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    settings: FeedSettings,
    /// The service's clock at the newest read that saw everything up to it.
    seen_until: Option<DateTime<Utc>>,
    /// When the last whole read was answered whole (local clock: a schedule, not a watermark).
    last_whole: Option<Instant>,
    /// Incidents to read again by name.
    retry: BTreeSet<String>,
    /// Too many to carry by name: the next read is whole.
    retry_overflow: bool,
}

impl ChangeFeed {
    pub fn new(settings: FeedSettings) -> Self {
        Self {
            settings,
            seen_until: None,
            last_whole: None,
            retry: BTreeSet::new(),
            retry_overflow: false,
        }
    }

    /// The read of the next cycle, at local instant `now`.
    pub fn next_read(&self, now: Instant) -> Read {
        let resync_due = self
            .last_whole
            .is_none_or(|t| now.saturating_duration_since(t) >= self.settings.resync);
        match self.seen_until {
            Some(seen) if !resync_due && !self.retry_overflow => {
                Read::Changed(Selection::Changed {
                    since: Since::At(seen - self.settings.overlap),
                    also: self.retry.iter().cloned().collect(),
                })
            }
            _ => Read::Whole,
        }
    }

    /// A read was answered whole at the service's `server_now`: everything ingested before
    /// it has been seen (a whole read), or everything that changed since the watermark
    /// (a change read). `whole` says which; `now` is the local instant.
    pub fn read_done(&mut self, whole: bool, server_now: DateTime<Utc>, now: Instant) {
        self.seen_until = Some(self.seen_until.map_or(server_now, |s| s.max(server_now)));
        self.retry.clear();
        self.retry_overflow = false;
        if whole {
            self.last_whole = Some(now);
        }
    }

    /// These incidents need another look (an action failed, or was left when stopping):
    /// they are read by name in the next read.
    pub fn retry_later(&mut self, names: impl IntoIterator<Item = String>) {
        for n in names {
            if self.retry.len() >= MAX_RETRY_NAMES {
                self.retry_overflow = true;
                return;
            }
            self.retry.insert(n);
        }
    }

    /// The watermark of the next change read, if there is one.
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.seen_until.map(|s| s - self.settings.overlap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn whole_first_then_changes_from_the_service_clock_minus_the_overlap() {
        let settings = FeedSettings::default();
        let mut feed = ChangeFeed::new(settings);
        let start = Instant::now();
        assert_eq!(feed.next_read(start), Read::Whole);
        feed.read_done(true, t("2026-12-06T10:00:00Z"), start);
        assert_eq!(
            feed.next_read(start + Duration::from_secs(60)),
            Read::Changed(Selection::Changed {
                since: Since::At(t("2026-12-06T09:50:00Z")),
                also: vec![]
            })
        );
        // A change read moves the watermark; a read that failed (no read_done) does not.
        feed.read_done(
            false,
            t("2026-12-06T10:01:00Z"),
            start + Duration::from_secs(60),
        );
        assert_eq!(feed.watermark(), Some(t("2026-12-06T09:51:00Z")));
        // The watermark never moves back (a clock row older than the last one).
        feed.read_done(
            false,
            t("2026-12-06T09:00:00Z"),
            start + Duration::from_secs(120),
        );
        assert_eq!(feed.watermark(), Some(t("2026-12-06T09:51:00Z")));
        // The resync comes back after `resync`, counted from the last whole read.
        assert_eq!(feed.next_read(start + settings.resync), Read::Whole);
    }

    #[test]
    fn incidents_to_retry_are_read_by_name_then_forgotten() {
        let mut feed = ChangeFeed::new(FeedSettings::default());
        let start = Instant::now();
        feed.read_done(true, t("2026-12-06T10:00:00Z"), start);
        feed.retry_later(["b".to_owned(), "a".to_owned()]);
        let Read::Changed(Selection::Changed { also, .. }) = feed.next_read(start) else {
            panic!("a change read")
        };
        assert_eq!(also, ["a", "b"]);
        feed.read_done(false, t("2026-12-06T10:01:00Z"), start);
        let Read::Changed(Selection::Changed { also, .. }) = feed.next_read(start) else {
            panic!("a change read")
        };
        assert!(also.is_empty());
        // Too many to carry: the next read is whole.
        feed.retry_later((0..=MAX_RETRY_NAMES).map(|i| i.to_string()));
        assert_eq!(feed.next_read(start), Read::Whole);
    }
}
