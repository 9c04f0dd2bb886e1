//! `dfcsync doctor`: checks a deployment step by step and says, for each check, a verdict
//! and how to fix what fails: the configuration, the credential and a token per audience,
//! each workspace's lookup, query permission, incident read and write permission, the Defender
//! for Cloud permission when writeback is on, and the clock.
//!
//! Every check is read-only. Write permission is probed with a conditional write that cannot
//! succeed (an etag that matches no version): ARM answers 403 when the role is missing and
//! 409 Conflict when it is there, and nothing is saved either way.

use chrono::Utc;
use serde_json::{Value, json};

use crate::azure::AzureError;
use crate::azure::auth::{AUTO_ORDER, TokenSource};
use crate::azure::defender::DfcAction;
use crate::azure::sentinel::Workspace;
use crate::config::Config;
use crate::connect::Connection;
use crate::model::AlertAddress;
use crate::observe::build_snapshot_combined;
use crate::observe::query::sync_query;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Skipped => "skipped",
        }
    }
}

/// One check.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do about a failure or a warning.
    pub fix: Option<String>,
}

fn check(
    name: impl Into<String>,
    verdict: Verdict,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        name: name.into(),
        verdict,
        detail: detail.into(),
        fix,
    }
}

/// Whether every check passed (warnings and skips allowed).
pub fn passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.verdict != Verdict::Fail)
}

/// The checks of the configuration alone (before connecting).
pub fn config_checks(config: &Config) -> Vec<Check> {
    let mut out = vec![check(
        "configuration",
        Verdict::Ok,
        format!("read from {}", config.origin),
        None,
    )];
    if config.sync.backend == crate::config::Backend::Graph {
        out.push(check(
            "backend",
            Verdict::Ok,
            "graph: Defender XDR incidents of the credential's tenant, through Microsoft Graph",
            None,
        ));
    } else if config.file.workspaces.is_empty() {
        out.push(check(
            "workspaces",
            Verdict::Fail,
            "no workspace configured",
            Some("add a [[workspaces]] block (subscription_id, resource_group, name) or set DFCSYNC_WORKSPACES".into()),
        ));
    } else {
        out.push(check(
            "workspaces",
            Verdict::Ok,
            format!("{} configured", config.file.workspaces.len()),
            None,
        ));
    }
    out
}

/// The checks that need Azure.
pub async fn azure_checks(conn: &Connection, config: &Config) -> Vec<Check> {
    let mut out = vec![check(
        "credential",
        Verdict::Ok,
        conn.credential.clone(),
        if config.file.auth.method.as_deref().unwrap_or("auto") == "auto" {
            Some(AUTO_ORDER.to_owned())
        } else {
            None
        },
    )];
    if config.sync.backend == crate::config::Backend::Graph {
        out.extend(graph_checks(conn).await);
        return out;
    }
    let mut tokens_ok = true;
    for (audience, scope) in [
        ("ARM", conn.cloud.arm_scope.as_str()),
        ("Log Analytics", conn.cloud.log_analytics_scope.as_str()),
    ] {
        match conn.tokens.token(scope).await {
            Ok(t) => {
                let left = t
                    .expires_at
                    .duration_since(std::time::SystemTime::now())
                    .map(|d| d.as_secs() / 60)
                    .unwrap_or(0);
                out.push(check(
                    format!("token for {audience}"),
                    Verdict::Ok,
                    format!("scope {scope}, valid for {left} more minutes"),
                    None,
                ));
            }
            Err(e) => {
                tokens_ok = false;
                out.push(check(
                    format!("token for {audience}"),
                    Verdict::Fail,
                    e.to_string(),
                    Some("check [auth] and [azure] (tenant_id, cloud); for a managed identity, that it is assigned to this resource".into()),
                ));
            }
        }
    }
    if !tokens_ok {
        return out;
    }
    for w in &config.file.workspaces {
        out.extend(workspace_checks(conn, config, w).await);
    }
    out
}

/// The Graph application roles dfcsync needs: one of each list.
pub const GRAPH_ROLES: [&[&str]; 2] = [
    &["SecurityIncident.ReadWrite.All"],
    &["SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"],
];

/// The app-role id of a Graph application permission (graph-xdr.md §2.7: check it against
/// the tenant's Microsoft Graph service principal).
pub fn graph_role_id(role: &str) -> &'static str {
    match role {
        "SecurityIncident.Read.All" => "45cc0394-e837-488b-a098-1918f48d186c",
        "SecurityIncident.ReadWrite.All" => "34bf0e97-1971-4929-b999-9e2442d941d7",
        "SecurityAlert.Read.All" => "472e4a4d-bb4a-4026-98d1-0b0d74cb74a5",
        "SecurityAlert.ReadWrite.All" => "ed4fca05-be46-441f-9803-1873825f8fdb",
        _ => "<the role's id>",
    }
}

/// The `roles` claim of a JWT access token (its payload, base64url): the application
/// permissions granted with admin consent. Empty when the token carries none or is not a JWT.
pub fn token_roles(token: &str) -> Vec<String> {
    use base64::Engine;
    let Some(payload) = token.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return Vec::new();
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("roles").cloned())
        .and_then(|r| serde_json::from_value::<Vec<String>>(r).ok())
        .unwrap_or_default()
}

/// The Graph backend's checks: a Graph token, its application roles, a read of incidents.
async fn graph_checks(conn: &Connection) -> Vec<Check> {
    let mut out = Vec::new();
    let Some(graph) = &conn.graph else {
        out.push(check(
            "Microsoft Graph",
            Verdict::Fail,
            "this cloud has no Microsoft Graph security API",
            Some("use backend = \"sentinel\"".into()),
        ));
        return out;
    };
    let token = match conn.tokens.token(graph.scope()).await {
        Ok(t) => t,
        Err(e) => {
            out.push(check(
                "token for Microsoft Graph",
                Verdict::Fail,
                e.to_string(),
                Some("check [auth] and [azure] (tenant_id, cloud); for a managed identity, that it is assigned to this resource".into()),
            ));
            return out;
        }
    };
    let roles = token_roles(token.secret());
    out.push(check(
        "token for Microsoft Graph",
        Verdict::Ok,
        format!(
            "scope {}, application roles: {}",
            graph.scope(),
            if roles.is_empty() {
                "none".to_owned()
            } else {
                roles.join(", ")
            }
        ),
        None,
    ));
    let missing: Vec<&str> = GRAPH_ROLES
        .iter()
        .filter(|any| !any.iter().any(|r| roles.iter().any(|x| x == r)))
        .map(|any| any[0])
        .collect();
    if missing.is_empty() {
        out.push(check(
            "Graph permissions",
            Verdict::Ok,
            "SecurityIncident.ReadWrite.All and SecurityAlert.Read.All granted",
            None,
        ));
    } else {
        out.push(check(
            "Graph permissions",
            Verdict::Fail,
            format!("admin consent missing: the token lacks the application role(s) {}", missing.join(", ")),
            Some(format!(
                "an administrator grants each missing role to dfcsync's service principal (ARM role assignments cannot): az rest --method POST --uri https://graph.microsoft.com/v1.0/servicePrincipals/<dfcsync's object id>/appRoleAssignments --body '{{\"principalId\":\"<dfcsync's object id>\",\"resourceId\":\"<the Microsoft Graph service principal's object id>\",\"appRoleId\":\"<role id>\"}}' with role id {} (docs/deploy.md); a new token carries the role",
                missing
                    .iter()
                    .map(|r| format!("{} for {r}", graph_role_id(r)))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        ));
        return out;
    }
    match graph
        .list_incidents(Some(&format!(
            "createdDateTime ge {}",
            crate::azure::graph::odata_time(chrono::Utc::now())
        )))
        .await
    {
        Ok(_) => out.push(check("Graph incidents", Verdict::Ok, "listed", None)),
        Err(e) => out.push(check("Graph incidents", Verdict::Fail, e.to_string(), None)),
    }
    out
}

async fn workspace_checks(
    conn: &Connection,
    config: &Config,
    w: &crate::config::WorkspaceSection,
) -> Vec<Check> {
    let label = format!("{}/{}/{}", w.subscription_id, w.resource_group, w.name);
    let scope = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}",
        w.subscription_id, w.resource_group, w.name
    );
    let responder = format!(
        "assign Microsoft Sentinel Responder (3e150937-b8fe-4cfb-8069-0eaf05ecd056) to the credential's principal on {scope} (a fresh assignment can take several minutes to apply)"
    );
    let mut out = Vec::new();
    let ws = match conn
        .sentinel
        .workspace(&w.subscription_id, &w.resource_group, &w.name)
        .await
    {
        Ok(ws) => {
            out.push(check(
                format!("workspace {label}"),
                Verdict::Ok,
                format!("found; workspace id {}", ws.customer_id),
                None,
            ));
            ws
        }
        Err(e) => {
            let fix = match e.status() {
                Some(403) => responder.clone(),
                Some(404) => {
                    "check subscription_id, resource_group and name of the workspace".into()
                }
                _ => "see the error".into(),
            };
            out.push(check(
                format!("workspace {label}"),
                Verdict::Fail,
                e.to_string(),
                Some(fix),
            ));
            return out;
        }
    };
    // Query permission, and the service's clock.
    let mut alert_address: Option<AlertAddress> = None;
    match conn
        .log_analytics
        .query(&ws.customer_id, &sync_query(&config.policy), None)
        .await
    {
        Ok(body) => match build_snapshot_combined(&body[..]) {
            Ok(snap) => {
                out.push(check(
                    format!("query {label}"),
                    Verdict::Ok,
                    format!(
                        "the sync query returned {} incident(s) in scope and {} alert(s)",
                        snap.incidents.len(),
                        snap.alerts.len()
                    ),
                    None,
                ));
                alert_address = snap.alerts.states().find_map(|a| a.address.clone());
                out.push(clock_check(snap.server_now));
            }
            Err(e) => out.push(check(
                format!("query {label}"),
                Verdict::Fail,
                e.to_string(),
                None,
            )),
        },
        Err(e) => {
            let fix = match e {
                AzureError::InsufficientAccess { .. } => Some(responder.clone()),
                _ => None,
            };
            out.push(check(
                format!("query {label}"),
                Verdict::Fail,
                e.to_string(),
                fix,
            ));
        }
    }
    // Incident read and write.
    match conn.sentinel.list_incidents(&ws, None, Some(1)).await {
        Ok(list) => {
            out.push(check(
                format!("incident read {label}"),
                Verdict::Ok,
                "incidents can be listed",
                None,
            ));
            out.push(write_probe(conn, &ws, list.into_iter().next(), &label, &responder).await);
        }
        Err(e) => {
            let fix = (e.status() == Some(403)).then(|| responder.clone());
            out.push(check(
                format!("incident read {label}"),
                Verdict::Fail,
                e.to_string(),
                fix,
            ));
        }
    }
    if config.policy.writeback {
        out.push(dfc_probe(conn, &ws, alert_address).await);
    }
    out
}

async fn write_probe(
    conn: &Connection,
    ws: &Workspace,
    incident: Option<crate::azure::sentinel::Incident>,
    label: &str,
    responder: &str,
) -> Check {
    let name = format!("incident write {label}");
    let Some(mut incident) = incident else {
        return check(name, Verdict::Skipped, "no incident to probe with", None);
    };
    // An etag that matches no version: with the right role the answer is 409 and nothing
    // is saved; without it, 403.
    incident.etag = Some("\"00000000-0000-0000-0000-000000000000\"".into());
    match conn.sentinel.update_incident(ws, &incident).await {
        Err(AzureError::Conflict { .. }) => check(
            name,
            Verdict::Ok,
            "a conditional write is allowed (probed with a stale etag: nothing was saved)",
            None,
        ),
        Err(e @ AzureError::Forbidden { .. }) => check(
            name,
            Verdict::Fail,
            e.to_string(),
            Some(responder.to_owned()),
        ),
        Err(e) => check(
            name,
            Verdict::Warn,
            format!("the probe got an unexpected answer: {e}"),
            None,
        ),
        Ok(_) => check(
            name,
            Verdict::Warn,
            "the probe write with a stale etag was accepted: the service did not check the etag",
            Some(
                "report this: conditional writes are what keeps dfcsync from overwriting analysts"
                    .into(),
            ),
        ),
    }
}

async fn dfc_probe(conn: &Connection, ws: &Workspace, addr: Option<AlertAddress>) -> Check {
    let name = "Defender for Cloud writeback";
    let Some(addr) = addr.or_else(|| {
        ws.location.clone().map(|location| AlertAddress {
            name: String::new(),
            subscription_id: ws.subscription_id.as_str().into(),
            resource_group: None,
            location: location.into(),
        })
    }) else {
        return check(
            name,
            Verdict::Skipped,
            "no alert to learn a subscription and location from",
            None,
        );
    };
    let probe = AlertAddress {
        name: "dfcsync-doctor-probe".into(),
        resource_group: None,
        ..addr
    };
    let fix = format!(
        "assign Security Admin (fb1c8493-542b-48eb-b624-b4c8fea62acd) on subscription {} to the credential's principal, or turn writeback off",
        probe.subscription_id
    );
    match conn
        .defender
        .set_status(&probe, DfcAction::InProgress)
        .await
    {
        Err(e @ AzureError::Forbidden { .. }) => {
            check(name, Verdict::Fail, e.to_string(), Some(fix))
        }
        Err(e) if e.status() == Some(404) => check(
            name,
            Verdict::Ok,
            format!(
                "alert status changes are allowed on subscription {} (probed with an alert that does not exist)",
                probe.subscription_id
            ),
            None,
        ),
        Err(e) => check(
            name,
            Verdict::Warn,
            format!("the probe got an unexpected answer: {e}"),
            None,
        ),
        Ok(()) => check(name, Verdict::Ok, "alert status changes are allowed", None),
    }
}

fn clock_check(server_now: Option<chrono::DateTime<Utc>>) -> Check {
    let Some(server) = server_now else {
        return check(
            "clock",
            Verdict::Skipped,
            "the query did not return the service's clock",
            None,
        );
    };
    let skew = (Utc::now() - server).num_seconds();
    if skew.abs() > 300 {
        check(
            "clock",
            Verdict::Warn,
            format!("this machine's clock is {skew}s off the service's"),
            Some("sync the clock (NTP): tokens and the decision window depend on it; dfcsync decides at the service's time".into()),
        )
    } else {
        check(
            "clock",
            Verdict::Ok,
            format!("{skew}s off the service's clock"),
            None,
        )
    }
}

/// The checks as a table for people.
pub fn table(checks: &[Check]) -> String {
    let mut t = crate::report::new_table(&["check", "verdict", "detail", "fix"]);
    for c in checks {
        t.add_row(vec![
            c.name.clone(),
            c.verdict.as_str().to_owned(),
            c.detail.clone(),
            c.fix.clone().unwrap_or_default(),
        ]);
    }
    format!(
        "{t}\n{}\n",
        if passed(checks) {
            "doctor: everything needed works"
        } else {
            "doctor: something needed does not work: see the fixes above"
        }
    )
}

/// The checks as JSON.
pub fn json(checks: &[Check]) -> Value {
    json!({
        "passed": passed(checks),
        "checks": checks.iter().map(|c| json!({
            "check": c.name, "verdict": c.verdict.as_str().to_ascii_lowercase(),
            "detail": c.detail, "fix": c.fix,
        })).collect::<Vec<_>>(),
    })
}
