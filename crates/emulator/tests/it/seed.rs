//! The seed document's query (the repository's verbatim copy, `crates/kql/tests/data/
//! seed-query.kql`, which the kql crate's tests compare with the original) runs through the
//! Log Analytics API over the emulator's rows and sees what the DfC API did.

use crate::common::*;

fn seed_query() -> String {
    include_str!("../../../kql/tests/data/seed-query.kql").to_owned()
}

#[tokio::test]
async fn seed_query_sees_a_resolved_dfc_alert() {
    let env = start_demo().await;
    let la = env.token(LA_SCOPE).await;
    let (s, v) = env.query(&la, &seed_query()).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["tables"][0]["rows"].as_array().unwrap().is_empty(), "{v}");
    // Resolve B1 in DfC: its (New) incident now shows with AlertStatus Resolved.
    let arm = env.token(ARM_SCOPE).await;
    let st = env.state();
    let b1 = st["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "B1")
        .unwrap()
        .clone();
    let url = format!(
        "{}/subscriptions/{DFC_SUB}/resourceGroups/rg-app/providers/Microsoft.Security/locations/westeurope/alerts/{}/resolve?api-version=2022-01-01",
        env.base,
        b1["name"].as_str().unwrap()
    );
    let (s, _, _) = env.call("POST", &url, &arm, None).await;
    assert_eq!(s, 204);
    let (s, v) = env.query(&la, &seed_query()).await;
    assert_eq!(s, 200, "{v}");
    let table = &v["tables"][0];
    let col = |name: &str| {
        table["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c["name"] == name)
            .unwrap()
    };
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0][col("IncidentStatus")], "New");
    assert_eq!(rows[0][col("AlertStatus")], "Resolved");
    let inc = st["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["alert_ids"][0] == b1["system_alert_id"])
        .unwrap();
    assert_eq!(rows[0][col("IncidentName")], inc["name"]);
}
