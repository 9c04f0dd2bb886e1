//! Generated histories for property tests: random alert and incident changes by people and
//! by DfC, interleaved with runs of dfcsync whose plans the platform model carries out.

use proptest::prelude::*;

use dfcsync::policy::ReopenPolicy;

use super::{ANALYST, DFC, World};

#[derive(Debug, Clone)]
pub enum Event {
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
pub struct Setup {
    pub n_alerts: usize,
    pub n_incidents: usize,
    /// Alerts with no row at all.
    pub missing: Vec<bool>,
    /// Alerts of another product.
    pub other_product: Vec<bool>,
    pub events: Vec<(Event, i64)>,
    pub reopen: ReopenPolicy,
    pub respect_manual_changes: bool,
    pub writeback: bool,
    pub echo_keeps_dismissed: bool,
}

pub fn setup() -> impl Strategy<Value = Setup> {
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
pub fn play(s: &Setup) -> World {
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
            DFC
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
