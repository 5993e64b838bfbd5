//! Authentication: who a connection is, proven by TLS client certificates or SASL.
//!
//! - [`tls`]: the TLS server config from Kafka's PEM settings, reloaded on change.
//! - [`principal`]: Kafka principals, and certificate subjects mapped to them.
//! - `sasl`: one connection's SASL state (handshake, PLAIN and SCRAM rounds, re-auth).
//! - [`scram`]: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as the server side
//!   runs them: salted credentials and the two-message exchange, as pure functions over the
//!   client's messages.
//! - `credentials`: the users' SCRAM credentials, durable in the data directory, changed
//!   through AlterUserScramCredentials.
//! - [`users`]: the same credentials managed in a stopped broker's data directory.
//! - [`acl`]: ACLs with Kafka's model, the authorization rule, and their durable store.
//!
//! [`Security`] is what the broker holds of all this while it runs.

use crate::config::BrokerConfig;
use crate::listeners::SecurityProtocol;

pub mod acl;
pub(crate) mod credentials;
pub(crate) mod oauth;
pub mod principal;
pub(crate) mod sasl;
pub mod scram;
pub mod tls;
pub mod users;

/// Random bytes from the operating system (through the TLS crypto provider's generator).
pub(crate) fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    tls::crypto_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("the operating system's random generator failed"))?;
    Ok(bytes)
}

/// A fresh SCRAM server nonce: 18 random bytes in base64 (printable, no commas).
pub(crate) fn scram_nonce() -> std::io::Result<String> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.encode(random_bytes::<18>()?))
}

/// One listener's authentication settings: the broker-wide ones, or its own from
/// `listener.name.<listener>.*`.
pub(crate) struct ListenerSecurity {
    /// The TLS config, when the listener uses TLS (the HTTP listener too, for the
    /// broker-wide one).
    pub(crate) tls: Option<std::sync::Arc<tls::Tls>>,
    /// `sasl.enabled.mechanisms`.
    pub(crate) sasl_mechanisms: Vec<sasl::SaslMechanism>,
    /// `ssl.principal.mapping.rules`.
    pub(crate) principal_rules: principal::MappingRules,
    /// How OAUTHBEARER tokens are checked, when that mechanism is enabled.
    pub(crate) oauth: Option<std::sync::Arc<oauth::Validator>>,
}

/// The security settings in effect, read once at start (TLS files are reloaded on change).
pub(crate) struct Security {
    /// The broker-wide settings: every listener without settings of its own, and the HTTP
    /// listener.
    pub(crate) default: ListenerSecurity,
    /// Listeners with `listener.name.<listener>.*` settings, by upper-case name.
    listeners: std::collections::HashMap<String, ListenerSecurity>,
    /// ACLs and the check of each request against them.
    pub(crate) authorizer: acl::Authorizer,
}

/// The security settings read before the data directory opens (TLS files, OAUTHBEARER
/// keys), so that a bad one stops the broker before it spends time opening logs.
pub(crate) struct Unopened {
    default: ListenerSecurity,
    listeners: std::collections::HashMap<String, ListenerSecurity>,
}

impl Unopened {
    /// With the ACLs read from the data directory: the security in effect.
    pub(crate) fn open(self, authorizer: acl::Authorizer) -> Security {
        Security {
            default: self.default,
            listeners: self.listeners,
            authorizer,
        }
    }
}

impl ListenerSecurity {
    /// Reads `config`'s settings; the TLS files only with `tls`.
    fn load(config: &BrokerConfig, tls: bool) -> Result<Self, crate::config::ConfigError> {
        let invalid = |name, reason| crate::config::ConfigError::Invalid { name, reason };
        let tls = if tls {
            Some(std::sync::Arc::new(
                tls::Tls::load(config).map_err(|e| invalid(e.setting, e.reason))?,
            ))
        } else {
            None
        };
        let sasl_mechanisms = sasl::enabled_mechanisms(&config.sasl_enabled_mechanisms)
            .map_err(|r| invalid("sasl.enabled.mechanisms", r))?;
        let oauth = if sasl_mechanisms.contains(&sasl::SaslMechanism::OAuthBearer) {
            let validator =
                oauth::Validator::from_config(config).map_err(|(n, r)| invalid(n, r))?;
            if validator.is_unsecured() {
                tracing::warn!("OAUTHBEARER accepts UNSECURED tokens (no signature): set sasl.oauthbearer.jwks.endpoint.url outside development");
            }
            Some(std::sync::Arc::new(validator))
        } else {
            None
        };
        Ok(Self {
            tls,
            sasl_mechanisms,
            oauth,
            principal_rules: principal::MappingRules::parse(&config.ssl_principal_mapping_rules)
                .map_err(|r| invalid("ssl.principal.mapping.rules", r))?,
        })
    }
}

impl Security {
    /// Reads the settings (and the TLS files when a listener uses TLS) of `listeners`
    /// (name, protocol).
    pub(crate) fn load(
        config: &BrokerConfig,
        listeners: &[(String, SecurityProtocol)],
    ) -> Result<Unopened, crate::config::ConfigError> {
        let overridden = config.overridden_listeners()?;
        if let Some(unknown) = overridden.iter().find(|n| {
            !listeners
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(n))
        }) {
            return Err(crate::config::ConfigError::Invalid {
                name: "listener.name.*",
                reason: format!(
                    "settings are given for listener {unknown}, which `listeners` does not name"
                ),
            });
        }
        let own = |name: &str| overridden.iter().any(|n| n.eq_ignore_ascii_case(name));
        // The broker-wide TLS files are read when something uses them.
        let default_tls = config.brook_http_tls
            || listeners
                .iter()
                .any(|(name, protocol)| protocol.uses_tls() && !own(name));
        let default = ListenerSecurity::load(config, default_tls)?;
        let mut own_settings = std::collections::HashMap::new();
        for (name, protocol) in listeners.iter().filter(|(name, _)| own(name)) {
            let settings =
                ListenerSecurity::load(&config.for_listener(name)?, protocol.uses_tls())?;
            own_settings.insert(name.to_ascii_uppercase(), settings);
        }
        Ok(Unopened {
            default,
            listeners: own_settings,
        })
    }

    /// The settings of listener `name`.
    pub(crate) fn listener(&self, name: &str) -> &ListenerSecurity {
        self.listeners
            .get(&name.to_ascii_uppercase())
            .unwrap_or(&self.default)
    }

    /// Every TLS config in use (each reloads its files on change).
    pub(crate) fn all_tls(&self) -> Vec<std::sync::Arc<tls::Tls>> {
        std::iter::once(&self.default)
            .chain(self.listeners.values())
            .filter_map(|l| l.tls.clone())
            .collect()
    }
}
