//! Fuzz target (d): the configuration parser, `config::Config::parse` (TOML, then the
//! checks of every key), on any UTF-8 text.
//!
//! Beyond "no panic": `config.rs` promises that every error is raised at start-up and
//! nothing is checked later, so a configuration that parses must work at run time: its sync
//! query runs on the `dfcsync demo` workspace (the KQL engine standing in for Log Analytics)
//! and reads as a snapshot, and the decision engine, which renders the comment templates,
//! runs with its policy on that snapshot and on the default policy's one.

#![no_main]

use dfcsync::config::Config;
use dfcsync::decide::decide;
use dfcsync::observe::build_snapshot_combined;
use dfcsync::observe::query::sync_query;
use dfcsync_fuzz::{demo_db, demo_now, demo_snapshot, sync_answer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::parse(text, "<fuzz>") else {
        return;
    };
    let now = demo_now();
    let body = sync_answer(demo_db(), &config.policy, now).unwrap_or_else(|e| {
        panic!(
            "the sync query of an accepted configuration fails: {e:?}\n{}",
            sync_query(&config.policy)
        )
    });
    let snapshot = build_snapshot_combined(&body[..]).expect("the answer reads");
    let _ = decide(&snapshot, &config.policy, now);
    let _ = decide(demo_snapshot(), &config.policy, now);
});
