//! `dfcsync doctor`: checks a deployment step by step and says, for each check, a verdict
//! and how to fix what fails: the configuration, the credential (a token per audience), each
//! workspace's lookup, its query shaped as `sync` reads it (the counting query, then one
//! partition), incident read and write permission, the Defender for Cloud permission when
//! writeback is on, the clock, the lease and the health rows' endpoint.
//!
//! Every check is read-only and costs a bounded number of requests whatever the workspace's
//! size: one page of one incident (never following `nextLink`), the counting query and one
//! partition. Workspaces are checked concurrently, at most five at a time (the query API's
//! concurrent queries per user). Write permission is probed with a conditional write that
//! cannot succeed (an etag that matches no version): ARM answers 403 when the role is missing
//! and 409 Conflict when it is there, and nothing is saved either way; writeback's with a
//! status change of an alert that does not exist (404 with the role, 403 without).
//!
//! "ok" is said only of what was verified. A check that could not run (no incident to probe
//! a write with, no alert to learn a subscription from) is "not verified", and the exit code
//! tells it apart: 0 everything verified and passed, 1 something failed, 2 nothing failed
//! but something is not verified.

use chrono::Utc;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::azure::AzureError;
use crate::azure::auth::{AUTO_ORDER, TokenSource};
use crate::azure::defender::DfcAction;
use crate::azure::sentinel::Workspace;
use crate::config::Config;
use crate::connect::Connection;
use crate::model::AlertAddress;
use crate::observe::build_snapshot_combined;
use crate::observe::partition::{ReadSize, modulus_for};
use crate::observe::query::{Partition, Selection, count_query, read_query};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Verified, and it works.
    Ok,
    /// Verified; it works, but something deserves a look.
    Warn,
    Fail,
    /// Could not be verified (nothing to probe with); says why.
    NotVerified,
    /// Does not apply to this configuration.
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::NotVerified => "not verified",
            Self::Skipped => "skipped",
        }
    }
}

/// What `doctor`'s checks came to, as its exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked was verified and works (exit 0).
    Passed,
    /// Something failed (exit 1).
    Failed,
    /// Nothing failed, but something could not be verified (exit 2).
    NotVerified,
}

/// The outcome of `checks`.
pub fn outcome(checks: &[Check]) -> Outcome {
    if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        Outcome::Failed
    } else if checks.iter().any(|c| c.verdict == Verdict::NotVerified) {
        Outcome::NotVerified
    } else {
        Outcome::Passed
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

/// Whether no check failed (warnings, skips and checks not verified allowed).
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
    let mut out = azure_checks_inner(conn, config).await;
    // The credential is "ok" only once it gave a token.
    let tokens: Vec<&Check> = out
        .iter()
        .filter(|c| c.name.starts_with("token for "))
        .collect();
    let verdict = if tokens.is_empty() {
        Verdict::NotVerified
    } else if tokens.iter().all(|c| c.verdict == Verdict::Ok) {
        Verdict::Ok
    } else {
        Verdict::Fail
    };
    out.insert(
        0,
        check(
            "credential",
            verdict,
            conn.credential.clone(),
            (verdict != Verdict::Ok
                || config.file.auth.method.as_deref().unwrap_or("auto") == "auto")
                .then(|| AUTO_ORDER.to_owned()),
        ),
    );
    out.extend(lease_check(conn, config).await);
    out.extend(health_check(conn, config).await);
    out
}

async fn azure_checks_inner(conn: &Connection, config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
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
    // Concurrently, at most five at a time (Log Analytics' concurrent queries per user), in
    // the configuration's order.
    let per_workspace: Vec<Vec<Check>> = futures::stream::iter(&config.file.workspaces)
        .map(|w| workspace_checks(conn, config, w))
        .buffered(5)
        .collect()
        .await;
    out.extend(per_workspace.into_iter().flatten());
    out
}

/// The lease: who holds it (it can be read), or a warning where there is none and overlapping
/// runs could write twice.
async fn lease_check(conn: &Connection, config: &Config) -> Vec<Check> {
    let needed = config.sync.backend == crate::config::Backend::Graph || config.policy.writeback;
    let lease = match crate::lease::from_config(config, &conn.http).await {
        Ok(Some(l)) => l,
        Ok(None) if needed => {
            return vec![check(
                "lease",
                Verdict::Warn,
                "no [lease]: runs that overlap (the two scheduled jobs, a job started while the last one still runs, two replicas) can post Graph comments or DfC writebacks twice",
                Some("set [lease] kind = \"azure_blob\" (DFCSYNC_LEASE_KIND, DFCSYNC_LEASE_ACCOUNT_URL) or \"kubernetes\" (docs/deploy.md, \"One writer at a time\")".into()),
            )];
        }
        Ok(None) => {
            return vec![check(
                "lease",
                Verdict::Skipped,
                "no [lease] (Sentinel's conditional writes and comment ids make an overlap harmless without writeback)",
                None,
            )];
        }
        Err(e) => {
            return vec![check("lease", Verdict::Fail, e.to_string(), None)];
        }
    };
    match lease.holding().await {
        Ok(Some(h)) => vec![check(
            "lease",
            Verdict::Ok,
            format!("{}: {h}", lease.describe()),
            None,
        )],
        Ok(None) => vec![check(
            "lease",
            Verdict::Ok,
            format!("{}: free (readable; a run takes it before its first write)", lease.describe()),
            None,
        )],
        Err(e) => vec![check(
            "lease",
            Verdict::Fail,
            format!("{}: {e}", lease.describe()),
            Some(match &config.lease {
                crate::config::LeaseSettings::Kubernetes { .. } => "the service account needs get, create and update on leases.coordination.k8s.io in its namespace (deploy/kubernetes: the Role and RoleBinding)".into(),
                _ => "the identity needs Storage Blob Data Contributor (ba92f5b4-2d11-453d-a403-e96b0029c9fe) on the lease container; check [lease] account_url and container".into(),
            }),
        )],
    }
}

/// The health rows' endpoint: an empty batch is accepted (the token's audience and the role on
/// the data collection rule), nothing is written.
async fn health_check(conn: &Connection, config: &Config) -> Vec<Check> {
    let Some(h) = &config.health else {
        return Vec::new();
    };
    let cloud = config.file.azure.cloud.as_deref().unwrap_or("public");
    let scope = h
        .scope
        .clone()
        .unwrap_or_else(|| crate::health::monitor_scope(cloud).to_owned());
    let client = match crate::azure::logs_ingestion::LogsIngestionClient::new(
        conn.http.clone(),
        &h.endpoint,
        &h.dcr_immutable_id,
        &h.stream,
        &scope,
    ) {
        Ok(c) => c,
        Err(e) => return vec![check("health rows", Verdict::Fail, e.to_string(), None)],
    };
    match client.send(&[]).await {
        Ok(()) => vec![check(
            "health rows",
            Verdict::Ok,
            format!(
                "the data collection rule {} takes rows for {} (probed with none)",
                h.dcr_immutable_id, h.stream
            ),
            None,
        )],
        Err(e) => {
            let fix = match e.status() {
                Some(403) => {
                    "assign Monitoring Metrics Publisher (3913510d-42f4-4e42-8a64-420c390055eb) on the data collection rule to the identity (docs/health.md)"
                }
                Some(404) => {
                    "check [health] dcr_immutable_id and stream (the rule's immutableId and its Custom-… stream)"
                }
                _ => "check [health] endpoint (the rule's logsIngestion endpoint)",
            };
            vec![check(
                "health rows",
                Verdict::Fail,
                e.to_string(),
                Some(fix.into()),
            )]
        }
    }
}

/// The subscription's tenant an ARM error names when the subscription belongs to another
/// tenant than the token's (`InvalidAuthenticationTokenTenant`: "The access token is from
/// the wrong issuer 'https://sts.windows.net/{token's tenant}/'. It must match the tenant
/// 'https://sts.windows.net/{subscription's tenant}/' associated with this subscription.
/// Please use the authority (URL) 'https://login.windows.net/{subscription's tenant}'…", as
/// quoted in Azure/azure-sdk-for-python#38382 and Azure/azure-sdk-for-net#49391). The first
/// tenant of the message is the token's, never the answer.
fn tenant_named(message: &str) -> Option<&str> {
    let rest = message.split("must match the tenant").nth(1)?;
    let rest = rest.split("sts.windows.net/").nth(1)?;
    let tenant = rest.split('/').next()?;
    uuid::Uuid::try_parse(tenant).ok().map(|_| tenant)
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
            let text = e.to_string();
            let fix = match (tenant_named(&text), e.status()) {
                (Some(tenant), _) => format!(
                    "the workspace's subscription belongs to tenant {tenant}, not the credential's: delegate it to dfcsync's identity with Azure Lighthouse (Microsoft Sentinel Responder), or run a dfcsync in that tenant (docs/deploy.md, \"Many workspaces, subscriptions and tenants\")"
                ),
                (None, Some(403)) => responder.clone(),
                (None, Some(404)) => {
                    "check subscription_id, resource_group and name of the workspace; a workspace of another tenant is reached only through Azure Lighthouse (docs/deploy.md)".into()
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
    // Query permission and the service's clock, read as `sync` reads: the counting query,
    // then one partition of the size it calls for.
    let mut alert_address: Option<AlertAddress> = None;
    let counted = match conn
        .log_analytics
        .query(&ws.customer_id, &count_query(&config.policy), None)
        .await
    {
        Ok(body) => {
            let mut size = ReadSize::default();
            let _ = crate::observe::read_rows_in(&body, &mut |r| {
                let cell = |c: &str| r.get(c).and_then(Value::as_u64).unwrap_or(0);
                size.incident_rows += cell("IncidentRows");
                size.alert_rows += cell("AlertRows");
            });
            Ok(size)
        }
        Err(e) => Err(e),
    };
    match counted {
        Ok(size) => {
            let modulus = modulus_for(size);
            let first = Partition {
                modulus,
                residue: 0,
            };
            match conn
                .log_analytics
                .query(
                    &ws.customer_id,
                    &read_query(&config.policy, &Selection::Partition(first), false),
                    None,
                )
                .await
            {
                Ok(body) => match build_snapshot_combined(&body[..]) {
                    Ok(snap) => {
                        out.push(check(
                            format!("query {label}"),
                            Verdict::Ok,
                            format!(
                                "{} rows in scope, read in {modulus} partition(s); the first returned {} incident(s) and {} alert(s)",
                                size.rows(),
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
                Err(e) => out.push(check(
                    format!("query {label}"),
                    Verdict::Fail,
                    e.to_string(),
                    None,
                )),
            }
        }
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
    match conn.sentinel.first_incidents(&ws, 1).await {
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
        return check(
            name,
            Verdict::NotVerified,
            "the workspace has no incident to probe a conditional write with",
            Some("run doctor again once the workspace has an incident".into()),
        );
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
            Verdict::NotVerified,
            "no alert to learn a subscription and location from",
            Some("run doctor again once the workspace has a Defender for Cloud alert".into()),
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
            Verdict::NotVerified,
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
        match outcome(checks) {
            Outcome::Passed => "doctor: everything needed works",
            Outcome::Failed => "doctor: something needed does not work: see the fixes above",
            Outcome::NotVerified =>
                "doctor: nothing failed, but not everything could be verified: see above",
        }
    )
}

/// The checks as JSON.
pub fn json(checks: &[Check]) -> Value {
    json!({
        "passed": passed(checks),
        "verified": outcome(checks) != Outcome::NotVerified,
        "checks": checks.iter().map(|c| json!({
            "check": c.name, "verdict": c.verdict.as_str().to_ascii_lowercase(),
            "detail": c.detail, "fix": c.fix,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_of_an_invalid_token_tenant_error_is_named() {
        let message = "ARM 401 InvalidAuthenticationTokenTenant: The access token is from the wrong issuer 'https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/'. It must match the tenant 'https://sts.windows.net/0d2f3b1c-1111-2222-3333-444455556666/' associated with this subscription.";
        // The first issuer is the token's: the subscription's tenant is the second.
        assert_eq!(
            tenant_named(message),
            Some("0d2f3b1c-1111-2222-3333-444455556666")
        );
        assert_eq!(tenant_named("ARM 403 AuthorizationFailed"), None);
        assert_eq!(tenant_named("https://sts.windows.net/not-a-tenant/"), None);
    }

    fn with(verdicts: &[Verdict]) -> Vec<Check> {
        verdicts.iter().map(|v| check("c", *v, "", None)).collect()
    }

    #[test]
    fn the_outcome_tells_failed_from_not_verified_from_passed() {
        use Verdict::*;
        assert_eq!(outcome(&with(&[Ok, Warn, Skipped])), Outcome::Passed);
        assert_eq!(outcome(&with(&[Ok, NotVerified])), Outcome::NotVerified);
        assert_eq!(outcome(&with(&[NotVerified, Fail])), Outcome::Failed);
    }
}
