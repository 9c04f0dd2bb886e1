//! Kubernetes `Lease` objects (`coordination.k8s.io/v1`, `docs/azure-services.md` §2) as an API
//! server keeps them: per namespace and name, with `metadata.resourceVersion` from one counter,
//! optimistic concurrency on update (a stale version is a 409 `Conflict`), the `Status` errors
//! of the API conventions, and each Lease's holder history on the emulator's clock. Pure: the
//! HTTP layer (`http::kube`) only translates.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json, json};

use crate::ids::IdGen;

/// The API group's resource, as error messages name it.
const RESOURCE: &str = "leases.coordination.k8s.io";

/// A `Status` failure of the API server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct KubeError {
    pub code: u16,
    /// `reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`,
    /// `Unauthorized`, `Forbidden`).
    pub reason: &'static str,
    pub message: String,
    /// `details.name` (the Lease's name), when the error is about one.
    pub name: Option<String>,
}

impl KubeError {
    fn about(code: u16, reason: &'static str, name: &str, message: String) -> KubeError {
        KubeError {
            code,
            reason,
            message,
            name: Some(name.to_string()),
        }
    }

    /// 404 `NotFound`.
    pub fn not_found(name: &str) -> KubeError {
        Self::about(
            404,
            "NotFound",
            name,
            format!("{RESOURCE} \"{name}\" not found"),
        )
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> KubeError {
        KubeError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            name: None,
        }
    }

    /// The `Status` object of the error (API conventions, "Response Status Kind").
    pub fn status_json(&self) -> Json {
        let mut doc = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(n) = &self.name {
            doc["details"] = json!({"name": n, "group": "coordination.k8s.io", "kind": "leases"});
        }
        doc
    }
}

/// `spec` of a Lease (every field optional).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaseSpec {
    pub holder_identity: Option<String>,
    pub lease_duration_seconds: Option<i64>,
    pub acquire_time: Option<DateTime<Utc>>,
    pub renew_time: Option<DateTime<Utc>>,
    pub lease_transitions: Option<i64>,
    /// `preferredHolder` and `strategy` (kept as written).
    pub other: Map<String, Json>,
}

/// How a holder's period ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderEnd {
    /// The holder wrote an empty holder (client-go's `ReleaseOnCancel`).
    Released,
    /// Another holder wrote itself.
    Taken,
    /// The Lease was deleted.
    Deleted,
    /// The control API broke it (deleted or reassigned it).
    Broken,
}

impl HolderEnd {
    pub fn name(self) -> &'static str {
        match self {
            HolderEnd::Released => "released",
            HolderEnd::Taken => "taken",
            HolderEnd::Deleted => "deleted",
            HolderEnd::Broken => "broken",
        }
    }
}

/// One holder's period in a Lease's history.
#[derive(Debug, Clone)]
pub struct HolderPeriod {
    pub holder: String,
    /// On the emulator's clock (the write that made it holder).
    pub acquired_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<HolderEnd>,
    /// How many writes by this holder (the first included): renewals + 1.
    pub writes: u64,
}

/// A Lease object.
#[derive(Debug, Clone)]
pub struct Lease {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: u64,
    pub created: DateTime<Utc>,
    pub labels: Map<String, Json>,
    pub annotations: Map<String, Json>,
    pub spec: LeaseSpec,
    pub history: Vec<HolderPeriod>,
}

/// The API server's Leases and its service-account token.
#[derive(Debug, Clone, Default)]
pub struct KubeApi {
    /// Served at all (the scenario has `kubernetes`).
    pub enabled: bool,
    /// The namespace the token's service account may use.
    pub namespace: String,
    /// The service account's bearer token.
    pub token: String,
    /// `system:serviceaccount:{namespace}:{name}` (Forbidden messages name it).
    pub user: String,
    pub leases: Vec<Lease>,
    /// Leases deleted (by a client or the control API), kept for their history.
    pub deleted: Vec<Lease>,
    /// The last resourceVersion handed out (one counter for the server, as etcd's revision).
    pub revision: u64,
}

/// MicroTime: RFC 3339 with exactly 6 fractional digits, UTC `Z`.
pub fn micro_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_time(v: &Json, field: &str) -> Result<Option<DateTime<Utc>>, KubeError> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| KubeError::bad_request(format!("spec.{field}: invalid time {s:?}"))),
        _ => Err(KubeError::bad_request(format!(
            "spec.{field}: expected a time string"
        ))),
    }
}

fn parse_int(v: &Json, field: &str) -> Result<Option<i64>, KubeError> {
    match v {
        Json::Null => Ok(None),
        Json::Number(n) => n
            .as_i64()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(Some)
            .ok_or_else(|| KubeError::bad_request(format!("spec.{field}: expected an int32"))),
        _ => Err(KubeError::bad_request(format!(
            "spec.{field}: expected an int32"
        ))),
    }
}

/// Reads a Lease body's `spec`.
fn parse_spec(body: &Json) -> Result<LeaseSpec, KubeError> {
    let mut spec = LeaseSpec::default();
    let Some(s) = body.get("spec") else {
        return Ok(spec);
    };
    let Some(obj) = s.as_object() else {
        return Err(KubeError::bad_request("spec: expected an object"));
    };
    for (k, v) in obj {
        match k.as_str() {
            "holderIdentity" => {
                spec.holder_identity = match v {
                    Json::Null => None,
                    Json::String(h) => Some(h.clone()),
                    _ => {
                        return Err(KubeError::bad_request(
                            "spec.holderIdentity: expected a string",
                        ));
                    }
                }
            }
            "leaseDurationSeconds" => spec.lease_duration_seconds = parse_int(v, k)?,
            "leaseTransitions" => spec.lease_transitions = parse_int(v, k)?,
            "acquireTime" => spec.acquire_time = parse_time(v, k)?,
            "renewTime" => spec.renew_time = parse_time(v, k)?,
            _ => {
                spec.other.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(spec)
}

/// A body's `metadata` object (empty when absent).
fn metadata(body: &Json) -> Result<&Map<String, Json>, KubeError> {
    static EMPTY: std::sync::OnceLock<Map<String, Json>> = std::sync::OnceLock::new();
    match body.get("metadata") {
        None => Ok(EMPTY.get_or_init(Map::new)),
        Some(Json::Object(m)) => Ok(m),
        Some(_) => Err(KubeError::bad_request("metadata: expected an object")),
    }
}

fn map_of(m: &Map<String, Json>, key: &str) -> Map<String, Json> {
    m.get(key)
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default()
}

impl Lease {
    /// The object as the API server returns it.
    pub fn to_json(&self) -> Json {
        let mut spec = Map::new();
        if let Some(h) = &self.spec.holder_identity {
            spec.insert("holderIdentity".into(), json!(h));
        }
        if let Some(d) = self.spec.lease_duration_seconds {
            spec.insert("leaseDurationSeconds".into(), json!(d));
        }
        if let Some(t) = self.spec.acquire_time {
            spec.insert("acquireTime".into(), json!(micro_time(t)));
        }
        if let Some(t) = self.spec.renew_time {
            spec.insert("renewTime".into(), json!(micro_time(t)));
        }
        if let Some(n) = self.spec.lease_transitions {
            spec.insert("leaseTransitions".into(), json!(n));
        }
        for (k, v) in &self.spec.other {
            spec.insert(k.clone(), v.clone());
        }
        let mut meta = json!({
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "resourceVersion": self.resource_version.to_string(),
            "creationTimestamp": self.created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        });
        if !self.labels.is_empty() {
            meta["labels"] = Json::Object(self.labels.clone());
        }
        if !self.annotations.is_empty() {
            meta["annotations"] = Json::Object(self.annotations.clone());
        }
        json!({
            "kind": "Lease",
            "apiVersion": "coordination.k8s.io/v1",
            "metadata": meta,
            "spec": Json::Object(spec),
        })
    }

    /// Records a write of `holder` at `now` in the history.
    fn record_holder(&mut self, holder: Option<&str>, now: DateTime<Utc>, end: HolderEnd) {
        let holder = holder.filter(|h| !h.is_empty());
        let current = self.history.last_mut().filter(|p| p.ended_at.is_none());
        match (current, holder) {
            (Some(p), Some(h)) if p.holder == h => p.writes += 1,
            (current, holder) => {
                if let Some(p) = current {
                    p.ended_at = Some(now);
                    p.ended_by = Some(if holder.is_some() {
                        HolderEnd::Taken
                    } else {
                        end
                    });
                }
                if let Some(h) = holder {
                    self.history.push(HolderPeriod {
                        holder: h.to_string(),
                        acquired_at: now,
                        ended_at: None,
                        ended_by: None,
                        writes: 1,
                    });
                }
            }
        }
    }

    /// Ends the current holder's period (deletion or a break).
    fn end_holder(&mut self, now: DateTime<Utc>, how: HolderEnd) {
        if let Some(p) = self.history.last_mut()
            && p.ended_at.is_none()
        {
            p.ended_at = Some(now);
            p.ended_by = Some(how);
        }
    }
}

impl KubeApi {
    fn find(&self, ns: &str, name: &str) -> Option<usize> {
        self.leases
            .iter()
            .position(|l| l.namespace == ns && l.name == name)
    }

    fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// `GET …/leases/{name}`.
    pub fn get(&self, ns: &str, name: &str) -> Result<Json, KubeError> {
        self.find(ns, name)
            .map(|i| self.leases[i].to_json())
            .ok_or_else(|| KubeError::not_found(name))
    }

    /// `GET …/leases`: a `LeaseList`.
    pub fn list(&self, ns: &str) -> Json {
        let items: Vec<Json> = self
            .leases
            .iter()
            .filter(|l| l.namespace == ns)
            .map(Lease::to_json)
            .collect();
        json!({
            "kind": "LeaseList",
            "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"resourceVersion": self.revision.to_string()},
            "items": items,
        })
    }

    /// `POST …/leases`: creates a Lease (409 `AlreadyExists` if the name exists).
    pub fn create(
        &mut self,
        ns: &str,
        body: &Json,
        ids: &mut IdGen,
        now: DateTime<Utc>,
    ) -> Result<Json, KubeError> {
        let meta = metadata(body)?;
        let name = meta
            .get("name")
            .and_then(Json::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| KubeError {
                code: 422,
                reason: "Invalid",
                message: "Lease.coordination.k8s.io \"\" is invalid: metadata.name: Required value: name or generateName is required".to_string(),
                name: None,
            })?
            .to_string();
        if let Some(n) = meta.get("namespace").and_then(Json::as_str)
            && n != ns
        {
            return Err(KubeError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if self.find(ns, &name).is_some() {
            return Err(KubeError::about(
                409,
                "AlreadyExists",
                &name,
                format!("{RESOURCE} \"{name}\" already exists"),
            ));
        }
        let spec = parse_spec(body)?;
        let rv = self.next_revision();
        let mut lease = Lease {
            namespace: ns.to_string(),
            name,
            uid: ids.guid(),
            resource_version: rv,
            created: now,
            labels: map_of(meta, "labels"),
            annotations: map_of(meta, "annotations"),
            spec,
            history: Vec::new(),
        };
        let holder = lease.spec.holder_identity.clone();
        lease.record_holder(holder.as_deref(), now, HolderEnd::Released);
        let doc = lease.to_json();
        self.leases.push(lease);
        Ok(doc)
    }

    /// `PUT …/leases/{name}`: replaces a Lease whose `metadata.resourceVersion` is current
    /// (stale: 409 `Conflict`; missing: 422 `Invalid`).
    pub fn update(
        &mut self,
        ns: &str,
        name: &str,
        body: &Json,
        now: DateTime<Utc>,
    ) -> Result<Json, KubeError> {
        let meta = metadata(body)?;
        if let Some(n) = meta.get("name").and_then(Json::as_str)
            && n != name
        {
            return Err(KubeError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let i = self
            .find(ns, name)
            .ok_or_else(|| KubeError::not_found(name))?;
        let rv = match meta.get("resourceVersion") {
            Some(Json::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(KubeError::about(
                    422,
                    "Invalid",
                    name,
                    format!(
                        "Lease.coordination.k8s.io \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
                    ),
                ));
            }
        };
        if rv != self.leases[i].resource_version.to_string() {
            return Err(KubeError::about(
                409,
                "Conflict",
                name,
                format!(
                    "Operation cannot be fulfilled on {RESOURCE} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
            ));
        }
        let spec = parse_spec(body)?;
        let next = self.next_revision();
        let lease = &mut self.leases[i];
        lease.spec = spec;
        lease.labels = map_of(meta, "labels");
        lease.annotations = map_of(meta, "annotations");
        lease.resource_version = next;
        let holder = lease.spec.holder_identity.clone();
        lease.record_holder(holder.as_deref(), now, HolderEnd::Released);
        Ok(lease.to_json())
    }

    /// `DELETE …/leases/{name}`: the `Status` of a successful deletion.
    pub fn delete(&mut self, ns: &str, name: &str, now: DateTime<Utc>) -> Result<Json, KubeError> {
        let i = self
            .find(ns, name)
            .ok_or_else(|| KubeError::not_found(name))?;
        let mut lease = self.leases.remove(i);
        lease.end_holder(now, HolderEnd::Deleted);
        let uid = lease.uid.clone();
        self.deleted.push(lease);
        self.next_revision();
        Ok(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": "coordination.k8s.io", "kind": "leases", "uid": uid},
        }))
    }

    /// Breaks a Lease (control API): deletes it, or, with `holder`, reassigns it to that
    /// holder (renewed now, one more transition), as another candidate's takeover would.
    pub fn break_lease(
        &mut self,
        ns: &str,
        name: &str,
        holder: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), KubeError> {
        let i = self
            .find(ns, name)
            .ok_or_else(|| KubeError::not_found(name))?;
        match holder {
            None => {
                let mut lease = self.leases.remove(i);
                lease.end_holder(now, HolderEnd::Broken);
                self.deleted.push(lease);
                self.next_revision();
            }
            Some(h) => {
                let next = self.next_revision();
                let lease = &mut self.leases[i];
                lease.end_holder(now, HolderEnd::Broken);
                lease.spec.holder_identity = Some(h.to_string());
                lease.spec.acquire_time = Some(now);
                lease.spec.renew_time = Some(now);
                lease.spec.lease_transitions = Some(lease.spec.lease_transitions.unwrap_or(0) + 1);
                lease.resource_version = next;
                lease.record_holder(Some(h), now, HolderEnd::Broken);
            }
        }
        Ok(())
    }
}
