//! Starting and stopping a broker: listener, accept loop, shutdown, and the embedding API.
//!
//! [`Broker::start`] runs a broker on the caller's tokio runtime; [`EmbeddedBroker`] runs one on
//! its own runtime thread for synchronous code such as tests. Both bind before returning, so
//! the bootstrap address is usable at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admission::{is_out_of_fds, Admission, SpareFd};
use crate::auth::acl::Authorizer;
use crate::auth::credentials::CredentialStore;
use crate::config::{BrokerConfig, ConfigError};
use crate::dynamic_config::DynamicConfigs;
use crate::groups::GroupCoordinator;
use crate::listeners::Advertised;
use crate::registry::SchemaRegistry;
use crate::state::BrokerState;
use crate::topics::{TopicError, TopicRegistry};
use crate::txn::TransactionCoordinator;

/// Errors starting a broker.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BrokerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create a temporary data directory: {0}")]
    TempDir(std::io::Error),
    #[error("cannot open data directory {dir}: {source}")]
    Open {
        dir: PathBuf,
        #[source]
        source: TopicError,
    },
    #[error("cannot start the broker runtime: {0}")]
    Runtime(std::io::Error),
}

/// A running broker on the caller's runtime.
pub struct Broker {
    local_addr: SocketAddr,
    /// Each listener's name and bound address, in the order of `listeners`.
    listener_addrs: Vec<(String, SocketAddr)>,
    http_addr: Option<SocketAddr>,
    data_dir: PathBuf,
    cluster_id: String,
    /// The TLS configs of the TLS listeners (for reloading them).
    tls: Vec<Arc<crate::auth::tls::Tls>>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Broker {
    /// Opens the data directory, binds the listener and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        config.validate()?;
        // Half the descriptors for partition files (idle ones are closed past that), half
        // for connections.
        if let Some(limit) = crate::admission::raise_fd_limit() {
            let files = usize::try_from(limit / 2).unwrap_or(usize::MAX);
            brook_storage::set_max_open_files(files);
            tracing::debug!(limit, files, "open-file limit");
        }
        let specs = crate::listeners::specs(&config)
            .map_err(|(name, reason)| ConfigError::Invalid { name, reason })?;
        // Before the data directory: bad TLS files or keys stop the start at once.
        let named: Vec<_> = specs.iter().map(|s| (s.name.clone(), s.protocol)).collect();
        let security = crate::auth::Security::load(&config, &named)?;
        let mut listeners = Vec::with_capacity(specs.len());
        let mut listener_addrs = Vec::with_capacity(specs.len());
        for spec in specs {
            let bind = |source| BrokerError::Bind {
                addr: spec.bind,
                source,
            };
            let listener = TcpListener::bind(spec.bind).await.map_err(bind)?;
            let addr = listener.local_addr().map_err(bind)?;
            let (host, port) = spec
                .advertised
                .clone()
                .unwrap_or_else(|| (addr.ip().to_string(), addr.port()));
            let advertised = Advertised {
                listener: spec.name.clone(),
                protocol: spec.protocol,
                host,
                port: i32::from(port),
            };
            listener_addrs.push((spec.name, addr));
            listeners.push((listener, Arc::new(advertised)));
        }
        let local_addr = listener_addrs
            .first()
            .map(|(_, a)| *a)
            .unwrap_or(config.listen);
        let http = match config.http_addr().map_err(|reason| ConfigError::Invalid {
            name: "http_listen",
            reason,
        })? {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| BrokerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let http_addr = match &http {
            Some(l) => Some(l.local_addr().map_err(|source| BrokerError::Bind {
                addr: local_addr,
                source,
            })?),
            None => None,
        };
        let (temp_dir, data_dir) = if config.ephemeral {
            let t = tempfile::Builder::new()
                .prefix("brook-")
                .tempdir()
                .map_err(BrokerError::TempDir)?;
            let p = t.path().to_owned();
            (Some(t), p)
        } else {
            (None, config.data_dir.clone())
        };
        let (dynamic, topics, groups, txns, registry, credentials, authorizer) = {
            let dir = data_dir.clone();
            let config = config.clone();
            tokio::task::spawn_blocking(move || {
                // Dynamic broker configs first: the logs open with the settings in effect.
                let files = crate::files::Files::new(match &config.file_system {
                    Some(fs) => fs.clone(),
                    None => Arc::new(brook_storage::OsFileSystem),
                });
                let dynamic =
                    DynamicConfigs::open(config, &dir, files.clone()).map_err(|source| {
                        TopicError::Metadata {
                            path: dir.join(crate::dynamic_config::FILE),
                            source,
                        }
                    })?;
                let credentials = CredentialStore::open(&dir, files.clone()).map_err(|source| {
                    TopicError::Metadata {
                        path: dir.join(crate::auth::credentials::FILE),
                        source,
                    }
                })?;
                let config = dynamic.effective();
                let topics = TopicRegistry::open(&dir, &config)?;
                // After the registry: it creates the data directory and takes its lock.
                set_admin_user(&credentials, &config).map_err(|source| TopicError::Metadata {
                    path: dir.join(crate::auth::credentials::FILE),
                    source,
                })?;
                let groups = GroupCoordinator::open(&topics, &config)?;
                let txns = TransactionCoordinator::open(&topics, &config)?;
                let registry = SchemaRegistry::open(&topics, !config.unsafe_disable_fsync)?;
                let authorizer = Authorizer::open(
                    &dir,
                    files,
                    config.authorizer_enabled(),
                    config.super_user_principals(),
                    config.allow_everyone_if_no_acl_found,
                )
                .map_err(|source| TopicError::Metadata {
                    path: dir.join(crate::auth::acl::FILE),
                    source,
                })?;
                Ok::<_, TopicError>((
                    dynamic,
                    topics,
                    groups,
                    txns,
                    registry,
                    credentials,
                    authorizer,
                ))
            })
            .await
            .map_err(|e| BrokerError::Runtime(std::io::Error::other(e)))?
            .map_err(|source| BrokerError::Open {
                dir: data_dir.clone(),
                source,
            })?
        };
        let security = security.open(authorizer);
        let cluster_id = topics.cluster_id().to_string();
        if config.unsafe_disable_fsync {
            tracing::warn!("FSYNC IS DISABLED (unsafe_disable_fsync): acknowledged data survives a crash of the broker process but NOT a power loss or an OS crash. Use only for tests and throwaway setups.");
        }
        let state = Arc::new(BrokerState::new(
            dynamic,
            topics,
            groups,
            txns,
            registry,
            credentials,
            security,
        ));
        // Before anything is served: transactions whose AddPartitionsToTxn a crash lost.
        state.txns.reconcile(&state).await;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let tls = state.security.all_tls();
        let server = tokio::spawn(run(listeners, http, state, shutdown_rx, temp_dir));
        Ok(Broker {
            local_addr,
            listener_addrs,
            http_addr,
            data_dir,
            cluster_id,
            tls,
            shutdown,
            server,
        })
    }

    /// Reads the TLS key, certificate and trust store again (SIGHUP); new connections use
    /// them, open ones keep theirs. On an error the files in use stay.
    pub fn reload_tls(&self) -> Result<(), crate::auth::tls::TlsError> {
        for tls in &self.tls {
            tls.reload()?;
        }
        Ok(())
    }

    /// The address the (first) listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Each listener's name and bound address, in the order of `listeners`.
    pub fn listener_addrs(&self) -> &[(String, SocketAddr)] {
        &self.listener_addrs
    }

    /// The bound address of the listener named `name` (`PLAINTEXT` without `listeners`).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listener_addrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, a)| *a)
    }

    /// `host:port` for a client's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.local_addr.to_string()
    }

    /// The address the HTTP listener is bound to (`None` when `http_listen` is `off`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Where this broker keeps its data (a temporary directory when ephemeral).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Stops accepting, closes connections, and closes every log cleanly.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
    }
}

/// Sets `brook.admin.user`'s password when configured (both SCRAM mechanisms).
fn set_admin_user(credentials: &CredentialStore, config: &BrokerConfig) -> std::io::Result<()> {
    let (Some(user), Some(password)) = (&config.brook_admin_user, &config.brook_admin_password)
    else {
        return Ok(());
    };
    use crate::auth::scram::Mechanism;
    let mechanisms = [Mechanism::Sha256, Mechanism::Sha512];
    let iterations = crate::auth::users::DEFAULT_ITERATIONS;
    match credentials.set_password(user, password, &mechanisms, iterations)? {
        None => {
            tracing::info!(%user, "admin user's SCRAM credentials set (brook.admin.user)");
            Ok(())
        }
        Some((_, message)) => Err(std::io::Error::other(format!(
            "brook.admin.user {user:?}: {message}"
        ))),
    }
}

/// Accepts connections until shutdown, then waits for them and closes the logs.
async fn run(
    listeners: Vec<(TcpListener, Arc<Advertised>)>,
    http: Option<TcpListener>,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
    temp_dir: Option<tempfile::TempDir>,
) {
    let mut connections = JoinSet::new();
    let admission = Admission::new(
        state.config.max_connections,
        state.config.max_connections_per_ip,
    );
    let mut spare_fd = SpareFd::reserve();
    let maintenance = tokio::spawn(crate::maintenance::run(state.clone(), shutdown.clone()));
    let group_timers = tokio::spawn(crate::groups::run_timers(
        state.clone(),
        Duration::from_millis(state.config.offsets_retention_check_interval_ms),
        shutdown.clone(),
    ));
    let txn_timers = tokio::spawn(crate::txn::run_timers(
        state.clone(),
        Duration::from_millis(
            state
                .config
                .transaction_abort_timed_out_transaction_cleanup_interval_ms,
        ),
        Duration::from_millis(
            state
                .config
                .transaction_remove_expired_transaction_cleanup_interval_ms,
        ),
        shutdown.clone(),
    ));
    let http = http.map(|l| tokio::spawn(crate::http::serve(l, state.clone(), shutdown.clone())));
    state
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            ((i, accepted), _, _) = futures_util::future::select_all(
                listeners.iter().enumerate().map(|(i, (l, _))| Box::pin(async move { (i, l.accept().await) })),
            ) => match accepted {
                Ok((stream, peer)) => match admission.admit(peer.ip()) {
                    Ok(admitted) => {
                        let (state, shutdown) = (state.clone(), shutdown.clone());
                        let advertised = listeners[i].1.clone();
                        connections.spawn(async move {
                            crate::connection::serve(stream, advertised, state, shutdown).await;
                            drop(admitted);
                        });
                    }
                    // Closed at once: the client sees the refusal instead of a hang.
                    Err(refused) => {
                        admission.warn_refused(&refused);
                        drop(stream);
                    }
                },
                Err(e) if is_out_of_fds(&e) => {
                    // The waiting connection cannot be accepted into a descriptor we do not
                    // have: free the spare one, accept it and close it at once.
                    admission.warn_refused(&e);
                    if !spare_fd.refuse_one(&listeners[i].0).await {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    state
        .ready
        .store(false, std::sync::atomic::Ordering::Release);
    drop(listeners);
    while connections.join_next().await.is_some() {}
    if let Some(http) = http {
        let _ = http.await;
    }
    let _ = maintenance.await;
    let _ = group_timers.await;
    let _ = txn_timers.await;
    match Arc::try_unwrap(state) {
        Ok(state) => {
            // The coordinators hold their internal partitions: they go first, so that every
            // partition can be closed (a partition still shared is not, and the next start
            // then recovers every log).
            let crate::state::BrokerState {
                topics,
                groups,
                txns,
                registry,
                ..
            } = state;
            drop(groups);
            drop(txns);
            drop(registry);
            let _ = tokio::task::spawn_blocking(move || topics.close()).await;
        }
        Err(_) => tracing::warn!("broker state still shared at shutdown; logs not closed cleanly"),
    }
    drop(temp_dir);
    tracing::info!("broker stopped");
}

/// A broker on its own runtime thread, for synchronous callers (tests, tools).
pub struct EmbeddedBroker {
    broker: Option<Broker>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl EmbeddedBroker {
    /// Starts a broker with `config` (use [`BrokerConfig::ephemeral`] or
    /// [`BrokerConfig::with_data_dir`] for a free loopback port).
    pub fn start(config: BrokerConfig) -> Result<Self, BrokerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("brook-embedded")
            .enable_all()
            .build()
            .map_err(BrokerError::Runtime)?;
        let broker = runtime.block_on(Broker::start(config))?;
        Ok(Self {
            broker: Some(broker),
            runtime: Some(runtime),
        })
    }

    /// An ephemeral broker on a free loopback port.
    pub fn ephemeral() -> Result<Self, BrokerError> {
        Self::start(BrokerConfig::ephemeral())
    }

    fn broker(&self) -> &Broker {
        // Both are Some until shutdown, which consumes self.
        match &self.broker {
            Some(b) => b,
            None => unreachable!("EmbeddedBroker used after shutdown"),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.broker().bootstrap()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.broker().local_addr()
    }

    /// The bound address of the listener named `name`.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.broker().listener_addr(name)
    }

    /// The address of the HTTP listener (schema registry, metrics, health).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.broker().http_addr()
    }

    pub fn data_dir(&self) -> &Path {
        self.broker().data_dir()
    }

    pub fn cluster_id(&self) -> &str {
        self.broker().cluster_id()
    }

    /// Stops the broker and waits until its logs are closed.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let (Some(broker), Some(runtime)) = (self.broker.take(), self.runtime.take()) {
            runtime.block_on(broker.shutdown());
            runtime.shutdown_background();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
