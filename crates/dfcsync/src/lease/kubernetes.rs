//! A lease on a Kubernetes `coordination.k8s.io/v1` `Lease` (`docs/azure-services.md` §2),
//! through `kube`: the pod's service account in a cluster, or a kubeconfig file outside one.
//! Every write of the object is conditional on the `resourceVersion` read (a 409 Conflict
//! means another writer came first).
//!
//! Who may take a Lease held by another follows client-go's leader election: not the
//! `renewTime` against this machine's clock (clocks differ between nodes), but time observed
//! here: a Lease whose `resourceVersion` has not changed for a whole `leaseDurationSeconds`
//! since this process first saw it is expired, and is taken (`leaseTransitions` + 1). A
//! released Lease (no holder) is taken at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use super::{Acquired, Holding, LeaseError, LeaseStore};

/// A Kubernetes Lease.
pub struct KubeLease {
    api: Api<LeaseObject>,
    name: String,
    namespace: String,
    /// The holder's resourceVersion last seen, and when it was first seen here.
    observed: Mutex<Option<(String, Instant)>>,
}

fn kube_err(e: kube::Error) -> LeaseError {
    LeaseError::Kubernetes(e.to_string())
}

/// The HTTP status of a `kube` error from the API server.
fn status_of(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn micro(t: DateTime<Utc>) -> Option<MicroTime> {
    let nanos = t.timestamp_nanos_opt()?;
    k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(nanos))
        .ok()
        .map(MicroTime)
}

fn from_micro(t: &MicroTime) -> Option<DateTime<Utc>> {
    let nanos = i64::try_from(t.0.as_nanosecond()).ok()?;
    Some(DateTime::from_timestamp_nanos(nanos))
}

impl KubeLease {
    /// Through the pod's service account (or `KUBECONFIG` / `~/.kube/config`, as `kube`
    /// infers), in `namespace` (by default the service account's own).
    pub async fn in_cluster(namespace: Option<&str>, name: &str) -> Result<KubeLease, LeaseError> {
        let config = kube::Config::infer()
            .await
            .map_err(|e| LeaseError::Kubernetes(format!("no cluster to reach: {e}")))?;
        Self::with_config(config, namespace, name)
    }

    /// Through the kubeconfig file `path`.
    pub async fn from_kubeconfig(
        path: &std::path::Path,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<KubeLease, LeaseError> {
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| LeaseError::Config(format!("kubeconfig {}: {e}", path.display())))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| LeaseError::Config(format!("kubeconfig {}: {e}", path.display())))?;
        Self::with_config(config, namespace, name)
    }

    fn with_config(
        config: kube::Config,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<KubeLease, LeaseError> {
        let namespace = namespace
            .map(str::to_owned)
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(kube_err)?;
        Ok(KubeLease {
            api: Api::namespaced(client, &namespace),
            name: name.to_owned(),
            namespace,
            observed: Mutex::new(None),
        })
    }

    async fn get(&self) -> Result<Option<LeaseObject>, LeaseError> {
        match self.api.get(&self.name).await {
            Ok(l) => Ok(Some(l)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(kube_err(e)),
        }
    }

    fn spec_for(
        holder: &str,
        duration: Duration,
        transitions: i32,
        acquired: DateTime<Utc>,
    ) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
            acquire_time: micro(acquired),
            renew_time: micro(Utc::now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Writes `lease` back (conditional on the resourceVersion it was read with): the new
    /// resourceVersion, or `None` on a 409 Conflict.
    async fn replace(&self, lease: &LeaseObject) -> Result<Option<String>, LeaseError> {
        match self
            .api
            .replace(&self.name, &PostParams::default(), lease)
            .await
        {
            Ok(l) => Ok(Some(l.metadata.resource_version.unwrap_or_default())),
            Err(e) if status_of(&e) == Some(409) => Ok(None),
            Err(e) => Err(kube_err(e)),
        }
    }

    fn holding_of(l: &LeaseObject) -> Option<Holding> {
        let spec = l.spec.as_ref()?;
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
        let until = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(t), Some(d)) => {
                from_micro(t).map(|t| t + chrono::TimeDelta::seconds(i64::from(d)))
            }
            _ => None,
        };
        Some(Holding {
            holder: Some(holder),
            until,
        })
    }

    /// Whether a Lease held by another has been seen unchanged for its whole duration.
    fn expired_here(&self, l: &LeaseObject) -> bool {
        let rv = l.metadata.resource_version.clone().unwrap_or_default();
        let duration = Duration::from_secs(
            l.spec
                .as_ref()
                .and_then(|s| s.lease_duration_seconds)
                .unwrap_or(15)
                .max(1) as u64,
        );
        let mut seen = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        match &*seen {
            Some((r, at)) if *r == rv => at.elapsed() >= duration,
            _ => {
                *seen = Some((rv, Instant::now()));
                false
            }
        }
    }
}

#[async_trait::async_trait]
impl LeaseStore for KubeLease {
    fn describe(&self) -> String {
        format!("Kubernetes Lease {}/{}", self.namespace, self.name)
    }

    async fn acquire(&self, holder: &str, duration: Duration) -> Result<Acquired, LeaseError> {
        let Some(mut lease) = self.get().await? else {
            let new = LeaseObject {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(Self::spec_for(holder, duration, 0, Utc::now())),
            };
            return match self.api.create(&PostParams::default(), &new).await {
                Ok(l) => Ok(Acquired::Held {
                    token: l.metadata.resource_version.unwrap_or_default(),
                }),
                // Another candidate created it first.
                Err(e) if status_of(&e) == Some(409) => Ok(Acquired::Taken(
                    self.get()
                        .await?
                        .as_ref()
                        .and_then(Self::holding_of)
                        .unwrap_or_default(),
                )),
                Err(e) => Err(kube_err(e)),
            };
        };
        let current = Self::holding_of(&lease);
        let ours = current.as_ref().and_then(|h| h.holder.as_deref()) == Some(holder);
        if let Some(h) = &current
            && !ours
            && !self.expired_here(&lease)
        {
            return Ok(Acquired::Taken(h.clone()));
        }
        let transitions = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0)
            + i32::from(!ours);
        let acquired = match (
            ours,
            lease.spec.as_ref().and_then(|s| s.acquire_time.as_ref()),
        ) {
            (true, Some(t)) => from_micro(t).unwrap_or_else(Utc::now),
            _ => Utc::now(),
        };
        lease.spec = Some(Self::spec_for(holder, duration, transitions, acquired));
        match self.replace(&lease).await? {
            Some(rv) => {
                *self.observed.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(Acquired::Held { token: rv })
            }
            None => Ok(Acquired::Taken(
                self.get()
                    .await?
                    .as_ref()
                    .and_then(Self::holding_of)
                    .unwrap_or_default(),
            )),
        }
    }

    async fn renew(
        &self,
        _token: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<String, LeaseError> {
        let mut lease = self
            .get()
            .await?
            .ok_or_else(|| LeaseError::Lost("the Lease was deleted".into()))?;
        let held_by = Self::holding_of(&lease).and_then(|h| h.holder);
        if held_by.as_deref() != Some(holder) {
            return Err(LeaseError::Lost(format!(
                "held by {}",
                held_by.as_deref().unwrap_or("nobody")
            )));
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = micro(Utc::now());
            spec.lease_duration_seconds =
                Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX));
        }
        self.replace(&lease)
            .await?
            .ok_or_else(|| LeaseError::Lost("another writer changed the Lease (409)".into()))
    }

    async fn release(&self, _token: &str, holder: &str) -> Result<(), LeaseError> {
        let Some(mut lease) = self.get().await? else {
            return Ok(());
        };
        if Self::holding_of(&lease).and_then(|h| h.holder).as_deref() != Some(holder) {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = micro(Utc::now());
        }
        self.replace(&lease).await.map(|_| ())
    }

    async fn holder(&self) -> Result<Option<Holding>, LeaseError> {
        Ok(self.get().await?.as_ref().and_then(Self::holding_of))
    }
}
