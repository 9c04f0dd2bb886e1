//! Defender for Cloud's side of the platform: DfC raises alerts (a `SecurityAlert` row, and an
//! incident when the workspace creates them) and changes their status.

use chrono::{DateTime, Duration, Utc};

use super::{Alert, DFC_PRODUCT, DfcInfo, DfcStatus, Platform};

impl Platform {
    /// DfC raises a new alert: an Active DfC alert, a `New` row, and (with incident creation
    /// on and `with_incident`) a `New` incident holding it.
    pub fn new_alert(
        &mut self,
        ws: Option<usize>,
        p: NewAlertParams,
        with_incident: bool,
        at: DateTime<Utc>,
    ) -> usize {
        let ws_location = ws.map(|w| self.workspaces[w].location.clone());
        let name = self.ids.dfc_alert_name(at);
        let sysid = self.ids.guid();
        let rg = p
            .resource_group
            .clone()
            .unwrap_or_else(|| "rg-workloads".to_string());
        let location = p
            .location
            .clone()
            .or(ws_location)
            .unwrap_or_else(|| "westeurope".to_string());
        let vm = format!("vm-{}", &sysid[..6]);
        let resource_id = p.resource_id.clone().unwrap_or_else(|| {
            format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
                p.subscription_id, rg, vm
            )
        });
        let display = p
            .display_name
            .clone()
            .unwrap_or_else(|| "Suspicious process executed".to_string());
        let alert_type = p
            .alert_type
            .clone()
            .unwrap_or_else(|| "VM_SuspiciousProcess".to_string());
        let link = format!(
            "https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/{}/subscriptionId/{}/resourceGroup/{}/referencedFrom/alertDeepLink/location/{}",
            name, p.subscription_id, rg, location
        );
        let product = p.product.clone().unwrap_or_else(|| DFC_PRODUCT.to_string());
        let alert = Alert {
            workspace: ws,
            key: p.key.clone(),
            system_alert_id: sysid.clone(),
            dfc: Some(DfcInfo {
                name: name.clone(),
                subscription_id: p.subscription_id.clone(),
                resource_group: rg.clone(),
                location,
            }),
            status: DfcStatus::Active,
            table_status: "New".into(),
            description: p.description.clone().unwrap_or_else(|| {
                format!("{display} was detected on {vm}. Investigate the process and its parent.")
            }),
            display_name: display,
            alert_type,
            severity: p.severity.clone().unwrap_or_else(|| "Medium".into()),
            provider_name: product.clone(),
            product_name: product,
            product_component: "VirtualMachines".into(),
            vendor_name: "Microsoft".into(),
            vendor_original_id: name.clone(),
            alert_link: link,
            resource_id,
            compromised_entity: p.compromised_entity.clone().unwrap_or(vm),
            intent: "Execution".into(),
            start: at - Duration::minutes(5),
            end: at - Duration::minutes(1),
            created: at,
            processing_end: at,
            last_row: at,
        };
        let idx = self.alerts.len();
        self.alerts.push(alert);
        if let Some(k) = &p.key {
            self.alert_by_key.insert(k.clone(), idx);
        }
        self.alert_by_sysid.insert(sysid.to_ascii_lowercase(), idx);
        self.alert_by_dfc_name
            .insert(name.to_ascii_lowercase(), idx);
        self.push_alert_row(idx, at);
        let mut sentinel = None;
        if let Some(ws) = ws
            && with_incident
            && self.workspaces[ws].incident_creation
        {
            sentinel = Some(self.create_incident_from_alert(ws, idx, at));
        }
        self.xdr_on_new_alert(idx, sentinel, with_incident, at);
        idx
    }

    /// DfC changes an alert's status (a DfC action or the scenario): one new `SecurityAlert`
    /// row; the incident is left alone. Returns whether anything changed.
    pub fn set_alert_status(&mut self, alert: usize, status: DfcStatus, at: DateTime<Utc>) -> bool {
        if self.alerts[alert].status == status
            && self.alerts[alert].table_status == status.table_status()
        {
            return false;
        }
        self.alerts[alert].status = status;
        self.alerts[alert].table_status = status.table_status().into();
        self.push_alert_row(alert, at);
        self.xdr_on_dfc_status(alert, at);
        true
    }
}

/// The parameters of a new DfC alert.
#[derive(Debug, Clone, Default)]
pub struct NewAlertParams {
    pub key: Option<String>,
    pub subscription_id: String,
    pub resource_group: Option<String>,
    pub location: Option<String>,
    pub display_name: Option<String>,
    pub severity: Option<String>,
    pub alert_type: Option<String>,
    pub description: Option<String>,
    pub product: Option<String>,
    pub resource_id: Option<String>,
    pub compromised_entity: Option<String>,
}
