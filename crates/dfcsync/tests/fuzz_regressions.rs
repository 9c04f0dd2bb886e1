//! Inputs the fuzz tests (`fuzz_parsers.rs`) found to crash, as regression tests (see
//! docs/reliability.md, "Fuzzing (proptest)").

use kql::{Database, QueryOptions};

fn run(q: &str) -> Result<kql::Table, kql::KqlError> {
    kql::run(
        q,
        &Database::new(),
        &QueryOptions::new("2026-11-27T12:00:00Z".parse().unwrap()),
    )
}

/// Runs `KQL_QUERY` (a helper for minimising a crash by hand).
#[test]
#[ignore = "a helper: KQL_QUERY='...'"]
fn run_the_query_in_kql_query() {
    let q = std::env::var("KQL_QUERY").expect("KQL_QUERY");
    println!("{:?}", run(&q).map(|t| t.rows.len()));
}

/// Bug 3, fixed (found by `kql_mutated_queries`): comparing a dynamic array or bag with a scalar
/// (or with a dynamic scalar) recurses without end: `compare_values` turns the dynamic side
/// into a `Value` with `json_scalar_to_value`, which leaves arrays and bags dynamic, and calls
/// itself with the same pair. The stack overflows and the process aborts (in the emulator,
/// any Log Analytics query such as `SecurityIncident | where AlertIds == "x"` would take the
/// whole emulator down). Expected: a null comparison (false for `==`), never a crash.
#[test]
fn comparing_a_dynamic_array_or_bag_with_a_scalar_does_not_overflow_the_stack() {
    for q in [
        "print x = dynamic({}) == 6",
        "print x = dynamic([1]) < 6",
        "print x = 6 == dynamic({})",
        "print x = dynamic([1]) == 'a'",
        "print x = dynamic([]) == dynamic(6)",
        // The input the fuzzer found (a mutated seed query).
        "datatable(a:long, b:string, c:dynamic)[1, 'x', dynamic({\"k\": [1]})<6, 2, 'y', dynamic(null)] | extend k = c.k[0] | join kind=leftouter (datatable(a:long)[1]) on a",
    ] {
        let _ = run(q);
    }
}

/// The same pairs that do not crash today, kept so a fix does not change them.
#[test]
fn comparisons_of_dynamic_scalars_still_work() {
    for q in [
        "print x = dynamic(1) < 6",
        "print x = dynamic('a') < 6",
        "print x = dynamic([1]) < dynamic([1])",
    ] {
        run(q).unwrap_or_else(|e| panic!("{q}: {e:?}"));
    }
}
