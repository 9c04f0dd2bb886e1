//! Microsoft Sentinel's side of the platform: incidents (created from an alert by the
//! analytics rule, or written by a PUT), their validation and ETags, owners, comments, and the
//! echo of a close to the incident's DfC alerts (bidirectional sync).

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};

use super::{
    Actor, ApiError, CREATED_FROM_ALERT, Comment, DfcStatus, Incident, IncidentWrite, Platform,
    Workspace, guid_like,
};
use crate::ids::IdGen;
use crate::scenario::PrincipalKind;

impl Platform {
    /// The analytics rule creates an incident from a new alert (1:1, status New).
    pub(super) fn create_incident_from_alert(
        &mut self,
        ws: usize,
        alert: usize,
        at: DateTime<Utc>,
    ) -> usize {
        let a = self.alerts[alert].clone();
        let name = self.ids.guid();
        let number = self.workspaces[ws].next_incident_number;
        self.workspaces[ws].next_incident_number += 1;
        let portal = self.workspaces[ws].defender_portal;
        let provider_incident_id = if portal {
            // The Defender portal's incident id (the same incident in Graph).
            self.xdr.allocate_id()
        } else {
            number.to_string()
        };
        let rule = format!(
            "{}/providers/Microsoft.SecurityInsights/alertRules/{}",
            self.workspaces[ws].arm_id(),
            IdGen::from_seed(format!("rule:{}", self.workspaces[ws].customer_id).as_bytes()).guid()
        );
        let etag = self.ids.etag();
        let incident = Incident {
            workspace: ws,
            name: name.clone(),
            number,
            title: a.display_name.clone(),
            description: a.description.clone(),
            severity: a.severity.clone(),
            status: "New".into(),
            classification: None,
            classification_reason: None,
            classification_comment: None,
            owner: empty_owner(),
            labels: vec![],
            alert_ids: vec![a.system_alert_id.clone()],
            created: at,
            last_modified: at,
            first_modified: at,
            first_activity: Some(a.start),
            last_activity: Some(a.end),
            closed_time: None,
            etag,
            comments: vec![],
            provider_name: if portal {
                "Microsoft XDR".into()
            } else {
                "Azure Sentinel".into()
            },
            provider_incident_id,
            modified_by: CREATED_FROM_ALERT.into(),
            related_rule_ids: if portal { vec![] } else { vec![rule] },
            tactics: vec![a.intent.clone()],
            product_names: vec![if portal {
                "Microsoft Defender XDR".to_string()
            } else {
                a.product_name.clone()
            }],
        };
        let idx = self.incidents.len();
        self.incidents.push(incident);
        self.incident_by_name.insert(name.to_ascii_lowercase(), idx);
        self.index_number(idx);
        self.index_alerts_of(idx);
        self.push_incident_row(idx, at);
        idx
    }

    /// The owner of an incident assigned to a principal of the scenario.
    pub(super) fn owner_of_principal(&self, p: usize) -> Json {
        let pr = &self.principals[p];
        let upn = (pr.kind == PrincipalKind::User).then(|| pr.name.clone());
        json!({
            "objectId": pr.object_id,
            "email": upn,
            "assignedTo": pr.display(),
            "userPrincipalName": upn,
            "ownerType": if pr.kind == PrincipalKind::User { "User" } else { "Unknown" },
        })
    }

    /// Fills an owner sent by a client (`{objectId}` or more) from the directory.
    pub fn complete_owner(&self, owner: &Json) -> Json {
        let oid = owner.get("objectId").and_then(Json::as_str);
        let upn = owner.get("userPrincipalName").and_then(Json::as_str);
        let email = owner.get("email").and_then(Json::as_str);
        let found = oid
            .and_then(|o| self.principal(o))
            .or_else(|| upn.and_then(|u| self.principal(u)))
            .or_else(|| email.and_then(|u| self.principal(u)));
        if let Some(p) = found {
            return self.owner_of_principal(p);
        }
        if oid.is_none()
            && upn.is_none()
            && email.is_none()
            && owner.get("assignedTo").is_none_or(Json::is_null)
        {
            return empty_owner();
        }
        json!({
            "objectId": oid,
            "email": email,
            "assignedTo": owner.get("assignedTo").cloned().unwrap_or(Json::Null),
            "userPrincipalName": upn,
            "ownerType": owner.get("ownerType").cloned().unwrap_or(json!("Unknown")),
        })
    }

    /// Validates the writable properties of a PUT (required fields, enums, classification).
    pub fn validate_write(w: &IncidentWrite) -> Result<(), ApiError> {
        for (field, value) in [
            ("title", &w.title),
            ("severity", &w.severity),
            ("status", &w.status),
        ] {
            if value.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "The '{field}' field is required."
                )));
            }
        }
        if !["High", "Medium", "Low", "Informational"].contains(&w.severity.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Severity '{}' is not valid. Valid values: High, Medium, Low, Informational.",
                w.severity
            )));
        }
        if !["New", "Active", "Closed"].contains(&w.status.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Status '{}' is not valid. Valid values: New, Active, Closed.",
                w.status
            )));
        }
        if let Some(c) = &w.classification {
            let reasons: &[&str] = match c.as_str() {
                "TruePositive" => &["SuspiciousActivity"],
                "BenignPositive" => &["SuspiciousButExpected"],
                "FalsePositive" => &["IncorrectAlertLogic", "InaccurateData"],
                "Undetermined" => &[],
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Classification '{c}' is not valid. Valid values: Undetermined, TruePositive, BenignPositive, FalsePositive."
                    )));
                }
            };
            match (&w.classification_reason, reasons.is_empty()) {
                (None, false) => {
                    return Err(ApiError::bad_request(format!(
                        "classification '{c}' must have classificationReason."
                    )));
                }
                (Some(r), true) => {
                    return Err(ApiError::bad_request(format!(
                        "classification '{c}' must not have classificationReason, got '{r}'."
                    )));
                }
                (Some(r), false) if !reasons.contains(&r.as_str()) => {
                    return Err(ApiError::bad_request(format!(
                        "classificationReason '{r}' is not valid for classification '{c}'."
                    )));
                }
                _ => {}
            }
        } else if w.classification_reason.is_some() {
            return Err(ApiError::bad_request(
                "classificationReason requires a classification.",
            ));
        }
        if w.status == "Closed" && w.classification.is_none() {
            return Err(ApiError::bad_request(
                "Incident with status 'Closed' must have a classification.",
            ));
        }
        Ok(())
    }

    /// Creates or updates an incident (the Sentinel API's PUT, or a scenario event). Returns
    /// the incident's index and whether it was created. An existing incident needs the current
    /// ETag; a stale or missing one gets 409 Conflict.
    pub fn put_incident(
        &mut self,
        ws: usize,
        name: &str,
        w: IncidentWrite,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<(usize, bool), ApiError> {
        Self::validate_write(&w)?;
        let owner = w
            .owner
            .as_ref()
            .map(|o| self.complete_owner(o))
            .unwrap_or_else(empty_owner);
        match self.incident_in(ws, name) {
            Some(idx) => {
                let cur = &self.incidents[idx];
                if w.etag.as_deref() != Some(cur.etag.as_str()) {
                    return Err(ApiError::new(
                        409,
                        "Conflict",
                        format!(
                            "Newer version of resource '{}' exists. Data was not saved",
                            cur.name
                        ),
                    ));
                }
                let was_closed = cur.status == "Closed";
                let closing = w.status == "Closed" && !was_closed;
                let inc = &mut self.incidents[idx];
                inc.title = w.title;
                inc.severity = w.severity;
                inc.status = w.status;
                inc.description = w.description.unwrap_or_default();
                inc.classification = w.classification;
                inc.classification_reason = w.classification_reason;
                inc.classification_comment = w.classification_comment;
                inc.owner = owner;
                inc.labels = w.labels;
                if let Some(t) = w.first_activity {
                    inc.first_activity = Some(t);
                }
                if let Some(t) = w.last_activity {
                    inc.last_activity = Some(t);
                }
                if closing {
                    inc.closed_time = Some(at);
                }
                self.touch_incident_with(idx, actor, at, closing);
                Ok((idx, false))
            }
            None => {
                if !guid_like(name) {
                    return Err(ApiError::bad_request(format!(
                        "The incident id '{name}' is not a valid GUID."
                    )));
                }
                let number = self.workspaces[ws].next_incident_number;
                self.workspaces[ws].next_incident_number += 1;
                let portal = self.workspaces[ws].defender_portal;
                let closed = w.status == "Closed";
                let etag = self.ids.etag();
                let inc = Incident {
                    workspace: ws,
                    name: name.to_ascii_lowercase(),
                    number,
                    title: w.title,
                    description: w.description.unwrap_or_default(),
                    severity: w.severity,
                    status: w.status,
                    classification: w.classification,
                    classification_reason: w.classification_reason,
                    classification_comment: w.classification_comment,
                    owner,
                    labels: w.labels,
                    alert_ids: vec![],
                    created: at,
                    last_modified: at,
                    first_modified: at,
                    first_activity: w.first_activity,
                    last_activity: w.last_activity,
                    closed_time: closed.then_some(at),
                    etag,
                    comments: vec![],
                    provider_name: "Azure Sentinel".into(),
                    provider_incident_id: number.to_string(),
                    modified_by: actor.label.clone(),
                    related_rule_ids: vec![],
                    tactics: vec![],
                    product_names: vec![],
                };
                let _ = portal;
                let idx = self.incidents.len();
                self.incidents.push(inc);
                self.incident_by_name.insert(name.to_ascii_lowercase(), idx);
                self.index_number(idx);
                self.push_incident_row(idx, at);
                Ok((idx, true))
            }
        }
    }

    /// A change to an incident that needs no ETag (owner, alerts, a concurrent edit): new
    /// ETag, new row.
    pub fn touch_incident(&mut self, idx: usize, actor: &Actor, at: DateTime<Utc>) {
        self.touch_incident_with(idx, actor, at, false);
    }

    pub(crate) fn touch_incident_with(
        &mut self,
        idx: usize,
        actor: &Actor,
        at: DateTime<Utc>,
        closing: bool,
    ) {
        let etag = self.ids.etag();
        let inc = &mut self.incidents[idx];
        inc.etag = etag;
        inc.last_modified = at;
        inc.modified_by = actor.label.clone();
        if inc.status == "Closed" && inc.closed_time.is_none() {
            inc.closed_time = Some(at);
        }
        let ws = inc.workspace;
        let alert_ids = inc.alert_ids.clone();
        self.push_incident_row(idx, at);
        self.xdr_on_sentinel_change(idx, actor, at);
        let mut echoed = Vec::new();
        if closing && self.workspaces[ws].bidirectional_sync {
            for id in &alert_ids {
                let Some(a) = self.alert_by_system_id(id) else {
                    continue;
                };
                if self.alerts[a].dfc.is_none() {
                    continue;
                }
                if self.alerts[a].status == DfcStatus::Dismissed
                    && self.workspaces[ws].echo_keeps_dismissed
                {
                    continue;
                }
                self.alerts[a].status = DfcStatus::Resolved;
                self.alerts[a].table_status = "Resolved".into();
                self.push_alert_row(a, at);
                self.xdr_on_dfc_status(a, at);
                echoed.push(a);
            }
        }
        if self.workspaces[ws].reingest_alerts {
            for id in &alert_ids {
                if let Some(a) = self.alert_by_system_id(id)
                    && !echoed.contains(&a)
                {
                    self.push_alert_row(a, at);
                }
            }
        }
    }

    /// Creates or updates a comment (idempotent by id). Returns the comment and whether it was
    /// created.
    pub fn put_comment(
        &mut self,
        inc: usize,
        id: &str,
        message: &str,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> (Comment, bool) {
        let etag = self.ids.etag().trim_matches('"').to_string();
        let incident = &mut self.incidents[inc];
        let (comment, created) = match incident
            .comments
            .iter_mut()
            .find(|c| c.id.eq_ignore_ascii_case(id))
        {
            Some(c) => {
                if c.message == message {
                    return (c.clone(), false);
                }
                c.message = message.to_string();
                c.last_modified = at;
                c.etag = etag;
                (c.clone(), false)
            }
            None => {
                let c = Comment {
                    id: id.to_ascii_lowercase(),
                    message: message.to_string(),
                    created: at,
                    last_modified: at,
                    author: actor.client_info(),
                    etag,
                };
                incident.comments.push(c.clone());
                (c, true)
            }
        };
        self.touch_incident(inc, actor, at);
        (comment, created)
    }
}

/// An unassigned owner, as the API returns it.
pub fn empty_owner() -> Json {
    json!({"objectId": null, "email": null, "assignedTo": null, "userPrincipalName": null, "ownerType": "Unknown"})
}

/// The portal URL of an incident.
pub fn incident_url(w: &Workspace, name: &str) -> String {
    format!(
        "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident{}/providers/Microsoft.SecurityInsights/Incidents/{}",
        w.arm_id(),
        name
    )
}
