//! Scenario loading: unknown fields, bad times and dangling references are refused with the
//! JSON path of the bad field.

use emulator::Scenario;
use serde_json::{Value, json};

use crate::common::DEMO;

fn err_path(f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(DEMO).unwrap();
    f(&mut v);
    let e = Scenario::from_json_value(v.clone()).unwrap_err();
    assert!(!e.to_string().is_empty());
    // The streaming reader (text, file) finds the same error at the same path.
    let streamed = Scenario::from_json_str(&v.to_string()).unwrap_err();
    assert_eq!(streamed.path(), e.path(), "{streamed}");
    let read = Scenario::from_reader(v.to_string().as_bytes()).unwrap_err();
    assert_eq!(read.path(), e.path(), "{read}");
    // `to_string` writes the keys sorted (`events` before `now`), so the events above were
    // kept until the end; with the other fields first they are applied as they are read, and
    // the error is the same.
    let text = fields_first(&v);
    let streamed = Scenario::from_json_str(&text).unwrap_err();
    assert_eq!(streamed.path(), e.path(), "{streamed}");
    let read = Scenario::from_reader(text.as_bytes()).unwrap_err();
    assert_eq!(read.path(), e.path(), "{read}");
    e.path().to_string()
}

/// The scenario's text with `events` after the other top-level fields (as scenario files are
/// written), then `after` (fields written after the events).
fn fields_first_then(v: &Value, after: &[(&str, Value)]) -> String {
    let obj = v.as_object().expect("a scenario is an object");
    let mut parts: Vec<String> = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "events")
        .map(|(k, x)| format!("{}:{x}", json!(k)))
        .collect();
    if let Some(events) = obj.get("events") {
        parts.push(format!("\"events\":{events}"));
    }
    parts.extend(after.iter().map(|(k, x)| format!("{}:{x}", json!(k))));
    format!("{{{}}}", parts.join(","))
}

fn fields_first(v: &Value) -> String {
    fields_first_then(v, &[])
}

/// Both tables of the first workspace, and the model's sizes, are equal.
fn same_platform(a: &Scenario, b: &Scenario) {
    let (pa, pb) = (a.platform(), b.platform());
    assert_eq!(pa.incidents.len(), pb.incidents.len());
    assert_eq!(pa.alerts.len(), pb.alerts.len());
    assert_eq!(pa.limits.default_page_size, pb.limits.default_page_size);
    for kind in [
        emulator::table::TableKind::SecurityIncident,
        emulator::table::TableKind::SecurityAlert,
    ] {
        assert_eq!(pa.tables[0].rows(kind), pb.tables[0].rows(kind));
    }
}

#[test]
fn events_after_the_other_fields_are_applied_as_read_and_any_order_still_loads() {
    let demo: Value = serde_json::from_str(DEMO).unwrap();
    let by_value = Scenario::from_json_value(demo.clone()).unwrap();
    let text = fields_first(&demo);
    for s in [
        Scenario::from_json_str(&text).unwrap(),
        Scenario::from_reader(text.as_bytes()).unwrap(),
        Scenario::from_json_str(&demo.to_string()).unwrap(),
        Scenario::from_reader(demo.to_string().as_bytes()).unwrap(),
    ] {
        same_platform(&s, &by_value);
        assert!(s.spec.events.is_empty());
    }

    // A field after events that were applied as read: the text is read again (the field can
    // change what the events do), so `from_json_str` and `from_file` load what the value
    // path loads; `from_reader` cannot read twice and refuses, naming the field.
    let mut with_limits = demo.clone();
    with_limits["limits"] = json!({"default_page_size": 7});
    let by_value = Scenario::from_json_value(with_limits.clone()).unwrap();
    assert_eq!(by_value.platform().limits.default_page_size, 7);
    let mut without = demo.clone();
    without.as_object_mut().unwrap().remove("limits");
    let late = fields_first_then(&without, &[("limits", json!({"default_page_size": 7}))]);
    same_platform(&Scenario::from_json_str(&late).unwrap(), &by_value);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("late.json");
    std::fs::write(&file, &late).unwrap();
    same_platform(&Scenario::from_file(&file).unwrap(), &by_value);
    let e = Scenario::from_reader(late.as_bytes()).unwrap_err();
    assert_eq!(e.path(), "limits", "{e}");
    assert!(e.to_string().contains("after `events`"), "{e}");

    // The workspace the events name comes after them: applied as read they would fail, but
    // the text is read again and loads; `from_reader` names the late field, not the event.
    let mut workspaces_late = demo.clone();
    let ws = workspaces_late
        .as_object_mut()
        .unwrap()
        .remove("workspaces")
        .unwrap();
    let late = fields_first_then(&workspaces_late, &[("workspaces", ws)]);
    same_platform(
        &Scenario::from_json_str(&late).unwrap(),
        &Scenario::from_json_value(demo.clone()).unwrap(),
    );
    let e = Scenario::from_reader(late.as_bytes()).unwrap_err();
    assert_eq!(e.path(), "workspaces", "{e}");
}

#[test]
fn streaming_reader_refuses_bad_json_and_reads_what_the_value_path_reads() {
    for (text, path) in [
        ("[1, 2]", "$"),
        ("{\"now\": ", "now"),
        ("{} trailing", "$"),
        ("{\"events\": {}}", "events"),
        (
            "{\"events\": [{\"do\": \"rows\", \"table\": \"SecurityAlert\", \"rows\": [3]}]}",
            "events[0].rows[0]",
        ),
    ] {
        let e = Scenario::from_json_str(text).unwrap_err();
        assert_eq!(e.path(), path, "{text}: {e}");
    }
    let demo: Value = serde_json::from_str(DEMO).unwrap();
    let a = Scenario::from_json_value(demo).unwrap();
    let b = Scenario::from_reader(DEMO.as_bytes()).unwrap();
    let (pa, pb) = (a.platform(), b.platform());
    assert_eq!(pa.incidents.len(), pb.incidents.len());
    assert_eq!(pa.alerts.len(), pb.alerts.len());
    for kind in [
        emulator::table::TableKind::SecurityIncident,
        emulator::table::TableKind::SecurityAlert,
    ] {
        assert_eq!(pa.tables[0].rows(kind), pb.tables[0].rows(kind));
    }
    assert!(a.spec.events.is_empty(), "events are not kept once applied");
}

#[test]
fn unknown_fields_are_refused_with_their_path() {
    assert_eq!(err_path(|v| v["colour"] = json!(1)), "colour");
    assert_eq!(
        err_path(|v| v["workspaces"][0]["colour"] = json!(1)),
        "workspaces[0].colour"
    );
    assert_eq!(
        err_path(|v| v["principals"][1]["roles"][0]["colour"] = json!(1)),
        "principals[1].roles[0].colour"
    );
    assert_eq!(
        err_path(|v| v["events"][2]["colour"] = json!(1)),
        "events[2].colour"
    );
    assert_eq!(
        err_path(|v| v["limits"] = json!({"arm_reads": {"bucket": 1, "rate": 2}})),
        "limits.arm_reads.rate"
    );
    assert_eq!(
        err_path(|v| v["workspaces"][0]["incident_creation"] = json!("yes")),
        "workspaces[0].incident_creation"
    );
}

#[test]
fn bad_times_are_refused() {
    assert_eq!(err_path(|v| v["now"] = json!("yesterday")), "now");
    assert_eq!(
        err_path(|v| v["events"][1]["at"] = json!("-3 hours")),
        "events[1].at"
    );
    assert_eq!(
        err_path(|v| v["workspaces"][0]["ingestion_delay"] = json!("soon")),
        "workspaces[0].ingestion_delay"
    );
    assert_eq!(
        err_path(|v| v["principals"][0]["propagation_delay"] = json!("2")),
        "principals[0].propagation_delay"
    );
}

#[test]
fn dangling_references_are_refused() {
    assert_eq!(
        err_path(|v| v["events"][0]["workspace"] = json!("nope")),
        "events[0].workspace"
    );
    assert_eq!(
        err_path(|v| v["events"][1]["alert"] = json!("nope")),
        "events[1].alert"
    );
    assert_eq!(
        err_path(|v| v["events"][1]["by"] = json!("nobody@contoso.com")),
        "events[1].by"
    );
    assert_eq!(
        err_path(|v| v["events"][3]["incident"] = json!("nope")),
        "events[3].incident"
    );
    assert_eq!(
        err_path(|v| v["events"][3]["incident"] = json!(99)),
        "events[3].incident"
    );
    assert_eq!(
        err_path(|v| v["principals"][0]["roles"][0]["role"] = json!("Wizard")),
        "principals[0].roles[0].role"
    );
    assert_eq!(
        err_path(|v| v["events"][1]["status"] = json!("Gone")),
        "events[1].status"
    );
    // An event that cannot apply, then a later one of a bad shape: the shape is reported, as
    // when every event is read before any applies.
    assert_eq!(
        err_path(|v| {
            v["events"][0]["workspace"] = json!("nope");
            v["events"][5]["colour"] = json!(1);
        }),
        "events[5].colour"
    );
    assert_eq!(
        err_path(|v| v["events"][0]["do"] = json!("explode")),
        "events[0].do"
    );
    assert_eq!(
        err_path(|v| v["events"][3]["status"] = json!("Closed")),
        "events[3].status"
    );
}

#[test]
fn incidents_are_named_by_handle_number_or_guid() {
    let s = Scenario::from_json_str(DEMO).unwrap();
    let name = s.platform().incidents[0].name.clone();
    let mut v: Value = serde_json::from_str(DEMO).unwrap();
    v["events"]
        .as_array_mut()
        .unwrap()
        .push(json!({"do": "incident_owner", "incident": 1, "owner": "analyst@contoso.com"}));
    v["events"]
        .as_array_mut()
        .unwrap()
        .push(json!({"do": "incident_comment", "incident": name, "text": "by guid"}));
    let s = Scenario::from_json_value(v).unwrap();
    let inc = &s.platform().incidents[0];
    assert_eq!(inc.owner["userPrincipalName"], "analyst@contoso.com");
    assert_eq!(inc.comments.last().unwrap().message, "by guid");
}

#[test]
fn rows_import_builds_the_model() {
    let mut v: Value = serde_json::from_str(DEMO).unwrap();
    v["events"] = json!([
        {"do": "rows", "table": "SecurityAlert", "rows": [
            {"TimeGenerated": "2026-11-27T10:00:00Z", "SystemAlertId": "fac479ec-3566-dce6-0ae3-a90c4af39175",
             "VendorOriginalId": "2517228307705103557_15add4de-0000-0000-0000-000000000000",
             "ProductName": "Azure Security Center", "Status": "New", "AlertName": "Imported",
             "AlertLink": "https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/2517228307705103557_15add4de-0000-0000-0000-000000000000/subscriptionId/00000000-0000-0000-0000-000000000002/resourceGroup/rg-x/referencedFrom/alertDeepLink/location/centralus"},
            {"TimeGenerated": "2026-11-27T11:00:00Z", "SystemAlertId": "fac479ec-3566-dce6-0ae3-a90c4af39175", "Status": "Dismissed"}
        ]},
        {"do": "rows", "table": "SecurityIncident", "rows": [
            {"TimeGenerated": "2026-11-27T10:00:01Z", "IncidentName": "41f7c150-9159-5412-8f48-ad360032db4b", "IncidentNumber": 42,
             "Title": "Imported", "Severity": "High", "Status": "New", "AlertIds": "[\"fac479ec-3566-dce6-0ae3-a90c4af39175\"]",
             "CreatedTime": "2026-11-27T10:00:01Z", "LastModifiedTime": "2026-11-27T10:00:01Z"}
        ]}
    ]);
    let s = Scenario::from_json_value(v.clone()).unwrap();
    let p = s.platform();
    assert_eq!(p.alerts.len(), 1);
    assert_eq!(p.alerts[0].status.as_str(), "Dismissed");
    assert_eq!(p.alerts[0].dfc.as_ref().unwrap().location, "centralus");
    assert_eq!(p.incidents[0].number, 42);
    assert_eq!(
        p.incidents[0].alert_ids,
        vec!["fac479ec-3566-dce6-0ae3-a90c4af39175"]
    );
    assert_eq!(p.workspaces[0].next_incident_number, 43);
    let streamed = Scenario::from_json_str(&v.to_string()).unwrap();
    assert_eq!(
        streamed.platform().tables[0].rows(emulator::table::TableKind::SecurityAlert),
        p.tables[0].rows(emulator::table::TableKind::SecurityAlert)
    );
    v["events"][0]["rows"][1]["Colour"] = json!("x");
    let e = Scenario::from_json_value(v.clone()).unwrap_err();
    assert_eq!(e.path(), "events[0].rows[1].Colour");
    let e = Scenario::from_json_str(&v.to_string()).unwrap_err();
    assert_eq!(e.path(), "events[0].rows[1].Colour");
    // A column of the other table.
    v["events"][0]["rows"][1] = json!({"SystemAlertId": "x", "IncidentNumber": 3});
    let e = Scenario::from_json_str(&v.to_string()).unwrap_err();
    assert_eq!(e.path(), "events[0].rows[1].IncidentNumber");
    v["events"][0]["rows"][1] = json!({"SystemAlertId": "x", "TimeGenerated": "noon"});
    let e = Scenario::from_json_value(v.clone()).unwrap_err();
    assert_eq!(e.path(), "events[0].rows[1].TimeGenerated");
    let e = Scenario::from_json_str(&v.to_string()).unwrap_err();
    assert_eq!(e.path(), "events[0].rows[1].TimeGenerated");
}
