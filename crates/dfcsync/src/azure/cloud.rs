//! Azure clouds: where Entra ID, ARM and Log Analytics live, and the token scope of each
//! service (reference §5.5 and §2.1). `public`, `usgov` and `china` are built in; `custom`
//! takes every endpoint from `[azure.endpoints]` (private clouds, the emulator).
//!
//! Azure endpoints are `https` only: [`Cloud::from_config`] refuses anything else. (A
//! `Cloud` built in code is not checked, so tests can point a client at a plain-HTTP mock.)

use crate::config::AzureSection;

use super::error::AzureError;

/// The endpoints of one Azure cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    /// `public`, `usgov`, `china` or `custom`.
    pub name: String,
    /// Entra ID authority host; tokens come from `{authority}/{tenant}/oauth2/v2.0/token`.
    pub authority: String,
    /// Azure Resource Manager.
    pub arm: String,
    /// The scope of ARM tokens (`…/.default`).
    pub arm_scope: String,
    /// The Log Analytics query API.
    pub log_analytics: String,
    /// The scope of Log Analytics tokens (`…/.default`).
    pub log_analytics_scope: String,
    /// Microsoft Graph's root, where the cloud has Graph's security API (not in China:
    /// reference graph-xdr.md §2.7).
    pub graph: Option<String>,
    /// The scope of Graph tokens (`…/.default`).
    pub graph_scope: Option<String>,
}

impl Cloud {
    /// Azure (public).
    pub fn public() -> Cloud {
        Cloud {
            name: "public".into(),
            authority: "https://login.microsoftonline.com".into(),
            arm: "https://management.azure.com".into(),
            arm_scope: "https://management.azure.com/.default".into(),
            // The newer host; the token audience stays api.loganalytics.io (reference §2.1).
            log_analytics: "https://api.loganalytics.azure.com".into(),
            log_analytics_scope: "https://api.loganalytics.io/.default".into(),
            graph: Some("https://graph.microsoft.com".into()),
            graph_scope: Some("https://graph.microsoft.com/.default".into()),
        }
    }

    /// Azure US Government.
    pub fn usgov() -> Cloud {
        Cloud {
            name: "usgov".into(),
            authority: "https://login.microsoftonline.us".into(),
            arm: "https://management.usgovcloudapi.net".into(),
            arm_scope: "https://management.usgovcloudapi.net/.default".into(),
            log_analytics: "https://api.loganalytics.us".into(),
            log_analytics_scope: "https://api.loganalytics.us/.default".into(),
            // Graph for US Gov L4 (graph-xdr.md §2.7).
            graph: Some("https://graph.microsoft.us".into()),
            graph_scope: Some("https://graph.microsoft.us/.default".into()),
        }
    }

    /// Azure US Government with Graph's DoD (L5) root: the same ARM and Log Analytics as
    /// `usgov`, Graph at `dod-graph.microsoft.us` (graph-xdr.md §2.7).
    pub fn usgov_dod() -> Cloud {
        Cloud {
            name: "usgov_dod".into(),
            graph: Some("https://dod-graph.microsoft.us".into()),
            graph_scope: Some("https://dod-graph.microsoft.us/.default".into()),
            ..Cloud::usgov()
        }
    }

    /// Azure operated by 21Vianet (China).
    pub fn china() -> Cloud {
        Cloud {
            name: "china".into(),
            authority: "https://login.chinacloudapi.cn".into(),
            arm: "https://management.chinacloudapi.cn".into(),
            arm_scope: "https://management.chinacloudapi.cn/.default".into(),
            log_analytics: "https://api.loganalytics.azure.cn".into(),
            log_analytics_scope: "https://api.loganalytics.azure.cn/.default".into(),
            // Graph's security API (incidents, alerts_v2) is not in Azure China.
            graph: None,
            graph_scope: None,
        }
    }

    /// The cloud of an `[azure]` section. Endpoints must be `https` URLs; trailing slashes
    /// are dropped.
    pub fn from_config(azure: &AzureSection) -> Result<Cloud, AzureError> {
        let name = azure.cloud.as_deref().unwrap_or("public");
        let cloud = match (name, &azure.endpoints) {
            ("public", None) => Cloud::public(),
            ("usgov", None) => Cloud::usgov(),
            ("usgov_dod", None) => Cloud::usgov_dod(),
            ("china", None) => Cloud::china(),
            ("custom", Some(e)) => Cloud {
                name: "custom".into(),
                authority: e.authority.clone(),
                arm: e.arm.clone(),
                arm_scope: e.arm_scope.clone(),
                log_analytics: e.log_analytics.clone(),
                log_analytics_scope: e.log_analytics_scope.clone(),
                graph: e.graph.clone(),
                graph_scope: e.graph_scope.clone(),
            },
            ("custom", None) => {
                return Err(AzureError::Config(
                    "cloud = \"custom\" needs [azure.endpoints]".into(),
                ));
            }
            (other, Some(_)) if other != "custom" => {
                return Err(AzureError::Config(format!(
                    "[azure.endpoints] is given only with cloud = \"custom\" (cloud is {other:?})"
                )));
            }
            (other, _) => {
                return Err(AzureError::Config(format!(
                    "{other:?} is not a cloud (public, usgov, usgov_dod, china or custom)"
                )));
            }
        };
        cloud.normalized()
    }

    /// The cloud with the authority host of `AZURE_AUTHORITY_HOST` (the variable the Azure
    /// SDKs read), when it is set and the configuration does not name one itself (a custom
    /// cloud's `[azure.endpoints] authority` wins). It must be an `https` URL.
    pub fn with_authority_host(&self, host: Option<&str>) -> Result<Cloud, AzureError> {
        let mut cloud = self.clone();
        if let Some(h) = host.map(str::trim).filter(|h| !h.is_empty())
            && cloud.name != "custom"
        {
            let url = url::Url::parse(h)
                .map_err(|e| AzureError::Config(format!("AZURE_AUTHORITY_HOST: {h:?}: {e}")))?;
            if url.scheme() != "https" {
                return Err(AzureError::Config(format!(
                    "AZURE_AUTHORITY_HOST: {h:?} must be an https:// URL"
                )));
            }
            cloud.authority = h.trim_end_matches('/').to_owned();
        }
        Ok(cloud)
    }

    /// Checks the endpoints (https, parseable) and drops trailing slashes.
    fn normalized(mut self) -> Result<Cloud, AzureError> {
        for (key, v) in [
            ("authority", Some(&mut self.authority)),
            ("arm", Some(&mut self.arm)),
            ("log_analytics", Some(&mut self.log_analytics)),
            ("graph", self.graph.as_mut()),
        ] {
            let Some(v) = v else { continue };
            let url = url::Url::parse(v)
                .map_err(|e| AzureError::Config(format!("azure.endpoints.{key}: {v:?}: {e}")))?;
            if url.scheme() != "https" {
                return Err(AzureError::Config(format!(
                    "azure.endpoints.{key}: {v:?} must be an https:// URL (Azure endpoints are never plain http)"
                )));
            }
            while v.ends_with('/') {
                v.pop();
            }
        }
        for (key, v) in [
            ("arm_scope", Some(&self.arm_scope)),
            ("log_analytics_scope", Some(&self.log_analytics_scope)),
            ("graph_scope", self.graph_scope.as_ref()),
        ] {
            if let Some(v) = v
                && !v.ends_with("/.default")
            {
                return Err(AzureError::Config(format!(
                    "azure.endpoints.{key}: {v:?} must end in /.default (a resource's default scope)"
                )));
            }
        }
        Ok(self)
    }

    /// The cloud for the SDK's credentials: the authority host is all they use.
    pub(crate) fn sdk_cloud(&self) -> azure_core::cloud::CloudConfiguration {
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = self.authority.clone();
        azure_core::cloud::CloudConfiguration::Custom(custom)
    }
}

/// The resource (audience) of a `…/.default` scope, as managed identity endpoints want it.
pub fn resource_of_scope(scope: &str) -> &str {
    scope.strip_suffix("/.default").unwrap_or(scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EndpointsSection;

    #[test]
    fn builtin_and_custom() {
        let a = AzureSection {
            cloud: Some("usgov".into()),
            ..Default::default()
        };
        assert_eq!(Cloud::from_config(&a).unwrap(), Cloud::usgov());
        assert_eq!(
            Cloud::from_config(&AzureSection::default()).unwrap(),
            Cloud::public()
        );
        let mut a = AzureSection {
            cloud: Some("custom".into()),
            endpoints: Some(EndpointsSection {
                authority: "https://127.0.0.1:8443/".into(),
                arm: "https://127.0.0.1:8443".into(),
                arm_scope: "https://management.azure.com/.default".into(),
                log_analytics: "https://127.0.0.1:8443".into(),
                log_analytics_scope: "https://api.loganalytics.io/.default".into(),
                graph: Some("https://127.0.0.1:8443/".into()),
                graph_scope: Some("https://graph.microsoft.com/.default".into()),
            }),
            ..Default::default()
        };
        let c = Cloud::from_config(&a).unwrap();
        assert_eq!(c.authority, "https://127.0.0.1:8443");
        assert_eq!(c.graph.as_deref(), Some("https://127.0.0.1:8443"));
        assert_eq!(Cloud::china().graph, None, "no Graph security API in China");
        let dod = Cloud::from_config(&AzureSection {
            cloud: Some("usgov_dod".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(dod.graph.as_deref(), Some("https://dod-graph.microsoft.us"));
        assert_eq!(dod.arm, Cloud::usgov().arm);
        if let Some(e) = a.endpoints.as_mut() {
            e.arm = "http://127.0.0.1:8443".into();
        }
        let err = Cloud::from_config(&a).unwrap_err().to_string();
        assert!(err.contains("must be an https:// URL"), "{err}");
        assert_eq!(
            resource_of_scope("https://management.azure.com/.default"),
            "https://management.azure.com"
        );
    }
}
