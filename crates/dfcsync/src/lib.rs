//! dfcsync: keeps Microsoft Sentinel incidents in step with the status of their Microsoft
//! Defender for Cloud alerts.
//!
//! The library is a reconciler: a [`backend`]'s source turns what a service answers into a
//! [`model::Snapshot`] (with the pure parsing of [`observe`]), [`decide`] (pure: no I/O, no
//! clock) turns the snapshot into a [`decide::Plan`], the backend's sink acts on the plan,
//! and one loop ([`cycle`]) drives them, telling its [`events`] to whoever reports them.
//! `docs/architecture.md` draws the flow; `docs/` holds the contract each module keeps.

pub mod act;
pub mod azure;
pub mod backend;
pub mod config;
pub mod connect;
pub mod cycle;
pub mod daemon;
pub mod decide;
pub mod doctor;
pub mod events;
pub mod health;
pub mod lease;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod policy;
pub mod report;
