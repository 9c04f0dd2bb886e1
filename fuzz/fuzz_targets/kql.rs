//! Fuzz target (a): the KQL engine, `kql::run` (lexer, parser, binder, evaluator), on any
//! UTF-8 text, over the `dfcsync demo` workspace's tables and over an empty database.
//!
//! Beyond "no panic": the emulator serves what the engine returns as a Log Analytics
//! response, so every result, written with `kql::response_json`, must read back with
//! dfcsync's row reader as the same number of rows; and every error must turn into the
//! service's error body.

#![no_main]

use std::sync::OnceLock;

use dfcsync::observe::rows::read_rows;
use dfcsync_fuzz::{demo_db, demo_now};
use libfuzzer_sys::fuzz_target;

fn empty() -> &'static kql::Database {
    static EMPTY: OnceLock<kql::Database> = OnceLock::new();
    EMPTY.get_or_init(kql::Database::new)
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let opts = kql::QueryOptions::new(demo_now());
    for db in [demo_db(), empty()] {
        match kql::run(query, db, &opts) {
            Ok(table) => {
                let body = kql::response_json(std::slice::from_ref(&table)).to_string();
                let read = read_rows(body.as_bytes(), &mut |_| {})
                    .unwrap_or_else(|e| panic!("the result does not read back: {e}\n{body}"));
                assert_eq!(read, table.rows.len(), "rows read back\n{body}");
            }
            Err(e) => {
                let _ = e.to_log_analytics_error();
            }
        }
    }
});
