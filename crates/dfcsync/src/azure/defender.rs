//! The Defender for Cloud alerts client (`Microsoft.Security/alerts`, api-version
//! 2022-01-01, reference §3): get an alert, and set its status (`inProgress`, `resolve`,
//! `dismiss`, `activate`; 204 No Content).
//!
//! An alert is addressed by its subscription, DfC location (`ascLocation`), name and, when
//! it has one, resource group, all taken from the alert's id or its `AlertLink`
//! ([`AlertAddress`]), never hard-coded. Which path a resource-group alert's actions need
//! is unconfirmed (reference §3.2), so the resource-group path is tried first and the
//! subscription path on a 404 (and the other way round for a GET).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::cloud::Cloud;
use super::error::{AzureError, Service};
use super::http::{ApiRequest, ApiResponse, AzureHttp, segment};
use crate::model::AlertAddress;

/// The alerts API version.
pub const API_VERSION: &str = "2022-01-01";

/// A status change of a DfC alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfcAction {
    InProgress,
    Resolve,
    Dismiss,
    Activate,
}

impl DfcAction {
    /// The path segment of the action.
    pub fn segment(self) -> &'static str {
        match self {
            DfcAction::InProgress => "inProgress",
            DfcAction::Resolve => "resolve",
            DfcAction::Dismiss => "dismiss",
            DfcAction::Activate => "activate",
        }
    }

    /// The status the alert has after it.
    pub fn status(self) -> &'static str {
        match self {
            DfcAction::InProgress => "InProgress",
            DfcAction::Resolve => "Resolved",
            DfcAction::Dismiss => "Dismissed",
            DfcAction::Activate => "Active",
        }
    }
}

/// `AlertProperties` (all read-only); the fields dfcsync reads are typed, the rest kept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertProperties {
    /// `Active | InProgress | Resolved | Dismissed` (an unknown value stays a string).
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub system_alert_id: Option<String>,
    #[serde(default)]
    pub alert_type: Option<String>,
    #[serde(default)]
    pub alert_display_name: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub alert_uri: Option<String>,
    #[serde(default)]
    pub time_generated_utc: Option<String>,
    #[serde(default)]
    pub product_name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A DfC alert.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DfcAlert {
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub properties: AlertProperties,
}

impl DfcAlert {
    /// The alert's address, from its id.
    pub fn address(&self) -> Option<AlertAddress> {
        address_from_id(&self.id)
    }
}

/// Reads an address from an alert id:
/// `/subscriptions/{sub}[/resourceGroups/{rg}]/providers/Microsoft.Security/locations/{loc}/alerts/{name}`
/// (segments found by key, case-insensitively).
pub fn address_from_id(id: &str) -> Option<AlertAddress> {
    let segs: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    let after = |key: &str| {
        segs.windows(2)
            .find(|w| w[0].eq_ignore_ascii_case(key))
            .map(|w| w[1].to_owned())
    };
    Some(AlertAddress {
        name: after("alerts")?,
        subscription_id: after("subscriptions")?.into(),
        resource_group: after("resourceGroups").map(Into::into),
        location: after("locations")?.into(),
    })
}

/// The DfC alerts client.
#[derive(Debug, Clone)]
pub struct DefenderClient {
    http: AzureHttp,
    arm: String,
    scope: String,
}

impl DefenderClient {
    pub fn new(http: AzureHttp, cloud: &Cloud) -> DefenderClient {
        DefenderClient {
            http,
            arm: cloud.arm.trim_end_matches('/').to_owned(),
            scope: cloud.arm_scope.clone(),
        }
    }

    /// The alert's path, at the resource-group level or the subscription level.
    fn path(a: &AlertAddress, with_rg: bool) -> String {
        match (&a.resource_group, with_rg) {
            (Some(rg), true) => format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Security/locations/{}/alerts/{}",
                segment(&a.subscription_id),
                segment(rg),
                segment(&a.location),
                segment(&a.name)
            ),
            _ => format!(
                "/subscriptions/{}/providers/Microsoft.Security/locations/{}/alerts/{}",
                segment(&a.subscription_id),
                segment(&a.location),
                segment(&a.name)
            ),
        }
    }

    async fn call(&self, method: Method, path: &str) -> Result<ApiResponse, AzureError> {
        let url = url::Url::parse(&format!("{}{path}?api-version={API_VERSION}", self.arm))
            .map_err(|e| AzureError::Config(format!("ARM endpoint {}: {e}", self.arm)))?;
        let mut req = ApiRequest::new(Service::Arm, method, url, &self.scope);
        // A GET reads and an action sets a state: both are safe to repeat.
        req.idempotent = true;
        self.http.send(req).await
    }

    /// Tries the resource-group path (when there is a resource group), then the
    /// subscription path on a 404.
    async fn with_fallback(
        &self,
        a: &AlertAddress,
        method: Method,
        suffix: &str,
    ) -> Result<ApiResponse, AzureError> {
        let first = format!("{}{suffix}", Self::path(a, true));
        match self.call(method.clone(), &first).await {
            Err(AzureError::Http { status: 404, .. }) if a.resource_group.is_some() => {
                let second = format!("{}{suffix}", Self::path(a, false));
                tracing::debug!(alert = %a.name, "404 on the resource-group path: trying the subscription path");
                self.call(method, &second).await
            }
            other => other,
        }
    }

    /// The alert.
    pub async fn get_alert(&self, a: &AlertAddress) -> Result<DfcAlert, AzureError> {
        let resp = self.with_fallback(a, Method::GET, "").await?;
        serde_json::from_slice(&resp.body).map_err(|e| AzureError::Decode {
            what: format!("DfC alert {}", a.name),
            message: e.to_string(),
        })
    }

    /// Sets the alert's status. Re-read it to verify when it matters: the CLI once reported
    /// success without a change (reference §3.4).
    pub async fn set_status(&self, a: &AlertAddress, action: DfcAction) -> Result<(), AzureError> {
        let suffix = format!("/{}", action.segment());
        self.with_fallback(a, Method::POST, &suffix).await?;
        tracing::info!(alert = %a.name, status = action.status(), "DfC alert status set");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_from_ids() {
        let a = address_from_id("/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/resourceGroups/myRg1/providers/Microsoft.Security/locations/westeurope/alerts/2518298467986649999_4d25bfef-2d77-4a08-adc0-3e35715cc92a").unwrap();
        assert_eq!(a.resource_group.as_deref(), Some("myRg1"));
        assert_eq!(&*a.location, "westeurope");
        assert!(a.name.starts_with("2518298467986649999_"));
        let b = address_from_id(
            "/subscriptions/s/providers/Microsoft.Security/locations/centralus/alerts/n",
        )
        .unwrap();
        assert_eq!(b.resource_group, None);
        assert_eq!(
            DefenderClient::path(&a, false),
            "/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/providers/Microsoft.Security/locations/westeurope/alerts/2518298467986649999_4d25bfef-2d77-4a08-adc0-3e35715cc92a"
        );
        assert!(address_from_id("/subscriptions/s").is_none());
    }
}
