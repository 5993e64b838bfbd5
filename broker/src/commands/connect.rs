//! The options every command that talks to a running broker shares (`--brokers`, TLS,
//! SASL), and the connection they make.

use std::path::PathBuf;
use std::time::Duration;

use brook_client::{ClientConfig, Connection, SaslConfig, SaslMechanism, Security, TlsConfig};

/// Where commands look for a broker unless told.
const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// How to reach a running broker.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BrokerArgs {
    /// Broker address(es), comma-separated; the first that answers is used
    /// [default: 127.0.0.1:9092]
    #[arg(long, value_name = "HOST:PORT", env = "BROOK_BROKERS")]
    pub(crate) brokers: Option<String>,
    /// CA certificate (PEM) to check the broker's: turns TLS on
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM, may hold the key too) for mutual TLS
    #[arg(long, value_name = "FILE", requires = "tls_ca")]
    tls_cert: Option<PathBuf>,
    /// Client key (PEM), if not in --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    #[arg(long, value_name = "MECHANISM", requires = "sasl_user")]
    sasl_mechanism: Option<String>,
    /// SASL user name
    #[arg(long, value_name = "NAME", requires = "sasl_password")]
    sasl_user: Option<String>,
    /// SASL password
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "BROOK_SASL_PASSWORD",
        hide_env_values = true
    )]
    sasl_password: Option<String>,
}

/// The security options of one cluster, as the commands take them.
pub(crate) struct SecurityOptions<'a> {
    pub(crate) tls_ca: Option<&'a PathBuf>,
    pub(crate) tls_cert: Option<&'a PathBuf>,
    pub(crate) tls_key: Option<&'a PathBuf>,
    pub(crate) sasl_mechanism: Option<&'a str>,
    pub(crate) sasl_user: Option<&'a str>,
    pub(crate) sasl_password: Option<&'a str>,
}

impl SecurityOptions<'_> {
    /// TLS when a CA is given, SASL when a user and password are (SCRAM-SHA-256 unless
    /// another mechanism is named).
    pub(crate) fn security(&self) -> Result<Security, String> {
        let tls = self.tls_ca.map(|ca| TlsConfig {
            ca_file: Some(ca.clone()),
            cert_file: self.tls_cert.cloned(),
            key_file: self.tls_key.cloned(),
        });
        let sasl = match (self.sasl_user, self.sasl_password) {
            (Some(user), Some(password)) => {
                let name = self.sasl_mechanism.unwrap_or("SCRAM-SHA-256");
                let mechanism = SaslMechanism::from_name(name).ok_or_else(|| {
                    format!("SASL mechanism {name:?}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
                })?;
                Some(SaslConfig {
                    mechanism,
                    username: user.to_string(),
                    password: password.to_string(),
                })
            }
            _ => None,
        };
        Ok(Security { tls, sasl })
    }
}

impl BrokerArgs {
    fn security(&self) -> Result<Security, String> {
        SecurityOptions {
            tls_ca: self.tls_ca.as_ref(),
            tls_cert: self.tls_cert.as_ref(),
            tls_key: self.tls_key.as_ref(),
            sasl_mechanism: self.sasl_mechanism.as_deref(),
            sasl_user: self.sasl_user.as_deref(),
            sasl_password: self.sasl_password.as_deref(),
        }
        .security()
    }

    /// The client settings these options name.
    pub(crate) fn client_config(&self, client_id: &str) -> Result<ClientConfig, String> {
        Ok(ClientConfig {
            security: self.security()?,
            client_id: client_id.to_string(),
            timeout: Duration::from_secs(10),
            ..ClientConfig::new(self.brokers.as_deref().unwrap_or(DEFAULT_BROKERS))
        })
    }

    /// Connects to the first broker that answers.
    pub(crate) async fn connect(&self) -> Result<Connection, Box<dyn std::error::Error>> {
        let security = self.security()?;
        let mut last = None;
        let brokers = self.brokers.as_deref().unwrap_or(DEFAULT_BROKERS);
        for addr in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Connection::connect(addr, &security, "brook-cli", Duration::from_secs(10)).await {
                Ok(c) => return Ok(c),
                // Authentication failures are final: another broker would refuse the same.
                Err(e @ brook_client::ClientError::Authentication(_)) => return Err(e.into()),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => e.into(),
            None => "--brokers names no broker".into(),
        })
    }
}

/// Connects as `broker` says and runs `f` with an admin client.
pub(crate) fn with_admin<T>(
    broker: &BrokerArgs,
    f: impl AsyncFnOnce(&mut brook_client::Admin) -> Result<T, brook_client::ClientError>,
) -> Result<T, Box<dyn std::error::Error>> {
    let config = broker.client_config("brook-cli")?;
    runtime()?.block_on(async {
        let mut admin = brook_client::Admin::new(config).await?;
        Ok(f(&mut admin).await?)
    })
}

/// The runtime commands run their client on.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Connects as `broker` says and sends one request: its response.
pub(crate) fn send_one<R: brook_protocol::kafka_protocol::protocol::Request>(
    broker: &BrokerArgs,
    request: &R,
) -> Result<R::Response, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut connection = broker.connect().await?;
        Ok(connection.send(request).await?)
    })
}

/// The error of a response's top-level error fields (`None` when it has none).
pub(crate) fn response_error(code: i16, message: Option<&str>) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    Err(message
        .map(String::from)
        .unwrap_or_else(|| format!("the broker refused (error code {code})")))
}
