//! Integration tests of the emulator, through its HTTP APIs.

mod api;
mod behaviour;
mod cli;
mod common;
mod graph;
mod graph_tenant;
mod ingest;
mod leases;
mod limits;
#[path = "../../../../test-support/reference.rs"]
mod reference;
mod scenario;
mod seed;
mod spec_examples;
