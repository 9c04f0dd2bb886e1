//! Integration tests of the emulator, through its HTTP APIs.

mod api;
mod behaviour;
mod common;
mod limits;
mod scenario;
mod spec_examples;
