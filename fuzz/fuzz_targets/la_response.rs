//! Fuzz target (b): the Log Analytics response parser, `observe::build_snapshot_combined`
//! (the streaming row reader `observe::rows::read_rows` and the fold into a snapshot) on any
//! bytes, and `build_snapshot` (the two files of `dfcsync replay`) on the same bytes.
//!
//! Beyond "no panic": a snapshot that reads goes through the decision engine (`decide`, at
//! the answer's clock as a cycle does); and, as `observe/build.rs` promises, the snapshot
//! does not depend on the order of the rows: a JSON document and the same document with its
//! rows reversed (re-serialized both, so that both are read the same way) give the same
//! incidents, held incidents, alerts and warnings.

#![no_main]

use dfcsync::decide::decide;
use dfcsync::observe::build::build_snapshot;
use dfcsync::observe::build_snapshot_combined;
use dfcsync::policy::Policy;
use dfcsync_fuzz::{demo_now, normalized};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Reverses the rows `read_rows` reads (a top-level array of row objects, or the `rows` of
/// a bare table or of the first of `tables`); false when there are none to reverse.
fn reverse_rows(doc: &mut Value) -> bool {
    let mut done = false;
    let mut reverse = |v: Option<&mut Value>| {
        if let Some(Value::Array(rows)) = v
            && rows.len() > 1
        {
            rows.reverse();
            done = true;
        }
    };
    match doc {
        Value::Array(_) => reverse(Some(doc)),
        Value::Object(o) => {
            reverse(o.get_mut("rows"));
            let first = o
                .get_mut("tables")
                .and_then(Value::as_array_mut)
                .and_then(|t| t.first_mut())
                .and_then(Value::as_object_mut);
            if let Some(t) = first {
                reverse(t.get_mut("rows"));
            }
        }
        _ => {}
    }
    done
}

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = build_snapshot_combined(data) {
        let now = snapshot.server_now.unwrap_or_else(demo_now);
        let _ = decide(&snapshot, &Policy::default(), now);
    }
    let _ = build_snapshot(data, data);

    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mut reversed = doc.clone();
    if !reverse_rows(&mut reversed) {
        return;
    }
    let forward = serde_json::to_vec(&doc).unwrap();
    let backward = serde_json::to_vec(&reversed).unwrap();
    match (
        build_snapshot_combined(&forward[..]),
        build_snapshot_combined(&backward[..]),
    ) {
        (Ok(a), Ok(b)) => assert_eq!(
            normalized(a),
            normalized(b),
            "the snapshot depends on the order of the rows"
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("the order of the rows decides whether the answer reads: {a:?} / {b:?}"),
    }
});
