//! The Graph backend: the tenant's Defender XDR incidents and alerts, read and written
//! through Microsoft Graph's security API (`/v1.0/security/incidents`,
//! `/v1.0/security/alerts_v2`). `docs/graph.md` is the page of its readings.
//!
//! The target is the tenant of the credential: one report entry, [`TENANT_LABEL`]. Which
//! read a cycle makes is the change feed's choice, as for Log Analytics: a whole read first
//! and every `resync`, and in between the incidents updated since the watermark (the `Date`
//! of the last complete read, minus the overlap), the incidents of DfC alerts updated since
//! it, and the incidents to read again. [`source`] is the reading, [`sink`] the writing.

pub mod sink;
pub mod source;

use std::sync::atomic::AtomicBool;

/// The label of the Graph backend's one report entry.
pub const TENANT_LABEL: &str = "tenant (Microsoft Graph)";

/// The Graph backend's state between cycles.
#[derive(Debug, Default)]
pub struct GraphBackend {
    /// Whether the tenant was handed to the loop as a target.
    announced: bool,
    /// What the source keeps between reads (see [`source::Memory`]).
    memory: tokio::sync::Mutex<source::Memory>,
    /// Set once the service refused `resolvingComment` in a PATCH: closes then write their
    /// mark in the comment first, for the rest of the process (the sink warns once).
    no_resolving_comment: AtomicBool,
}

impl GraphBackend {
    pub fn new() -> Self {
        Self::default()
    }
}
