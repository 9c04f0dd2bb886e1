//! Starting and stopping the emulator: the HTTPS listener, the state directory (CA and the
//! `dfcsync` principal's secret file), the handle tests hold, and the ready `dfcsync`
//! configuration that points at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use serde_json::Value as Json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::faults::Faults;
use crate::http::{Shared, State};
use crate::ids::IdGen;
use crate::load::Scenario;
use crate::reqlog::RequestLog;
use crate::scenario::PrincipalKind;
use crate::throttle::Throttles;
use crate::tokens::TokenIssuer;

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Where to listen (default `127.0.0.1:0`, a free port).
    pub listen: SocketAddr,
    /// Where to write the CA and the secret file (default: a temp dir owned by the handle).
    pub state_dir: Option<PathBuf>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
        }
    }
}

/// Errors starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Where each service is served (also `GET /_emulator/endpoints`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Endpoints {
    pub tenant_id: String,
    /// The base under which `/{tenant}/oauth2/v2.0/token` lives.
    pub authority: String,
    pub arm: String,
    pub log_analytics: String,
    /// Microsoft Graph's base (`{graph}/v1.0/security/incidents`).
    #[serde(default)]
    pub graph: String,
    /// The App Service style managed identity endpoint (`IDENTITY_ENDPOINT`), over plain HTTP
    /// on loopback as Azure serves it on the host (the same path also answers over HTTPS on
    /// the main port).
    pub identity_endpoint: String,
    /// The secret to send as `X-IDENTITY-HEADER` (`IDENTITY_HEADER`).
    pub identity_header: String,
    /// The IMDS style endpoint (`/metadata/identity/oauth2/token`, `Metadata: true`), plain
    /// HTTP on loopback like `identity_endpoint`.
    pub imds_endpoint: String,
    /// The CA's PEM file.
    pub ca: String,
}

/// The emulator.
pub struct Emulator;

/// A running emulator. Dropping it stops the server.
pub struct EmulatorHandle {
    shared: Arc<Shared>,
    base_url: String,
    ca_pem: String,
    ca_path: PathBuf,
    secret_path: Option<PathBuf>,
    task: Option<JoinHandle<()>>,
    _tempdir: Option<tempfile::TempDir>,
}

impl Emulator {
    /// Starts the emulator on `opts.listen` with the given scenario.
    pub async fn start(scenario: Scenario, opts: StartOptions) -> Result<EmulatorHandle, Error> {
        let (tempdir, dir) = match &opts.state_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, std::path::absolute(d)?)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("dfcsync-emulator-")
                    .tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let tls = crate::tls::make()?;
        let ca_path = dir.join("emulator-ca.pem");
        std::fs::write(&ca_path, &tls.ca_pem)?;
        let listener = TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        // The managed identity endpoints, over plain HTTP as on an Azure host: loopback only.
        let plain_ip = if addr.ip().is_loopback() {
            addr.ip()
        } else {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        };
        let plain = TcpListener::bind(SocketAddr::new(plain_ip, 0)).await?;
        let plain_addr = plain.local_addr()?;
        let identity_base_url = match plain_addr {
            SocketAddr::V4(a) => format!("http://{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("http://[{}]:{}", a.ip(), a.port()),
        };
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        let base_url = format!("https://{host}:{}", addr.port());

        let initial = scenario.initial.clone();
        let platform = initial.clone();
        let rng = IdGen::from_seed(format!("run:{}:{}", platform.tenant_id, base_url).as_bytes());
        // The per-run secrets: the token signing key and the identity header.
        let mut key = Vec::new();
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut keygen = IdGen::from_seed(format!("{nonce}:{}", std::process::id()).as_bytes());
        for _ in 0..4 {
            key.extend_from_slice(&keygen.next_u64().to_le_bytes());
        }
        let identity_header = keygen.guid();

        // The dfcsync principal's secret file (mode 0600).
        let dfcsync = platform
            .principals
            .iter()
            .find(|p| p.name == "dfcsync")
            .or_else(|| {
                platform
                    .principals
                    .iter()
                    .find(|p| p.kind == PrincipalKind::ServicePrincipal)
            });
        let secret_path = match dfcsync.and_then(|p| p.secret.clone()) {
            Some(secret) => {
                let path = dir.join("dfcsync-client-secret");
                write_private(&path, &secret)?;
                Some(path)
            }
            None => None,
        };

        let clock = Clock::new(platform.start, platform.frozen_clock);
        let tenant_id = platform.tenant_id.clone();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                platform,
                clock,
                faults: Faults::default(),
                log: RequestLog::default(),
                throttles: Throttles::default(),
                rng,
            }),
            identity_base_url: identity_base_url.clone(),
            issuer: TokenIssuer::new(&tenant_id, &key),
            base_url: base_url.clone(),
            identity_header,
            ca_path: ca_path.clone(),
            initial,
            tenant_id,
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let serve_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((tcp, remote)) = accepted else { continue };
                        // Small answers go out at once (no Nagle delay against the client's
                        // delayed ACK: 40 ms a page otherwise).
                        let _ = tcp.set_nodelay(true);
                        let acceptor = acceptor.clone();
                        let shared = serve_shared.clone();
                        conns.spawn(async move {
                            let Ok(tls) = acceptor.accept(tcp).await else { return };
                            let svc = service_fn(move |req| {
                                let shared = shared.clone();
                                async move { Ok::<_, std::convert::Infallible>(crate::http::serve(shared, remote, req).await) }
                            });
                            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(tls), svc)
                                .await;
                        });
                    }
                    accepted = plain.accept() => {
                        let Ok((tcp, remote)) = accepted else { continue };
                        let _ = tcp.set_nodelay(true);
                        let shared = serve_shared.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req| {
                                let shared = shared.clone();
                                async move { Ok::<_, std::convert::Infallible>(crate::http::serve_plain(shared, remote, req).await) }
                            });
                            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(tcp), svc)
                                .await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(EmulatorHandle {
            shared,
            base_url,
            ca_pem: tls.ca_pem,
            ca_path,
            secret_path,
            task: Some(task),
            _tempdir: tempdir,
        })
    }
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(content.as_bytes())
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl EmulatorHandle {
    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The CA's PEM file.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_path
    }

    /// The CA's PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Where each service is served.
    pub fn endpoints(&self) -> Endpoints {
        let b = &self.base_url;
        Endpoints {
            tenant_id: self.shared.tenant_id.clone(),
            authority: b.clone(),
            arm: b.clone(),
            log_analytics: b.clone(),
            graph: b.clone(),
            identity_endpoint: format!(
                "{}{}",
                self.shared.identity_base_url,
                crate::http::identity::APP_SERVICE_PATH
            ),
            identity_header: self.shared.identity_header.clone(),
            imds_endpoint: format!(
                "{}{}",
                self.shared.identity_base_url,
                crate::http::identity::IMDS_PATH
            ),
            ca: self.ca_path.display().to_string(),
        }
    }

    /// The secret file of the `dfcsync` principal, when it has a secret.
    pub fn client_secret_path(&self) -> Option<&Path> {
        self.secret_path.as_deref()
    }

    /// The ready `dfcsync` configuration (TOML) that points at this emulator.
    pub fn config_toml(&self) -> String {
        let st = self.shared.lock();
        let p = &st.platform;
        let b = &self.base_url;
        let dfcsync = p
            .principals
            .iter()
            .find(|x| x.name == "dfcsync")
            .or_else(|| {
                p.principals
                    .iter()
                    .find(|x| x.kind == PrincipalKind::ServicePrincipal)
            });
        let client_id = dfcsync.map(|x| x.client_id.clone()).unwrap_or_default();
        let secret_file = self
            .secret_path
            .as_ref()
            .map(|s| s.display().to_string())
            .unwrap_or_default();
        let mut out = format!(
            "# dfcsync configuration for the emulator at {b}\n\
             [azure]\n\
             cloud = \"custom\"\n\
             tenant_id = {}\n\
             tls_ca_file = {}\n\
             \n\
             [azure.endpoints]\n\
             authority = {}            # token URL is {{authority}}/{{tenant}}/oauth2/v2.0/token\n\
             arm = {}\n\
             arm_scope = \"https://management.azure.com/.default\"\n\
             log_analytics = {}\n\
             log_analytics_scope = \"https://api.loganalytics.io/.default\"\n\
             graph = {}\n\
             graph_scope = \"https://graph.microsoft.com/.default\"\n\
             \n\
             [auth]\n\
             method = \"client_secret\"\n\
             client_id = {}\n\
             client_secret_file = {}\n",
            toml_str(&p.tenant_id),
            toml_str(&self.ca_path.display().to_string()),
            toml_str(b),
            toml_str(b),
            toml_str(b),
            toml_str(b),
            toml_str(&client_id),
            toml_str(&secret_file),
        );
        for w in &p.workspaces {
            out.push_str(&format!(
                "\n[[workspaces]]\nsubscription_id = {}\nresource_group = {}\nname = {}\n",
                toml_str(&w.subscription_id),
                toml_str(&w.resource_group),
                toml_str(&w.name)
            ));
        }
        out
    }

    /// The platform state (equal to `GET /_emulator/state`).
    pub fn state(&self) -> Json {
        let st = self.shared.lock();
        let mut doc = st.platform.state_json(true);
        doc["now"] = serde_json::json!(crate::table::format_time(st.clock.now()));
        doc
    }

    /// Runs a closure on the platform model (for tests that look deeper than the state).
    pub fn with_platform<R>(&self, f: impl FnOnce(&crate::platform::Platform) -> R) -> R {
        let st = self.shared.lock();
        f(&st.platform)
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl std::fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("base_url", &self.base_url)
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
