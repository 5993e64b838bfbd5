//! Broker configuration: one typed struct, loaded from a TOML file and overridden by CLI flags.
//!
//! Broker-wide Kafka settings keep Kafka's names (`auto.create.topics.enable`, `num.partitions`,
//! `log.segment.bytes`, ...), so they are quoted keys in TOML:
//!
//! ```toml
//! listen = "127.0.0.1:9092"
//! data_dir = "/var/lib/brook"
//! "auto.create.topics.enable" = true
//! "num.partitions" = 3
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where `brook` listens unless told otherwise: loopback only (safe default).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9092";
/// Where the HTTP listener binds unless told otherwise: the port schema registry clients
/// default to.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8081";
/// The data directory used when none is given.
pub const DEFAULT_DATA_DIR: &str = "./brook-data";

/// Errors loading configuration.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid setting {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Every broker setting. Field docs name the Kafka setting where there is one.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds to.
    pub listen: SocketAddr,
    /// `host:port` announced to clients in Metadata and DescribeCluster; the bound address
    /// when unset.
    pub advertise: Option<String>,
    /// `listeners`: `NAME://HOST:PORT,...` (an empty host binds every interface); when set,
    /// `listen` and `advertise` are not used. See `crate::listeners`.
    pub listeners: Option<String>,
    /// `advertised.listeners`: `NAME://HOST:PORT,...`, what each listener's clients are told
    /// to connect to (the bound address for a listener not named here).
    #[serde(rename = "advertised.listeners")]
    pub advertised_listeners: Option<String>,
    /// `listener.security.protocol.map`: `NAME:PROTOCOL,...`; Kafka's default maps each
    /// protocol's name to itself.
    #[serde(rename = "listener.security.protocol.map")]
    pub listener_security_protocol_map: Option<String>,
    /// `sasl.enabled.mechanisms`: what SASL listeners offer, comma-separated: PLAIN,
    /// SCRAM-SHA-256, SCRAM-SHA-512. PLAIN checks passwords against the SCRAM credentials.
    #[serde(rename = "sasl.enabled.mechanisms")]
    pub sasl_enabled_mechanisms: String,
    /// `sasl.server.max.receive.size`: the largest frame an unauthenticated client of a SASL
    /// listener may send.
    #[serde(rename = "sasl.server.max.receive.size")]
    pub sasl_server_max_receive_size: usize,
    /// `connections.max.reauth.ms`: when above 0, a SASL session lasts this long; the client
    /// must re-authenticate on the same connection before it ends (KIP-368) or is closed.
    #[serde(rename = "connections.max.reauth.ms")]
    pub connections_max_reauth_ms: i64,
    /// `connection.failed.authentication.delay.ms`: how long a failed authentication waits
    /// before its answer and the close (slows password guessing).
    #[serde(rename = "connection.failed.authentication.delay.ms")]
    pub connection_failed_authentication_delay_ms: u64,
    /// `brook.admin.user` (Brook's own): a SCRAM user (SHA-256 and SHA-512) whose password is
    /// set to `brook.admin.password` at every start, for containers and first setups. The
    /// `brook` binary reads them from `BROOK_ADMIN_USER` and `BROOK_ADMIN_PASSWORD` too.
    #[serde(rename = "brook.admin.user")]
    pub brook_admin_user: Option<String>,
    /// `brook.admin.password` (Brook's own): see `brook.admin.user`.
    #[serde(rename = "brook.admin.password")]
    pub brook_admin_password: Option<String>,
    /// `authorizer.class.name`: any non-empty value turns ACL authorization on (Brook has one
    /// authorizer, with Kafka's semantics; `kafka.security.authorizer.AclAuthorizer` and
    /// `org.apache.kafka.metadata.authorizer.StandardAuthorizer` both name it).
    #[serde(rename = "authorizer.class.name")]
    pub authorizer_class_name: Option<String>,
    /// `super.users`: principals allowed everything, `;`-separated (`User:admin;User:ops`).
    #[serde(rename = "super.users")]
    pub super_users: Option<String>,
    /// `allow.everyone.if.no.acl.found`: a resource no ACL names is open to everyone.
    #[serde(rename = "allow.everyone.if.no.acl.found")]
    pub allow_everyone_if_no_acl_found: bool,
    /// `sasl.oauthbearer.jwks.endpoint.url`: the JWKS whose keys sign OAUTHBEARER tokens: an
    /// `https://` (or `http://`) URL, fetched in the background and refreshed, or a file
    /// (`file:///path` or a path) read at start. Unset: unsecured tokens (development only).
    #[serde(rename = "sasl.oauthbearer.jwks.endpoint.url")]
    pub sasl_oauthbearer_jwks_endpoint_url: Option<String>,
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`: how often a JWKS URL is fetched again
    /// (also sooner, when a token names a key the set lacks).
    #[serde(rename = "sasl.oauthbearer.jwks.endpoint.refresh.ms")]
    pub sasl_oauthbearer_jwks_endpoint_refresh_ms: u64,
    /// `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms`: the first wait after a failed fetch
    /// (doubling up to the max).
    #[serde(rename = "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms")]
    pub sasl_oauthbearer_jwks_endpoint_retry_backoff_ms: u64,
    /// `sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms`: the longest wait between failed
    /// fetches, and the shortest between fetches asked for by unknown key ids.
    #[serde(rename = "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms")]
    pub sasl_oauthbearer_jwks_endpoint_retry_backoff_max_ms: u64,
    /// `brook.oauthbearer.jwks.ca.location` (Brook's own): PEM CA certificates an `https://`
    /// JWKS endpoint's certificate must chain to; the system's CA bundle when unset.
    #[serde(rename = "brook.oauthbearer.jwks.ca.location")]
    pub brook_oauthbearer_jwks_ca_location: Option<PathBuf>,
    /// `sasl.oauthbearer.sub.claim.name`: the claim naming the principal.
    #[serde(rename = "sasl.oauthbearer.sub.claim.name")]
    pub sasl_oauthbearer_sub_claim_name: String,
    /// `sasl.oauthbearer.expected.issuer`: the `iss` tokens must have, when set.
    #[serde(rename = "sasl.oauthbearer.expected.issuer")]
    pub sasl_oauthbearer_expected_issuer: Option<String>,
    /// `sasl.oauthbearer.expected.audience`: comma-separated; a token's `aud` must name one,
    /// when set.
    #[serde(rename = "sasl.oauthbearer.expected.audience")]
    pub sasl_oauthbearer_expected_audience: Option<String>,
    /// `sasl.oauthbearer.clock.skew.seconds`: slack for `exp`, `iat` and `nbf`.
    #[serde(rename = "sasl.oauthbearer.clock.skew.seconds")]
    pub sasl_oauthbearer_clock_skew_seconds: i64,
    /// `ssl.keystore.type`: only `PEM`.
    #[serde(rename = "ssl.keystore.type")]
    pub ssl_keystore_type: String,
    /// `ssl.keystore.location`: a PEM file with the private key and the certificate chain.
    #[serde(rename = "ssl.keystore.location")]
    pub ssl_keystore_location: Option<PathBuf>,
    /// `ssl.keystore.key`: the private key, PEM, inline (instead of a location).
    #[serde(rename = "ssl.keystore.key")]
    pub ssl_keystore_key: Option<String>,
    /// `ssl.keystore.certificate.chain`: the certificate chain, PEM, inline.
    #[serde(rename = "ssl.keystore.certificate.chain")]
    pub ssl_keystore_certificate_chain: Option<String>,
    /// `ssl.key.password`: the password of an encrypted private key (not supported: refused
    /// with a hint to decrypt the key).
    #[serde(rename = "ssl.key.password")]
    pub ssl_key_password: Option<String>,
    /// `ssl.truststore.type`: only `PEM`.
    #[serde(rename = "ssl.truststore.type")]
    pub ssl_truststore_type: String,
    /// `ssl.truststore.location`: PEM CA certificates that client certificates must chain to.
    #[serde(rename = "ssl.truststore.location")]
    pub ssl_truststore_location: Option<PathBuf>,
    /// `ssl.truststore.certificates`: the same, inline.
    #[serde(rename = "ssl.truststore.certificates")]
    pub ssl_truststore_certificates: Option<String>,
    /// `ssl.client.auth`: `none`, `requested` or `required` (mutual TLS).
    #[serde(rename = "ssl.client.auth")]
    pub ssl_client_auth: String,
    /// `ssl.principal.mapping.rules`: how a client certificate's subject becomes a user name,
    /// in Kafka's syntax (`RULE:pattern/replacement/[LU],...,DEFAULT`).
    #[serde(rename = "ssl.principal.mapping.rules")]
    pub ssl_principal_mapping_rules: String,
    /// `ssl.enabled.protocols`: `TLSv1.2`, `TLSv1.3` or both.
    #[serde(rename = "ssl.enabled.protocols")]
    pub ssl_enabled_protocols: String,
    /// `listener.name.<listener>.<setting>`: one listener's own TLS and SASL settings (the
    /// settings of [`LISTENER_SETTINGS`]), keyed by the full name as Kafka writes it (the
    /// listener's name in lower case); the listener uses them instead of the broker-wide
    /// ones. In the TOML file they are quoted keys like every Kafka setting.
    #[serde(skip)]
    pub listener_overrides: std::collections::BTreeMap<String, String>,
    /// Where logs and metadata live.
    pub data_dir: PathBuf,
    /// Use a temporary data directory that is removed on shutdown (ignores `data_dir`).
    pub ephemeral: bool,
    /// Address of the HTTP listener (schema registry, metrics, health), `HOST:PORT`, or
    /// `off`.
    pub http_listen: String,
    /// `brook.http.authentication` (Brook's own): `none`, or `basic` for HTTP basic
    /// authentication with the broker's SCRAM users on the HTTP listener (health probes stay
    /// open). See docs/security.md.
    #[serde(rename = "brook.http.authentication")]
    pub brook_http_authentication: String,
    /// `brook.http.tls` (Brook's own): serve the HTTP listener over TLS with the `ssl.keystore.*`
    /// key and certificate.
    #[serde(rename = "brook.http.tls")]
    pub brook_http_tls: bool,
    /// `node.id`.
    #[serde(rename = "node.id")]
    pub node_id: i32,
    /// `auto.create.topics.enable`.
    #[serde(rename = "auto.create.topics.enable")]
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    #[serde(rename = "num.partitions")]
    pub num_partitions: i32,
    /// `log.segment.bytes`: default `segment.bytes` of topics.
    #[serde(rename = "log.segment.bytes")]
    pub log_segment_bytes: i64,
    /// `log.roll.ms`: default `segment.ms` of topics.
    #[serde(rename = "log.roll.ms")]
    pub log_roll_ms: i64,
    /// `message.max.bytes`: default `max.message.bytes` of topics.
    #[serde(rename = "message.max.bytes")]
    pub message_max_bytes: i64,
    /// `socket.request.max.bytes`: the largest request frame accepted.
    #[serde(rename = "socket.request.max.bytes")]
    pub socket_request_max_bytes: usize,
    /// `fetch.max.bytes`: the most record bytes one Fetch response carries, whatever the
    /// request asks for (the first batch of a response is returned whole, KIP-74).
    #[serde(rename = "fetch.max.bytes")]
    pub fetch_max_bytes: i32,
    /// `queued.max.request.bytes`: request bytes read from all connections but not yet handled;
    /// once reached, connections stop reading until handled requests free room. -1: no
    /// broker-wide limit (each connection still reads ahead only a bounded amount).
    #[serde(rename = "queued.max.request.bytes")]
    pub queued_max_request_bytes: i64,
    /// `connections.max.idle.ms`: a connection that sends no request for this long is closed.
    #[serde(rename = "connections.max.idle.ms")]
    pub connections_max_idle_ms: u64,
    /// `max.connections`: connections beyond this many are closed as soon as they are
    /// accepted.
    #[serde(rename = "max.connections")]
    pub max_connections: usize,
    /// `max.connections.per.ip`: the same, per client address.
    #[serde(rename = "max.connections.per.ip")]
    pub max_connections_per_ip: usize,
    /// `max.partitions.per.request` (Brook's own): the most partitions one CreateTopics,
    /// CreatePartitions or auto-creating Metadata request may create together; topics past
    /// the limit are refused with POLICY_VIOLATION.
    #[serde(rename = "max.partitions.per.request")]
    pub max_partitions_per_request: i64,
    /// `auto.create.topics.max.per.request` (Brook's own): the most topics one Metadata
    /// request may auto-create; further unknown topics get UNKNOWN_TOPIC_OR_PARTITION.
    #[serde(rename = "auto.create.topics.max.per.request")]
    pub auto_create_topics_max_per_request: usize,
    /// `log.flush.interval.ms`: default `flush.ms` of topics, the longest acknowledged data
    /// stays unflushed (acks=1 and 0; acks=all waits for its own fsync).
    #[serde(rename = "log.flush.interval.ms")]
    pub log_flush_interval_ms: i64,
    /// `log.flush.offset.checkpoint.interval.ms`: how often recovery points are checkpointed.
    #[serde(rename = "log.flush.offset.checkpoint.interval.ms")]
    pub log_flush_offset_checkpoint_interval_ms: u64,
    /// `log.retention.ms`: default `retention.ms` of topics (-1: keep forever).
    #[serde(rename = "log.retention.ms")]
    pub log_retention_ms: i64,
    /// `log.retention.bytes`: default `retention.bytes` of topics (-1: no size limit).
    #[serde(rename = "log.retention.bytes")]
    pub log_retention_bytes: i64,
    /// `log.cache.window.bytes` (Brook's own): per partition, how much of the newest durable
    /// data is left in the OS page cache; older data is released from the cache once
    /// fsynced, so steady writes reuse pages (see `brook_storage::LogConfig`). -1 leaves the
    /// page cache to the kernel.
    #[serde(rename = "log.cache.window.bytes")]
    pub log_cache_window_bytes: i64,
    /// `log.retention.check.interval.ms`: how often retention runs.
    #[serde(rename = "log.retention.check.interval.ms")]
    pub log_retention_check_interval_ms: u64,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members to join (extended by each join, up to the rebalance timeout).
    /// Kafka's default is 3 s; ephemeral brokers (tests) use 0.
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`: the shortest session timeout a member may ask for.
    #[serde(rename = "group.min.session.timeout.ms")]
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: the longest session timeout a member may ask for.
    #[serde(rename = "group.max.session.timeout.ms")]
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`: the most members a group may have.
    #[serde(rename = "group.max.size")]
    pub group_max_size: usize,
    /// `offsets.retention.minutes`: committed offsets of an empty group are removed this long
    /// after their commit (or after the group became empty).
    #[serde(rename = "offsets.retention.minutes")]
    pub offsets_retention_minutes: u64,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are removed.
    #[serde(rename = "offsets.retention.check.interval.ms")]
    pub offsets_retention_check_interval_ms: u64,
    /// `log.cleaner.enable`: compacted topics (`cleanup.policy=compact`) are cleaned.
    #[serde(rename = "log.cleaner.enable")]
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: how often the cleaner looks for a log to clean when the
    /// last look found none.
    #[serde(rename = "log.cleaner.backoff.ms")]
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: bytes of the key -> offset map of a cleaning pass.
    #[serde(rename = "log.cleaner.dedupe.buffer.size")]
    pub log_cleaner_dedupe_buffer_size: usize,
    /// `log.cleaner.threads`: threads that clean logs, each its own partition at a time.
    #[serde(rename = "log.cleaner.threads")]
    pub log_cleaner_threads: usize,
    /// `log.cleaner.io.max.bytes.per.second`: the bytes all cleaner threads together read
    /// and write per second (Kafka's default: unlimited).
    #[serde(rename = "log.cleaner.io.max.bytes.per.second")]
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask
    /// for (InitProducerId answers INVALID_TRANSACTION_TIMEOUT above it).
    #[serde(rename = "transaction.max.timeout.ms")]
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: a transactional id without a transaction is removed
    /// this long after its last change.
    #[serde(rename = "transactional.id.expiration.ms")]
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often transactions
    /// open longer than their timeout are aborted (and their producer fenced).
    #[serde(rename = "transaction.abort.timed.out.transaction.cleanup.interval.ms")]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often expired
    /// transactional ids are removed.
    #[serde(rename = "transaction.remove.expired.transaction.cleanup.interval.ms")]
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
    /// `brook.key.index` (Brook's own): the default of the topic config of that name, whether
    /// each partition indexes its records' keys (per-key revisions, conditional appends with
    /// the `brook.expected.revision` header, per-aggregate reads; `docs/event-streams.md`).
    #[serde(rename = "brook.key.index")]
    pub brook_key_index: bool,
    /// `brook.key.index.cache.keys` (Brook's own): per indexed partition, how many keys'
    /// stream heads are kept in memory; the rest are looked up in the index files.
    #[serde(rename = "brook.key.index.cache.keys")]
    pub brook_key_index_cache_keys: usize,
    /// `brook.key.index.segment.entries` (Brook's own): a segment of an indexed topic rolls
    /// once its key index holds this many entries, which bounds the memory of each
    /// partition's in-memory index (about 100 bytes an entry at most).
    #[serde(rename = "brook.key.index.segment.entries")]
    pub brook_key_index_segment_entries: usize,
    /// Never fsync. Acknowledged data then survives a crash of the broker process (it is in
    /// the page cache) but not a power loss or an OS crash. For tests and throwaway setups
    /// only; logged loudly at startup.
    pub unsafe_disable_fsync: bool,
    /// The file system under the partition logs. Only set by tests, to inject I/O faults
    /// (`brook_storage::testing::FaultyFileSystem`); not a TOML setting.
    #[serde(skip)]
    pub file_system: Option<std::sync::Arc<dyn brook_storage::FileSystem>>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9092))),
            advertise: None,
            listeners: None,
            advertised_listeners: None,
            listener_security_protocol_map: None,
            sasl_enabled_mechanisms: "SCRAM-SHA-256,SCRAM-SHA-512".into(),
            sasl_server_max_receive_size: 524_288,
            connections_max_reauth_ms: 0,
            connection_failed_authentication_delay_ms: 100,
            authorizer_class_name: None,
            super_users: None,
            allow_everyone_if_no_acl_found: false,
            brook_admin_user: None,
            brook_admin_password: None,
            sasl_oauthbearer_jwks_endpoint_url: None,
            sasl_oauthbearer_jwks_endpoint_refresh_ms: 3_600_000,
            sasl_oauthbearer_jwks_endpoint_retry_backoff_ms: 100,
            sasl_oauthbearer_jwks_endpoint_retry_backoff_max_ms: 10_000,
            brook_oauthbearer_jwks_ca_location: None,
            sasl_oauthbearer_sub_claim_name: "sub".into(),
            sasl_oauthbearer_expected_issuer: None,
            sasl_oauthbearer_expected_audience: None,
            sasl_oauthbearer_clock_skew_seconds: 30,
            ssl_keystore_type: "PEM".into(),
            ssl_keystore_location: None,
            ssl_keystore_key: None,
            ssl_keystore_certificate_chain: None,
            ssl_key_password: None,
            ssl_truststore_type: "PEM".into(),
            ssl_truststore_location: None,
            ssl_truststore_certificates: None,
            ssl_client_auth: "none".into(),
            ssl_principal_mapping_rules: "DEFAULT".into(),
            ssl_enabled_protocols: "TLSv1.2,TLSv1.3".into(),
            listener_overrides: std::collections::BTreeMap::new(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            ephemeral: false,
            http_listen: DEFAULT_HTTP_LISTEN.to_string(),
            brook_http_authentication: "none".into(),
            brook_http_tls: false,
            node_id: 1,
            auto_create_topics_enable: true,
            num_partitions: 1,
            log_segment_bytes: 1024 * 1024 * 1024,
            log_roll_ms: 7 * 24 * 60 * 60 * 1000,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: brook_protocol::frame::DEFAULT_MAX_FRAME_SIZE,
            fetch_max_bytes: 55 * 1024 * 1024,
            queued_max_request_bytes: -1,
            connections_max_idle_ms: 600_000,
            max_connections: i32::MAX as usize,
            max_connections_per_ip: i32::MAX as usize,
            max_partitions_per_request: 10_000,
            auto_create_topics_max_per_request: 100,
            log_flush_interval_ms: 1000,
            log_flush_offset_checkpoint_interval_ms: 60_000,
            log_retention_ms: 7 * 24 * 60 * 60 * 1000,
            log_retention_bytes: -1,
            log_cache_window_bytes: brook_storage::DEFAULT_CACHE_WINDOW_BYTES as i64,
            log_retention_check_interval_ms: 300_000,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: usize::MAX,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_dedupe_buffer_size: 128 * 1024 * 1024,
            log_cleaner_threads: 1,
            log_cleaner_io_max_bytes_per_second: f64::MAX,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transaction_remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            brook_key_index: false,
            brook_key_index_cache_keys: brook_storage::DEFAULT_KEY_INDEX_CACHE_KEYS,
            brook_key_index_segment_entries: brook_storage::DEFAULT_KEY_INDEX_SEGMENT_ENTRIES,
            unsafe_disable_fsync: false,
            file_system: None,
        }
    }
}

impl BrokerConfig {
    /// The settings with Kafka's names (those with a dot) and their values as strings, in
    /// name order: what DescribeConfigs reports for the broker.
    pub fn kafka_settings(&self) -> Vec<(String, String)> {
        let Ok(serde_json::Value::Object(map)) = serde_json::to_value(self) else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = map
            .into_iter()
            .filter(|(name, value)| name.contains('.') && !value.is_null())
            .map(|(name, value)| {
                let value = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (name, value)
            })
            .collect();
        out.sort();
        out
    }

    /// Whether `name` holds a secret: DescribeConfigs reports no value for it, as Kafka does
    /// for password settings.
    pub fn is_sensitive(name: &str) -> bool {
        matches!(
            name,
            "ssl.keystore.key"
                | "ssl.key.password"
                | "ssl.keystore.password"
                | "ssl.truststore.password"
        )
    }

    /// Whether ACLs are checked (`authorizer.class.name` is set).
    pub fn authorizer_enabled(&self) -> bool {
        self.authorizer_class_name
            .as_deref()
            .is_some_and(|c| !c.trim().is_empty())
    }

    /// `super.users` as principals, with the admin user (`brook.admin.user`) among them.
    pub fn super_user_principals(&self) -> Vec<String> {
        let mut users: Vec<String> = self
            .super_users
            .as_deref()
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect();
        if let Some(admin) = &self.brook_admin_user {
            users.push(format!("User:{admin}"));
        }
        users
    }

    /// The HTTP listener's address; `None` when `http_listen` is `off`.
    pub fn http_addr(&self) -> Result<Option<SocketAddr>, String> {
        if self.http_listen.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        self.http_listen
            .parse()
            .map(Some)
            .map_err(|_| format!("expected HOST:PORT or off, got {:?}", self.http_listen))
    }

    /// A configuration for tests and embedding: an ephemeral directory on a free loopback port.
    pub fn ephemeral() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_listen: "127.0.0.1:0".to_string(),
            ephemeral: true,
            group_initial_rebalance_delay_ms: 0,
            ..Self::default()
        }
    }

    /// A configuration on a free loopback port that keeps its data in `dir`.
    pub fn with_data_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_listen: "127.0.0.1:0".to_string(),
            data_dir: dir.into(),
            ..Self::default()
        }
    }

    /// Reads a TOML file. Unknown keys are errors, so a typo is not silently ignored.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse = |source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(parse)?;
        // `listener.name.*` keys name settings per listener, so they cannot be fields: they
        // are taken out first, and the rest must be known fields.
        let mut overrides = std::collections::BTreeMap::new();
        let names: Vec<String> = table
            .keys()
            .filter(|k| k.starts_with(LISTENER_PREFIX))
            .cloned()
            .collect();
        for name in names {
            let value = match table.remove(&name) {
                Some(toml::Value::String(s)) => s,
                Some(toml::Value::Integer(n)) => n.to_string(),
                Some(toml::Value::Boolean(b)) => b.to_string(),
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "listener.name.*",
                        reason: format!("{name}: the value must be a string, number or boolean"),
                    })
                }
            };
            overrides.insert(name, value);
        }
        let mut config: Self = table.try_into().map_err(parse)?;
        config.listener_overrides = overrides;
        config.validate()?;
        Ok(config)
    }

    /// The settings listener `listener` uses: the broker-wide ones with its
    /// `listener.name.<listener>.*` overrides applied.
    pub fn for_listener(&self, listener: &str) -> Result<Self, ConfigError> {
        let mut config = self.clone();
        for (key, value) in &self.listener_overrides {
            let (name, setting) = split_listener_key(key)?;
            if name.eq_ignore_ascii_case(listener) {
                apply_listener_setting(&mut config, setting, value).map_err(|reason| {
                    ConfigError::Invalid {
                        name: "listener.name.*",
                        reason: format!("{key}: {reason}"),
                    }
                })?;
            }
        }
        Ok(config)
    }

    /// The listener names `listener.name.*` settings are given for (upper case).
    pub fn overridden_listeners(&self) -> Result<Vec<String>, ConfigError> {
        let mut names = Vec::new();
        for key in self.listener_overrides.keys() {
            let name = split_listener_key(key)?.0.to_ascii_uppercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name, reason: &str| {
            Err(ConfigError::Invalid {
                name,
                reason: reason.to_string(),
            })
        };
        for listener in self.overridden_listeners()? {
            self.for_listener(&listener)?;
        }
        if let Err(reason) = self.http_addr() {
            return invalid("http_listen", &reason);
        }
        if self.num_partitions < 1 {
            return invalid("num.partitions", "must be at least 1");
        }
        if self.log_segment_bytes < 14 || self.log_segment_bytes > i64::from(i32::MAX) {
            return invalid("log.segment.bytes", "must be between 14 and 2147483647");
        }
        if self.log_roll_ms < 1 {
            return invalid("log.roll.ms", "must be at least 1");
        }
        if self.message_max_bytes < 0 || self.message_max_bytes > i64::from(i32::MAX) {
            return invalid("message.max.bytes", "must be between 0 and 2147483647");
        }
        if self.log_flush_interval_ms < 0 {
            return invalid("log.flush.interval.ms", "must be at least 0");
        }
        if self.log_flush_offset_checkpoint_interval_ms < 1 {
            return invalid(
                "log.flush.offset.checkpoint.interval.ms",
                "must be at least 1",
            );
        }
        if self.group_min_session_timeout_ms < 0
            || self.group_max_session_timeout_ms < self.group_min_session_timeout_ms
        {
            return invalid(
                "group.max.session.timeout.ms",
                "must be at least group.min.session.timeout.ms (and both at least 0)",
            );
        }
        if self.group_max_size < 1 {
            return invalid("group.max.size", "must be at least 1");
        }
        if self.offsets_retention_minutes < 1 {
            return invalid("offsets.retention.minutes", "must be at least 1");
        }
        if self.offsets_retention_check_interval_ms < 1 {
            return invalid("offsets.retention.check.interval.ms", "must be at least 1");
        }
        if self.log_cleaner_backoff_ms < 1 {
            return invalid("log.cleaner.backoff.ms", "must be at least 1");
        }
        if self.log_cleaner_dedupe_buffer_size < 1024 {
            return invalid("log.cleaner.dedupe.buffer.size", "must be at least 1024");
        }
        if self.log_cleaner_threads < 1 {
            return invalid("log.cleaner.threads", "must be at least 1");
        }
        if self.log_cleaner_io_max_bytes_per_second.is_nan()
            || self.log_cleaner_io_max_bytes_per_second <= 0.0
        {
            return invalid("log.cleaner.io.max.bytes.per.second", "must be above 0");
        }
        if self.transaction_max_timeout_ms < 1 {
            return invalid("transaction.max.timeout.ms", "must be at least 1");
        }
        if self.transactional_id_expiration_ms < 1 {
            return invalid("transactional.id.expiration.ms", "must be at least 1");
        }
        if self.transaction_abort_timed_out_transaction_cleanup_interval_ms < 1 {
            return invalid(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                "must be at least 1",
            );
        }
        if self.transaction_remove_expired_transaction_cleanup_interval_ms < 1 {
            return invalid(
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                "must be at least 1",
            );
        }
        if self.log_retention_ms < -1 {
            return invalid("log.retention.ms", "must be -1 (unlimited) or at least 0");
        }
        if self.log_retention_bytes < -1 {
            return invalid(
                "log.retention.bytes",
                "must be -1 (unlimited) or at least 0",
            );
        }
        if self.log_cache_window_bytes < -1 {
            return invalid(
                "log.cache.window.bytes",
                "must be -1 (leave the page cache to the kernel) or at least 0",
            );
        }
        if self.log_retention_check_interval_ms < 1 {
            return invalid("log.retention.check.interval.ms", "must be at least 1");
        }
        if self.socket_request_max_bytes < 1024 {
            return invalid("socket.request.max.bytes", "must be at least 1024");
        }
        if self.fetch_max_bytes < 0 {
            return invalid("fetch.max.bytes", "must be at least 0");
        }
        if self.queued_max_request_bytes == 0 || self.queued_max_request_bytes < -1 {
            return invalid(
                "queued.max.request.bytes",
                "must be -1 (no broker-wide limit) or at least 1",
            );
        }
        if self.connections_max_idle_ms < 1 {
            return invalid("connections.max.idle.ms", "must be at least 1");
        }
        if self.max_connections < 1 {
            return invalid("max.connections", "must be at least 1");
        }
        if self.max_connections_per_ip < 1 {
            return invalid("max.connections.per.ip", "must be at least 1");
        }
        if self.max_partitions_per_request < 1 {
            return invalid("max.partitions.per.request", "must be at least 1");
        }
        let listeners = crate::listeners::specs(self)
            .map_err(|(name, reason)| ConfigError::Invalid { name, reason })?;
        if listeners.iter().any(|l| l.protocol.uses_tls()) {
            crate::auth::tls::check_settings(self).map_err(|e| ConfigError::Invalid {
                name: e.setting,
                reason: e.reason,
            })?;
        }
        if let Err(reason) =
            crate::http::auth::Authentication::parse(&self.brook_http_authentication)
        {
            return invalid("brook.http.authentication", &reason);
        }
        if self.brook_http_tls {
            crate::auth::tls::check_settings(self).map_err(|e| ConfigError::Invalid {
                name: e.setting,
                reason: e.reason,
            })?;
        }
        if let Err(reason) = crate::auth::sasl::enabled_mechanisms(&self.sasl_enabled_mechanisms) {
            return invalid("sasl.enabled.mechanisms", &reason);
        }
        if let Err(reason) =
            crate::auth::principal::MappingRules::parse(&self.ssl_principal_mapping_rules)
        {
            return invalid("ssl.principal.mapping.rules", &reason);
        }
        if self.sasl_server_max_receive_size < 1024 {
            return invalid("sasl.server.max.receive.size", "must be at least 1024");
        }
        match (&self.brook_admin_user, &self.brook_admin_password) {
            (Some(user), Some(password)) if user.is_empty() || password.is_empty() => {
                return invalid(
                    "brook.admin.user",
                    "the user and password must not be empty",
                )
            }
            (Some(_), None) | (None, Some(_)) => {
                return invalid(
                    "brook.admin.user",
                    "brook.admin.user and brook.admin.password go together",
                )
            }
            _ => {}
        }
        if let Some(bad) = self.super_user_principals().iter().find(|p| {
            !p.split_once(':')
                .is_some_and(|(k, n)| !k.is_empty() && !n.is_empty())
        }) {
            return invalid(
                "super.users",
                &format!("{bad:?} is not a principal (Type:name, e.g. User:admin)"),
            );
        }
        if self.connections_max_reauth_ms < 0 {
            return invalid("connections.max.reauth.ms", "must be at least 0");
        }
        Ok(())
    }
}

/// Splits `host:port` (IPv6 hosts in brackets).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = split_host_port(s)?;
    if host.is_empty() {
        return Err(format!("'{s}' has no host"));
    }
    Ok((host.to_string(), port))
}

/// [`parse_host_port`], the host allowed to be empty (a listener binding every interface).
pub(crate) fn split_host_port(s: &str) -> Result<(&str, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' has no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' is not a port number"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

/// How per-listener settings start.
const LISTENER_PREFIX: &str = "listener.name.";

/// The settings a listener may have of its own (`listener.name.<listener>.<setting>`), as in
/// Kafka. A SASL setting may also carry the mechanism, as Kafka writes OAUTHBEARER's
/// (`listener.name.<listener>.oauthbearer.sasl.oauthbearer.jwks.endpoint.url`).
pub const LISTENER_SETTINGS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.principal.mapping.rules",
    "ssl.enabled.protocols",
    "sasl.enabled.mechanisms",
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.clock.skew.seconds",
];

/// `listener.name.<listener>.<setting>` -> (listener, setting), the setting one of
/// [`LISTENER_SETTINGS`] (a mechanism prefix such as `oauthbearer.` or `scram-sha-256.`
/// before a `sasl.` setting is dropped).
fn split_listener_key(key: &str) -> Result<(&str, &str), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "listener.name.*",
        reason,
    };
    let rest = key.strip_prefix(LISTENER_PREFIX).ok_or_else(|| {
        invalid(format!(
            "{key}: not a listener.name.<listener>.<setting> key"
        ))
    })?;
    let (listener, setting) = rest
        .split_once('.')
        .filter(|(l, _)| !l.is_empty())
        .ok_or_else(|| invalid(format!("{key}: no listener name")))?;
    let setting = match setting.split_once('.') {
        Some((mechanism, sasl))
            if sasl.starts_with("sasl.")
                && crate::auth::sasl::enabled_mechanisms(&mechanism.to_ascii_uppercase())
                    .is_ok() =>
        {
            sasl
        }
        _ => setting,
    };
    if !LISTENER_SETTINGS.contains(&setting) {
        return Err(invalid(format!(
            "{key}: {setting} cannot be set per listener (these can: {})",
            LISTENER_SETTINGS.join(", ")
        )));
    }
    Ok((listener, setting))
}

/// Sets one of [`LISTENER_SETTINGS`] in `config`.
fn apply_listener_setting(
    config: &mut BrokerConfig,
    setting: &str,
    value: &str,
) -> Result<(), String> {
    let text = || value.to_string();
    let optional = || (!value.is_empty()).then(|| value.to_string());
    match setting {
        "ssl.keystore.type" => config.ssl_keystore_type = text(),
        "ssl.keystore.location" => config.ssl_keystore_location = optional().map(PathBuf::from),
        "ssl.keystore.key" => config.ssl_keystore_key = optional(),
        "ssl.keystore.certificate.chain" => config.ssl_keystore_certificate_chain = optional(),
        "ssl.key.password" => config.ssl_key_password = optional(),
        "ssl.truststore.type" => config.ssl_truststore_type = text(),
        "ssl.truststore.location" => config.ssl_truststore_location = optional().map(PathBuf::from),
        "ssl.truststore.certificates" => config.ssl_truststore_certificates = optional(),
        "ssl.client.auth" => config.ssl_client_auth = text(),
        "ssl.principal.mapping.rules" => config.ssl_principal_mapping_rules = text(),
        "ssl.enabled.protocols" => config.ssl_enabled_protocols = text(),
        "sasl.enabled.mechanisms" => config.sasl_enabled_mechanisms = text(),
        "sasl.oauthbearer.jwks.endpoint.url" => {
            config.sasl_oauthbearer_jwks_endpoint_url = optional()
        }
        "sasl.oauthbearer.sub.claim.name" => config.sasl_oauthbearer_sub_claim_name = text(),
        "sasl.oauthbearer.expected.issuer" => config.sasl_oauthbearer_expected_issuer = optional(),
        "sasl.oauthbearer.expected.audience" => {
            config.sasl_oauthbearer_expected_audience = optional()
        }
        "sasl.oauthbearer.clock.skew.seconds" => {
            config.sasl_oauthbearer_clock_skew_seconds = value
                .parse()
                .map_err(|_| format!("{value:?} is not a number of seconds"))?
        }
        other => return Err(format!("{other} cannot be set per listener")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_uses_kafka_names_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brook.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\n\"num.partitions\" = 3\n\"auto.create.topics.enable\" = false\n",
        )
        .unwrap();
        let c = BrokerConfig::from_file(&path).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.num_partitions, 3);
        assert!(!c.auto_create_topics_enable);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));

        std::fs::write(&path, "lisen = \"127.0.0.1:1\"\n").unwrap();
        assert!(matches!(
            BrokerConfig::from_file(&path),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::write(&path, "\"log.cache.window.bytes\" = -1\n").unwrap();
        let c = BrokerConfig::from_file(&path).unwrap();
        assert_eq!(c.log_cache_window_bytes, -1);
        std::fs::write(&path, "\"log.cache.window.bytes\" = -2\n").unwrap();
        assert!(matches!(
            BrokerConfig::from_file(&path),
            Err(ConfigError::Invalid { .. })
        ));
        std::fs::write(&path, "\"num.partitions\" = 0\n").unwrap();
        assert!(matches!(
            BrokerConfig::from_file(&path),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn host_port() {
        assert_eq!(parse_host_port("a.b:1").unwrap(), ("a.b".into(), 1));
        assert_eq!(parse_host_port("[::1]:9092").unwrap(), ("::1".into(), 9092));
        assert!(parse_host_port("nohost").is_err());
        assert!(parse_host_port(":9").is_err());
    }

    #[test]
    fn listener_name_settings_are_read_per_listener() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brook.toml");
        std::fs::write(
            &path,
            concat!(
                "\"ssl.client.auth\" = \"required\"\n",
                "\"listener.name.external.ssl.client.auth\" = \"none\"\n",
                "\"listener.name.external.ssl.keystore.location\" = \"/etc/brook/external.pem\"\n",
                "\"listener.name.external.oauthbearer.sasl.oauthbearer.clock.skew.seconds\" = 5\n",
                "\"listener.name.internal.sasl.enabled.mechanisms\" = \"PLAIN\"\n",
            ),
        )
        .unwrap();
        let config = BrokerConfig::from_file(&path).unwrap();
        assert_eq!(config.listener_overrides.len(), 4);
        assert_eq!(
            config.overridden_listeners().unwrap(),
            vec!["EXTERNAL".to_string(), "INTERNAL".to_string()]
        );
        let external = config.for_listener("EXTERNAL").unwrap();
        assert_eq!(external.ssl_client_auth, "none");
        assert_eq!(
            external.ssl_keystore_location,
            Some(PathBuf::from("/etc/brook/external.pem"))
        );
        assert_eq!(external.sasl_oauthbearer_clock_skew_seconds, 5);
        assert_eq!(
            external.sasl_enabled_mechanisms,
            config.sasl_enabled_mechanisms
        );
        let internal = config.for_listener("internal").unwrap();
        assert_eq!(internal.ssl_client_auth, "required");
        assert_eq!(internal.sasl_enabled_mechanisms, "PLAIN");
        // A listener without settings of its own has the broker-wide ones.
        assert_eq!(
            config.for_listener("PLAINTEXT").unwrap().ssl_client_auth,
            "required"
        );

        for (bad, says) in [
            ("\"listener.name.external.log.retention.ms\" = 5\n", "cannot be set per listener"),
            ("\"listener.name.external.ssl.client.auth\" = [1]\n", "must be a string"),
            ("\"listener.name.external.oauthbearer.sasl.oauthbearer.clock.skew.seconds\" = \"x\"\n", "not a number"),
            ("\"listener.name..ssl.client.auth\" = \"none\"\n", "no listener name"),
        ] {
            std::fs::write(&path, bad).unwrap();
            let error = BrokerConfig::from_file(&path).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
        // Other unknown keys stay errors.
        std::fs::write(&path, "\"listener.names\" = \"x\"\n").unwrap();
        assert!(BrokerConfig::from_file(&path).is_err());
    }
}
