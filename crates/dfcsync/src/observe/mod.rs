//! Observe, the pure half: turn `SecurityIncident` and `SecurityAlert` rows, as the Log
//! Analytics query API or `az monitor log-analytics query` returns them, into the engine's
//! [`Snapshot`](crate::model::Snapshot).
//!
//! - [`rows`] reads a response (or an array of row objects) one row at a time, by column name;
//! - [`records`] turns one row into a typed record, or says which column is wrong;
//! - [`build`] folds the records into incident and alert states (newest row, the start of
//!   the current status, the marks);
//! - [`query`] is the KQL that fetches exactly those rows from a workspace (all of them, one
//!   partition, or what changed);
//! - [`partition`] sizes a whole read so that no answer nears the service's limits;
//! - [`change_feed`] decides which read a cycle makes and keeps the watermark.
//!
//! The reads themselves (the I/O) are the backends' sources: `backend::sentinel::source`
//! runs these queries against one or many workspaces, `backend::graph::source` reads
//! Defender XDR through Microsoft Graph.

pub mod build;
pub mod change_feed;
pub mod partition;
pub mod query;
pub mod records;
pub mod rows;

pub use build::{
    SnapshotBuilder, SnapshotError, WorkspaceSnapshots, build_snapshot, build_snapshot_combined,
    build_snapshot_combined_from_reader, build_snapshots_by_workspace,
};
pub use records::{AlertRecord, IncidentRecord, RecordError};
pub use rows::{RowsError, read_rows, read_rows_in};
