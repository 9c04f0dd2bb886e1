//! What the sync loop tells whoever watches it: the events of a cycle, and the observers
//! that turn them into logs, metrics or records elsewhere.
//!
//! The loop ([`crate::cycle`]) reads, decides and acts; it reports nothing itself. Each step
//! is an [`Event`] handed to every [`Observer`] of the [`Syncer`](crate::cycle::Syncer), as
//! kube-rs' `controller-rs` keeps diagnostics beside its reconcile loop. [`LogEvents`] (on
//! by default) writes the log lines; the daemon adds its metrics.

use crate::act::ActReport;
use crate::azure::AzureError;
use crate::decide::Plan;
use crate::model::Snapshot;
use crate::report::CycleReport;

/// One step of a cycle.
#[derive(Debug)]
pub enum Event<'a> {
    /// A target could not be looked up (it is tried again next cycle).
    LookupFailed { target: &'a str, message: &'a str },
    /// A read over several targets failed in a way one of them may cause: each half of
    /// them is read alone.
    GroupSplit {
        targets: usize,
        error: &'a AzureError,
    },
    /// A piece of a read failed (`what` says which).
    ReadFailed {
        targets: &'a [&'a str],
        what: &'a str,
        error: &'a AzureError,
    },
    /// A target's snapshot (of one piece) was decided.
    Decided {
        target: &'a str,
        snapshot: &'a Snapshot,
        plan: &'a Plan,
    },
    /// A target's plan (of one piece) was carried out.
    Acted {
        target: &'a str,
        report: &'a ActReport,
    },
    /// The cycle is over.
    CycleDone { report: &'a CycleReport },
}

/// Anything that watches the loop.
pub trait Observer: Send + Sync {
    fn on(&self, event: &Event<'_>);
}

/// The loop's log lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEvents;

impl Observer for LogEvents {
    fn on(&self, event: &Event<'_>) {
        match event {
            Event::LookupFailed { target, message } => {
                tracing::error!(workspace = %target, error = %message, "workspace lookup failed");
            }
            Event::GroupSplit { targets, error } => {
                tracing::warn!(workspaces = targets, error = %error, "a query over several workspaces failed: reading each half of them alone");
            }
            Event::ReadFailed { what, error, .. } => {
                tracing::error!(piece = %what, error = %error, "read failed");
            }
            Event::Decided {
                target,
                snapshot,
                plan,
            } => {
                tracing::info!(workspace = %target, incidents = snapshot.incidents.len(), actions = plan.actions.len(), held = plan.held.len(), "decided");
                for h in &plan.held {
                    tracing::info!(workspace = %target, incident = h.incident_number, reason = %h.reason, "held");
                }
            }
            Event::Acted { .. } | Event::CycleDone { .. } => {}
        }
    }
}
