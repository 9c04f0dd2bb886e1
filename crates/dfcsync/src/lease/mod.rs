//! One writer at a time: a lease on a service that already does leases (an Azure Storage
//! blob lease, or a Kubernetes `Lease`), and the fence that keeps every write behind it.
//!
//! Two runs of dfcsync against one target (the two scheduled jobs of one deployment at the top
//! of the hour, a job execution started while the last one still runs, two pods during a
//! rollout) would both write. Sentinel's conditional PUTs and deterministic comment ids make
//! that harmless there; Graph comments and DfC writeback have no concurrency control, so two
//! writers post every comment twice. So a run takes the lease before its first write:
//!
//! - [`Lease::acquire`] takes it (or says who holds it, and until when);
//! - while held, a background task renews it every sixth of its duration (between 1 and 5
//!   s: a lease broken by someone else is noticed that soon); the [`Fence`]
//!   opens writes only while the lease is held with more than a margin (a third of the
//!   duration) left, on the local monotonic clock from the start of the last successful
//!   renewal. A renewal that fails closes the fence at once (writes in flight finish; no
//!   new one is sent: the HTTP layer checks the fence before every attempt of a write,
//!   [`crate::azure::http::WriteGate`]); a later renewal that succeeds, before the lease ran
//!   out, opens it again; a lease found lost (another holder, broken) ends the renewals.
//! - [`Lease::release`] gives it back (a run that ends, a signal); a run killed without
//!   releasing leaves the lease to expire after its duration.
//!
//! Reading and planning never need the lease. [`LeaseStore`] is the service's half:
//! [`blob`] and [`kubernetes`].

pub mod blob;
pub mod kubernetes;

use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's Instant: the monotonic clock, which tests can pause.
use tokio::time::Instant;

use chrono::{DateTime, Utc};

use crate::azure::AzureError;
use crate::azure::http::WriteGate;

/// Why a lease call failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lease is not ours any more (another holder, broken, expired and taken).
    #[error("the lease is lost: {0}")]
    Lost(String),
    #[error("lease: {0}")]
    Azure(#[from] AzureError),
    #[error("Kubernetes lease: {0}")]
    Kubernetes(String),
    #[error("lease configuration: {0}")]
    Config(String),
}

/// Who holds a lease, as the service tells it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holding {
    /// The holder's identity, when the service (or the blob's metadata) says.
    pub holder: Option<String>,
    /// When the lease runs out unless renewed, when known.
    pub until: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Holding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.holder {
            Some(h) => write!(f, "{h}")?,
            None => f.write_str("another run")?,
        }
        match self.until {
            Some(u) => write!(
                f,
                " holds the lease until {} unless it renews it",
                u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => f.write_str(" holds the lease"),
        }
    }
}

/// What an acquire came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Ours, under this token (the Blob lease id, or the Lease's resource version).
    Held { token: String },
    /// Someone else's.
    Taken(Holding),
}

/// The service's half of a lease.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync {
    /// What the lease is, for messages (`Azure Blob lease https://…/dfcsync-leases/name`).
    fn describe(&self) -> String;
    /// Takes the lease for `holder` for `duration`, if free (or expired).
    async fn acquire(&self, holder: &str, duration: Duration) -> Result<Acquired, LeaseError>;
    /// Renews it; returns the (possibly new) token. [`LeaseError::Lost`] when it is not ours.
    async fn renew(
        &self,
        token: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<String, LeaseError>;
    /// Gives it back.
    async fn release(&self, token: &str, holder: &str) -> Result<(), LeaseError>;
    /// Who holds it now (`None`: nobody), without taking it (for `doctor`).
    async fn holder(&self) -> Result<Option<Holding>, LeaseError>;
}

/// The fence: whether writes may go now. Shared by the lease and the HTTP layer.
#[derive(Debug)]
pub struct Fence {
    /// When the lease runs out, on the local monotonic clock (`None`: not held).
    valid_until: Mutex<Option<Instant>>,
    /// Writes stop this long before the lease runs out.
    margin: Duration,
    what: String,
}

impl Fence {
    fn new(margin: Duration, what: String) -> Fence {
        Fence {
            valid_until: Mutex::new(None),
            margin,
            what,
        }
    }

    fn set(&self, until: Option<Instant>) {
        if let Ok(mut v) = self.valid_until.lock() {
            *v = until;
        }
    }

    fn until(&self) -> Option<Instant> {
        self.valid_until.lock().ok().and_then(|v| *v)
    }

    /// Whether writes may go now.
    pub fn open(&self) -> bool {
        self.until()
            .is_some_and(|u| u.saturating_duration_since(Instant::now()) > self.margin)
    }
}

impl WriteGate for Fence {
    fn check(&self) -> Result<(), String> {
        match self.until() {
            None => Err(format!(
                "this run does not hold the lease ({}): left for the holder or the next run",
                self.what
            )),
            Some(u) if u.saturating_duration_since(Instant::now()) <= self.margin => Err(format!(
                "the lease ({}) was not renewed in time: writes stop before it runs out",
                self.what
            )),
            Some(_) => Ok(()),
        }
    }
}

/// Counters of a lease, for metrics and reports.
#[derive(Debug, Default)]
pub struct LeaseStats {
    pub renewals: std::sync::atomic::AtomicU64,
    pub renew_failures: std::sync::atomic::AtomicU64,
    pub losses: std::sync::atomic::AtomicU64,
}

struct State {
    /// Our token while we hold the lease.
    token: Option<String>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

/// A lease of this process: taken, renewed in the background, released.
pub struct Lease {
    store: Arc<dyn LeaseStore>,
    holder: String,
    duration: Duration,
    fence: Arc<Fence>,
    state: Arc<Mutex<State>>,
    pub stats: Arc<LeaseStats>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("store", &self.store.describe())
            .field("holder", &self.holder)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// A lease on `store` for `holder` (this process), lasting `duration` unless renewed.
    pub fn new(store: Arc<dyn LeaseStore>, holder: String, duration: Duration) -> Lease {
        let fence = Arc::new(Fence::new(duration / 3, store.describe()));
        Lease {
            store,
            holder,
            duration,
            fence,
            state: Arc::new(Mutex::new(State {
                token: None,
                renewer: None,
            })),
            stats: Arc::new(LeaseStats::default()),
        }
    }

    /// The fence to put the writes behind.
    pub fn fence(&self) -> Arc<Fence> {
        self.fence.clone()
    }

    /// This process's identity as a holder.
    pub fn holder_id(&self) -> &str {
        &self.holder
    }

    /// What the lease is.
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// Whether this process holds the lease now (with time to write).
    pub fn held(&self) -> bool {
        self.fence.open()
    }

    /// Takes the lease if it is free, and renews it in the background from then on; `Ok(None)`
    /// when held (already, or now), `Ok(Some(who))` when another run holds it.
    pub async fn acquire(&self) -> Result<Option<Holding>, LeaseError> {
        if self.fence.open() {
            return Ok(None);
        }
        let token = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .token
            .clone();
        if let Some(token) = token {
            // Ours, but its renewals failed: try one now rather than wait for the next.
            let started = Instant::now();
            match self.store.renew(&token, &self.holder, self.duration).await {
                Ok(new_token) => {
                    self.stats
                        .renewals
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.fence.set(Some(started + self.duration));
                    self.state.lock().unwrap_or_else(|e| e.into_inner()).token = Some(new_token);
                    return Ok(None);
                }
                Err(LeaseError::Lost(_)) => {
                    let renewer = {
                        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                        st.token = None;
                        st.renewer.take()
                    };
                    if let Some(r) = renewer {
                        r.abort();
                    }
                }
                Err(e) => {
                    return Ok(Some(Holding {
                        holder: Some(format!(
                            "{} (this run, whose renewals fail: {e})",
                            self.holder
                        )),
                        until: None,
                    }));
                }
            }
        }
        let started = Instant::now();
        match self.store.acquire(&self.holder, self.duration).await? {
            Acquired::Taken(h) => Ok(Some(h)),
            Acquired::Held { token } => {
                self.fence.set(Some(started + self.duration));
                tracing::info!(lease = %self.store.describe(), holder = %self.holder, "lease acquired");
                let renewer = tokio::spawn(renew_loop(
                    self.store.clone(),
                    self.holder.clone(),
                    self.duration,
                    self.fence.clone(),
                    self.state.clone(),
                    self.stats.clone(),
                ));
                let old = {
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    st.token = Some(token);
                    st.renewer.replace(renewer)
                };
                if let Some(old) = old {
                    old.abort();
                }
                Ok(None)
            }
        }
    }

    /// Gives the lease back (writes stop first).
    pub async fn release(&self) {
        self.fence.set(None);
        let (token, renewer) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (st.token.take(), st.renewer.take())
        };
        if let Some(r) = renewer {
            r.abort();
        }
        if let Some(t) = token {
            match self.store.release(&t, &self.holder).await {
                Ok(()) => tracing::info!(lease = %self.store.describe(), "lease released"),
                Err(e) => {
                    tracing::warn!(lease = %self.store.describe(), error = %e, "releasing the lease failed: it runs out by itself")
                }
            }
        }
    }

    /// Who holds the lease, as the service says.
    pub async fn holding(&self) -> Result<Option<Holding>, LeaseError> {
        self.store.holder().await
    }
}

/// How often a held lease is renewed: a sixth of its duration, between 1 and 5 seconds.
pub fn renew_period(duration: Duration) -> Duration {
    (duration / 6).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// Renews every [`renew_period`] while the lease is ours.
async fn renew_loop(
    store: Arc<dyn LeaseStore>,
    holder: String,
    duration: Duration,
    fence: Arc<Fence>,
    state: Arc<Mutex<State>>,
    stats: Arc<LeaseStats>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    // The lease is ours until this instant at least (the start of the last good renewal plus
    // the duration).
    let mut ours_until = fence.until().unwrap_or_else(Instant::now);
    loop {
        tokio::time::sleep(renew_period(duration)).await;
        let Some(token) = state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .token
            .clone()
        else {
            return;
        };
        let started = Instant::now();
        match store.renew(&token, &holder, duration).await {
            Ok(new_token) => {
                stats.renewals.fetch_add(1, Relaxed);
                ours_until = started + duration;
                fence.set(Some(ours_until));
                state.lock().unwrap_or_else(|e| e.into_inner()).token = Some(new_token);
            }
            Err(LeaseError::Lost(why)) => {
                stats.losses.fetch_add(1, Relaxed);
                fence.set(None);
                state.lock().unwrap_or_else(|e| e.into_inner()).token = None;
                tracing::warn!(lease = %store.describe(), reason = %why, "the lease is lost: writes stopped");
                return;
            }
            Err(e) => {
                stats.renew_failures.fetch_add(1, Relaxed);
                // Writes stop at once; the renewals go on while the lease may still be ours.
                fence.set(None);
                if Instant::now() >= ours_until {
                    stats.losses.fetch_add(1, Relaxed);
                    state.lock().unwrap_or_else(|e| e.into_inner()).token = None;
                    tracing::warn!(lease = %store.describe(), error = %e, "the lease ran out while its renewals failed: writes stopped");
                    return;
                }
                tracing::warn!(lease = %store.describe(), error = %e, "renewing the lease failed: writes stopped until a renewal succeeds");
            }
        }
    }
}

/// The identity of this process as a holder: the host's name (a pod's, a Container Apps
/// replica's), the process id and the run id (`crate::azure::http::run_id`).
pub fn holder_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dfcsync".to_owned());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        crate::azure::http::run_id()
    )
}

/// The default lease name of a configuration: one per backend and target, so that every run
/// of one deployment shares it (`dfcsync-sentinel-<12 hex>` of the workspaces, or
/// `dfcsync-graph-<12 hex>` of the tenant).
pub fn default_name(config: &crate::config::Config) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let kind = match config.sync.backend {
        crate::config::Backend::Sentinel => {
            let mut ws: Vec<String> = config
                .file
                .workspaces
                .iter()
                .map(|w| {
                    format!("{}/{}/{}", w.subscription_id, w.resource_group, w.name)
                        .to_ascii_lowercase()
                })
                .collect();
            ws.sort();
            h.update(ws.join(",").as_bytes());
            "sentinel"
        }
        crate::config::Backend::Graph => {
            h.update(
                config
                    .file
                    .azure
                    .tenant_id
                    .as_deref()
                    .unwrap_or("tenant")
                    .to_ascii_lowercase()
                    .as_bytes(),
            );
            "graph"
        }
    };
    let hex: String = h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("dfcsync-{kind}-{hex}")
}

/// The lease `config` asks for (`None`: `[lease] kind = "none"`). `http` carries the
/// credential (for a Blob lease).
pub async fn from_config(
    config: &crate::config::Config,
    http: &crate::azure::http::AzureHttp,
) -> Result<Option<Lease>, LeaseError> {
    use crate::config::LeaseSettings;
    let (store, duration): (Arc<dyn LeaseStore>, Duration) = match &config.lease {
        LeaseSettings::None => return Ok(None),
        LeaseSettings::AzureBlob {
            account_url,
            container,
            name,
            duration,
            scope,
        } => {
            let name = name.clone().unwrap_or_else(|| default_name(config));
            (
                Arc::new(blob::BlobLease::new(
                    http.clone(),
                    account_url,
                    container,
                    &name,
                    scope,
                )?),
                *duration,
            )
        }
        LeaseSettings::Kubernetes {
            namespace,
            name,
            duration,
            kubeconfig,
        } => {
            let name = name.clone().unwrap_or_else(|| default_name(config));
            let store = match kubeconfig {
                Some(path) => {
                    kubernetes::KubeLease::from_kubeconfig(path, namespace.as_deref(), &name)
                        .await?
                }
                None => kubernetes::KubeLease::in_cluster(namespace.as_deref(), &name).await?,
            };
            (Arc::new(store), *duration)
        }
    };
    Ok(Some(Lease::new(store, holder_identity(), duration)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// A store in memory: one holder at a time; renewals can be made to fail.
    #[derive(Default)]
    struct Memory {
        holder: Mutex<Option<(String, String)>>,
        next: AtomicU32,
        fail_renewals: AtomicBool,
        lose: AtomicBool,
    }

    #[async_trait::async_trait]
    impl LeaseStore for Memory {
        fn describe(&self) -> String {
            "memory".into()
        }
        async fn acquire(&self, holder: &str, _d: Duration) -> Result<Acquired, LeaseError> {
            let mut h = self.holder.lock().unwrap();
            match &*h {
                Some((who, _)) if who != holder => Ok(Acquired::Taken(Holding {
                    holder: Some(who.clone()),
                    until: None,
                })),
                _ => {
                    let token = self.next.fetch_add(1, Ordering::SeqCst).to_string();
                    *h = Some((holder.to_owned(), token.clone()));
                    Ok(Acquired::Held { token })
                }
            }
        }
        async fn renew(&self, token: &str, _h: &str, _d: Duration) -> Result<String, LeaseError> {
            if self.lose.load(Ordering::SeqCst) {
                return Err(LeaseError::Lost("broken".into()));
            }
            if self.fail_renewals.load(Ordering::SeqCst) {
                return Err(LeaseError::Kubernetes("503".into()));
            }
            match &*self.holder.lock().unwrap() {
                Some((_, t)) if t == token => Ok(token.to_owned()),
                _ => Err(LeaseError::Lost("not ours".into())),
            }
        }
        async fn release(&self, token: &str, _h: &str) -> Result<(), LeaseError> {
            let mut h = self.holder.lock().unwrap();
            if h.as_ref().is_some_and(|(_, t)| t == token) {
                *h = None;
            }
            Ok(())
        }
        async fn holder(&self) -> Result<Option<Holding>, LeaseError> {
            Ok(self.holder.lock().unwrap().as_ref().map(|(w, _)| Holding {
                holder: Some(w.clone()),
                until: None,
            }))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_holder_renewals_and_the_fence() {
        let store = Arc::new(Memory::default());
        let d = Duration::from_secs(30);
        let a = Lease::new(store.clone(), "a".into(), d);
        let b = Lease::new(store.clone(), "b".into(), d);
        assert!(a.fence().check().is_err(), "closed before acquiring");
        assert_eq!(a.acquire().await.unwrap(), None);
        assert!(a.fence().check().is_ok());
        let taken = b.acquire().await.unwrap().expect("a holds it");
        assert_eq!(taken.holder.as_deref(), Some("a"));
        assert!(b.fence().check().is_err());
        // Renewed in the background: still open long after the first duration.
        tokio::time::sleep(d * 3).await;
        assert!(a.fence().check().is_ok(), "renewed");
        assert!(a.stats.renewals.load(Ordering::SeqCst) >= 5);
        // Renewals fail: writes stop at once, before the lease runs out.
        store.fail_renewals.store(true, Ordering::SeqCst);
        tokio::time::sleep(d / 3 + Duration::from_millis(10)).await;
        assert!(
            a.fence().check().is_err(),
            "a failed renewal closes the fence"
        );
        // One that succeeds before the lease ran out opens it again.
        store.fail_renewals.store(false, Ordering::SeqCst);
        tokio::time::sleep(d / 3).await;
        assert!(a.fence().check().is_ok(), "reopened");
        // Broken: lost for good.
        store.lose.store(true, Ordering::SeqCst);
        tokio::time::sleep(d / 3 + Duration::from_millis(10)).await;
        assert!(a.fence().check().is_err());
        assert_eq!(a.stats.losses.load(Ordering::SeqCst), 1);
        // Released: the other takes it.
        store.lose.store(false, Ordering::SeqCst);
        a.release().await;
        *store.holder.lock().unwrap() = None;
        assert_eq!(b.acquire().await.unwrap(), None);
        assert!(b.fence().check().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_closes_a_margin_before_the_end() {
        let f = Fence::new(Duration::from_secs(10), "x".into());
        f.set(Some(Instant::now() + Duration::from_secs(30)));
        assert!(f.check().is_ok());
        tokio::time::sleep(Duration::from_secs(19)).await;
        assert!(f.check().is_ok());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let e = f.check().unwrap_err();
        assert!(e.contains("not renewed in time"), "{e}");
    }

    #[test]
    fn default_names_are_shared_by_one_deployment() {
        let cfg = |ws: &str| {
            crate::config::Config::parse(
                &format!("[[workspaces]]\n{ws}\n[[workspaces]]\nsubscription_id = \"s2\"\nresource_group = \"rg\"\nname = \"w2\"\n"),
                "t",
            )
            .unwrap()
        };
        let a = default_name(&cfg(
            "subscription_id = \"s1\"\nresource_group = \"rg\"\nname = \"w1\"",
        ));
        let b = default_name(&cfg(
            "subscription_id = \"S1\"\nresource_group = \"RG\"\nname = \"W1\"",
        ));
        assert_eq!(a, b, "case and order do not matter");
        assert!(a.starts_with("dfcsync-sentinel-") && a.len() == "dfcsync-sentinel-".len() + 12);
        let c = default_name(&cfg(
            "subscription_id = \"s3\"\nresource_group = \"rg\"\nname = \"w1\"",
        ));
        assert_ne!(a, c);
    }
}
