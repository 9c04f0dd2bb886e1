//! dfcsync: keeps Microsoft Sentinel incidents in step with the status of their Microsoft
//! Defender for Cloud alerts.
//!
//! The library is a reconciler: [`observe`] turns Log Analytics rows into a
//! [`model::Snapshot`], [`decide`] (pure: no I/O, no clock) turns the snapshot into a
//! [`decide::Plan`], and the shell around it acts on the plan and reports. See
//! `docs/` and the design pages for the contract each module keeps.

pub mod act;
pub mod act_graph;
pub mod azure;
pub mod config;
pub mod connect;
pub mod cycle;
pub mod cycle_graph;
pub mod daemon;
pub mod decide;
pub mod doctor;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod policy;
pub mod report;
