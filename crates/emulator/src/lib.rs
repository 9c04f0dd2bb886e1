//! A local stand-in for the Azure services `dfcsync` talks to: Entra ID (client credentials
//! and managed identity), ARM (workspaces, Microsoft Sentinel incidents and comments,
//! Defender for Cloud alerts) and the Log Analytics query API, on 127.0.0.1 over HTTPS.
//!
//! Its contract is `shared/design/emulator.md`: the scenario format ([`Scenario`]), the control
//! API under `/_emulator/`, and how it starts ([`Emulator::start`], [`cli::run`]).

pub mod blob;
pub mod cli;
pub mod clock;
pub mod duration;
pub mod faults;
pub mod http;
pub mod ids;
pub mod ingest;
pub mod intern;
pub mod kube;
pub mod load;
pub mod odata;
pub mod platform;
pub mod rbac;
pub mod reqlog;
pub mod scenario;
pub mod scenario_read;
pub mod server;
pub mod table;
pub mod throttle;
pub mod tls;
pub mod tokens;
pub mod xdr;

pub use load::Scenario;
pub use scenario::ScenarioError;
pub use server::{Emulator, EmulatorHandle, Endpoints, Error, StartOptions};

/// The demo scenario (`scenarios/demo.json`): one workspace, the `dfcsync` principal (Sentinel
/// Responder on the workspace's resource group, Security Admin on the alerts' subscription),
/// an analyst, a subscription owner, a user-assigned managed identity, and a short history.
pub const DEMO_SCENARIO: &str = include_str!("../scenarios/demo.json");
