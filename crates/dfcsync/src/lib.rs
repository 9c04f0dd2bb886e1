//! dfcsync: keeps Microsoft Sentinel incidents in step with the status of their Microsoft
//! Defender for Cloud alerts.
//!
//! The library is organised as a reconciler: `observe` turns Log Analytics rows into a
//! snapshot, `decide` (pure, no I/O) turns the snapshot into a plan, and the shell around it
//! acts on the plan. See `../shared/design/architecture.md`.
