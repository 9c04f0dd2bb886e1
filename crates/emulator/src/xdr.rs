//! The Defender XDR model behind Microsoft Graph's security API: XDR incidents and alerts
//! (`/v1.0/security/incidents`, `/v1.0/security/alerts_v2`), their enums (CSDL names), the
//! application permissions that guard them, and how they stay in step with Sentinel
//! incidents of Defender-portal workspaces and with Defender for Cloud alerts
//! (`shared/reference/graph-xdr.md`).

use crate::scenario::ScenarioError;

/// Graph application permissions the security API knows (reference §2.7).
pub const PERMISSIONS: &[&str] = &[
    "SecurityIncident.Read.All",
    "SecurityIncident.ReadWrite.All",
    "SecurityAlert.Read.All",
    "SecurityAlert.ReadWrite.All",
];

/// Checks a principal's `graph_permissions` (exact names, as Entra's app roles).
pub fn check_permissions(perms: &[String], path: &str) -> Result<Vec<String>, ScenarioError> {
    for (i, p) in perms.iter().enumerate() {
        if !PERMISSIONS.contains(&p.as_str()) {
            return Err(ScenarioError::at(
                format!("{path}[{i}]"),
                format!(
                    "unknown Graph permission {p:?} (expected one of {})",
                    PERMISSIONS.join(", ")
                ),
            ));
        }
    }
    Ok(perms.to_vec())
}
