//! The Defender XDR side of the platform: DfC alerts becoming XDR alerts and incidents, XDR's
//! roll-up of an incident from its alerts, Graph-side changes (a PATCH, a comment, the
//! `xdr_incident_status` event) carried to the Sentinel twin, and Sentinel changes carried
//! to the XDR twin. XDR's own types, enums and mappings are in [`crate::xdr`].

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};

use super::{Actor, DfcStatus, Platform, empty_owner};
use crate::ids::IdGen;
use crate::scenario::{ScenarioError, XdrAlertEvent, XdrIncidentStatus, XdrMoveAlert, XdrTune};
use crate::table::format_time;
use crate::xdr::{
    ALERT_STATUSES, AlertSource, CLASSIFICATIONS, DETECTION_SOURCES, DETERMINATIONS, IncidentPatch,
    ProductAlert, SERVICE_SOURCES, WRITABLE_INCIDENT_STATUSES, XDR_ACTOR, XdrAlert, XdrComment,
    XdrIncident, classification_from_sentinel, classification_to_sentinel, comment_json,
    determination_fits, graph_severity, member, status_from_sentinel, status_to_sentinel,
};

/// The XDR alert status a DfC status shows as, with the classification a dismissal sets
/// (UNCONFIRMED: the emulator's choice, crate README).
pub fn alert_status_from_dfc(s: DfcStatus) -> (&'static str, Option<&'static str>) {
    match s {
        DfcStatus::Active => ("new", None),
        DfcStatus::InProgress => ("inProgress", None),
        DfcStatus::Resolved => ("resolved", None),
        DfcStatus::Dismissed => ("resolved", Some("informationalExpectedActivity")),
    }
}

impl Platform {
    /// Is this platform alert seen by XDR (a DfC alert, in a tenant with `defender_xdr` or in a
    /// Defender-portal workspace)?
    fn xdr_sees(&self, alert: usize) -> bool {
        let a = &self.alerts[alert];
        a.dfc.is_some()
            && (self.xdr.enabled
                || a.workspace
                    .is_some_and(|w| self.workspaces[w].defender_portal))
    }

    /// Hook: DfC raised `alert`; `sentinel` is the incident Sentinel created for it. XDR makes
    /// it an alert and, when `with_incident`, an incident (the Sentinel one's twin in a
    /// Defender-portal workspace).
    pub(crate) fn xdr_on_new_alert(
        &mut self,
        alert: usize,
        sentinel: Option<usize>,
        with_incident: bool,
        at: DateTime<Utc>,
    ) {
        if !self.xdr_sees(alert) {
            return;
        }
        let a = &self.alerts[alert];
        let (status, class) = alert_status_from_dfc(a.status);
        let xa = XdrAlert {
            id: format!("dc{}", a.system_alert_id.to_ascii_lowercase()),
            source: AlertSource::Dfc(alert),
            incident: None,
            status,
            classification: class.unwrap_or("unknown"),
            determination: if class.is_some() { "other" } else { "unknown" },
            created: at,
            last_update: at,
            resolved: (status == "resolved").then_some(at),
        };
        let xa_idx = self.xdr.push_alert(xa);
        if !with_incident {
            return;
        }
        let linked = sentinel.filter(|&s| {
            let ws = self.incidents[s].workspace;
            self.workspaces[ws].defender_portal
        });
        let id = match linked {
            Some(s) => self.incidents[s].provider_incident_id.clone(),
            None => self.xdr.allocate_id(),
        };
        let a = &self.alerts[alert];
        let inc = XdrIncident {
            id,
            sentinel: linked,
            alerts: vec![xa_idx],
            display_name: a.display_name.clone(),
            description: a.description.clone(),
            severity: graph_severity(&a.severity),
            status: "active",
            classification: "unknown",
            determination: "unknown",
            assigned_to: None,
            custom_tags: vec![],
            comments: vec![],
            resolving_comment: None,
            sentinel_comments: vec![],
            created: at,
            last_update: at,
            last_modified_by: XDR_ACTOR.into(),
        };
        let idx = self.xdr.push_incident(inc);
        self.xdr.alerts[xa_idx].incident = Some(idx);
    }

    /// Hook: the DfC status of `alert` changed (a DfC action, or the echo of a Sentinel
    /// close). The XDR alert follows (documented DfC ↔ XDR alert sync), then, with
    /// `xdr_incident_follows_alerts`, its incident.
    pub(crate) fn xdr_on_dfc_status(&mut self, alert: usize, at: DateTime<Utc>) {
        let Some(x) = self.xdr.of_platform_alert(alert) else {
            return;
        };
        let (status, class) = alert_status_from_dfc(self.alerts[alert].status);
        let xa = &mut self.xdr.alerts[x];
        if xa.status == status && class.is_none_or(|c| c == xa.classification) {
            return;
        }
        xa.status = status;
        if let Some(c) = class {
            xa.classification = c;
            xa.determination = "other";
        }
        xa.resolved = (status == "resolved").then_some(at);
        xa.last_update = at;
        if self.xdr.follows_alerts
            && let Some(inc) = xa.incident
        {
            self.xdr_roll_up(inc, at);
        }
    }

    /// XDR's own roll-up: resolve an incident whose alerts are all resolved, reactivate a
    /// resolved one with an open alert.
    fn xdr_roll_up(&mut self, inc: usize, at: DateTime<Utc>) {
        let i = &self.xdr.incidents[inc];
        let open = i
            .alerts
            .iter()
            .any(|&a| self.xdr.alerts[a].status != "resolved");
        let target = match (i.status, open) {
            ("resolved", true) => "active",
            (s, false) if s != "resolved" && !i.alerts.is_empty() => "resolved",
            _ => return,
        };
        let patch = IncidentPatch {
            status: Some(target),
            ..IncidentPatch::default()
        };
        self.xdr_apply(inc, &patch, &Actor::system(XDR_ACTOR), at, false);
    }

    /// Applies a Graph-side change to an XDR incident (an analyst's PATCH or XDR itself) and
    /// carries it to the Sentinel twin (a new `SecurityIncident` row). `resolve_alerts`: a
    /// resolve also resolves the incident's open alerts (documented for the portal).
    pub fn xdr_apply(
        &mut self,
        inc: usize,
        patch: &IncidentPatch,
        actor: &Actor,
        at: DateTime<Utc>,
        resolve_alerts: bool,
    ) {
        let i = &mut self.xdr.incidents[inc];
        let resolving = patch.status == Some("resolved") && i.status != "resolved";
        if let Some(s) = patch.status {
            i.status = s;
        }
        if let Some(c) = patch.classification {
            i.classification = c;
        }
        if let Some(d) = patch.determination {
            i.determination = d;
        }
        if let Some(a) = &patch.assigned_to {
            i.assigned_to = a.clone();
        }
        if let Some(t) = &patch.custom_tags {
            i.custom_tags = t.clone();
        }
        if let Some(c) = &patch.resolving_comment {
            // Kept when the incident is reopened (UNCONFIRMED; crate README).
            i.resolving_comment = c.clone();
        }
        i.last_update = at;
        i.last_modified_by = actor.label.clone();
        let i = &self.xdr.incidents[inc];
        if let Some(s) = i.sentinel {
            let status = status_to_sentinel(i.status);
            let (c, r) = classification_to_sentinel(i.classification, status == "Closed");
            let owner = match &i.assigned_to {
                Some(who) => self.complete_owner(&json!({"userPrincipalName": who})),
                None => empty_owner(),
            };
            let tags = i.custom_tags.clone();
            let si = &mut self.incidents[s];
            si.status = status.to_string();
            si.classification = c;
            si.classification_reason = r;
            si.owner = owner;
            si.labels = tags;
            // Without the echo of a Sentinel close: XDR resolves the alerts itself below.
            self.touch_incident_with(s, actor, at, false);
        }
        if resolving && resolve_alerts {
            let alerts = self.xdr.incidents[inc].alerts.clone();
            for x in alerts {
                match self.xdr.alerts[x].dfc_alert() {
                    Some(a) => {
                        if matches!(
                            self.alerts[a].status,
                            DfcStatus::Active | DfcStatus::InProgress
                        ) {
                            self.set_alert_status(a, DfcStatus::Resolved, at);
                        }
                    }
                    None => {
                        let xa = &mut self.xdr.alerts[x];
                        if xa.status != "resolved" {
                            xa.status = "resolved";
                            xa.resolved = Some(at);
                            xa.last_update = at;
                        }
                    }
                }
            }
        }
    }

    /// Adds a Graph-side comment: on the Sentinel twin (which copies it back, as new comments
    /// sync), or on the XDR incident alone.
    pub fn xdr_comment(&mut self, inc: usize, text: &str, actor: &Actor, at: DateTime<Utc>) {
        match self.xdr.incidents[inc].sentinel {
            Some(s) => {
                let id = self.ids.guid();
                self.put_comment(s, &id, text, actor, at);
            }
            None => {
                let i = &mut self.xdr.incidents[inc];
                i.comments.push(XdrComment {
                    comment: text.to_string(),
                    by: actor.name.clone(),
                    at,
                });
                i.last_update = at;
                i.last_modified_by = actor.label.clone();
            }
        }
    }

    /// Hook: the Sentinel incident `s` changed (a PUT, a comment, an owner or alert change).
    /// Its XDR twin takes status, owner, classification, tags, title, severity, alerts and
    /// new comments (reference §4: the fields that sync, comments new only).
    pub(crate) fn xdr_on_sentinel_change(&mut self, s: usize, actor: &Actor, at: DateTime<Utc>) {
        let Some(x) = self.xdr.of_sentinel(s) else {
            return;
        };
        let si = &self.incidents[s];
        let status = status_from_sentinel(&si.status);
        let class = classification_from_sentinel(si.classification.as_deref());
        let owner = si
            .owner
            .get("userPrincipalName")
            .and_then(Json::as_str)
            .or_else(|| si.owner.get("assignedTo").and_then(Json::as_str))
            .map(str::to_string);
        let tags = si.labels.clone();
        let (title, severity) = (si.title.clone(), graph_severity(&si.severity));
        let new_comments: Vec<(String, XdrComment)> = si
            .comments
            .iter()
            .filter(|c| !self.xdr.incidents[x].sentinel_comments.contains(&c.id))
            .map(|c| {
                let by = c
                    .author
                    .get("name")
                    .and_then(Json::as_str)
                    .unwrap_or(&actor.name)
                    .to_string();
                (
                    c.id.clone(),
                    XdrComment {
                        comment: c.message.clone(),
                        by,
                        at: c.created,
                    },
                )
            })
            .collect();
        let members: Vec<usize> = si
            .alert_ids
            .iter()
            .filter_map(|id| self.alert_by_system_id(id))
            .filter_map(|a| self.xdr.of_platform_alert(a))
            .collect();
        let i = &self.xdr.incidents[x];
        let changed = i.status != status
            || i.classification != class
            || i.assigned_to != owner
            || i.custom_tags != tags
            || i.display_name != title
            || i.severity != severity
            || !new_comments.is_empty()
            || members.iter().any(|m| !i.alerts.contains(m));
        if !changed {
            return;
        }
        for m in members {
            self.xdr.attach(m, Some(x));
        }
        let i = &mut self.xdr.incidents[x];
        if i.classification != class {
            // UNCONFIRMED: the determination Sentinel's classification arrives with.
            i.determination = if class == "unknown" {
                "unknown"
            } else {
                "other"
            };
        }
        i.status = status;
        i.classification = class;
        i.assigned_to = owner;
        i.custom_tags = tags;
        i.display_name = title;
        i.severity = severity;
        for (id, c) in new_comments {
            i.sentinel_comments.push(id);
            i.comments.push(c);
        }
        i.last_update = at;
        i.last_modified_by = actor.label.clone();
    }

    /// An XDR incident named by an event: its id (number or string) or an alert handle.
    pub fn resolve_xdr_incident(&self, r: &Json) -> Result<usize, String> {
        let text = match r {
            Json::Number(n) => n.to_string(),
            Json::String(s) => s.clone(),
            _ => return Err("an XDR incident is named by its id or an alert handle".into()),
        };
        if let Some(i) = self.xdr.incident(&text) {
            return Ok(i);
        }
        let alert = self
            .resolve_xdr_alert(&text)
            .map_err(|_| format!("no XDR incident {text:?} (an id or an alert handle)"))?;
        self.xdr.alerts[alert]
            .incident
            .ok_or_else(|| format!("alert {text:?} is in no XDR incident"))
    }

    /// An XDR alert named by an event: the handle of an `xdr_alert` or of a DfC alert
    /// (`new_alert`), or the XDR alert's id.
    pub fn resolve_xdr_alert(&self, handle: &str) -> Result<usize, String> {
        if let Some(x) = self.xdr.product_alert_by_key(handle) {
            return Ok(x);
        }
        if let Some(a) = self.alert_by_key(handle) {
            return self
                .xdr
                .of_platform_alert(a)
                .ok_or_else(|| format!("alert {handle:?} is not an XDR alert"));
        }
        self.xdr
            .alert(handle)
            .ok_or_else(|| format!("no XDR alert {handle:?} (an alert handle or an XDR alert id)"))
    }

    /// The `xdr_alert` event: another product (Defender for Endpoint, Office 365, …) raises
    /// an alert in XDR alone, in a named incident or in a new one of its own.
    pub(crate) fn xdr_event_alert(
        &mut self,
        e: &XdrAlertEvent,
        path: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ScenarioError> {
        let err = |f: &str, m: String| ScenarioError::at(format!("{path}.{f}"), m);
        if !self.xdr.enabled && !self.workspaces.iter().any(|w| w.defender_portal) {
            return Err(err(
                "do",
                "xdr_alert needs Defender XDR (defender_xdr or a defender_portal workspace)".into(),
            ));
        }
        if self.xdr.product_alert_by_key(&e.alert).is_some()
            || self.alert_by_key(&e.alert).is_some()
        {
            return Err(err("alert", format!("alert {:?} already exists", e.alert)));
        }
        let service_source = member(SERVICE_SOURCES, &e.service_source).ok_or_else(|| {
            err(
                "service_source",
                format!("unknown serviceSource {:?}", e.service_source),
            )
        })?;
        let detection_source = match &e.detection_source {
            Some(d) => member(DETECTION_SOURCES, d)
                .ok_or_else(|| err("detection_source", format!("unknown detectionSource {d:?}")))?,
            // The service's own detection source, when it has one of that name.
            None => member(DETECTION_SOURCES, service_source).unwrap_or("unknown"),
        };
        let status = member(ALERT_STATUSES, &e.status).ok_or_else(|| {
            err(
                "status",
                format!(
                    "unknown alert status {:?} (new, inProgress, resolved)",
                    e.status
                ),
            )
        })?;
        let severity = e.severity.clone().unwrap_or_else(|| "medium".into());
        if !["high", "medium", "low", "informational"]
            .contains(&severity.to_ascii_lowercase().as_str())
        {
            return Err(err("severity", format!("unknown severity {severity:?}")));
        }
        let incident = match &e.incident {
            None => None,
            Some(r) => Some(
                self.resolve_xdr_incident(r)
                    .map_err(|m| err("incident", m))?,
            ),
        };
        // An id of the shape of Graph's examples (`da637551227677560813_-961444813`).
        let mut ids = IdGen::from_seed(format!("xdr-alert:{}", e.alert).as_bytes());
        let ticks = 637_000_000_000_000_000_i64 + (at.timestamp() - 1_600_000_000) * 10_000_000;
        let id = format!("da{ticks}_{}", ids.next_f64().mul_add(2e9, -1e9) as i64);
        let title = e
            .title
            .clone()
            .unwrap_or_else(|| "Suspicious PowerShell command line".into());
        let product = ProductAlert {
            key: e.alert.clone(),
            service_source,
            detection_source,
            product_name: e.product_name.clone(),
            provider_alert_id: id.clone(),
            description: e
                .description
                .clone()
                .unwrap_or_else(|| format!("{title} was observed.")),
            title,
            severity: severity.to_ascii_lowercase(),
            category: e.category.clone().unwrap_or_else(|| "Execution".into()),
            first_activity: at - chrono::Duration::minutes(5),
            last_activity: at - chrono::Duration::minutes(1),
        };
        let texts = (
            product.title.clone(),
            product.description.clone(),
            product.severity.clone(),
        );
        let xa = XdrAlert {
            id,
            source: AlertSource::Product(Box::new(product)),
            incident: None,
            status,
            classification: "unknown",
            determination: "unknown",
            created: at,
            last_update: at,
            resolved: (status == "resolved").then_some(at),
        };
        let x = self.xdr.push_alert(xa);
        let inc = match incident {
            Some(inc) => inc,
            None => {
                let (title, description, severity) = texts;
                let id = self.xdr.allocate_id();
                self.xdr.push_incident(XdrIncident {
                    id,
                    sentinel: None,
                    alerts: vec![],
                    display_name: title,
                    description,
                    severity,
                    status: "active",
                    classification: "unknown",
                    determination: "unknown",
                    assigned_to: None,
                    custom_tags: vec![],
                    comments: vec![],
                    resolving_comment: None,
                    sentinel_comments: vec![],
                    created: at,
                    last_update: at,
                    last_modified_by: XDR_ACTOR.into(),
                })
            }
        };
        self.xdr.attach(x, Some(inc));
        if self.xdr.follows_alerts {
            self.xdr_roll_up(inc, at);
        }
        Ok(())
    }

    /// The `xdr_tune` event: Defender XDR's built-in alert tuning resolves an alert, or
    /// reactivates it (field-2026-12.md §1.1), as actor `Microsoft Defender XDR`. A DfC alert's
    /// new status reaches DfC too (alert status syncs both ways); the incident follows when the
    /// tenant's XDR follows its alerts.
    pub(crate) fn xdr_event_tune(
        &mut self,
        e: &XdrTune,
        path: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ScenarioError> {
        let err = |f: &str, m: String| ScenarioError::at(format!("{path}.{f}"), m);
        let x = self
            .resolve_xdr_alert(&e.alert)
            .map_err(|m| err("alert", m))?;
        let status = match member(ALERT_STATUSES, &e.status) {
            Some(s @ ("resolved" | "new")) => s,
            _ => {
                return Err(err(
                    "status",
                    format!("tuning sets \"resolved\" or \"new\", not {:?}", e.status),
                ));
            }
        };
        if let Some(a) = self.xdr.alerts[x].dfc_alert() {
            let dfc = if status == "resolved" {
                DfcStatus::Resolved
            } else {
                DfcStatus::Active
            };
            // The DfC change comes back through the sync hook (alert, then incident).
            self.set_alert_status(a, dfc, at);
            return Ok(());
        }
        let xa = &mut self.xdr.alerts[x];
        if xa.status == status {
            return Ok(());
        }
        xa.status = status;
        xa.resolved = (status == "resolved").then_some(at);
        xa.last_update = at;
        if self.xdr.follows_alerts
            && let Some(inc) = xa.incident
        {
            self.xdr_roll_up(inc, at);
        }
        Ok(())
    }

    /// The `xdr_move_alert` event: an alert moves to another XDR incident (as Graph's
    /// `moveAlerts` action does); both incidents follow when XDR follows its alerts.
    pub(crate) fn xdr_event_move_alert(
        &mut self,
        e: &XdrMoveAlert,
        path: &str,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<(), ScenarioError> {
        let err = |f: &str, m: String| ScenarioError::at(format!("{path}.{f}"), m);
        let x = self
            .resolve_xdr_alert(&e.alert)
            .map_err(|m| err("alert", m))?;
        let to = self
            .resolve_xdr_incident(&e.incident)
            .map_err(|m| err("incident", m))?;
        let from = self.xdr.alerts[x].incident;
        if from == Some(to) {
            return Ok(());
        }
        self.xdr.attach(x, Some(to));
        for inc in from.into_iter().chain([to]) {
            let i = &mut self.xdr.incidents[inc];
            i.last_update = at;
            i.last_modified_by = actor.label.clone();
            if self.xdr.follows_alerts {
                self.xdr_roll_up(inc, at);
            }
        }
        Ok(())
    }

    /// Stamps an incident's `lastUpdateDateTime` as the service does after a Graph write at
    /// `at`: `xdr_stamp_lag` later.
    pub fn xdr_stamp(&mut self, inc: usize, at: DateTime<Utc>) {
        let lag = self.xdr.stamp_lag;
        let i = &mut self.xdr.incidents[inc];
        i.last_update = i.last_update.max(at + lag);
    }

    /// The `xdr_incident_status` event: a Graph-side change, as a PATCH makes it.
    pub(crate) fn xdr_event_status(
        &mut self,
        x: &XdrIncidentStatus,
        path: &str,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<(), ScenarioError> {
        let err = |f: &str, m: String| ScenarioError::at(format!("{path}.{f}"), m);
        let inc = self
            .resolve_xdr_incident(&x.incident)
            .map_err(|m| err("incident", m))?;
        let status = member(WRITABLE_INCIDENT_STATUSES, &x.status).ok_or_else(|| {
            err(
                "status",
                format!(
                    "unknown status {:?} (active, inProgress, resolved)",
                    x.status
                ),
            )
        })?;
        let classification =
            match &x.classification {
                None => None,
                Some(c) => Some(member(CLASSIFICATIONS, c).ok_or_else(|| {
                    err("classification", format!("unknown classification {c:?}"))
                })?),
            };
        let determination = match &x.determination {
            None => None,
            Some(d) => Some(
                member(DETERMINATIONS, d)
                    .ok_or_else(|| err("determination", format!("unknown determination {d:?}")))?,
            ),
        };
        let cur = &self.xdr.incidents[inc];
        let (c, d) = (
            classification.unwrap_or(cur.classification),
            determination.unwrap_or(cur.determination),
        );
        if !determination_fits(c, d) {
            return Err(err(
                "determination",
                format!("determination {d:?} does not go with classification {c:?}"),
            ));
        }
        let patch = IncidentPatch {
            status: Some(status),
            classification,
            determination,
            assigned_to: x
                .assigned_to
                .as_ref()
                .map(|a| (!a.is_empty()).then(|| a.clone())),
            custom_tags: None,
            resolving_comment: None,
        };
        self.xdr_apply(inc, &patch, actor, at, true);
        Ok(())
    }

    /// The XDR part of `GET /_emulator/state`: `xdr_incidents` and `xdr_alerts`.
    pub fn xdr_state_json(&self) -> (Json, Json) {
        let incidents: Vec<Json> = self
            .xdr
            .incidents
            .iter()
            .map(|i| {
                json!({
                    "id": i.id,
                    "sentinel_incident": i.sentinel.map(|s| self.incidents[s].name.clone()),
                    "status": i.status,
                    "classification": i.classification,
                    "determination": i.determination,
                    "assignedTo": i.assigned_to,
                    "customTags": i.custom_tags,
                    "alert_ids": i.alerts.iter().map(|&a| self.xdr.alerts[a].id.clone()).collect::<Vec<_>>(),
                    "comments": i.comments.iter().map(|c| comment_json(c, false)).collect::<Vec<_>>(),
                    "resolvingComment": i.resolving_comment,
                    "lastUpdateDateTime": format_time(i.last_update),
                    "lastModifiedBy": i.last_modified_by,
                })
            })
            .collect();
        let alerts: Vec<Json> = self
            .xdr
            .alerts
            .iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "alert": match &a.source {
                        AlertSource::Dfc(p) => self.alerts[*p].key.clone(),
                        AlertSource::Product(p) => Some(p.key.clone()),
                    },
                    "serviceSource": match &a.source {
                        AlertSource::Dfc(_) => "microsoftDefenderForCloud",
                        AlertSource::Product(p) => p.service_source,
                    },
                    "incidentId": a.incident.map(|i| self.xdr.incidents[i].id.clone()),
                    "status": a.status,
                    "classification": a.classification,
                    "determination": a.determination,
                    "lastUpdateDateTime": format_time(a.last_update),
                })
            })
            .collect();
        (Json::Array(incidents), Json::Array(alerts))
    }
}
