//! A generated workspace for benchmarks: `SecurityIncident` and `SecurityAlert` rows as a
//! Log Analytics response, with the columns dfcsync reads. Shared by the criterion bench and
//! the `generate_workspace` example (which writes files for memory measurements).

use std::fmt::Write;

/// Incident and alert rows (two Log Analytics responses) for `incidents` incidents.
/// Each incident has one or two alerts, each alert two rows (created, then a status change
/// or a re-ingestion), each incident one to three rows.
pub fn generate(incidents: usize) -> (String, String) {
    let mut inc = String::with_capacity(incidents * 900);
    let mut al = String::with_capacity(incidents * 700);
    inc.push_str(r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"},{"name":"IncidentName","type":"string"},{"name":"IncidentNumber","type":"int"},{"name":"Title","type":"string"},{"name":"Status","type":"string"},{"name":"Classification","type":"string"},{"name":"ClassificationReason","type":"string"},{"name":"ClassificationComment","type":"string"},{"name":"Owner","type":"dynamic"},{"name":"AlertIds","type":"dynamic"},{"name":"AdditionalData","type":"dynamic"},{"name":"ProviderName","type":"string"},{"name":"CreatedTime","type":"datetime"},{"name":"LastModifiedTime","type":"datetime"},{"name":"ModifiedBy","type":"string"},{"name":"Comments","type":"dynamic"}],"rows":["#);
    al.push_str(r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"},{"name":"SystemAlertId","type":"string"},{"name":"Status","type":"string"},{"name":"ProductName","type":"string"},{"name":"VendorOriginalId","type":"string"},{"name":"DisplayName","type":"string"},{"name":"AlertLink","type":"string"}],"rows":["#);
    let mut first_inc = true;
    let mut first_al = true;
    let mut alert_rows = 0usize;
    for n in 0..incidents {
        // A cheap deterministic mix of states.
        let h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        let n_alerts = if h.is_multiple_of(4) { 2 } else { 1 };
        let day = 1 + (h % 27);
        let created = format!("2026-11-{day:02}T08:00:00Z");
        let ids: Vec<String> = (0..n_alerts)
            .map(|k| format!("{:08x}-{k:04}-4000-8000-{n:012}", h as u32))
            .collect();
        let final_status = match h % 10 {
            0..=2 => "Resolved",
            3 => "Dismissed",
            4 | 5 => "InProgress",
            _ => "New",
        };
        for id in &ids {
            let vendor = format!("2517228307705103557_{id}");
            let link = format!(
                "https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/{vendor}/subscriptionId/00000000-0000-0000-0000-000000000002/resourceGroup/rg-app/referencedFrom/alertDeepLink/location/westeurope"
            );
            for (t, status) in [("07:59:00.1234567", "New"), ("10:00:00.7", final_status)] {
                if !first_al {
                    al.push(',');
                }
                first_al = false;
                alert_rows += 1;
                let _ = write!(
                    al,
                    r#"["2026-11-{day:02}T{t}Z","{id}","{status}","Azure Security Center","{vendor}","Suspicious process executed","{link}"]"#
                );
            }
        }
        let ids_json = serde_json::to_string(&serde_json::to_string(&ids).unwrap()).unwrap();
        let statuses: &[(&str, &str, &str)] = match h % 3 {
            0 => &[("08:00:00", "New", "Incident created from alert")],
            1 => &[
                ("08:00:00", "New", "Incident created from alert"),
                ("09:00:00", "Active", "analyst@contoso.com"),
            ],
            _ => &[
                ("08:00:00", "New", "Incident created from alert"),
                ("09:00:00", "New", "analyst@contoso.com"),
                ("11:00:00", "Active", "analyst@contoso.com"),
            ],
        };
        for (t, status, by) in statuses {
            if !first_inc {
                inc.push(',');
            }
            first_inc = false;
            let _ = write!(
                inc,
                r#"["2026-11-{day:02}T{t}Z","00000000-0000-4000-8000-{n:012}",{num},"Suspicious process executed","{status}","","","","{{\"objectId\":null,\"email\":null,\"assignedTo\":null,\"userPrincipalName\":null}}",{ids_json},"{{\"alertsCount\":{n_alerts},\"alertProductNames\":[\"Azure Security Center\"],\"tactics\":[]}}","Azure Sentinel","{created}","2026-11-{day:02}T{t}Z","{by}","[]"]"#,
                num = n + 1
            );
        }
    }
    inc.push_str("]}]}");
    al.push_str("]}]}");
    let _ = alert_rows;
    (inc, al)
}
