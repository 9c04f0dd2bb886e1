//! Fuzz target (c): the emulator's scenario parser, `emulator::Scenario::from_json_str`
//! (JSON, the checks of the spec, and building the platform by applying the events), on any
//! UTF-8 text.
//!
//! Beyond "no panic": a scenario the emulator accepts is one dfcsync can sync against. For
//! each workspace, dfcsync's sync query (default policy) over the rows visible at the
//! scenario's `now`, as the emulator runs it, must succeed, its answer must read as a
//! snapshot, and the decision engine must run on that snapshot.

#![no_main]

use dfcsync::decide::decide;
use dfcsync::observe::build_snapshot_combined;
use dfcsync::policy::Policy;
use dfcsync_fuzz::sync_answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(scenario) = emulator::Scenario::from_json_str(text) else {
        return;
    };
    let platform = scenario.platform();
    let now = platform.start;
    let policy = Policy::default();
    for (i, tables) in platform.tables.iter().enumerate() {
        let body = sync_answer(&tables.visible_db(now), &policy, now)
            .unwrap_or_else(|e| panic!("workspace {i}: the sync query fails: {e:?}"));
        let snapshot = build_snapshot_combined(&body[..])
            .unwrap_or_else(|e| panic!("workspace {i}: the answer does not read: {e}"));
        let _ = decide(&snapshot, &policy, snapshot.server_now.unwrap_or(now));
    }
});
