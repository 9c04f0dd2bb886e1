//! Building the platform a scenario describes: its fields checked (GUIDs, names, roles,
//! durations) into workspaces and principals, then its events applied in order.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::{Assignment, Platform, Principal, Workspace, guid_like};
use crate::ids::IdGen;
use crate::rbac;
use crate::scenario::{EventSpec, PrincipalKind, ScenarioError, ScenarioSpec};
use crate::scenario_read::EventSink;
use crate::table::WorkspaceTables;
use crate::xdr::{DEFAULT_STAMP_LAG_MS, XdrSettings};

impl Platform {
    /// Builds the platform a scenario describes (applying its events in order).
    pub fn from_spec(spec: &ScenarioSpec) -> Result<Platform, ScenarioError> {
        let mut platform = Self::without_events(spec)?;
        let now = platform.start;
        for ev in &spec.events {
            platform.apply(ev, now)?;
        }
        Ok(platform)
    }

    /// The platform of a scenario's fields other than its events (checked as `from_spec`
    /// checks them), before any event: apply the events with `apply(ev, platform.start)`.
    pub(crate) fn without_events(spec: &ScenarioSpec) -> Result<Platform, ScenarioError> {
        let now = DateTime::parse_from_rfc3339(&spec.now)
            .map_err(|e| ScenarioError::at("now", format!("bad time {:?}: {e}", spec.now)))?
            .with_timezone(&Utc);
        if !guid_like(&spec.tenant_id) {
            return Err(ScenarioError::at("tenant_id", "expected a GUID"));
        }
        let seed = spec.seed.clone().unwrap_or_else(|| spec.tenant_id.clone());
        let mut ids = IdGen::from_seed(seed.as_bytes());
        let frozen_clock = match spec.clock.as_deref() {
            None | Some("running") => false,
            Some("frozen") => true,
            Some(other) => {
                return Err(ScenarioError::at(
                    "clock",
                    format!("unknown clock {other:?} (expected \"running\" or \"frozen\")"),
                ));
            }
        };
        let mut workspaces = Vec::new();
        for (i, w) in spec.workspaces.iter().enumerate() {
            let p = |f: &str| format!("workspaces[{i}].{f}");
            if !guid_like(&w.customer_id) {
                return Err(ScenarioError::at(p("customer_id"), "expected a GUID"));
            }
            if !guid_like(&w.subscription_id) {
                return Err(ScenarioError::at(p("subscription_id"), "expected a GUID"));
            }
            if w.name.is_empty() || w.resource_group.is_empty() {
                return Err(ScenarioError::at(p("name"), "empty name or resource group"));
            }
            if workspaces.iter().any(|x: &Workspace| {
                x.name.eq_ignore_ascii_case(&w.name) || x.customer_id == w.customer_id
            }) {
                return Err(ScenarioError::at(
                    p("name"),
                    "duplicate workspace name or customer_id",
                ));
            }
            let delay = match &w.ingestion_delay {
                None => Duration::zero(),
                Some(d) => crate::duration::parse(d)
                    .ok()
                    .filter(|d| *d >= Duration::zero())
                    .ok_or_else(|| {
                        ScenarioError::at(p("ingestion_delay"), format!("bad duration {d:?}"))
                    })?,
            };
            workspaces.push(Workspace {
                name: w.name.clone(),
                subscription_id: w.subscription_id.clone(),
                resource_group: w.resource_group.clone(),
                customer_id: w.customer_id.clone(),
                location: w.location.clone(),
                incident_creation: w.incident_creation,
                bidirectional_sync: w.bidirectional_sync,
                ingestion_delay: delay,
                echo_keeps_dismissed: w.echo_keeps_dismissed,
                defender_portal: w.defender_portal,
                reingest_alerts: w.reingest_alerts,
                dcr: match &w.dcr {
                    None => None,
                    Some(d) => Some(crate::ingest::Dcr::from_spec(
                        d,
                        &w.subscription_id,
                        &w.resource_group,
                        &p("dcr"),
                    )?),
                },
                next_incident_number: 1,
                created: now - Duration::days(365),
            });
        }
        let mut principals = Vec::new();
        for (i, p) in spec.principals.iter().enumerate() {
            let path = |f: &str| format!("principals[{i}].{f}");
            if principals
                .iter()
                .any(|x: &Principal| x.name.eq_ignore_ascii_case(&p.name))
            {
                return Err(ScenarioError::at(path("name"), "duplicate principal name"));
            }
            for (f, v) in [("client_id", &p.client_id), ("object_id", &p.object_id)] {
                if let Some(v) = v
                    && !guid_like(v)
                {
                    return Err(ScenarioError::at(path(f), "expected a GUID"));
                }
            }
            if p.kind == PrincipalKind::ServicePrincipal && p.client_id.is_none() {
                return Err(ScenarioError::at(
                    path("client_id"),
                    "a service principal needs a client_id",
                ));
            }
            let mut roles = Vec::new();
            for (j, r) in p.roles.iter().enumerate() {
                let role = rbac::find_role(&r.role).ok_or_else(|| {
                    ScenarioError::at(
                        format!("principals[{i}].roles[{j}].role"),
                        format!("unknown role {:?}", r.role),
                    )
                })?;
                if !rbac::valid_scope(&r.scope) {
                    return Err(ScenarioError::at(
                        format!("principals[{i}].roles[{j}].scope"),
                        format!("bad scope {:?}: expected /subscriptions/…", r.scope),
                    ));
                }
                roles.push(Assignment {
                    role,
                    scope: r.scope.clone(),
                });
            }
            let propagation_delay = match &p.propagation_delay {
                None => Duration::zero(),
                Some(d) => crate::duration::parse(d)
                    .ok()
                    .filter(|d| *d >= Duration::zero())
                    .ok_or_else(|| {
                        ScenarioError::at(path("propagation_delay"), format!("bad duration {d:?}"))
                    })?,
            };
            principals.push(Principal {
                name: p.name.clone(),
                kind: p.kind,
                client_id: p.client_id.clone().unwrap_or_else(|| ids.guid()),
                secret: p.secret.clone(),
                object_id: p.object_id.clone().unwrap_or_else(|| ids.guid()),
                resource_id: p.resource_id.clone(),
                roles,
                propagation_delay,
                modified_by: p.modified_by.clone(),
                federated_subject: p.federated_subject.clone(),
                display_name: p.display_name.clone(),
                graph_permissions: crate::xdr::check_permissions(
                    &p.graph_permissions,
                    &path("graph_permissions"),
                )?,
            });
        }
        let stamp_lag = match &spec.xdr_stamp_lag {
            None => Duration::milliseconds(DEFAULT_STAMP_LAG_MS),
            Some(d) => crate::duration::parse(d)
                .ok()
                .filter(|d| *d >= Duration::zero())
                .ok_or_else(|| ScenarioError::at("xdr_stamp_lag", format!("bad duration {d:?}")))?,
        };
        let storage = storage_of(spec, &workspaces)?;
        let kube = match &spec.kubernetes {
            None => crate::kube::KubeApi::default(),
            Some(k) => {
                if k.namespace.is_empty() || k.token.is_empty() {
                    return Err(ScenarioError::at(
                        "kubernetes",
                        "a namespace and a token are needed",
                    ));
                }
                crate::kube::KubeApi {
                    enabled: true,
                    namespace: k.namespace.clone(),
                    token: k.token.clone(),
                    user: format!(
                        "system:serviceaccount:{}:{}",
                        k.namespace,
                        k.service_account.as_deref().unwrap_or("dfcsync")
                    ),
                    ..Default::default()
                }
            }
        };
        for (i, w) in workspaces.iter().enumerate() {
            let Some(d) = &w.dcr else { continue };
            let taken = workspaces[..i].iter().any(|x| {
                x.dcr
                    .as_ref()
                    .is_some_and(|y| y.immutable_id.eq_ignore_ascii_case(&d.immutable_id))
            });
            if taken {
                return Err(ScenarioError::at(
                    format!("workspaces[{i}].dcr.immutable_id"),
                    "duplicate immutable id",
                ));
            }
        }
        let workspaces_len = workspaces.len();
        let tables: Vec<WorkspaceTables> = workspaces
            .iter()
            .map(|w| {
                let mut t = WorkspaceTables::default();
                if let Some(d) = &w.dcr {
                    t.add_table(&d.table, &d.table_columns());
                }
                t
            })
            .collect();
        Ok(Platform {
            tenant_id: spec.tenant_id.clone(),
            workspaces,
            principals,
            alerts: Vec::new(),
            incidents: Vec::new(),
            tables,
            limits: spec.limits.clone(),
            storage,
            kube,
            ids,
            start: now,
            frozen_clock,
            version: 0,
            xdr: crate::xdr::Xdr::new(XdrSettings {
                enabled: spec.defender_xdr,
                follows_alerts: spec.xdr_incident_follows_alerts,
                example_shapes: spec.graph_example_shapes,
                stamp_lag,
                resolving_comment_patch: spec.resolving_comment_patch,
            }),
            alert_by_key: HashMap::new(),
            alert_by_sysid: HashMap::new(),
            alert_by_dfc_name: HashMap::new(),
            incident_by_name: HashMap::new(),
            incidents_by_alert: HashMap::new(),
            incidents_by_number: vec![Vec::new(); workspaces_len],
        })
    }
}

/// The storage accounts of a scenario (names checked, subscription and resource group
/// defaulting to the first workspace's).
fn storage_of(
    spec: &ScenarioSpec,
    workspaces: &[Workspace],
) -> Result<crate::blob::BlobStore, ScenarioError> {
    let mut accounts: Vec<crate::blob::Account> = Vec::new();
    for (i, a) in spec.storage.iter().enumerate() {
        let path = |f: &str| format!("storage[{i}].{f}");
        let ok = (3..=24).contains(&a.account.len())
            && a.account
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !ok {
            return Err(ScenarioError::at(
                path("account"),
                "3 to 24 lower-case letters and digits",
            ));
        }
        if accounts.iter().any(|x| x.name == a.account) {
            return Err(ScenarioError::at(path("account"), "duplicate account"));
        }
        let first = workspaces.first();
        let subscription_id = a
            .subscription_id
            .clone()
            .or_else(|| first.map(|w| w.subscription_id.clone()))
            .ok_or_else(|| {
                ScenarioError::at(
                    path("subscription_id"),
                    "missing (no workspace to take it from)",
                )
            })?;
        if !guid_like(&subscription_id) {
            return Err(ScenarioError::at(
                path("subscription_id"),
                "expected a GUID",
            ));
        }
        let resource_group = a
            .resource_group
            .clone()
            .or_else(|| first.map(|w| w.resource_group.clone()))
            .ok_or_else(|| {
                ScenarioError::at(
                    path("resource_group"),
                    "missing (no workspace to take it from)",
                )
            })?;
        let mut containers: Vec<crate::blob::Container> = Vec::new();
        for (j, c) in a.containers.iter().enumerate() {
            let ok = (3..=63).contains(&c.len())
                && c.chars()
                    .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '-');
            if !ok || containers.iter().any(|x| &x.name == c) {
                return Err(ScenarioError::at(
                    format!("storage[{i}].containers[{j}]"),
                    "3 to 63 lower-case letters, digits and hyphens, once",
                ));
            }
            containers.push(crate::blob::Container {
                name: c.clone(),
                blobs: Default::default(),
            });
        }
        accounts.push(crate::blob::Account {
            name: a.account.clone(),
            subscription_id,
            resource_group,
            containers,
        });
    }
    Ok(crate::blob::BlobStore { accounts })
}

/// A platform is what a scenario's events are applied to as they are read.
impl EventSink for Platform {
    fn start(spec: &ScenarioSpec) -> Option<Self> {
        Platform::without_events(spec).ok()
    }

    fn apply(&mut self, ev: &EventSpec) -> Result<(), ScenarioError> {
        let now = self.start;
        Platform::apply(self, ev, now)
    }
}
