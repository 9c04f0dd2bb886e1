//! Applying one scenario (or control API) event to the platform: each `do` of
//! `shared/design/emulator.md` resolved against the model and carried out by the DfC, Sentinel,
//! table or XDR side.

use chrono::{DateTime, Utc};

use super::{Actor, DfcStatus, IncidentWrite, NewAlertParams, Platform, empty_owner, guid_like};
use crate::scenario::{Event, EventSpec, ScenarioError, resolve_time};
use crate::table::TableKind;

impl Platform {
    fn actor_for(
        &self,
        by: &Option<String>,
        path: &str,
        default: &str,
    ) -> Result<Actor, ScenarioError> {
        match by {
            None => Ok(Actor::system(default)),
            Some(name) => self
                .principal(name)
                .map(|p| Actor::of(&self.principals[p]))
                .ok_or_else(|| {
                    ScenarioError::at(format!("{path}.by"), format!("no principal {name:?}"))
                }),
        }
    }

    /// Applies one scenario (or control API) event; `now` is the emulator's clock.
    pub fn apply(&mut self, ev: &EventSpec, now: DateTime<Utc>) -> Result<(), ScenarioError> {
        let at = match &ev.at {
            None => now,
            Some(t) => resolve_time(t, now).ok_or_else(|| {
                ScenarioError::at(format!("{}.at", ev.path), format!("bad time {t:?}"))
            })?,
        };
        let path = ev.path.as_str();
        let err = |f: &str, m: String| ScenarioError::at(format!("{path}.{f}"), m);
        match &ev.event {
            Event::NewAlert(a) => {
                let ws = match &a.workspace {
                    Some(name) => Some(
                        self.workspace_by_name(name)
                            .ok_or_else(|| err("workspace", format!("no workspace {name:?}")))?,
                    ),
                    None if self.xdr.enabled => None,
                    None => {
                        return Err(err(
                            "workspace",
                            "missing field `workspace` (optional only with defender_xdr)".into(),
                        ));
                    }
                };
                if self.alert_by_key.contains_key(&a.alert) {
                    return Err(err("alert", format!("alert {:?} already exists", a.alert)));
                }
                if !guid_like(&a.subscription_id) {
                    return Err(err("subscription_id", "expected a GUID".into()));
                }
                if let Some(s) = &a.severity
                    && !["High", "Medium", "Low", "Informational"].contains(&s.as_str())
                {
                    return Err(err("severity", format!("unknown severity {s:?}")));
                }
                let spec = NewAlertParams {
                    key: Some(a.alert.clone()),
                    subscription_id: a.subscription_id.clone(),
                    resource_group: a.resource_group.clone(),
                    location: a.location.clone(),
                    display_name: a.display_name.clone(),
                    severity: a.severity.clone(),
                    alert_type: a.alert_type.clone(),
                    description: a.description.clone(),
                    product: a.product.clone(),
                    resource_id: a.resource_id.clone(),
                    compromised_entity: a.compromised_entity.clone(),
                };
                self.new_alert(ws, spec, a.incident != Some(false), at);
            }
            Event::AlertStatus(s) => {
                let alert = self
                    .alert_by_key(&s.alert)
                    .ok_or_else(|| err("alert", format!("no alert {:?}", s.alert)))?;
                let status = DfcStatus::parse(&s.status).ok_or_else(|| {
                    err(
                        "status",
                        format!(
                            "unknown status {:?} (Active, InProgress, Dismissed, Resolved)",
                            s.status
                        ),
                    )
                })?;
                self.actor_for(&s.by, path, "Microsoft Defender for Cloud")?;
                self.set_alert_status(alert, status, at);
            }
            Event::IncidentStatus(s) => {
                let inc = self
                    .resolve_incident(&s.incident)
                    .map_err(|m| err("incident", m))?;
                let actor = self.actor_for(&s.by, path, "Microsoft Sentinel")?;
                let cur = &self.incidents[inc];
                let w = IncidentWrite {
                    etag: Some(cur.etag.clone()),
                    title: cur.title.clone(),
                    severity: cur.severity.clone(),
                    status: s.status.clone(),
                    description: Some(cur.description.clone()),
                    classification: s.classification.clone().or_else(|| {
                        if s.status == "Closed" {
                            None
                        } else {
                            cur.classification.clone()
                        }
                    }),
                    classification_reason: s.classification_reason.clone().or_else(|| {
                        if s.status == "Closed" {
                            None
                        } else {
                            cur.classification_reason.clone()
                        }
                    }),
                    classification_comment: s.classification_comment.clone().or_else(|| {
                        if s.status == "Closed" {
                            None
                        } else {
                            cur.classification_comment.clone()
                        }
                    }),
                    owner: Some(cur.owner.clone()),
                    labels: cur.labels.clone(),
                    first_activity: cur.first_activity,
                    last_activity: cur.last_activity,
                };
                let ws = cur.workspace;
                let name = cur.name.clone();
                self.put_incident(ws, &name, w, &actor, at)
                    .map_err(|e| err("status", e.message))?;
            }
            Event::IncidentOwner(o) => {
                let inc = self
                    .resolve_incident(&o.incident)
                    .map_err(|m| err("incident", m))?;
                let actor = self.actor_for(&o.by, path, "Microsoft Sentinel")?;
                let owner = match &o.owner {
                    None => empty_owner(),
                    Some(who) => {
                        let p = self
                            .principal(who)
                            .ok_or_else(|| err("owner", format!("no principal {who:?}")))?;
                        self.owner_of_principal(p)
                    }
                };
                let i = &mut self.incidents[inc];
                i.owner = owner;
                self.touch_incident(inc, &actor, at);
            }
            Event::IncidentAddAlert(a) => {
                let inc = self
                    .resolve_incident(&a.incident)
                    .map_err(|m| err("incident", m))?;
                let actor = self.actor_for(&a.by, path, "Microsoft Sentinel")?;
                let alert = match self.alert_by_key(&a.alert) {
                    Some(x) => x,
                    None => {
                        // An alert not raised before: DfC raises it now, without an incident
                        // of its own, on the first alert's subscription.
                        let ws = self.incidents[inc].workspace;
                        let first = self.incidents[inc]
                            .alert_ids
                            .first()
                            .and_then(|id| self.alert_by_system_id(id));
                        let (sub, rg, loc) = match first.and_then(|f| self.alerts[f].dfc.clone()) {
                            Some(d) => {
                                (d.subscription_id, Some(d.resource_group), Some(d.location))
                            }
                            None => (self.workspaces[ws].subscription_id.clone(), None, None),
                        };
                        let params = NewAlertParams {
                            key: Some(a.alert.clone()),
                            subscription_id: sub,
                            resource_group: rg,
                            location: loc,
                            ..Default::default()
                        };
                        self.new_alert(Some(ws), params, false, at)
                    }
                };
                if self.alerts[alert].workspace != Some(self.incidents[inc].workspace) {
                    return Err(err("alert", "the alert is in another workspace".into()));
                }
                let sysid = self.alerts[alert].system_alert_id.clone();
                if !self.incidents[inc].alert_ids.contains(&sysid) {
                    self.incidents[inc].alert_ids.push(sysid);
                    self.index_alerts_of(inc);
                    let product = self.alerts[alert].product_name.clone();
                    if !self.incidents[inc].product_names.contains(&product) {
                        self.incidents[inc].product_names.push(product);
                    }
                }
                self.touch_incident(inc, &actor, at);
            }
            Event::IncidentComment(c) => {
                let inc = self
                    .resolve_incident(&c.incident)
                    .map_err(|m| err("incident", m))?;
                let actor = self.actor_for(&c.by, path, "Microsoft Sentinel")?;
                let id = c.id.clone().unwrap_or_else(|| self.ids.guid());
                self.put_comment(inc, &id, &c.text, &actor, at);
            }
            Event::Rows(r) => {
                let kind = TableKind::from_name(&r.table).ok_or_else(|| {
                    err(
                        "table",
                        format!(
                            "unknown table {:?} (SecurityIncident or SecurityAlert)",
                            r.table
                        ),
                    )
                })?;
                let ws = match &r.workspace {
                    Some(name) => self
                        .workspace_by_name(name)
                        .ok_or_else(|| err("workspace", format!("no workspace {name:?}")))?,
                    None if !self.workspaces.is_empty() => 0,
                    None => return Err(err("workspace", "the scenario has no workspace".into())),
                };
                self.import_rows(ws, kind, &r.rows, &format!("{path}.rows"), at)?;
            }
            Event::XdrIncidentStatus(x) => {
                let actor = self.actor_for(&x.by, path, crate::xdr::XDR_ACTOR)?;
                self.xdr_event_status(x, path, &actor, at)?;
            }
            Event::XdrAlert(x) => self.xdr_event_alert(x, path, at)?,
            Event::XdrTune(x) => self.xdr_event_tune(x, path, at)?,
            Event::XdrMoveAlert(x) => {
                let actor = self.actor_for(&x.by, path, crate::xdr::XDR_ACTOR)?;
                self.xdr_event_move_alert(x, path, &actor, at)?;
            }
        }
        Ok(())
    }
}
