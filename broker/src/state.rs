//! State shared by every connection and handler.

use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::dynamic_config::DynamicConfigs;
use crate::groups::GroupCoordinator;
use crate::topics::TopicRegistry;
use crate::txn::TransactionCoordinator;

/// The broker's shared state.
pub(crate) struct BrokerState {
    /// The settings as the broker started (config file, flags, dynamic configs then). A
    /// setting that may change at runtime ([`crate::dynamic_config::DYNAMIC`]) is read
    /// through [`BrokerState::current`] instead.
    pub(crate) config: BrokerConfig,
    /// Dynamic broker configs and the settings in effect now.
    pub(crate) dynamic: DynamicConfigs,
    pub(crate) topics: TopicRegistry,
    pub(crate) groups: GroupCoordinator,
    pub(crate) txns: TransactionCoordinator,
    /// The schema registry (`crate::http::registry` serves it).
    pub(crate) registry: crate::registry::SchemaRegistry,
    /// The users' SCRAM credentials.
    pub(crate) credentials: crate::auth::credentials::CredentialStore,
    /// TLS, SASL mechanisms, principal mapping and ACLs.
    pub(crate) security: crate::auth::Security,
    /// `brook.http.authentication`.
    pub(crate) http_authentication: crate::http::auth::Authentication,
    /// Basic-auth passwords the HTTP listener has checked recently.
    pub(crate) http_verified: crate::http::auth::VerifiedCache,
    /// `queued.max.request.bytes`: the broker-wide budget of request bytes read but not yet
    /// handled, and its size; `None` when unlimited.
    pub(crate) queued_requests: Option<(std::sync::Arc<tokio::sync::Semaphore>, usize)>,
    /// Counters the request path, the cleaner and retention bump (`GET /metrics`).
    pub(crate) metrics: std::sync::Arc<crate::http::metrics::Metrics>,
    /// The Kafka listener accepts connections (`GET /health/ready`).
    pub(crate) ready: std::sync::atomic::AtomicBool,
    /// Bumped after every append, so that waiting fetches re-check their partitions.
    appended: watch::Sender<u64>,
}

impl BrokerState {
    pub(crate) fn new(
        dynamic: DynamicConfigs,
        topics: TopicRegistry,
        groups: GroupCoordinator,
        txns: TransactionCoordinator,
        registry: crate::registry::SchemaRegistry,
        credentials: crate::auth::credentials::CredentialStore,
        security: crate::auth::Security,
    ) -> Self {
        let config = BrokerConfig::clone(&dynamic.effective());
        let queued_requests = usize::try_from(config.queued_max_request_bytes)
            .ok()
            .map(|n| (std::sync::Arc::new(tokio::sync::Semaphore::new(n)), n));
        // Checked by BrokerConfig::validate; basic is the safe side if it ever is not.
        let http_authentication =
            crate::http::auth::Authentication::parse(&config.brook_http_authentication)
                .unwrap_or(crate::http::auth::Authentication::Basic);
        Self {
            config,
            dynamic,
            topics,
            groups,
            txns,
            registry,
            credentials,
            security,
            http_authentication,
            http_verified: Default::default(),
            queued_requests,
            metrics: Default::default(),
            ready: std::sync::atomic::AtomicBool::new(false),
            appended: watch::channel(0).0,
        }
    }

    /// The settings in effect now (dynamic broker configs applied).
    pub(crate) fn current(&self) -> std::sync::Arc<BrokerConfig> {
        self.dynamic.effective()
    }

    pub(crate) fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Wakes fetches waiting for data.
    pub(crate) fn notify_appended(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees every later [`BrokerState::notify_appended`].
    pub(crate) fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }
}
