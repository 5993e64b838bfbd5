//! One connection to a broker: TCP, or TLS over TCP (rustls), SASL authentication when
//! configured, then typed requests answered in order.
//!
//! [`Connection::connect`] runs ApiVersions first (so each request goes at the highest
//! version both sides speak), then SaslHandshake and SaslAuthenticate. Every network step is
//! bounded by the connection's timeout, so an unreachable or silent broker is an error in
//! seconds, not a hang.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::kafka_protocol::messages::{
    ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use brook_protocol::kafka_protocol::protocol::{
    encode_request_header_into_buffer, Decodable, HeaderVersion, Request, StrBytes,
};
use bytes::{Bytes, BytesMut};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::scram::{ClientExchange, Hash};
use crate::ClientError;

/// The largest response frame accepted (Kafka's default `socket.request.max.bytes`).
const MAX_RESPONSE: usize = 100 * 1024 * 1024;

/// TLS settings (like librdkafka's `ssl.*`).
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// PEM CA certificates the broker's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS (may also hold the key).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate (defaults to `cert_file`).
    pub key_file: Option<PathBuf>,
}

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// Kafka's name of the mechanism.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (any case).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Self::Plain),
            "SCRAM-SHA-256" => Some(Self::ScramSha256),
            "SCRAM-SHA-512" => Some(Self::ScramSha512),
            _ => None,
        }
    }
}

/// SASL credentials.
#[derive(Debug, Clone)]
pub struct SaslConfig {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

/// How to reach a broker securely: Kafka's four security protocols are the four
/// combinations of `tls` and `sasl`.
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub tls: Option<TlsConfig>,
    pub sasl: Option<SaslConfig>,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One connection (see the module docs).
pub struct Connection {
    addr: String,
    stream: Box<dyn Stream>,
    correlation_id: i32,
    client_id: String,
    timeout: Duration,
    /// The broker's (min, max) version per API key.
    versions: HashMap<i16, (i16, i16)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`), negotiates versions and authenticates; every step
    /// within `timeout`.
    pub async fn connect(
        addr: &str,
        security: &Security,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.to_string(),
                timeout,
            })?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &security.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(client_config(tls)?);
                let host = host_of(addr);
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| ClientError::Tls(format!("{host:?}: {e}")))?;
                let handshake = connector.connect(name, tcp);
                let stream = tokio::time::timeout(timeout, handshake)
                    .await
                    .map_err(|_| ClientError::Timeout {
                        addr: addr.to_string(),
                        timeout,
                    })?
                    .map_err(|e| ClientError::Tls(format!("{addr}: {e}")))?;
                Box::new(stream)
            }
        };
        let mut connection = Self {
            addr: addr.to_string(),
            stream,
            correlation_id: 0,
            client_id: client_id.to_string(),
            timeout,
            versions: HashMap::new(),
        };
        connection.negotiate_versions().await?;
        if let Some(sasl) = &security.sasl {
            connection.authenticate(sasl).await?;
        }
        Ok(connection)
    }

    /// The address this connection goes to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The version a request of type `R` goes at: the highest both sides speak.
    pub fn version_for<R: Request>(&self) -> Result<i16, ClientError> {
        negotiated::<R>(&self.versions)
    }

    /// Sends `request` at the highest common version and reads its response.
    pub async fn send<R: Request>(&mut self, request: &R) -> Result<R::Response, ClientError> {
        let version = self.version_for::<R>()?;
        self.send_at(version, request).await
    }

    /// Sends `request` at `version` and reads its response.
    pub async fn send_at<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let body = encode_request(&self.client_id, self.correlation_id, version, request)?;
        self.write_frame(&body).await?;
        let payload = self.read_frame().await?;
        decode_response::<R>(payload, version, self.correlation_id)
    }

    /// Turns this connection into a [`Pipeline`]: shared by tasks, many requests in flight.
    pub fn into_pipeline(self) -> Pipeline {
        Pipeline::new(self)
    }

    async fn negotiate_versions(&mut self) -> Result<(), ClientError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("brook"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response = self.send_at(3, &request).await?;
        // UNSUPPORTED_VERSION (KIP-511): retry at the version the broker names, v0 at worst.
        if response.error_code == 35 {
            response = self.send_at(0, &ApiVersionsRequest::default()).await?;
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    async fn authenticate(&mut self, sasl: &SaslConfig) -> Result<(), ClientError> {
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name()));
        let version = self.version_for::<SaslHandshakeRequest>()?.min(1);
        let answer = self.send_at(version, &handshake).await?;
        if answer.error_code != 0 {
            let offered: Vec<String> = answer.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(ClientError::Authentication(format!(
                "the broker does not offer {} (it offers: {})",
                sasl.mechanism.name(),
                offered.join(", ")
            )));
        }
        if version < 1 {
            return Err(ClientError::Authentication(
                "the broker only speaks SaslHandshake v0 (bare SASL frames), which Brook's client does not".into(),
            ));
        }
        match sasl.mechanism {
            SaslMechanism::Plain => {
                let token = format!("\0{}\0{}", sasl.username, sasl.password);
                self.sasl_round(token.into_bytes()).await?;
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let hash = if sasl.mechanism == SaslMechanism::ScramSha256 {
                    Hash::Sha256
                } else {
                    Hash::Sha512
                };
                let nonce = nonce()?;
                let (exchange, first) =
                    ClientExchange::start(hash, &sasl.username, &sasl.password, &nonce);
                let server_first = self.sasl_round(first.into_bytes()).await?;
                let (last, expected) = exchange
                    .respond(&server_first)
                    .map_err(ClientError::Authentication)?;
                let server_final = self.sasl_round(last.into_bytes()).await?;
                expected
                    .check(&server_final)
                    .map_err(ClientError::Authentication)?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate round: the server's reply, or its refusal.
    async fn sasl_round(&mut self, message: Vec<u8>) -> Result<Bytes, ClientError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        let answer = self.send(&request).await?;
        if answer.error_code != 0 {
            return Err(ClientError::Authentication(
                answer
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| format!("error code {}", answer.error_code)),
            ));
        }
        Ok(answer.auth_bytes)
    }

    async fn write_frame(&mut self, body: &[u8]) -> Result<(), ClientError> {
        let framed = framed(body)?;
        let (addr, timeout) = (self.addr.clone(), self.timeout);
        let write = async {
            self.stream.write_all(&framed).await?;
            self.stream.flush().await
        };
        bounded(addr, timeout, write).await
    }

    async fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let (addr, timeout) = (self.addr.clone(), self.timeout);
        bounded(addr, timeout, read_frame_from(&mut self.stream)).await
    }
}

/// A request's frame body (header and message) at `version`.
fn encode_request<R: Request>(
    client_id: &str,
    correlation_id: i32,
    version: i16,
    request: &R,
) -> Result<BytesMut, ClientError> {
    let codec = |what, e: &dyn std::fmt::Display| ClientError::Codec {
        what,
        message: e.to_string(),
    };
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut body = BytesMut::new();
    encode_request_header_into_buffer(&mut body, &header)
        .map_err(|e| codec("a request header", &e))?;
    request
        .encode(&mut body, version)
        .map_err(|e| codec("a request", &e))?;
    Ok(body)
}

/// The response to request `correlation_id` (of type `R`, sent at `version`) in `payload`.
fn decode_response<R: Request>(
    mut payload: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, ClientError> {
    let codec = |what, e: &dyn std::fmt::Display| ClientError::Codec {
        what,
        message: e.to_string(),
    };
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(&mut payload, header_version)
        .map_err(|e| codec("a response header", &e))?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::Codec {
            what: "a response",
            message: format!(
                "correlation id {} answers request {correlation_id}",
                header.correlation_id
            ),
        });
    }
    R::Response::decode(&mut payload, version).map_err(|e| codec("a response", &e))
}

/// Reads one size-prefixed frame (at most [`MAX_RESPONSE`] bytes).
async fn read_frame_from(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await?;
    let size = usize::try_from(i32::from_be_bytes(size)).unwrap_or(usize::MAX);
    if size > MAX_RESPONSE {
        return Err(std::io::Error::other(format!(
            "a response of {size} bytes is too large"
        )));
    }
    let mut payload = vec![0u8; size];
    stream.read_exact(&mut payload).await?;
    Ok(Bytes::from(payload))
}

/// A frame: the size, then `body`.
fn framed(body: &[u8]) -> Result<Vec<u8>, ClientError> {
    let size = i32::try_from(body.len()).map_err(|_| ClientError::Codec {
        what: "a request",
        message: "larger than 2 GiB".into(),
    })?;
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&size.to_be_bytes());
    framed.extend_from_slice(body);
    Ok(framed)
}

/// One connection shared by many tasks with many requests in flight, as producers and
/// consumers need: requests are written in turn, and a reader task hands each response to
/// its waiter (Kafka answers a connection's requests in order). Cloning shares it.
#[derive(Clone)]
pub struct Pipeline {
    shared: Arc<PipelineShared>,
}

struct PipelineShared {
    addr: String,
    client_id: String,
    timeout: Duration,
    versions: HashMap<i16, (i16, i16)>,
    writer: tokio::sync::Mutex<PipelineWriter>,
    waiters: Arc<std::sync::Mutex<Waiters>>,
    reader: tokio::task::JoinHandle<()>,
}

struct PipelineWriter {
    half: tokio::io::WriteHalf<Box<dyn Stream>>,
    correlation_id: i32,
}

/// The requests waiting for a response, oldest first; `closed` once the connection broke.
#[derive(Default)]
struct Waiters {
    queue: std::collections::VecDeque<(i32, tokio::sync::oneshot::Sender<Bytes>)>,
    closed: Option<String>,
}

impl Drop for PipelineShared {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    fn new(connection: Connection) -> Self {
        let (mut read, write) = tokio::io::split(connection.stream);
        let waiters = Arc::new(std::sync::Mutex::new(Waiters::default()));
        let reader = {
            let waiters = Arc::clone(&waiters);
            tokio::spawn(async move {
                let reason = loop {
                    match read_frame_from(&mut read).await {
                        Ok(frame) => {
                            let Ok(mut w) = waiters.lock() else { return };
                            // A waiter that gave up (timed out) has dropped its receiver;
                            // its response is dropped here.
                            if let Some((_, tx)) = w.queue.pop_front() {
                                let _ = tx.send(frame);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            break "the broker closed the connection".to_string();
                        }
                        Err(e) => break e.to_string(),
                    }
                };
                if let Ok(mut w) = waiters.lock() {
                    w.closed = Some(reason);
                    w.queue.clear();
                }
            })
        };
        Self {
            shared: Arc::new(PipelineShared {
                addr: connection.addr,
                client_id: connection.client_id,
                timeout: connection.timeout,
                versions: connection.versions,
                writer: tokio::sync::Mutex::new(PipelineWriter {
                    half: write,
                    correlation_id: connection.correlation_id,
                }),
                waiters,
                reader,
            }),
        }
    }

    /// The address this connection goes to.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Whether the connection broke (a new one is needed).
    pub fn is_closed(&self) -> bool {
        self.shared
            .waiters
            .lock()
            .map_or(true, |w| w.closed.is_some())
    }

    /// The version a request of type `R` goes at: the highest both sides speak.
    pub fn version_for<R: Request>(&self) -> Result<i16, ClientError> {
        negotiated::<R>(&self.shared.versions)
    }

    /// Sends `request` at the highest common version and waits for its response.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response, ClientError> {
        let version = self.version_for::<R>()?;
        self.send_at(version, request).await
    }

    /// Sends `request` at `version` and waits for its response (within the timeout).
    pub async fn send_at<R: Request>(
        &self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        self.submit(version, request).await?.wait().await
    }

    /// Writes `request` at `version` and returns at once: the [`Answer`] awaits the
    /// response. Requests submitted one after the other reach the broker in that order.
    pub async fn submit<R: Request>(
        &self,
        version: i16,
        request: &R,
    ) -> Result<Answer<R>, ClientError> {
        let (correlation_id, rx) = self.write(version, request, true).await?;
        let Some(rx) = rx else {
            unreachable!("a response is awaited")
        };
        Ok(Answer {
            pipeline: self.clone(),
            version,
            correlation_id,
            rx,
            request: std::marker::PhantomData,
        })
    }

    /// Sends `request` at `version` without waiting for a response: for the requests the
    /// broker does not answer (Produce with acks=0).
    pub async fn send_unanswered<R: Request>(
        &self,
        version: i16,
        request: &R,
    ) -> Result<(), ClientError> {
        self.write(version, request, false).await.map(|_| ())
    }

    fn closed_error(&self) -> ClientError {
        let reason = self
            .shared
            .waiters
            .lock()
            .ok()
            .and_then(|w| w.closed.clone())
            .unwrap_or_else(|| "the connection broke".into());
        ClientError::Io {
            addr: self.shared.addr.clone(),
            source: std::io::Error::new(std::io::ErrorKind::ConnectionAborted, reason),
        }
    }

    async fn write<R: Request>(
        &self,
        version: i16,
        request: &R,
        answered: bool,
    ) -> Result<(i32, Option<tokio::sync::oneshot::Receiver<Bytes>>), ClientError> {
        let mut writer = self.shared.writer.lock().await;
        writer.correlation_id = writer.correlation_id.wrapping_add(1);
        let correlation_id = writer.correlation_id;
        let body = encode_request(&self.shared.client_id, correlation_id, version, request)?;
        let frame = framed(&body)?;
        // The waiter is queued before the request leaves, so the reader always finds it.
        let rx = if answered {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let mut w = self
                .shared
                .waiters
                .lock()
                .map_err(|_| self.closed_error())?;
            if w.closed.is_some() {
                drop(w);
                return Err(self.closed_error());
            }
            w.queue.push_back((correlation_id, tx));
            Some(rx)
        } else {
            None
        };
        let write = async {
            writer.half.write_all(&frame).await?;
            writer.half.flush().await
        };
        bounded(self.shared.addr.clone(), self.shared.timeout, write).await?;
        Ok((correlation_id, rx))
    }
}

/// The response to come to a request [`Pipeline::submit`] wrote.
#[derive(Debug)]
pub struct Answer<R> {
    pipeline: Pipeline,
    version: i16,
    correlation_id: i32,
    rx: tokio::sync::oneshot::Receiver<Bytes>,
    request: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> Answer<R> {
    /// Waits for the response (within the connection's timeout).
    pub async fn wait(self) -> Result<R::Response, ClientError> {
        let timeout = self.pipeline.shared.timeout;
        self.wait_for(timeout).await
    }

    /// Waits for the response at most `timeout` (for requests the broker may hold longer
    /// than usual, such as JoinGroup during a rebalance).
    pub async fn wait_for(self, timeout: Duration) -> Result<R::Response, ClientError> {
        let shared = &self.pipeline.shared;
        let payload = match tokio::time::timeout(timeout, self.rx).await {
            Err(_) => {
                return Err(ClientError::Timeout {
                    addr: shared.addr.clone(),
                    timeout,
                })
            }
            Ok(Err(_)) => return Err(self.pipeline.closed_error()),
            Ok(Ok(payload)) => payload,
        };
        decode_response::<R>(payload, self.version, self.correlation_id)
    }
}

/// The highest version of `R` both sides speak, given the broker's ranges.
fn negotiated<R: Request>(versions: &HashMap<i16, (i16, i16)>) -> Result<i16, ClientError> {
    let (min, max) = versions
        .get(&R::KEY)
        .copied()
        .ok_or(ClientError::UnsupportedApi(std::any::type_name::<R>()))?;
    let max = max.min(R::VERSIONS.max);
    if max < min.max(R::VERSIONS.min) {
        return Err(ClientError::UnsupportedApi(std::any::type_name::<R>()));
    }
    Ok(max)
}

/// Runs an I/O step within `timeout`, naming `addr` in its error.
async fn bounded<T>(
    addr: String,
    timeout: Duration,
    step: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(ClientError::Io { addr, source }),
        Err(_) => Err(ClientError::Timeout { addr, timeout }),
    }
}

/// The host part of `host:port` (IPv6 in brackets).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// rustls's ring provider, as the broker uses (no cmake, no large C build), with X25519 and
/// P-256 key exchange first (the provider's default puts P-384 first, which ring computes
/// slowly).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    Arc::new(rustls::crypto::CryptoProvider {
        kx_groups: vec![X25519, SECP256R1, SECP384R1],
        ..rustls::crypto::ring::default_provider()
    })
}

/// A fresh SCRAM client nonce: 24 random bytes, base64.
fn nonce() -> Result<String, ClientError> {
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| ClientError::Authentication("no randomness for the SCRAM nonce".into()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn client_config(tls: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let err = |what: &str, e: &dyn std::fmt::Display| ClientError::Tls(format!("{what}: {e}"));
    let ca = tls.ca_file.as_ref().ok_or_else(|| {
        ClientError::Tls("a CA file is needed to check the broker's certificate".into())
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| err(&ca.display().to_string(), &e))? {
        let cert = cert.map_err(|e| err(&ca.display().to_string(), &e))?;
        roots
            .add(cert)
            .map_err(|e| err(&ca.display().to_string(), &e))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS versions", &e))?
        .with_root_certificates(roots);
    let config = match &tls.cert_file {
        None => builder.with_no_client_auth(),
        Some(cert) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| err(&cert.display().to_string(), &e))?;
            let key_path = tls.key_file.as_ref().unwrap_or(cert);
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|e| err(&key_path.display().to_string(), &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err("the client certificate", &e))?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_addresses() {
        assert_eq!(host_of("localhost:9092"), "localhost");
        assert_eq!(host_of("[::1]:9092"), "::1");
        assert_eq!(host_of("10.0.0.1:1"), "10.0.0.1");
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_an_error_not_a_hang() {
        // A port nothing listens on: refused at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = Connection::connect(&addr, &Security::default(), "t", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        // A TLS connection without a CA file is refused before connecting anywhere useful.
        let tls = Security {
            tls: Some(TlsConfig::default()),
            sasl: None,
        };
        assert!(client_config(tls.tls.as_ref().unwrap()).is_err());
    }
}
