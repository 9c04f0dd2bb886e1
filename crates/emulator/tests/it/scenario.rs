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
    e.path().to_string()
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
