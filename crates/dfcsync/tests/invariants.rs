//! Property tests for the invariants of `semantics.md`, on generated histories: random alert
//! and incident changes by people and by DfC, interleaved with runs of dfcsync whose plans
//! the platform model carries out.

mod support;

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::Value;

use dfcsync::decide::{decide, in_scope, status_set_by_tool};
use dfcsync::model::{ActionKind, Fingerprint, IncidentStatus};
use dfcsync::observe::build_snapshot;
use dfcsync::policy::ReopenPolicy;
use support::history::{play, setup};

/// The same rows in another order (a permutation drawn from `seed`).
fn shuffled(json: &str, seed: u64) -> String {
    let mut v: Value = serde_json::from_str(json).unwrap();
    let rows = v["tables"][0]["rows"].as_array_mut().unwrap();
    let mut state = seed | 1;
    for i in (1..rows.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        rows.swap(i, (state % (i as u64 + 1)) as usize);
    }
    v.to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn pure_and_independent_of_row_order(s in setup(), seed in any::<u64>()) {
        let w = play(&s);
        let plan = w.plan();
        prop_assert_eq!(&w.plan(), &plan, "the same input gives the same plan");
        let snap = build_snapshot(
            shuffled(&w.incidents_json(), seed).as_bytes(),
            shuffled(&w.alerts_json(), seed.rotate_left(17)).as_bytes(),
        ).unwrap();
        prop_assert_eq!(decide(&snap, &w.policy, w.now), plan);
    }

    #[test]
    fn never_closes_with_an_open_or_unknown_alert(s in setup()) {
        let w = play(&s);
        let snap = w.snapshot();
        let plan = decide(&snap, &w.policy, w.now);
        for a in plan.actions.iter().filter(|a| a.kind == ActionKind::Close) {
            let inc = snap.incidents.iter().find(|i| i.name == a.incident).unwrap();
            for id in &inc.alert_ids {
                let alert = snap.alerts.get(id.id()).and_then(|r| r.as_ref().ok());
                prop_assert!(
                    alert.is_some_and(|al| al.status.is_terminal()),
                    "closing incident {} with alert {} in {:?}", a.incident_number, id, alert.map(|al| &al.status)
                );
            }
        }
    }

    #[test]
    fn never_touches_out_of_scope_or_closed_by_a_person(s in setup()) {
        let w = play(&s);
        let snap = w.snapshot();
        let plan = decide(&snap, &w.policy, w.now);
        let by_name: HashMap<&str, _> = snap.incidents.iter().map(|i| (&*i.name, i)).collect();
        for a in &plan.actions {
            let inc = by_name[&*a.incident];
            prop_assert!(in_scope(inc, &snap.alerts, &w.policy, w.now));
            if w.policy.reopen != ReopenPolicy::Always && inc.status == IncidentStatus::Closed {
                prop_assert!(status_set_by_tool(inc), "touched incident {} closed by a person", inc.number);
            }
        }
    }

    #[test]
    fn one_step_reaches_a_fixed_point(s in setup()) {
        let mut w = play(&s);
        let plan = w.plan();
        let now = w.now;
        w.apply(&plan, (now - support::t0()).num_minutes());
        let again = w.plan();
        prop_assert!(again.actions.is_empty(), "after {:#?}\nthen {:#?}", plan.actions, again.actions);
    }

    #[test]
    fn the_current_mark_means_no_action(s in setup()) {
        let w = play(&s);
        let snap = w.snapshot();
        let plan = decide(&snap, &w.policy, w.now);
        for inc in &snap.incidents {
            let alerts: Option<Vec<_>> = inc.alert_ids.iter()
                .map(|id| snap.alerts.get(id.id()).and_then(|r| r.as_ref().ok()))
                .collect();
            let Some(alerts) = alerts else { continue };
            let fp = Fingerprint::of_alerts(alerts.iter().map(|a| (&*a.id, &a.status, a.changed_at)));
            if inc.marks.iter().any(|m| m.mark.fingerprint == fp) {
                prop_assert!(plan.actions.iter().all(|a| a.incident != inc.name));
            }
        }
    }
}

#[test]
fn generated_histories_exercise_every_action() {
    // The generator must reach every kind of action, or the properties above prove little.
    let mut seen = std::collections::HashSet::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..600 {
        let s = setup().new_tree(&mut runner).unwrap().current();
        let w = play(&s);
        for a in w.plan().actions {
            seen.insert(a.kind);
        }
    }
    for kind in ActionKind::ALL {
        assert!(seen.contains(&kind), "no generated history leads to {kind}");
    }
}
