//! One test per row and guard of `semantics.md`, and per "where we differ from the original
//! query" item, each built from rows as Log Analytics returns them.

mod support;

use dfcsync::decide::Plan;
use dfcsync::model::{ActionKind, Classification, ClassificationReason, Mark};
use dfcsync::policy::ReopenPolicy;
use support::{ANALYST, DFC, TOOL, World};

fn kinds(plan: &Plan) -> Vec<(i64, ActionKind)> {
    plan.actions
        .iter()
        .map(|a| (a.incident_number, a.kind))
        .collect()
}

fn only_action(plan: &Plan) -> &dfcsync::decide::PlannedAction {
    assert_eq!(
        plan.actions.len(),
        1,
        "expected one action: {:#?}",
        plan.actions
    );
    assert!(plan.held.is_empty(), "nothing held: {:#?}", plan.held);
    &plan.actions[0]
}

fn assert_nothing(plan: &Plan) {
    assert!(
        plan.actions.is_empty(),
        "no action expected: {:#?}",
        plan.actions
    );
    assert!(
        plan.held.is_empty(),
        "nothing held expected: {:#?}",
        plan.held
    );
}

fn assert_held(plan: &Plan, number: i64, reason_part: &str) {
    assert!(
        plan.actions.is_empty(),
        "held incidents get no action: {:#?}",
        plan.actions
    );
    assert_eq!(plan.held.len(), 1, "{:#?}", plan.held);
    assert_eq!(plan.held[0].incident_number, Some(number));
    assert!(
        plan.held[0].reason.contains(reason_part),
        "reason {:?} should contain {reason_part:?}",
        plan.held[0].reason
    );
}

/// One DfC alert, one New incident.
fn one_alert_world(status_history: &[(&str, i64)]) -> World {
    let mut w = World::new();
    w.alert("a1", "New", -180);
    w.incident(1, &["a1"], -179);
    for (status, minutes) in status_history {
        w.alert("a1", status, *minutes);
    }
    w
}

// ---- Step 1: the verdict of the alerts ----

#[test]
fn verdict_missing_alert_row_holds() {
    let mut w = World::new();
    w.incident(1, &["a-missing"], -60);
    assert_held(&w.plan(), 1, "a-missing has no row in SecurityAlert");
}

#[test]
fn verdict_unknown_or_unlisted_status_holds() {
    for status in ["Unknown", "Reopened"] {
        let w = one_alert_world(&[(status, -60)]);
        assert_held(&w.plan(), 1, status);
    }
}

#[test]
fn verdict_an_alert_list_at_the_cap_holds() {
    let mut w = World::new();
    let ids: Vec<String> = (0..151).map(|i| format!("a{i}")).collect();
    for id in &ids {
        w.alert(id, "Resolved", -60);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    w.incident(1, &refs, -59);
    assert_held(&w.plan(), 1, "151 alerts");
    // Sentinel cuts the list at 150: a list of exactly 150 may be cut, and is held too.
    let mut w = World::new();
    for id in &ids[..150] {
        w.alert(id, "Resolved", -60);
    }
    w.incident(1, &refs[..150], -59);
    assert_held(&w.plan(), 1, "lists 150 alerts");
    // 149 is below the cap: it closes.
    let mut w = World::new();
    for id in &ids[..149] {
        w.alert(id, "Resolved", -60);
    }
    w.incident(1, &refs[..149], -59);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

#[test]
fn comments_are_kept_under_the_portals_limit() {
    // 149 alerts (under the cap) with their names and links make a list of about 45,000
    // characters: the comment shortens it, says how many it left out, and keeps the mark.
    let mut w = World::new();
    let ids: Vec<String> = (0..149).map(|i| format!("a{i}")).collect();
    for id in &ids {
        w.alert(id, "Resolved", -60);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    w.incident(1, &refs, -59);
    let a = only_action(&w.plan()).clone();
    assert_eq!(a.kind, ActionKind::Close);
    for text in [Some(&a.comment), a.classification_comment.as_ref()]
        .into_iter()
        .flatten()
    {
        let n = text.chars().count();
        assert!(n <= dfcsync::decide::MAX_COMMENT_CHARS, "{n} characters");
        assert!(
            text.ends_with(&a.mark.to_string()),
            "the mark stays at the end"
        );
    }
    let n = a.comment.chars().count();
    assert!(n > 20_000, "the list is shortened, not dropped: {n}");
    assert!(
        a.comment.contains("more alert(s)"),
        "{}",
        &a.comment[a.comment.len() - 300..]
    );
    // A short list is written whole.
    let mut w = one_alert_world(&[("Resolved", -60)]);
    w.policy.writeback = false;
    let a = only_action(&w.plan()).clone();
    assert!(!a.comment.contains("more alert(s)"), "{}", a.comment);
}

#[test]
fn verdict_more_alerts_than_listed_holds() {
    // AdditionalData.alertsCount says 3; AlertIds lists 2, both finished: the third is unseen.
    let mut w = World::new();
    w.alert("a1", "Resolved", -60).alert("a2", "Resolved", -60);
    let i = w.incident(1, &["a1", "a2"], -59);
    w.incidents[i].rows[0].alerts_count = Some(3);
    assert_held(
        &w.plan(),
        1,
        "holds 3 alerts (AdditionalData.alertsCount) but lists 2",
    );
    // A list with a duplicate id counts it once, as alertsCount does not.
    let mut w = World::new();
    w.alert("a1", "Resolved", -60);
    let i = w.incident(1, &["a1", "a1"], -59);
    assert_eq!(w.incidents[i].rows[0].alert_ids.len(), 2);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

#[test]
fn verdict_all_finished_with_one_resolved_is_true_positive() {
    let mut w = World::new();
    w.alert("a1", "New", -120).alert("a2", "New", -120);
    w.incident(1, &["a1", "a2"], -119);
    w.alert("a1", "Resolved", -60).alert("a2", "Dismissed", -50);
    let a = only_action(&w.plan()).clone();
    assert_eq!(a.kind, ActionKind::Close);
    let c = a.closure.unwrap();
    assert_eq!(c.classification(), Classification::TruePositive);
    assert_eq!(c.reason(), Some(ClassificationReason::SuspiciousActivity));
}

#[test]
fn verdict_all_dismissed_is_benign_positive() {
    let mut w = World::new();
    w.alert("a1", "New", -120).alert("a2", "New", -120);
    w.incident(1, &["a1", "a2"], -119);
    w.alert("a1", "Dismissed", -60)
        .alert("a2", "Dismissed", -50);
    let c = only_action(&w.plan()).closure.unwrap();
    assert_eq!(c.classification(), Classification::BenignPositive);
    assert_eq!(
        c.reason(),
        Some(ClassificationReason::SuspiciousButExpected)
    );
}

#[test]
fn verdict_working_when_one_in_progress() {
    // New + InProgress + Resolved: at least one InProgress.
    let mut w = World::new();
    w.alert("a1", "New", -120)
        .alert("a2", "New", -120)
        .alert("a3", "New", -120);
    w.incident(1, &["a1", "a2", "a3"], -119);
    w.alert("a2", "InProgress", -60)
        .alert("a3", "Resolved", -50);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Activate);
}

#[test]
fn verdict_open_when_new_and_none_in_progress() {
    let mut w = World::new();
    w.alert("a1", "New", -120).alert("a2", "New", -120);
    w.incident(1, &["a1", "a2"], -119);
    w.alert("a2", "Resolved", -50);
    assert_nothing(&w.plan());
}

#[test]
fn verdict_an_incident_listing_no_alert_holds() {
    let mut w = World::new();
    w.incident(1, &[], -60);
    assert_held(&w.plan(), 1, "lists no alerts");
}

#[test]
fn configured_classifications_are_used() {
    let mut w = one_alert_world(&[("Dismissed", -60)]);
    w.policy.dismissed =
        dfcsync::model::Closure::parse("FalsePositive", Some("InaccurateData")).unwrap();
    let c = only_action(&w.plan()).closure.unwrap();
    assert_eq!(c.classification(), Classification::FalsePositive);
    assert_eq!(c.reason(), Some(ClassificationReason::InaccurateData));
}

// ---- Step 2: the action ----

#[test]
fn new_incident_done_closes_with_comment_and_mark() {
    let w = one_alert_world(&[("Resolved", -60)]);
    let a = only_action(&w.plan()).clone();
    assert_eq!(a.kind, ActionKind::Close);
    assert_eq!(a.incident_number, 1);
    let cc = a.classification_comment.unwrap();
    assert!(
        cc.ends_with(&a.mark.to_string()),
        "the mark ends the classification comment: {cc}"
    );
    assert!(a.comment.ends_with(&a.mark.to_string()), "{}", a.comment);
    assert!(
        a.comment.contains("2517228307705103557_a1"),
        "names the DfC alert: {}",
        a.comment
    );
    assert!(a.comment.contains("Resolved"), "{}", a.comment);
    assert!(
        a.comment.contains("https://portal.azure.com/"),
        "links the alert: {}",
        a.comment
    );
    assert_eq!(a.mark, Mark::new(ActionKind::Close, a.fingerprint));
}

#[test]
fn active_incident_done_closes_when_person_acted_before_the_alert() {
    let mut w = one_alert_world(&[]);
    w.set_status(0, "Active", -90, ANALYST);
    w.alert("a1", "Resolved", -60);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

#[test]
fn new_incident_working_activates() {
    let w = one_alert_world(&[("InProgress", -60)]);
    let plan = w.plan();
    let a = only_action(&plan);
    assert_eq!(a.kind, ActionKind::Activate);
    assert_eq!(a.new_status.as_ref().map(|s| s.as_str()), Some("Active"));
    assert!(a.closure.is_none());
}

#[test]
fn active_incident_working_needs_nothing() {
    let mut w = one_alert_world(&[("InProgress", -60)]);
    w.set_status(0, "Active", -90, ANALYST);
    assert_nothing(&w.plan());
}

#[test]
fn open_verdict_needs_nothing_for_new_or_active() {
    let w = one_alert_world(&[]);
    assert_nothing(&w.plan());
    let mut w = one_alert_world(&[]);
    w.set_status(0, "Active", -90, ANALYST);
    assert_nothing(&w.plan());
}

/// The tool closes an incident (with the echo), then the alert is reactivated in DfC.
fn closed_by_tool_then_alert_changes(new_status: &str) -> World {
    let mut w = one_alert_world(&[("Resolved", -120)]);
    w.now = w.t(-100);
    let plan = w.plan();
    w.apply(&plan, -100);
    w.alert("a1", new_status, 10);
    w.now = w.t(30);
    w
}

#[test]
fn closed_by_tool_and_alert_reactivated_reopens() {
    for status in ["New", "InProgress"] {
        let w = closed_by_tool_then_alert_changes(status);
        let plan = w.plan();
        let a = only_action(&plan);
        assert_eq!(a.kind, ActionKind::Reopen, "{status}");
        assert_eq!(a.new_status.as_ref().map(|s| s.as_str()), Some("Active"));
    }
}

#[test]
fn reopen_policy_never_leaves_it_closed() {
    let mut w = closed_by_tool_then_alert_changes("New");
    w.policy.reopen = ReopenPolicy::Never;
    assert_nothing(&w.plan());
}

#[test]
fn reopen_needs_the_alert_change_after_the_close() {
    // Closed by the tool at -60 (the classification comment carries the mark), but the
    // alert's current status began at -90, before the close.
    let mut w = one_alert_world(&[("Resolved", -120)]);
    w.bidirectional = false;
    w.now = w.t(-100);
    let plan = w.plan();
    w.apply(&plan, -100);
    // Rewrite history: the alert went back to New before the close, and that row is newer.
    w.alerts.retain(|a| a.status != "Resolved");
    w.now = w.t(60);
    assert_nothing(&w.plan());
}

#[test]
fn closed_by_tool_and_done_needs_nothing_the_echo() {
    for keeps_dismissed in [false, true] {
        let mut w = one_alert_world(&[("Dismissed", -120)]);
        w.echo_keeps_dismissed = keeps_dismissed;
        w.now = w.t(-100);
        let plan = w.plan();
        assert_eq!(
            plan.actions[0].closure.unwrap().classification(),
            Classification::BenignPositive
        );
        w.apply(&plan, -100);
        // The echo has turned the Dismissed alert Resolved (unless kept): no new close, no
        // flip to TruePositive.
        w.now = w.t(60);
        assert_nothing(&w.plan());
    }
}

#[test]
fn closed_by_person_is_left_alone() {
    for status in ["New", "InProgress", "Resolved"] {
        let mut w = one_alert_world(&[]);
        w.close(
            0,
            -100,
            ANALYST,
            "FalsePositive",
            "IncorrectAlertLogic",
            "not ours",
        );
        w.alert("a1", status, -50);
        assert_nothing(&w.plan());
    }
}

#[test]
fn closed_by_person_reopens_with_policy_always() {
    let mut w = one_alert_world(&[]);
    w.close(
        0,
        -100,
        ANALYST,
        "FalsePositive",
        "IncorrectAlertLogic",
        "not ours",
    );
    w.alert("a1", "New", -50);
    w.policy.reopen = ReopenPolicy::Always;
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Reopen);
    // …but not when the alert changed before the person closed it.
    let mut w = one_alert_world(&[("InProgress", -120)]);
    w.bidirectional = false;
    w.close(
        0,
        -100,
        ANALYST,
        "FalsePositive",
        "IncorrectAlertLogic",
        "not ours",
    );
    w.policy.reopen = ReopenPolicy::Always;
    assert_nothing(&w.plan());
}

#[test]
fn hold_is_reported_and_nothing_done() {
    let mut w = World::new();
    w.alert("a1", "Resolved", -60);
    w.incident(1, &["a1", "a2"], -59);
    assert_held(&w.plan(), 1, "a2");
}

#[test]
fn unknown_incident_status_holds() {
    let mut w = one_alert_world(&[("Resolved", -60)]);
    w.set_status(0, "Reopened", -30, ANALYST);
    assert_held(&w.plan(), 1, "Reopened");
}

// ---- Guards ----

#[test]
fn guard_already_done_the_current_mark() {
    let mut w = one_alert_world(&[("Resolved", -120)]);
    w.now = w.t(-100);
    let plan = w.plan();
    w.apply(&plan, -100);
    // The analyst reopens on purpose; the alerts are unchanged: the tool leaves it.
    w.set_status(0, "Active", 20, ANALYST);
    w.now = w.t(30);
    assert_nothing(&w.plan());
}

#[test]
fn guard_person_acted_after_the_alert_posts_one_notice() {
    let mut w = one_alert_world(&[("Resolved", -120)]);
    w.set_status(0, "Active", -60, ANALYST);
    let plan = w.plan();
    let a = only_action(&plan).clone();
    assert_eq!(a.kind, ActionKind::Notice);
    assert!(a.new_status.is_none() && a.closure.is_none());
    assert!(
        a.comment
            .ends_with(&Mark::new(ActionKind::Notice, a.fingerprint).to_string())
    );
    assert!(a.comment.contains(ANALYST), "{}", a.comment);
    assert!(a.why.contains("closed as TruePositive"), "{}", a.why);
    w.apply(&plan, 0);
    assert_nothing(&w.plan());
}

#[test]
fn guard_person_acted_after_the_alert_can_be_overridden() {
    let mut w = one_alert_world(&[("Resolved", -120)]);
    w.set_status(0, "Active", -60, ANALYST);
    w.policy.respect_manual_changes = false;
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

#[test]
fn guard_does_not_apply_to_new_incidents() {
    // A person set the incident back to New after the alert changed: New is not a decision
    // to keep working, so the tool closes.
    let mut w = one_alert_world(&[("Resolved", -120)]);
    w.set_status(0, "Active", -100, ANALYST);
    w.set_status(0, "New", -60, ANALYST);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

#[test]
fn status_since_is_the_start_of_the_newest_run_not_the_newest_row() {
    // Active set at -100 (before the alert resolved at -90), then comments at -30 add rows:
    // the status did not change after the alert, so the tool closes.
    let mut w = one_alert_world(&[("Resolved", -90)]);
    w.set_status(0, "Active", -100, ANALYST);
    w.comment(0, -30, ANALYST, "still looking");
    w.set_owner(0, -20, ANALYST, ANALYST);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

#[test]
fn changed_at_ignores_reingested_alert_rows() {
    // The alert resolved at -90 and was re-ingested at -10; the analyst set Active at -60:
    // a person acted after the alert changed, whatever the newest alert row says.
    let mut w = one_alert_world(&[("Resolved", -90)]);
    w.set_status(0, "Active", -60, ANALYST);
    w.reingest("a1", -10);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Notice);
}

#[test]
fn active_set_by_tool_is_recognised_by_its_comment() {
    // The tool activated at -100; the alert is then resolved: close (no notice), since the
    // status is the tool's own.
    let mut w = one_alert_world(&[("InProgress", -120)]);
    w.now = w.t(-110);
    let plan = w.plan();
    w.apply(&plan, -110); // Active at -110
    w.alert("a1", "Resolved", -100);
    w.now = w.t(0);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

#[test]
fn an_old_tool_comment_does_not_make_a_later_status_the_tools() {
    let mut w = one_alert_world(&[("InProgress", -120)]);
    w.now = w.t(-110);
    let plan = w.plan();
    w.apply(&plan, -110); // the tool's activate comment at -110
    w.set_status(0, "New", -100, ANALYST);
    w.set_status(0, "Active", -50, ANALYST); // a person's Active, long after the comment
    w.alert("a1", "Resolved", -80); // before the person's Active
    w.now = w.t(0);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Notice);
}

// ---- Scope ----

#[test]
fn out_of_scope_incidents_are_not_listed() {
    // Another product's incident.
    let mut w = World::new();
    w.alert_at(
        "m1",
        "Resolved",
        w.t(-60),
        "Microsoft Defender for Endpoint",
    );
    let i = w.incident(1, &["m1"], -59);
    w.incidents[i].product_names = vec!["Microsoft Defender for Endpoint".into()];
    assert_nothing(&w.plan());
    // Created before max_age.
    let mut w = one_alert_world(&[("Resolved", -60)]);
    w.policy.max_age = chrono::TimeDelta::hours(2);
    assert_nothing(&w.plan());
}

#[test]
fn defender_portal_incident_with_mixed_products_closes_only_when_all_are_finished() {
    // A Microsoft XDR incident lists no DfC product name but holds a DfC alert and an
    // Endpoint alert.
    let mut w = World::new();
    w.alert("d1", "New", -120);
    w.alert_at("m1", "New", w.t(-120), "Microsoft Defender for Endpoint");
    let i = w.incident(1, &["d1", "m1"], -119);
    w.incidents[i].product_names = vec![];
    w.alert("d1", "Resolved", -60);
    assert_nothing(&w.plan());
    w.alert_at(
        "m1",
        "Resolved",
        w.t(-30),
        "Microsoft Defender for Endpoint",
    );
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

// ---- Writeback ----

#[test]
fn writeback_sets_new_alerts_in_progress_when_a_person_works_the_incident() {
    let mut w = one_alert_world(&[]);
    w.policy.writeback = true;
    w.set_status(0, "Active", -60, ANALYST);
    let plan = w.plan();
    let a = only_action(&plan).clone();
    assert_eq!(a.kind, ActionKind::Writeback);
    assert_eq!(a.alerts_to_set_in_progress.len(), 1);
    let t = &a.alerts_to_set_in_progress[0];
    assert_eq!(t.name, "2517228307705103557_a1");
    assert_eq!(&*t.location, "westeurope");
    assert_eq!(t.resource_group.as_deref(), Some("rg-app"));
    w.apply(&plan, 0);
    assert_nothing(&w.plan());
    // Off by default.
    let mut w = one_alert_world(&[]);
    w.set_status(0, "Active", -60, ANALYST);
    assert_nothing(&w.plan());
}

#[test]
fn writeback_addresses_only_the_incidents_dfc_alerts() {
    // A Defender portal incident holds a DfC alert and an Endpoint alert (no AlertLink into
    // DfC), both New; an analyst owns it. The DfC alert is written back, the Endpoint one is
    // left alone, and the incident is activated: nothing is held.
    let mut w = World::new();
    w.policy.writeback = true;
    w.alert("d1", "New", -120);
    w.alert_at("m1", "New", w.t(-120), "Microsoft Defender for Endpoint");
    let i = w.incident(1, &["d1", "m1"], -119);
    w.set_owner(i, -60, ANALYST, ANALYST);
    let plan = w.plan();
    assert!(plan.held.is_empty(), "{:#?}", plan.held);
    assert_eq!(
        kinds(&plan),
        vec![(1, ActionKind::Writeback), (1, ActionKind::Activate)]
    );
    let targets: Vec<&str> = plan.actions[0]
        .alerts_to_set_in_progress
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(targets, vec!["2517228307705103557_d1"]);
}

#[test]
fn writeback_holds_an_incident_whose_alert_cannot_be_addressed() {
    // The alert's AlertLink is empty: nothing says where it lives in Defender for Cloud.
    let mut w = one_alert_world(&[]);
    w.policy.writeback = true;
    w.set_status(0, "Active", -60, ANALYST);
    let mut alerts: serde_json::Value = serde_json::from_str(&w.alerts_json()).unwrap();
    let table = &mut alerts["tables"][0];
    let link = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == "AlertLink")
        .unwrap();
    for row in table["rows"].as_array_mut().unwrap() {
        row[link] = "".into();
    }
    let snapshot = dfcsync::observe::build_snapshot(
        w.incidents_json().as_bytes(),
        alerts.to_string().as_bytes(),
    )
    .unwrap();
    let plan = dfcsync::decide::decide(&snapshot, &w.policy, w.now);
    assert_held(&plan, 1, "has no AlertLink");
    // Without writeback the same incident needs nothing (Active, its alert New).
    w.policy.writeback = false;
    assert_nothing(&dfcsync::decide::decide(&snapshot, &w.policy, w.now));
}

#[test]
fn writeback_for_an_owned_new_incident_also_activates_it() {
    let mut w = one_alert_world(&[]);
    w.policy.writeback = true;
    w.set_owner(0, -60, ANALYST, ANALYST);
    let plan = w.plan();
    assert_eq!(
        kinds(&plan),
        vec![(1, ActionKind::Writeback), (1, ActionKind::Activate)]
    );
    w.apply(&plan, 0);
    assert_nothing(&w.plan());
}

// ---- Where we differ from the original query ----

#[test]
fn differ_1_resolved_and_dismissed_close_once_as_true_positive() {
    let mut w = World::new();
    w.alert("a1", "New", -120).alert("a2", "New", -120);
    w.incident(1, &["a1", "a2"], -119);
    w.alert("a1", "Dismissed", -60).alert("a2", "Resolved", -50);
    let plan = w.plan();
    assert_eq!(kinds(&plan), vec![(1, ActionKind::Close)]);
    assert_eq!(
        plan.actions[0].closure.unwrap().classification(),
        Classification::TruePositive
    );
}

#[test]
fn differ_2_missing_alert_holds_instead_of_closing() {
    let mut w = World::new();
    w.alert("a1", "Resolved", -60);
    w.incident(1, &["a1", "a-gone"], -119);
    assert_held(&w.plan(), 1, "a-gone");
}

#[test]
fn differ_3_analyst_reopen_is_not_fought() {
    let mut w = one_alert_world(&[("Resolved", -120)]);
    w.now = w.t(-100);
    for cycle in 0..3 {
        let plan = w.plan();
        if cycle == 0 {
            assert_eq!(kinds(&plan), vec![(1, ActionKind::Close)]);
            w.apply(&plan, -100);
            w.set_status(0, "Active", -95, ANALYST);
            w.now = w.t(60);
        } else {
            assert_nothing(&plan);
            w.now = w.t(60);
        }
    }
}

#[test]
fn differ_4_in_progress_and_resolved_activate_a_new_incident() {
    let mut w = World::new();
    w.alert("a1", "New", -120).alert("a2", "New", -120);
    w.incident(1, &["a1", "a2"], -119);
    w.alert("a1", "InProgress", -60)
        .alert("a2", "Resolved", -50);
    assert_eq!(kinds(&w.plan()), vec![(1, ActionKind::Activate)]);
}

#[test]
fn differ_5_alert_rows_older_than_the_window_are_not_used() {
    // An alert whose only row is more than a day older than the incident's creation counts
    // as unseen: dfcsync reads alerts from the oldest creation minus one day, no further.
    let mut w = World::new();
    w.alert("a1", "Resolved", -3 * 24 * 60);
    w.incident(1, &["a1"], -60);
    assert_held(&w.plan(), 1, "since the incident was created");
    // Within the margin it is seen.
    let mut w = World::new();
    w.alert("a1", "Resolved", -23 * 60);
    w.incident(1, &["a1"], -60);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

#[test]
fn differ_6_old_untouched_incident_is_still_seen() {
    // Created 40 days ago, no row since; its alert resolves today.
    let mut w = World::new();
    w.alert("a1", "New", -40 * 24 * 60);
    w.incident(1, &["a1"], -40 * 24 * 60 + 1);
    w.alert("a1", "Resolved", -10);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

#[test]
fn differ_7_columns_are_read_by_name() {
    let mut w = one_alert_world(&[("Resolved", -60)]);
    let plan = w.plan();
    w.reverse_columns = true;
    assert_eq!(w.plan(), plan);
    assert_eq!(only_action(&plan).kind, ActionKind::Close);
}

#[test]
fn tool_author_in_modified_by_is_not_trusted_without_the_mark() {
    // ModifiedBy is UNCONFIRMED for service principals: a Closed incident whose
    // classification comment has no mark counts as closed by a person, whoever ModifiedBy says.
    let mut w = one_alert_world(&[]);
    w.close(
        0,
        -100,
        TOOL,
        "TruePositive",
        "SuspiciousActivity",
        "closed by hand",
    );
    w.alert("a1", "New", -50);
    assert_nothing(&w.plan());
    let _ = DFC;
}

#[test]
fn echo_after_an_analyst_reopen_does_not_close_again() {
    // The tool closes (BenignPositive, alert Dismissed); the analyst reopens at once; only
    // then is the echo (Dismissed → Resolved) ingested. The alert never left the finished
    // state: no second close, no flip to TruePositive, no notice.
    let mut w = one_alert_world(&[("Dismissed", -120)]);
    w.bidirectional = false;
    w.now = w.t(-100);
    let plan = w.plan();
    w.apply(&plan, -100);
    w.set_status(0, "Active", -99, ANALYST);
    w.alert("a1", "Resolved", -90);
    w.now = w.t(0);
    assert_nothing(&w.plan());
    // Had the alert become active in between, it is a new episode: close again.
    w.alert("a1", "New", -80).alert("a1", "Resolved", -70);
    assert_eq!(only_action(&w.plan()).kind, ActionKind::Close);
}

// ---- Writes that only half landed ----

#[test]
fn a_close_whose_audit_comment_never_landed_is_repaired_once() {
    let mut w = one_alert_world(&[("Resolved", -120)]);
    w.now = w.t(-100);
    let close = only_action(&w.plan()).clone();
    // The PUT landed (the classification comment carries the mark); the comment did not.
    w.close(
        0,
        -100,
        TOOL,
        "TruePositive",
        "SuspiciousActivity",
        close.classification_comment.as_deref().unwrap(),
    );
    w.now = w.t(0);
    let plan = w.plan();
    assert_nothing(&plan);
    assert_eq!(plan.repairs.len(), 1, "{:#?}", plan.repairs);
    let r = &plan.repairs[0];
    assert_eq!(r.mark, close.mark, "the same mark, so the same comment id");
    assert!(
        r.new_status.is_none() && r.closure.is_none(),
        "a comment only"
    );
    assert!(r.comment.ends_with(&close.mark.to_string()));
    // Once the comment is there, nothing more.
    w.comment(0, 5, TOOL, &r.comment);
    w.now = w.t(10);
    assert!(w.plan().repairs.is_empty());
}

#[test]
fn an_activate_whose_status_change_never_landed_is_taken_again() {
    let mut w = one_alert_world(&[("InProgress", -120)]);
    w.now = w.t(-100);
    let activate = only_action(&w.plan()).clone();
    // The comment (first) landed; the PUT did not.
    w.comment(0, -100, TOOL, &activate.comment);
    w.now = w.t(0);
    let again = only_action(&w.plan()).clone();
    assert_eq!(again.kind, ActionKind::Activate);
    assert_eq!(
        again.mark, activate.mark,
        "same mark: the comment write is idempotent"
    );
    // But an analyst who set it back to New after the comment is not overruled.
    w.set_status(0, "Active", -90, ANALYST);
    w.set_status(0, "New", -80, ANALYST);
    assert_nothing(&w.plan());
}
