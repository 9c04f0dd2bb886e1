//! The domain types of dfcsync: statuses, classifications, the mark, and the snapshot the
//! decision engine reads.
//!
//! Nothing here does I/O. Values that come from Azure keep unknown spellings (`Other`)
//! rather than dropping them, so that the engine can hold what it does not understand.

mod classification;
mod mark;
pub(crate) mod snapshot;
mod status;

pub use classification::{Classification, ClassificationError, ClassificationReason, Closure};
pub use mark::{ActionKind, Fingerprint, Mark, push_rfc3339_seconds};
pub use snapshot::{
    AlertAddress, AlertMap, AlertRef, AlertState, Comment, HeldInput, IncidentState, MarkSource,
    ObservedMark, Snapshot,
};
pub use status::{AlertStatus, IncidentStatus};
