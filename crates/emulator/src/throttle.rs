//! Throttling. ARM: token buckets per subscription, principal and operation type (reads,
//! writes, deletes), plus a global bucket per subscription of 15 times the size, refilled
//! continuously; the `x-ms-ratelimit-remaining-*` headers and 429 with `Retry-After`.
//! Log Analytics: at most N requests per 30 s per principal (sliding window). Microsoft Graph:
//! at most N requests per minute per application (the tenant is the emulator's one).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::scenario::{Bucket, Limits};

/// An ARM operation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    Read,
    Write,
    Delete,
}

impl OpKind {
    /// The type of an HTTP method (GET/HEAD read, DELETE delete, the rest write).
    pub fn of_method(method: &str) -> OpKind {
        match method {
            "GET" | "HEAD" => OpKind::Read,
            "DELETE" => OpKind::Delete,
            _ => OpKind::Write,
        }
    }

    /// The header suffix (`reads`, `writes`, `deletes`).
    pub fn plural(self) -> &'static str {
        match self {
            OpKind::Read => "reads",
            OpKind::Write => "writes",
            OpKind::Delete => "deletes",
        }
    }
}

#[derive(Debug, Clone)]
struct TokenBucket {
    size: f64,
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(b: Bucket, scale: f64) -> Self {
        let size = f64::from(b.bucket) * scale;
        TokenBucket {
            size,
            rate: b.per_second * scale,
            tokens: size,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.size);
        self.at = now;
    }

    fn wait_for_one(&self) -> Duration {
        if self.tokens >= 1.0 || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
    }
}

/// The outcome of an ARM throttle check.
#[derive(Debug, Clone)]
pub enum ArmVerdict {
    /// Allowed; the remaining counts for the headers.
    Allowed {
        remaining: u64,
        global_remaining: u64,
    },
    /// Throttled; retry after this many seconds.
    Throttled { retry_after: u64 },
}

/// All the throttles of the emulator.
#[derive(Debug, Default)]
pub struct Throttles {
    arm: HashMap<(String, String, OpKind), TokenBucket>,
    global: HashMap<(String, OpKind), TokenBucket>,
    la: HashMap<String, VecDeque<Instant>>,
    graph: HashMap<String, VecDeque<Instant>>,
    ingest: HashMap<String, VecDeque<Instant>>,
}

/// Counts one request in a sliding window of `limit` requests per `window`;
/// `Err(retry_after_secs)` past it.
fn slide(q: &mut VecDeque<Instant>, limit: usize, window: Duration) -> Result<(), u64> {
    let now = Instant::now();
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
    if q.len() >= limit {
        let oldest = q.front().copied().unwrap_or(now);
        let wait = window.saturating_sub(now.duration_since(oldest));
        return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
    }
    q.push_back(now);
    Ok(())
}

impl Throttles {
    /// Forgets all buckets (control API reset).
    pub fn clear(&mut self) {
        *self = Throttles::default();
    }

    /// Takes one token for an ARM request of `principal` on `subscription`.
    pub fn arm(
        &mut self,
        limits: &Limits,
        subscription: &str,
        principal: &str,
        kind: OpKind,
    ) -> ArmVerdict {
        let spec = match kind {
            OpKind::Read => limits.arm_reads,
            OpKind::Write => limits.arm_writes,
            OpKind::Delete => limits.arm_deletes,
        };
        let now = Instant::now();
        let sub = subscription.to_ascii_lowercase();
        let b = self
            .arm
            .entry((sub.clone(), principal.to_string(), kind))
            .or_insert_with(|| TokenBucket::new(spec, 1.0));
        b.refill(now);
        let g = self
            .global
            .entry((sub, kind))
            .or_insert_with(|| TokenBucket::new(spec, 15.0));
        g.refill(now);
        if b.tokens < 1.0 || g.tokens < 1.0 {
            let wait = b.wait_for_one().max(g.wait_for_one());
            return ArmVerdict::Throttled {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            };
        }
        b.tokens -= 1.0;
        g.tokens -= 1.0;
        ArmVerdict::Allowed {
            remaining: b.tokens.floor() as u64,
            global_remaining: g.tokens.floor() as u64,
        }
    }

    /// Counts a Log Analytics request of `principal`; `Err(retry_after_secs)` past the rate.
    pub fn la(&mut self, limits: &Limits, principal: &str) -> Result<(), u64> {
        let q = self.la.entry(principal.to_string()).or_default();
        slide(
            q,
            limits.la_requests_per_30s as usize,
            Duration::from_secs(30),
        )
    }

    /// Counts a Microsoft Graph request of application `app`; `Err(retry_after_secs)` past
    /// The Logs Ingestion API's per-DCR window: `limits.logs_ingestion_requests_per_minute`;
    /// `Err` is the seconds until a slot frees.
    pub fn ingest(&mut self, limits: &Limits, dcr: &str) -> Result<(), u64> {
        let q = self.ingest.entry(dcr.to_ascii_lowercase()).or_default();
        slide(
            q,
            limits.logs_ingestion_requests_per_minute as usize,
            Duration::from_secs(60),
        )
    }

    /// `limits.graph_requests_per_minute`.
    pub fn graph(&mut self, limits: &Limits, app: &str) -> Result<(), u64> {
        let q = self.graph.entry(app.to_ascii_lowercase()).or_default();
        slide(
            q,
            limits.graph_requests_per_minute as usize,
            Duration::from_secs(60),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties_and_counts_down() {
        let limits = Limits {
            arm_reads: Bucket {
                bucket: 3,
                per_second: 0.5,
            },
            ..Limits::default()
        };
        let mut t = Throttles::default();
        let mut seen = vec![];
        for _ in 0..3 {
            match t.arm(&limits, "s", "p", OpKind::Read) {
                ArmVerdict::Allowed { remaining, .. } => seen.push(remaining),
                ArmVerdict::Throttled { .. } => panic!("throttled early"),
            }
        }
        assert_eq!(seen, vec![2, 1, 0]);
        assert!(matches!(
            t.arm(&limits, "s", "p", OpKind::Read),
            ArmVerdict::Throttled { retry_after: 2 }
        ));
        // another principal has its own bucket
        assert!(matches!(
            t.arm(&limits, "s", "q", OpKind::Read),
            ArmVerdict::Allowed { .. }
        ));
    }

    #[test]
    fn la_window() {
        let limits = Limits {
            la_requests_per_30s: 2,
            ..Limits::default()
        };
        let mut t = Throttles::default();
        assert!(t.la(&limits, "p").is_ok());
        assert!(t.la(&limits, "p").is_ok());
        assert!(t.la(&limits, "p").is_err());
    }
}
