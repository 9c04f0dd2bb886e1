//! Reports for people and machines: a plan as a table or as JSON.
//!
//! The JSON form of a plan is a contract (the `replay` issue, `plan --output json`): the keys
//! `now`, `actions[].{incident, incident_number, action, classification,
//! classification_reason, fingerprint, why}` and `held[].{incident, incident_number, reason}`
//! keep their names and meaning; keys may be added.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use crate::decide::{Plan, rfc3339};

/// The plan as the JSON contract gives it.
pub fn plan_json(plan: &Plan) -> Value {
    let actions: Vec<Value> = plan
        .actions
        .iter()
        .map(|a| {
            json!({
                "incident": a.incident,
                "incident_number": a.incident_number,
                "action": a.kind.as_str(),
                "classification": a.closure.map(|c| c.classification().as_str()),
                "classification_reason": a.closure.and_then(|c| c.reason()).map(|r| r.as_str()),
                "fingerprint": a.fingerprint.to_string(),
                "why": a.why,
                "mark": a.mark.to_string(),
                "title": a.title,
                "new_status": a.new_status.as_ref().map(|s| s.as_str()),
                "classification_comment": a.classification_comment,
                "comment": a.comment,
                "alerts_to_set_in_progress": a.alerts_to_set_in_progress.iter().map(|t| json!({
                    "name": t.name,
                    "subscription_id": t.subscription_id,
                    "resource_group": t.resource_group,
                    "location": t.location,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let held: Vec<Value> = plan
        .held
        .iter()
        .map(|h| {
            json!({
                "incident": h.incident,
                "incident_number": h.incident_number,
                "kind": h.kind.as_str(),
                "reason": h.reason,
            })
        })
        .collect();
    json!({ "now": rfc3339_full(plan), "actions": actions, "held": held })
}

fn rfc3339_full(plan: &Plan) -> String {
    plan.now
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The plan as tables for people: the actions, then the held incidents.
pub fn plan_table(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.actions.is_empty() {
        out.push_str(&format!(
            "No action needed (as of {}).\n",
            rfc3339(plan.now)
        ));
    } else {
        let mut t = new_table(&["#", "incident", "action", "classification", "why"]);
        for a in &plan.actions {
            let class = a.closure.map_or(String::new(), |c| {
                c.reason().map_or_else(
                    || c.classification().to_string(),
                    |r| format!("{} / {r}", c.classification()),
                )
            });
            t.add_row(vec![
                a.incident_number.to_string(),
                if a.title.is_empty() {
                    a.incident.clone()
                } else {
                    a.title.clone()
                },
                a.kind.to_string(),
                class,
                a.why.clone(),
            ]);
        }
        out.push_str(&format!(
            "{} action(s) as of {}:\n{t}\n",
            plan.actions.len(),
            rfc3339(plan.now)
        ));
    }
    if !plan.held.is_empty() {
        let mut t = new_table(&["#", "incident", "held because"]);
        for h in &plan.held {
            t.add_row(vec![
                h.incident_number.map_or(String::new(), |n| n.to_string()),
                h.incident.clone(),
                h.reason.clone(),
            ]);
        }
        out.push_str(&format!("{} incident(s) held:\n{t}\n", plan.held.len()));
    }
    out
}

fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(120)
        .set_header(header.to_vec());
    t
}
