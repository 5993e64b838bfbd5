//! TLS for the SSL and SASL_SSL listeners: rustls (ring), configured with Kafka's PEM
//! settings (`ssl.keystore.*`, `ssl.truststore.*`, `ssl.client.auth`,
//! `ssl.enabled.protocols`), reloaded when its files change or on SIGHUP.
//!
//! This module owns turning the settings into a `rustls::ServerConfig` and swapping it on
//! reload; the connection does the handshake with whatever config is current when it arrives,
//! so a reload never disturbs connections already open.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::BrokerConfig;

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct TlsError {
    pub setting: &'static str,
    pub reason: String,
}

fn error(setting: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError {
        setting,
        reason: reason.into(),
    }
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

impl ClientAuth {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "requested" => Ok(Self::Requested),
            "required" => Ok(Self::Required),
            other => Err(format!("{other:?} is not one of none, requested, required")),
        }
    }
}

/// The TLS settings of a broker, as read from its configuration.
#[derive(Debug, Clone)]
struct Settings {
    keystore_location: Option<PathBuf>,
    keystore_key: Option<String>,
    keystore_chain: Option<String>,
    truststore_location: Option<PathBuf>,
    truststore_certificates: Option<String>,
    client_auth: ClientAuth,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
}

impl Settings {
    /// Checks what can be checked without reading files.
    fn read(config: &BrokerConfig) -> Result<Self, TlsError> {
        for (setting, value) in [
            ("ssl.keystore.type", &config.ssl_keystore_type),
            ("ssl.truststore.type", &config.ssl_truststore_type),
        ] {
            if !value.eq_ignore_ascii_case("PEM") {
                return Err(error(
                    setting,
                    format!("{value:?}: Brook reads PEM only (convert a JKS or PKCS12 store with keytool and openssl)"),
                ));
            }
        }
        if config.ssl_key_password.is_some() {
            return Err(error(
                "ssl.key.password",
                "encrypted private keys are not supported; decrypt the key (openssl pkcs8 -in key.pem -out plain.pem) and keep the file readable only by the broker",
            ));
        }
        let inline =
            config.ssl_keystore_key.is_some() || config.ssl_keystore_certificate_chain.is_some();
        match (&config.ssl_keystore_location, inline) {
            (Some(_), true) => {
                return Err(error(
                    "ssl.keystore.location",
                    "set either ssl.keystore.location or ssl.keystore.key with ssl.keystore.certificate.chain, not both",
                ))
            }
            (None, false) => {
                return Err(error(
                    "ssl.keystore.location",
                    "a TLS listener needs a key and certificate: ssl.keystore.location (one PEM file with both) or ssl.keystore.key and ssl.keystore.certificate.chain",
                ))
            }
            (None, true)
                if config.ssl_keystore_key.is_none()
                    || config.ssl_keystore_certificate_chain.is_none() =>
            {
                return Err(error(
                    "ssl.keystore.key",
                    "ssl.keystore.key and ssl.keystore.certificate.chain go together",
                ))
            }
            _ => {}
        }
        let client_auth =
            ClientAuth::parse(&config.ssl_client_auth).map_err(|r| error("ssl.client.auth", r))?;
        let has_truststore = config.ssl_truststore_location.is_some()
            || config.ssl_truststore_certificates.is_some();
        if client_auth != ClientAuth::None && !has_truststore {
            return Err(error(
                "ssl.truststore.location",
                "ssl.client.auth requested or required needs the CA certificates that client certificates chain to",
            ));
        }
        Ok(Self {
            keystore_location: config.ssl_keystore_location.clone(),
            keystore_key: config.ssl_keystore_key.clone(),
            keystore_chain: config.ssl_keystore_certificate_chain.clone(),
            truststore_location: config.ssl_truststore_location.clone(),
            truststore_certificates: config.ssl_truststore_certificates.clone(),
            client_auth,
            versions: protocol_versions(&config.ssl_enabled_protocols)?,
        })
    }

    /// The files whose change reloads the config.
    fn files(&self) -> Vec<PathBuf> {
        self.keystore_location
            .iter()
            .chain(&self.truststore_location)
            .cloned()
            .collect()
    }

    /// Reads the key, the chain and the CAs, and builds a server config.
    fn build(&self) -> Result<ServerConfig, TlsError> {
        let (key, chain) = match &self.keystore_location {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    error("ssl.keystore.location", format!("{}: {e}", path.display()))
                })?;
                key_and_chain(&pem, &pem, "ssl.keystore.location")?
            }
            None => key_and_chain(
                self.keystore_key.as_deref().unwrap_or_default().as_bytes(),
                self.keystore_chain
                    .as_deref()
                    .unwrap_or_default()
                    .as_bytes(),
                "ssl.keystore.key",
            )?,
        };
        let provider = Arc::new(crypto_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions)
            .map_err(|e| error("ssl.enabled.protocols", e.to_string()))?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            auth => {
                let roots = Arc::new(self.roots()?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| error("ssl.truststore.location", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            error(
                "ssl.keystore.location",
                format!("the key and certificate do not make a TLS identity: {e}"),
            )
        })?;
        // The broker's cipher suite order wins (AES-128-GCM first, see `crypto_provider`):
        // OpenSSL-based clients list AES-256 first, which costs both sides more per byte.
        config.ignore_client_order = true;
        Ok(config)
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let pem = match (&self.truststore_location, &self.truststore_certificates) {
            (Some(path), _) => std::fs::read(path).map_err(|e| {
                error(
                    "ssl.truststore.location",
                    format!("{}: {e}", path.display()),
                )
            })?,
            (None, Some(inline)) => inline.as_bytes().to_vec(),
            (None, None) => Vec::new(),
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| error("ssl.truststore.location", e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| error("ssl.truststore.location", e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(error("ssl.truststore.location", "holds no PEM certificate"));
        }
        Ok(roots)
    }
}

/// rustls's ring provider: no cmake and no large C build (aws-lc-rs would need both). It
/// lacks only the post-quantum hybrid key exchange, which Kafka clients do not offer either.
///
/// Key exchange prefers X25519, then P-256: the provider's own order puts P-384 first, which
/// ring computes with generic big-number code (about 0.6 ms of CPU per handshake, 60% of a
/// TLS connection's cost here) and which makes clients that sent an X25519 share retry.
///
/// Cipher suites put AES-128-GCM first (TLS 1.3's mandatory suite, and 1.2's ECDHE ones):
/// it is as safe for this use and takes fewer AES rounds per byte than AES-256, on the
/// broker and on the client, which share the CPU with everything else.
#[allow(deprecated)]
pub(crate) fn crypto_provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    };
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![X25519, SECP256R1, SECP384R1],
        ..rustls::crypto::ring::default_provider()
    }
}

fn key_and_chain(
    key_pem: &[u8],
    chain_pem: &[u8],
    setting: &'static str,
) -> Result<(PrivateKeyDer<'static>, Vec<CertificateDer<'static>>), TlsError> {
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        error(
            setting,
            format!("no usable PEM private key ({e}); encrypted keys are not supported"),
        )
    })?;
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(setting, format!("the certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(error(setting, "no PEM certificate"));
    }
    Ok((key, chain))
}

fn protocol_versions(
    list: &str,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    let mut versions = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let version = match name {
            "TLSv1.2" => &rustls::version::TLS12,
            "TLSv1.3" => &rustls::version::TLS13,
            other => {
                return Err(error(
                    "ssl.enabled.protocols",
                    format!("{other:?}: Brook speaks TLSv1.2 and TLSv1.3"),
                ))
            }
        };
        versions.push(version);
    }
    if versions.is_empty() {
        return Err(error("ssl.enabled.protocols", "names no protocol"));
    }
    Ok(versions)
}

/// Checks the TLS settings without reading their files (for `BrokerConfig::validate`).
pub fn check_settings(config: &BrokerConfig) -> Result<(), TlsError> {
    Settings::read(config).map(|_| ())
}

/// The server config in use, and what reloads it.
pub struct Tls {
    settings: Settings,
    current: RwLock<Arc<ServerConfig>>,
    /// The files' modification times when last loaded.
    loaded: Mutex<Vec<Option<SystemTime>>>,
}

impl Tls {
    /// Reads the settings and their files.
    pub fn load(config: &BrokerConfig) -> Result<Self, TlsError> {
        let settings = Settings::read(config)?;
        let loaded = modified(&settings.files());
        let current = Arc::new(settings.build()?);
        Ok(Self {
            settings,
            current: RwLock::new(current),
            loaded: Mutex::new(loaded),
        })
    }

    /// The config new connections use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().clone()
    }

    /// Whether `ssl.client.auth` asks clients for certificates.
    pub fn client_auth(&self) -> ClientAuth {
        self.settings.client_auth
    }

    /// Reads the files again and uses them for new connections. On an error the config in
    /// use stays (a half-written certificate must not take the listener down).
    pub fn reload(&self) -> Result<(), TlsError> {
        let files = self.settings.files();
        let stamps = modified(&files);
        let config = self.settings.build()?;
        *self.current.write() = Arc::new(config);
        *self.loaded.lock() = stamps;
        Ok(())
    }

    /// Reloads if a file changed since it was last loaded; true when it did.
    pub fn reload_if_changed(&self) -> bool {
        let stamps = modified(&self.settings.files());
        if *self.loaded.lock() == stamps {
            return false;
        }
        match self.reload() {
            Ok(()) => {
                tracing::info!("TLS key, certificate or trust store changed: reloaded");
                true
            }
            Err(e) => {
                // Remember the stamps so a broken file is reported once, not every check.
                *self.loaded.lock() = stamps;
                tracing::warn!(error = %e, "TLS files changed but cannot be used; keeping the previous ones");
                false
            }
        }
    }
}

fn modified(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// The development CA and server certificate `brook tls init` writes.
pub struct DevCertificates {
    /// The CA certificate, PEM: what clients trust (`ssl.truststore.location`, kafkajs `ca`,
    /// librdkafka `ssl.ca.location`).
    pub ca_pem: String,
    /// The CA's key, PEM (to sign client certificates for mutual TLS).
    pub ca_key_pem: String,
    /// The server's private key followed by its certificate, PEM:
    /// `ssl.keystore.location`.
    pub server_pem: String,
}

/// A new CA and a server certificate it signed, valid for `hosts` (names or IP addresses).
pub fn dev_certificates(hosts: &[String]) -> Result<DevCertificates, rcgen::Error> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Brook development CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca, &ca_key);
    let server_key = rcgen::KeyPair::generate()?;
    let mut server = rcgen::CertificateParams::new(hosts.to_vec())?;
    server.distinguished_name.push(
        rcgen::DnType::CommonName,
        hosts.first().map_or("localhost", String::as_str),
    );
    let server_cert = server.signed_by(&server_key, &issuer)?;
    Ok(DevCertificates {
        ca_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        server_pem: format!("{}{}", server_key.serialize_pem(), server_cert.pem()),
    })
}

/// A client certificate for `name` (its subject `CN=<name>`) signed by a CA made by
/// [`dev_certificates`]: (key and certificate PEM, certificate PEM).
pub fn dev_client_certificate(
    ca_pem: &str,
    ca_key_pem: &str,
    name: &str,
) -> Result<(String, String), rcgen::Error> {
    let ca_key = rcgen::KeyPair::from_pem(ca_key_pem)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_pem, &ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((key.serialize_pem(), cert.pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(dir: &std::path::Path, certs: &DevCertificates) -> BrokerConfig {
        let keystore = dir.join("server.pem");
        std::fs::write(&keystore, &certs.server_pem).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, &certs.ca_pem).unwrap();
        BrokerConfig {
            ssl_keystore_location: Some(keystore),
            ssl_truststore_location: Some(ca),
            ..BrokerConfig::default()
        }
    }

    #[test]
    fn key_exchange_and_ciphers_prefer_the_fast_ones() {
        assert_eq!(
            crypto_provider().cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        let dir = tempfile::tempdir().unwrap();
        let certs = dev_certificates(&["localhost".into()]).unwrap();
        let tls = Tls::load(&config_with(dir.path(), &certs)).unwrap();
        assert!(tls.current().ignore_client_order);
        let names: Vec<_> = crypto_provider()
            .kx_groups
            .iter()
            .map(|g| g.name())
            .collect();
        assert_eq!(
            names,
            [
                rustls::NamedGroup::X25519,
                rustls::NamedGroup::secp256r1,
                rustls::NamedGroup::secp384r1
            ]
        );
    }

    #[test]
    fn pem_files_and_inline_pem_both_load() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dev_certificates(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let config = config_with(dir.path(), &certs);
        Tls::load(&config).unwrap();
        let (key, chain) = certs
            .server_pem
            .split_at(certs.server_pem.find("-----BEGIN CERTIFICATE").unwrap());
        let inline = BrokerConfig {
            ssl_keystore_key: Some(key.into()),
            ssl_keystore_certificate_chain: Some(chain.into()),
            ssl_truststore_certificates: Some(certs.ca_pem.clone()),
            ssl_client_auth: "required".into(),
            ..BrokerConfig::default()
        };
        let tls = Tls::load(&inline).unwrap();
        assert_eq!(tls.client_auth(), ClientAuth::Required);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dev_certificates(&["localhost".into()]).unwrap();
        let good = config_with(dir.path(), &certs);
        let cases: Vec<(BrokerConfig, &str)> = vec![
            (BrokerConfig::default(), "ssl.keystore.location"),
            (
                BrokerConfig {
                    ssl_keystore_type: "JKS".into(),
                    ..good.clone()
                },
                "ssl.keystore.type",
            ),
            (
                BrokerConfig {
                    ssl_key_password: Some("x".into()),
                    ..good.clone()
                },
                "ssl.key.password",
            ),
            (
                BrokerConfig {
                    ssl_client_auth: "sometimes".into(),
                    ..good.clone()
                },
                "ssl.client.auth",
            ),
            (
                BrokerConfig {
                    ssl_client_auth: "required".into(),
                    ssl_truststore_location: None,
                    ..good.clone()
                },
                "ssl.truststore.location",
            ),
            (
                BrokerConfig {
                    ssl_enabled_protocols: "TLSv1.1".into(),
                    ..good.clone()
                },
                "ssl.enabled.protocols",
            ),
            (
                BrokerConfig {
                    ssl_keystore_location: Some(dir.path().join("missing.pem")),
                    ..good.clone()
                },
                "ssl.keystore.location",
            ),
            (
                BrokerConfig {
                    ssl_keystore_location: good.ssl_truststore_location.clone(),
                    ..good.clone()
                },
                "ssl.keystore.location",
            ),
        ];
        for (config, setting) in cases {
            let err = Tls::load(&config).err().expect("refused");
            assert_eq!(err.setting, setting, "{err}");
        }
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_old_config() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dev_certificates(&["localhost".into()]).unwrap();
        let config = config_with(dir.path(), &certs);
        let tls = Tls::load(&config).unwrap();
        let first = tls.current();
        assert!(!tls.reload_if_changed());
        let keystore = config.ssl_keystore_location.clone().unwrap();
        // A new modification time, whatever the file system's time granularity.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        let newer = dev_certificates(&["localhost".into()]).unwrap();
        std::fs::write(&keystore, &newer.server_pem).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&keystore)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(tls.reload_if_changed());
        assert!(!Arc::ptr_eq(&first, &tls.current()));
        let reloaded = tls.current();
        std::fs::write(&keystore, "garbage").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&keystore)
            .unwrap()
            .set_modified(later + std::time::Duration::from_secs(5))
            .unwrap();
        assert!(!tls.reload_if_changed());
        assert!(Arc::ptr_eq(&reloaded, &tls.current()));
    }
}
