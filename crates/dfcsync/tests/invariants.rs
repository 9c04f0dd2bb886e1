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
use support::{ANALYST, World};

#[derive(Debug, Clone)]
enum Event {
    AlertStatus {
        alert: usize,
        status: &'static str,
    },
    IncidentStatus {
        incident: usize,
        status: &'static str,
    },
    Comment {
        incident: usize,
    },
    Owner {
        incident: usize,
    },
    Reingest {
        alert: usize,
    },
    RunTool,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (0..6usize, prop::sample::select(vec!["New", "InProgress", "Resolved", "Dismissed", "Unknown"]))
            .prop_map(|(alert, status)| Event::AlertStatus { alert, status }),
        2 => (0..4usize, prop::sample::select(vec!["New", "Active", "Closed"]))
            .prop_map(|(incident, status)| Event::IncidentStatus { incident, status }),
        1 => (0..4usize).prop_map(|incident| Event::Comment { incident }),
        1 => (0..4usize).prop_map(|incident| Event::Owner { incident }),
        1 => (0..6usize).prop_map(|alert| Event::Reingest { alert }),
        3 => Just(Event::RunTool),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    n_alerts: usize,
    n_incidents: usize,
    /// Alerts with no row at all.
    missing: Vec<bool>,
    /// Alerts of another product.
    other_product: Vec<bool>,
    events: Vec<(Event, i64)>,
    reopen: ReopenPolicy,
    respect_manual_changes: bool,
    writeback: bool,
    echo_keeps_dismissed: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        1..=6usize,
        1..=4usize,
        prop::collection::vec(prop::bool::weighted(0.07), 6),
        prop::collection::vec(prop::bool::weighted(0.15), 6),
        prop::collection::vec((event(), 1..40i64), 0..24),
        prop::sample::select(vec![
            ReopenPolicy::Own,
            ReopenPolicy::Never,
            ReopenPolicy::Always,
        ]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                n_alerts,
                n_incidents,
                missing,
                other_product,
                events,
                reopen,
                respect,
                writeback,
                keeps,
            )| Setup {
                n_alerts: n_alerts.max(n_incidents),
                n_incidents,
                missing,
                other_product,
                events,
                reopen,
                respect_manual_changes: respect,
                writeback,
                echo_keeps_dismissed: keeps,
            },
        )
}

/// Builds the world the setup describes, running dfcsync where the events say so.
fn play(s: &Setup) -> World {
    let mut w = World::new();
    w.policy.reopen = s.reopen;
    w.policy.respect_manual_changes = s.respect_manual_changes;
    w.policy.writeback = s.writeback;
    w.echo_keeps_dismissed = s.echo_keeps_dismissed;
    let start = w.t(-24 * 60);
    let product = |i: usize| {
        if s.other_product[i] {
            "Microsoft Defender for Endpoint"
        } else {
            support::DFC
        }
    };
    let mut ids_of: Vec<Vec<String>> = vec![Vec::new(); s.n_incidents];
    for a in 0..s.n_alerts {
        if !s.missing[a] {
            w.alert_at(&format!("a{a}"), "New", start, product(a));
        }
        ids_of[a % s.n_incidents].push(format!("a{a}"));
    }
    for (i, ids) in ids_of.iter().enumerate() {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        w.incident(i as i64 + 1, &refs, -24 * 60 + 1);
    }
    let mut minute = -24 * 60 + 2;
    for (ev, step) in &s.events {
        minute += step;
        w.now = w.t(minute);
        match ev {
            Event::AlertStatus { alert, .. } | Event::Reingest { alert }
                if *alert >= s.n_alerts || s.missing[*alert] => {}
            Event::AlertStatus { alert, status } => {
                w.alert_at(&format!("a{alert}"), status, w.t(minute), product(*alert));
            }
            Event::Reingest { alert } => {
                w.reingest(&format!("a{alert}"), minute);
            }
            Event::IncidentStatus { incident, .. }
            | Event::Comment { incident }
            | Event::Owner { incident }
                if *incident >= s.n_incidents => {}
            Event::IncidentStatus {
                incident,
                status: "Closed",
            } => {
                w.close(
                    *incident,
                    minute,
                    ANALYST,
                    "FalsePositive",
                    "IncorrectAlertLogic",
                    "by hand",
                );
            }
            Event::IncidentStatus { incident, status } => {
                w.set_status(*incident, status, minute, ANALYST);
            }
            Event::Comment { incident } => {
                w.comment(*incident, minute, ANALYST, "looking into it");
            }
            Event::Owner { incident } => {
                w.set_owner(*incident, minute, ANALYST, ANALYST);
            }
            Event::RunTool => {
                let plan = w.plan();
                w.apply(&plan, minute);
                minute += 1;
            }
        }
    }
    w.now = w.t(minute + 1);
    w
}

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
                let alert = snap.alerts.get(id).and_then(|r| r.as_ref().ok());
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
        let by_name: HashMap<&str, _> = snap.incidents.iter().map(|i| (i.name.as_str(), i)).collect();
        for a in &plan.actions {
            let inc = by_name[a.incident.as_str()];
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
                .map(|id| snap.alerts.get(id).and_then(|r| r.as_ref().ok()))
                .collect();
            let Some(alerts) = alerts else { continue };
            let fp = Fingerprint::of_alerts(alerts.iter().map(|a| (a.id.as_str(), &a.status, a.changed_at)));
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
