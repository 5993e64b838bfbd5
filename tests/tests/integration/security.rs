//! TLS and SASL listeners with real clients and with raw frames: SASL_SSL with SCRAM-SHA-256
//! and SCRAM-SHA-512, SASL_PLAINTEXT with PLAIN, SSL with client certificates; what is refused
//! (wrong password, unknown user or mechanism, requests before authentication, oversized
//! frames, untrusted certificates), and how (Kafka's error codes, the connection closed).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_broker::auth::scram::Mechanism;
use brook_broker::auth::tls::{dev_certificates, dev_client_certificate};
use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::ErrorCode;
use brook_tests::RawClient;
use bytes::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::external_clients::{assert_success, run};

/// kcat with the system's librdkafka: cargo's test environment puts the rdkafka crate's own
/// build directories on LD_LIBRARY_PATH, which must not stand in for Debian's library.
fn kcat() -> std::process::Command {
    let mut cmd = std::process::Command::new("kcat");
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

pub(crate) const USER: &str = "alice";
pub(crate) const PASSWORD: &str = "alice-secret";

/// A broker with PLAINTEXT, SSL, SASL_SSL and SASL_PLAINTEXT listeners, the user
/// [`USER`] (both SCRAM mechanisms), a development CA and client certificates.
pub(crate) struct Secured {
    pub(crate) broker: EmbeddedBroker,
    pub(crate) dir: tempfile::TempDir,
}

impl Secured {
    /// `client_auth` is `ssl.client.auth`; `tweak` changes the config further.
    pub(crate) fn start(client_auth: &str, tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = dev_certificates(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &certs.ca_pem).unwrap();
        std::fs::write(dir.path().join("server.pem"), &certs.server_pem).unwrap();
        let (key, cert) =
            dev_client_certificate(&certs.ca_pem, &certs.ca_key_pem, "app-1").unwrap();
        std::fs::write(dir.path().join("client.pem"), format!("{key}{cert}")).unwrap();
        std::fs::write(dir.path().join("client-key.pem"), &key).unwrap();
        std::fs::write(dir.path().join("client-cert.pem"), &cert).unwrap();
        // A client certificate from a CA the broker does not trust.
        let other = dev_certificates(&["localhost".into()]).unwrap();
        let (key, cert) =
            dev_client_certificate(&other.ca_pem, &other.ca_key_pem, "mallory").unwrap();
        std::fs::write(
            dir.path().join("untrusted-client.pem"),
            format!("{key}{cert}"),
        )
        .unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), &other.ca_pem).unwrap();
        let data = dir.path().join("data");
        brook_broker::auth::users::create_user(
            &data,
            USER,
            PASSWORD,
            &[Mechanism::Sha256, Mechanism::Sha512],
            4096,
        )
        .unwrap();
        let mut config = BrokerConfig::with_data_dir(&data);
        config.listeners = Some(
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"
                .into(),
        );
        config.sasl_enabled_mechanisms = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".into();
        config.ssl_keystore_location = Some(dir.path().join("server.pem"));
        config.ssl_truststore_location = Some(dir.path().join("ca.pem"));
        config.ssl_client_auth = client_auth.into();
        config.group_initial_rebalance_delay_ms = 0;
        tweak(&mut config);
        let broker = EmbeddedBroker::start(config).unwrap();
        Self { broker, dir }
    }

    pub(crate) fn addr(&self, listener: &str) -> String {
        self.broker.listener_addr(listener).unwrap().to_string()
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What the client scripts read: each listener's address, the CA, the client
    /// certificate, the user.
    pub(crate) fn env(&self, cmd: &mut std::process::Command) {
        cmd.env("BROOK_SSL", self.addr("SSL"))
            .env("BROOK_SASL_SSL", self.addr("SASL_SSL"))
            .env("BROOK_SASL_PLAINTEXT", self.addr("SASL_PLAINTEXT"))
            .env("BROOK_CA", self.file("ca.pem"))
            .env("BROOK_CLIENT_CERT", self.file("client-cert.pem"))
            .env("BROOK_CLIENT_KEY", self.file("client-key.pem"))
            .env("BROOK_USER", USER)
            .env("BROOK_PASSWORD", PASSWORD)
            .env("BROOK_TEST_TIMEOUT_S", "90");
    }
}

fn handshake(c: &mut RawClient, version: i16, mechanism: &str) -> (i16, Vec<String>) {
    let r = c
        .call(
            version,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_string(mechanism.into())),
        )
        .unwrap();
    (
        r.error_code,
        r.mechanisms.iter().map(|m| m.to_string()).collect(),
    )
}

fn authenticate(c: &mut RawClient, version: i16, bytes: &[u8]) -> (i16, Option<String>, i64) {
    let r = c
        .call(
            version,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(bytes)),
        )
        .unwrap();
    (
        r.error_code,
        r.error_message.map(|m| m.to_string()),
        r.session_lifetime_ms,
    )
}

fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

#[test]
fn sasl_listeners_serve_nothing_before_authentication_and_refuse_as_kafka_does() {
    let s = Secured::start("none", |_| {});
    let addr = s.addr("SASL_PLAINTEXT");

    // ApiVersions is served and lists the SASL APIs; anything else closes the connection.
    let mut c = RawClient::connect(&addr).unwrap();
    let versions = c
        .call(
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("brook-tests"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        )
        .unwrap();
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == 17 && k.max_version == 1));
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == 36 && k.max_version == 2));
    let framed = c.encode(12, &MetadataRequest::default());
    c.send_raw(&framed).unwrap();
    assert!(
        c.is_closed_by_peer(),
        "Metadata before authentication must close the connection"
    );

    // A mechanism that is not enabled: UNSUPPORTED_SASL_MECHANISM with the enabled ones.
    let mut c = RawClient::connect(&addr).unwrap();
    let (code, offered) = handshake(&mut c, 1, "GSSAPI");
    assert_eq!(code, ErrorCode::UnsupportedSaslMechanism.code());
    assert_eq!(offered, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    assert!(c.is_closed_by_peer());

    // A wrong password and an unknown user: the same answer, after the failure delay.
    for (user, password) in [(USER, "wrong"), ("nobody", PASSWORD)] {
        let mut c = RawClient::connect(&addr).unwrap();
        assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
        let started = Instant::now();
        let (code, message, _) = authenticate(&mut c, 2, &plain(user, password));
        assert_eq!(code, ErrorCode::SaslAuthenticationFailed.code());
        assert_eq!(
            message.as_deref(),
            Some("Authentication failed: Invalid username or password")
        );
        assert!(
            started.elapsed() >= Duration::from_millis(90),
            "{:?}",
            started.elapsed()
        );
        assert!(c.is_closed_by_peer());
    }

    // SaslAuthenticate without a handshake.
    let mut c = RawClient::connect(&addr).unwrap();
    let (code, _, _) = authenticate(&mut c, 2, &plain(USER, PASSWORD));
    assert_eq!(code, ErrorCode::IllegalSaslState.code());
    assert!(c.is_closed_by_peer());

    // A frame above sasl.server.max.receive.size before authentication.
    let mut c = RawClient::connect(&addr).unwrap();
    c.send_raw(&(600_000i32).to_be_bytes()).unwrap();
    assert!(c.is_closed_by_peer());

    // The right password: served from then on.
    let mut c = RawClient::connect(&addr).unwrap();
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    let (code, message, lifetime) = authenticate(&mut c, 2, &plain(USER, PASSWORD));
    assert_eq!((code, message, lifetime), (0, None, 0));
    let metadata = c.call(12, &MetadataRequest::default()).unwrap();
    assert_eq!(metadata.brokers.len(), 1);

    // A PLAINTEXT listener has no SASL: its handshake is an illegal state.
    let mut c = RawClient::connect(&s.addr("PLAINTEXT")).unwrap();
    assert_eq!(
        handshake(&mut c, 1, "PLAIN").0,
        ErrorCode::IllegalSaslState.code()
    );
}

#[test]
fn a_version_0_handshake_takes_bare_sasl_frames() {
    let s = Secured::start("none", |_| {});
    let mut c = RawClient::connect(&s.addr("SASL_PLAINTEXT")).unwrap();
    assert_eq!(handshake(&mut c, 0, "PLAIN").0, 0);
    let token = plain(USER, PASSWORD);
    let mut framed = (token.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&token);
    c.send_raw(&framed).unwrap();
    assert!(
        c.read_frame().unwrap().is_empty(),
        "PLAIN answers with an empty token"
    );
    assert_eq!(
        c.call(12, &MetadataRequest::default())
            .unwrap()
            .brokers
            .len(),
        1
    );
    // A wrong password in a bare frame: the connection is closed without an answer.
    let mut c = RawClient::connect(&s.addr("SASL_PLAINTEXT")).unwrap();
    assert_eq!(handshake(&mut c, 0, "PLAIN").0, 0);
    let token = plain(USER, "wrong");
    let mut framed = (token.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&token);
    c.send_raw(&framed).unwrap();
    assert!(c.is_closed_by_peer());
}

#[test]
fn sessions_end_after_connections_max_reauth_ms_unless_renewed() {
    let s = Secured::start("none", |c| c.connections_max_reauth_ms = 1500);
    let addr = s.addr("SASL_PLAINTEXT");
    let mut c = RawClient::connect(&addr).unwrap();
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    let (code, _, lifetime) = authenticate(&mut c, 2, &plain(USER, PASSWORD));
    assert_eq!((code, lifetime), (0, 1500));
    // Re-authentication on the same connection (KIP-368) renews the session.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    assert_eq!(authenticate(&mut c, 2, &plain(USER, PASSWORD)).0, 0);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        c.call(12, &MetadataRequest::default())
            .unwrap()
            .brokers
            .len(),
        1
    );
    // Not renewed: the next request closes the connection.
    std::thread::sleep(Duration::from_millis(1600));
    let framed = c.encode(12, &MetadataRequest::default());
    c.send_raw(&framed).unwrap();
    assert!(c.is_closed_by_peer());
}

/// A blocking TLS connection speaking Kafka frames.
struct TlsClient {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

fn tls_config(
    ca: &Path,
    client: Option<&Path>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)] // the ring provider, as the broker uses
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(pem) => {
            let chain = CertificateDer::pem_file_iter(pem)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(pem).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

impl TlsClient {
    fn connect(addr: &str, config: Arc<rustls::ClientConfig>) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // Drive the handshake to its end (with TLS 1.3 the server's verdict on the client
        // certificate arrives with the first read).
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(Self { tls })
    }

    /// ApiVersions v0 round trip: the broker's API count.
    fn api_versions(&mut self) -> std::io::Result<usize> {
        // size, key 18, version 0, correlation 7, client id "t"
        let body = [0u8, 18, 0, 0, 0, 0, 0, 7, 0, 1, b't'];
        let mut framed = (body.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        self.tls.write_all(&framed)?;
        self.tls.flush()?;
        let mut size = [0u8; 4];
        self.tls.read_exact(&mut size)?;
        let mut payload = vec![0u8; i32::from_be_bytes(size) as usize];
        self.tls.read_exact(&mut payload)?;
        // correlation id, error code, array count
        assert_eq!(&payload[..4], &7i32.to_be_bytes());
        assert_eq!(&payload[4..6], &[0, 0]);
        Ok(i32::from_be_bytes(payload[6..10].try_into().unwrap()) as usize)
    }
}

#[test]
fn tls_1_2_and_1_3_serve_kafka_frames() {
    let s = Secured::start("none", |_| {});
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = tls_config(&s.file("ca.pem"), None, version);
        let mut c = TlsClient::connect(&s.addr("SSL"), config).unwrap();
        assert!(c.api_versions().unwrap() > 30);
    }
    // A client that does not trust the broker's CA fails its handshake.
    let config = tls_config(&s.file("other-ca.pem"), None, &rustls::version::TLS13);
    assert!(TlsClient::connect(&s.addr("SSL"), config).is_err());
}

#[test]
fn mutual_tls_requires_a_certificate_from_the_trusted_ca() {
    let s = Secured::start("required", |_| {});
    let addr = s.addr("SSL");
    let ca = s.file("ca.pem");
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let trusted = tls_config(&ca, Some(&s.file("client.pem")), version);
        let mut c = TlsClient::connect(&addr, trusted).unwrap();
        assert!(c.api_versions().unwrap() > 30);
        for refused in [None, Some(s.file("untrusted-client.pem"))] {
            let config = tls_config(&ca, refused.as_deref(), version);
            let outcome = TlsClient::connect(&addr, config).and_then(|mut c| c.api_versions());
            assert!(outcome.is_err(), "{refused:?} over {version:?} was served");
        }
    }
}

#[test]
fn a_replaced_certificate_is_used_for_new_connections() {
    let s = Secured::start("none", |_| {});
    let addr = s.addr("SSL");
    let mut before = TlsClient::connect(
        &addr,
        tls_config(&s.file("ca.pem"), None, &rustls::version::TLS13),
    )
    .unwrap();
    let renewed = dev_certificates(&["localhost".into()]).unwrap();
    std::fs::write(s.file("new-ca.pem"), &renewed.ca_pem).unwrap();
    let replacement = s.file("server.pem.new");
    std::fs::write(&replacement, &renewed.server_pem).unwrap();
    // A later modification time, whatever the file system's granularity.
    std::fs::File::options()
        .write(true)
        .open(&replacement)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(2))
        .unwrap();
    std::fs::rename(&replacement, s.file("server.pem")).unwrap();
    let trusting_new = tls_config(&s.file("new-ca.pem"), None, &rustls::version::TLS13);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = TlsClient::connect(&addr, trusting_new.clone()) {
            assert!(c.api_versions().unwrap() > 30);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The connection made before the reload goes on.
    assert!(before.api_versions().unwrap() > 30);
}

#[test]
fn librdkafka_produces_and_consumes_in_a_group_over_sasl_ssl_sasl_plaintext_and_mutual_tls() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::Message;

    let s = Secured::start("requested", |_| {});
    let ca = s.file("ca.pem").display().to_string();
    let client = s.file("client.pem").display().to_string();
    let sasl = |listener: &str, protocol: &str, mechanism: &str| {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", s.addr(listener))
            .set("security.protocol", protocol)
            .set("sasl.mechanisms", mechanism)
            .set("sasl.username", USER)
            .set("sasl.password", PASSWORD)
            .set("ssl.ca.location", &ca);
        c
    };
    let mut mutual = ClientConfig::new();
    mutual
        .set("bootstrap.servers", s.addr("SSL"))
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", &ca)
        .set("ssl.certificate.location", &client)
        .set("ssl.key.location", &client);
    let cases = [
        ("plain", sasl("SASL_PLAINTEXT", "SASL_PLAINTEXT", "PLAIN")),
        ("scram-256", sasl("SASL_SSL", "SASL_SSL", "SCRAM-SHA-256")),
        ("scram-512", sasl("SASL_SSL", "SASL_SSL", "SCRAM-SHA-512")),
        ("mtls", mutual),
    ];
    for (name, base) in cases {
        let topic = format!("rdkafka-{name}");
        let producer: ThreadedProducer<DefaultProducerContext> = base
            .clone()
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        for i in 0..10 {
            let payload = format!("v{i}");
            producer
                .send(BaseRecord::to(&topic).key("k").payload(&payload))
                .unwrap();
        }
        producer.flush(Duration::from_secs(20)).unwrap();
        let consumer: BaseConsumer = base
            .clone()
            .set("group.id", format!("group-{name}"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < 10 && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                let m = m.unwrap();
                got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
        }
        assert_eq!(
            got,
            (0..10).map(|i| format!("v{i}")).collect::<Vec<_>>(),
            "{name}"
        );
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        let committed = consumer.committed(Duration::from_secs(10)).unwrap();
        assert_eq!(
            committed.elements()[0].offset(),
            rdkafka::Offset::Offset(10),
            "{name}"
        );
    }
    // A wrong password: nothing is served.
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        sasl("SASL_SSL", "SASL_SSL", "SCRAM-SHA-256")
            .set("sasl.password", "wrong")
            .create()
            .unwrap();
    assert!(admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(5))
        .is_err());
}

#[test]
fn kcat_over_sasl_ssl_with_scram_and_over_mutual_tls() {
    let s = Secured::start("requested", |_| {});
    let ca = s.file("ca.pem").display().to_string();
    let client = s.file("client.pem").display().to_string();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let topic = format!("kcat-{}", mechanism.to_lowercase());
        let sasl = [
            "-X",
            "security.protocol=SASL_SSL",
            "-X",
            &format!("sasl.mechanisms={mechanism}"),
            "-X",
            &format!("sasl.username={USER}"),
            "-X",
            &format!("sasl.password={PASSWORD}"),
            "-X",
            &format!("ssl.ca.location={ca}"),
        ];
        let mut produce = kcat();
        produce
            .args(["-P", "-b", &s.addr("SASL_SSL"), "-t", &topic])
            .args(sasl);
        assert_success(
            &run(produce, Some("one\ntwo\n"), Duration::from_secs(30)),
            "kcat -P",
        );
        let mut consume = kcat();
        consume
            .args([
                "-C",
                "-e",
                "-b",
                &s.addr("SASL_SSL"),
                "-t",
                &topic,
                "-f",
                "%s\n",
            ])
            .args(sasl);
        let out = assert_success(&run(consume, None, Duration::from_secs(30)), "kcat -C");
        assert_eq!(out, "one\ntwo\n");
    }
    let tls = [
        "-X",
        "security.protocol=SSL",
        "-X",
        &format!("ssl.ca.location={ca}"),
        "-X",
        &format!("ssl.certificate.location={client}"),
        "-X",
        &format!("ssl.key.location={client}"),
    ];
    let mut produce = kcat();
    produce
        .args(["-P", "-b", &s.addr("SSL"), "-t", "kcat-mtls"])
        .args(tls);
    assert_success(
        &run(produce, Some("three\n"), Duration::from_secs(30)),
        "kcat -P mTLS",
    );
    let mut consume = kcat();
    consume
        .args([
            "-C",
            "-e",
            "-b",
            &s.addr("SSL"),
            "-t",
            "kcat-mtls",
            "-f",
            "%s\n",
        ])
        .args(tls);
    let out = assert_success(&run(consume, None, Duration::from_secs(30)), "kcat -C mTLS");
    assert_eq!(out, "three\n");
    // A wrong password: kcat fails with librdkafka's authentication error.
    let mut refused = kcat();
    refused.args([
        "-L",
        "-b",
        &s.addr("SASL_SSL"),
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-256",
        "-X",
        &format!("sasl.username={USER}"),
        "-X",
        "sasl.password=wrong",
        "-X",
        &format!("ssl.ca.location={ca}"),
        "-m",
        "5",
    ]);
    let out = run(refused, None, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"),
        "{stderr}"
    );
}

/// Runs a client script with the secured broker's addresses in its environment.
fn secured_script(command: &str, script: &Path, what: &str, passed: &str) {
    let s = Secured::start("requested", |_| {});
    let mut cmd = std::process::Command::new(command);
    cmd.arg(script).arg(s.addr("SASL_SSL"));
    if command == "node" {
        cmd.current_dir(brook_tests::repo_root().join("tests/node"));
    }
    s.env(&mut cmd);
    let out = run(cmd, None, Duration::from_secs(110));
    let stdout = assert_success(&out, what);
    println!("{stdout}");
    assert!(stdout.contains(passed), "{stdout}");
}

#[test]
fn confluent_kafka_over_sasl_ssl_sasl_plaintext_and_mutual_tls() {
    let python = brook_tests::python();
    brook_tests::require_tool(&python, "the test venv's python");
    secured_script(
        python.to_str().unwrap(),
        &brook_tests::repo_root().join("tests/python/confluent_kafka_security.py"),
        "confluent-kafka security",
        "security: passed",
    );
}

#[test]
fn kafka_python_over_sasl_ssl_sasl_plaintext_and_mutual_tls() {
    let python = brook_tests::python();
    brook_tests::require_tool(&python, "the test venv's python");
    secured_script(
        python.to_str().unwrap(),
        &brook_tests::repo_root().join("tests/python/kafka_python_security.py"),
        "kafka-python security",
        "security: passed",
    );
}

#[test]
fn kafkajs_over_sasl_ssl_sasl_plaintext_and_mutual_tls() {
    let node_dir = brook_tests::repo_root().join("tests/node");
    brook_tests::require_tool(
        &node_dir.join("node_modules/kafkajs"),
        "kafkajs (npm ci in tests/node)",
    );
    secured_script(
        "node",
        &node_dir.join("kafkajs_security.js"),
        "kafkajs security",
        "security: passed",
    );
}

/// One HTTPS request to `addr`, trusting `ca`, with basic credentials if given.
fn https(
    addr: &str,
    ca: &Path,
    method: &str,
    path: &str,
    user: Option<(&str, &str)>,
    body: Option<&str>,
) -> (u16, String) {
    use base64::Engine as _;
    let config = tls_config(ca, None, &rustls::version::TLS13);
    let mut c = TlsClient::connect(addr, config).unwrap();
    let auth = user.map(|(u, p)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    });
    let mut headers = vec![("Content-Type", "application/vnd.schemaregistry.v1+json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    brook_tests::http_exchange(&mut c.tls, addr, method, path, &headers, body)
}

/// CreateAcls: ALLOW User:bob READ on topic "orders".
fn bob_reads_orders() -> brook_protocol::kafka_protocol::messages::CreateAclsRequest {
    use brook_protocol::kafka_protocol::messages::create_acls_request::AclCreation;
    brook_protocol::kafka_protocol::messages::CreateAclsRequest::default().with_creations(vec![
        AclCreation::default()
            .with_resource_type(2) // TOPIC
            .with_resource_name(StrBytes::from_static_str("orders"))
            .with_resource_pattern_type(3) // LITERAL
            .with_principal(StrBytes::from_static_str("User:bob"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(3) // READ
            .with_permission_type(3), // ALLOW
    ])
}

#[test]
fn the_http_listener_takes_tls_basic_auth_and_the_same_acls() {
    let s = Secured::start("none", |c| {
        c.brook_http_tls = true;
        c.brook_http_authentication = "basic".into();
        c.authorizer_class_name = Some("on".into());
        c.super_users = Some(format!("User:{USER}"));
        brook_broker::auth::users::create_user(
            &c.data_dir,
            "bob",
            "bob-secret",
            &[Mechanism::Sha256],
            4096,
        )
        .unwrap();
    });
    let http = s.broker.http_addr().unwrap().to_string();
    let ca = s.file("ca.pem");
    // Plain HTTP to the HTTPS listener gets no HTTP answer.
    let (status, _) = brook_tests::http(&http, "GET", "/subjects", None);
    assert_eq!(status, 0);
    // Health probes are open; everything else needs a user.
    assert_eq!(https(&http, &ca, "GET", "/health/ready", None, None).0, 200);
    let (status, body) = https(&http, &ca, "GET", "/subjects", None, None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("40101"), "{body}");
    let wrong = Some((USER, "wrong"));
    assert_eq!(https(&http, &ca, "GET", "/subjects", wrong, None).0, 401);
    let alice = Some((USER, PASSWORD));
    let bob = Some(("bob", "bob-secret"));
    assert_eq!(https(&http, &ca, "GET", "/subjects", alice, None).0, 200);
    // The super user registers a schema; bob may neither read nor write the subject's topic.
    let schema = r#"{"schema": "{\"type\": \"string\"}"}"#;
    let path = "/subjects/orders-value/versions";
    let (status, body) = https(&http, &ca, "POST", path, alice, Some(schema));
    assert_eq!(status, 200, "{body}");
    let (status, body) = https(&http, &ca, "GET", path, bob, None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("40301"), "{body}");
    assert_eq!(https(&http, &ca, "GET", "/metrics", bob, None).0, 403);
    assert_eq!(https(&http, &ca, "GET", "/metrics", alice, None).0, 200);
    // READ on topic "orders" lets bob read the subject, not register.
    let mut admin = RawClient::connect(&s.addr("PLAINTEXT")).unwrap();
    let created = admin.call(3, &bob_reads_orders()).unwrap();
    // The PLAINTEXT listener's ANONYMOUS user is not allowed to create ACLs.
    assert_eq!(
        created.results[0].error_code,
        ErrorCode::ClusterAuthorizationFailed.code()
    );
    let mut alice_conn = RawClient::connect(&s.addr("SASL_PLAINTEXT")).unwrap();
    assert_eq!(handshake(&mut alice_conn, 1, "PLAIN").0, 0);
    assert_eq!(
        authenticate(&mut alice_conn, 2, &plain(USER, PASSWORD)).0,
        0
    );
    let created = alice_conn.call(3, &bob_reads_orders()).unwrap();
    assert_eq!(created.results[0].error_code, 0);
    let (status, body) = https(&http, &ca, "GET", path, bob, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(https(&http, &ca, "POST", path, bob, Some(schema)).0, 403);
}

/// A JWT signed with `key` (ES256), claims as given.
fn es256_token(key: &ring::signature::EcdsaKeyPair, kid: &str, claims: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!(
        "{}.{}",
        b64.encode(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#)),
        b64.encode(claims)
    );
    let sig = key
        .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", b64.encode(sig.as_ref()))
}

fn es256_key() -> ring::signature::EcdsaKeyPair {
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

fn oauth_login(addr: &str, token: &str) -> (RawClient, i16, Option<String>, i64) {
    let mut c = RawClient::connect(addr).unwrap();
    assert_eq!(handshake(&mut c, 1, "OAUTHBEARER").0, 0);
    let message = format!("n,,\x01auth=Bearer {token}\x01\x01");
    let (code, message, lifetime) = authenticate(&mut c, 2, message.as_bytes());
    (c, code, message, lifetime)
}

#[test]
fn oauthbearer_tokens_signed_by_a_jwks_key_authenticate_others_do_not() {
    use base64::Engine as _;
    use ring::signature::KeyPair;
    let key = es256_key();
    let public = key.public_key().as_ref();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","use":"sig","kid":"k1","x":"{}","y":"{}"}}]}}"#,
            b64.encode(&public[1..33]),
            b64.encode(&public[33..65])
        ),
    )
    .unwrap();
    let s = Secured::start("none", |c| {
        c.sasl_enabled_mechanisms = "OAUTHBEARER".into();
        c.sasl_oauthbearer_jwks_endpoint_url = Some(format!("file://{}", jwks.display()));
        c.sasl_oauthbearer_expected_issuer = Some("https://idp.example".into());
        c.connections_max_reauth_ms = 3_600_000;
    });
    let addr = s.addr("SASL_PLAINTEXT");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |sub: &str, exp: u64| {
        format!(r#"{{"sub":"{sub}","iss":"https://idp.example","iat":{now},"exp":{exp}}}"#)
    };
    // A valid token: served, and the session ends with the token (10 min), not the hour.
    let (mut c, code, message, lifetime) = oauth_login(
        &addr,
        &es256_token(&key, "k1", &claims("svc-orders", now + 600)),
    );
    assert_eq!((code, message), (0, None));
    assert!((590_000..=600_000).contains(&lifetime), "{lifetime}");
    assert_eq!(
        c.call(12, &MetadataRequest::default())
            .unwrap()
            .brokers
            .len(),
        1
    );
    // Expired, signed by another key, unsecured, or from another issuer: refused.
    let other = es256_key();
    let unsecured = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none"}"#),
        b64.encode(claims("svc-orders", now + 600))
    );
    let wrong_issuer = es256_token(
        &key,
        "k1",
        &format!(
            r#"{{"sub":"x","iss":"https://evil.example","exp":{}}}"#,
            now + 600
        ),
    );
    for (token, why) in [
        (
            es256_token(&key, "k1", &claims("svc-orders", now - 120)),
            "expired",
        ),
        (
            es256_token(&other, "k1", &claims("svc-orders", now + 600)),
            "signature",
        ),
        (unsecured, "signature"),
        (wrong_issuer, "issuer"),
    ] {
        let (mut c, code, message, _) = oauth_login(&addr, &token);
        assert_eq!(code, ErrorCode::SaslAuthenticationFailed.code(), "{why}");
        let message = message.unwrap_or_default();
        assert!(message.contains(why), "{why}: {message}");
        assert!(c.is_closed_by_peer());
    }
}

#[test]
fn confluent_kafka_authenticates_with_an_unsecured_oauthbearer_token() {
    let python = brook_tests::python();
    brook_tests::require_tool(&python, "the test venv's python");
    let s = Secured::start("none", |c| {
        c.sasl_enabled_mechanisms = "OAUTHBEARER".into();
    });
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(brook_tests::repo_root().join("tests/python/confluent_kafka_oauthbearer.py"))
        .arg(s.addr("SASL_PLAINTEXT"))
        .env("BROOK_TEST_TIMEOUT_S", "60");
    let out = run(cmd, None, Duration::from_secs(80));
    let stdout = assert_success(&out, "confluent-kafka oauthbearer");
    assert!(stdout.contains("oauthbearer: passed"), "{stdout}");
}

#[test]
fn a_client_certificate_subject_is_the_principal_acls_name() {
    let s = Secured::start("required", |c| {
        c.ssl_principal_mapping_rules = "RULE:^CN=([^,]*)$/$1/L,DEFAULT".into();
        c.authorizer_class_name = Some("on".into());
        c.super_users = Some(format!("User:{USER}"));
    });
    // The super user (over SASL) makes two topics and lets app-1 (the client certificate's
    // CN, mapped by the rule) write to one of them.
    let mut admin = RawClient::connect(&s.addr("SASL_PLAINTEXT")).unwrap();
    assert_eq!(handshake(&mut admin, 1, "PLAIN").0, 0);
    assert_eq!(authenticate(&mut admin, 2, &plain(USER, PASSWORD)).0, 0);
    for topic in ["mtls-ok", "mtls-denied"] {
        assert_eq!(crate::wire::create(&mut admin, topic, 1, &[]), 0);
    }
    let grant = brook_protocol::kafka_protocol::messages::CreateAclsRequest::default()
        .with_creations(vec![
            brook_protocol::kafka_protocol::messages::create_acls_request::AclCreation::default()
                .with_resource_type(2) // TOPIC
                .with_resource_name(StrBytes::from_static_str("mtls-ok"))
                .with_resource_pattern_type(3) // LITERAL
                .with_principal(StrBytes::from_static_str("User:app-1"))
                .with_host(StrBytes::from_static_str("*"))
                .with_operation(4) // WRITE
                .with_permission_type(3), // ALLOW
        ]);
    assert_eq!(admin.call(3, &grant).unwrap().results[0].error_code, 0);
    let ca = s.file("ca.pem").display().to_string();
    let client = s.file("client.pem").display().to_string();
    let produce = |topic: &str| {
        let mut cmd = kcat();
        cmd.args(["-P", "-b", &s.addr("SSL"), "-t", topic])
            .args(["-X", "security.protocol=SSL"])
            .args(["-X", &format!("ssl.ca.location={ca}")])
            .args(["-X", &format!("ssl.certificate.location={client}")])
            .args(["-X", &format!("ssl.key.location={client}")]);
        run(cmd, Some("hello\n"), Duration::from_secs(30))
    };
    let allowed = produce("mtls-ok");
    assert_success(&allowed, "kcat -P as app-1");
    let denied = produce("mtls-denied");
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("Topic authorization failed"),
        "app-1 wrote to a topic it has no ACL for: {stderr}"
    );
    let (_, high, _) = crate::wire::fetch(&mut admin, "mtls-ok", 0, 0, 0);
    assert_eq!(high, 1);
    let (_, high, _) = crate::wire::fetch(&mut admin, "mtls-denied", 0, 0, 0);
    assert_eq!(high, 0);
}

/// `listener.name.<listener>.*`: each listener with its own certificate, client
/// authentication and SASL mechanisms; listeners without such settings keep the broker-wide
/// ones; settings for a listener that does not exist stop the start.
#[test]
fn listeners_take_their_own_tls_and_sasl_settings() {
    let other = tempfile::tempdir().unwrap();
    let certs = dev_certificates(&["localhost".into(), "127.0.0.1".into()]).unwrap();
    let external_pem = other.path().join("external.pem");
    std::fs::write(&external_pem, &certs.server_pem).unwrap();
    std::fs::write(other.path().join("external-ca.pem"), &certs.ca_pem).unwrap();
    let listeners = |c: &mut BrokerConfig| {
        c.listeners = Some(
            "SSL://127.0.0.1:0,EXTERNAL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,LOCAL://127.0.0.1:0"
                .into(),
        );
        c.listener_security_protocol_map =
            Some("SSL:SSL,EXTERNAL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,LOCAL:SASL_PLAINTEXT".into());
    };
    let s = Secured::start("required", |c| {
        listeners(c);
        let mut own = |k: &str, v: &str| c.listener_overrides.insert(k.into(), v.into());
        own(
            "listener.name.external.ssl.keystore.location",
            external_pem.to_str().unwrap(),
        );
        own("listener.name.external.ssl.client.auth", "none");
        own(
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms",
            "SCRAM-SHA-512",
        );
    });
    let version = &rustls::version::TLS13;
    // SSL: the broker-wide certificate, and a client certificate is required.
    let ca = s.file("ca.pem");
    let with_cert = tls_config(&ca, Some(&s.file("client.pem")), version);
    assert!(
        TlsClient::connect(&s.addr("SSL"), with_cert)
            .unwrap()
            .api_versions()
            .unwrap()
            > 30
    );
    let without = tls_config(&ca, None, version);
    let refused = TlsClient::connect(&s.addr("SSL"), without).and_then(|mut c| c.api_versions());
    assert!(
        refused.is_err(),
        "SSL served a client without a certificate"
    );
    // EXTERNAL: its own certificate (another CA), no client certificate needed.
    let external_ca = other.path().join("external-ca.pem");
    let config = tls_config(&external_ca, None, version);
    assert!(
        TlsClient::connect(&s.addr("EXTERNAL"), config)
            .unwrap()
            .api_versions()
            .unwrap()
            > 30
    );
    let config = tls_config(&ca, None, version);
    assert!(
        TlsClient::connect(&s.addr("EXTERNAL"), config).is_err(),
        "EXTERNAL served the broker-wide certificate"
    );
    // SASL_PLAINTEXT offers its own mechanisms; LOCAL, the broker-wide ones.
    let mut c = RawClient::connect(&s.addr("SASL_PLAINTEXT")).unwrap();
    assert_eq!(
        handshake(&mut c, 1, "PLAIN"),
        (
            ErrorCode::UnsupportedSaslMechanism.code(),
            vec!["SCRAM-SHA-512".to_string()]
        )
    );
    let mut c = RawClient::connect(&s.addr("LOCAL")).unwrap();
    assert_eq!(handshake(&mut c, 1, "PLAIN").0, 0);
    assert_eq!(
        authenticate(&mut c, 2, &plain(USER, PASSWORD)).0,
        0,
        "PLAIN on the listener without settings of its own"
    );

    // Settings for a listener `listeners` does not name are an error at start.
    let data = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::with_data_dir(data.path());
    listeners(&mut config);
    config.ssl_keystore_location = Some(s.file("server.pem"));
    config.listener_overrides.insert(
        "listener.name.extrenal.ssl.client.auth".into(),
        "none".into(),
    );
    let error = EmbeddedBroker::start(config)
        .err()
        .expect("the start must fail")
        .to_string();
    assert!(error.contains("EXTRENAL"), "{error}");
}

/// The public half of `key` as a JWK with key id `kid`.
fn es256_jwk(key: &ring::signature::EcdsaKeyPair, kid: &str) -> String {
    use base64::Engine as _;
    use ring::signature::KeyPair;
    let public = key.public_key().as_ref();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        r#"{{"kty":"EC","crv":"P-256","use":"sig","kid":"{kid}","x":"{}","y":"{}"}}"#,
        b64.encode(&public[1..33]),
        b64.encode(&public[33..65])
    )
}

/// An https server on loopback answering every request with the JWKS in `jwks` (one
/// request per connection); counts the requests.
fn jwks_server(
    server_pem: &[u8],
    jwks: Arc<std::sync::Mutex<String>>,
    served: Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    let chain = CertificateDer::pem_slice_iter(server_pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(server_pem).unwrap();
    #[allow(deprecated)] // the ring provider, as the broker uses
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            if !request.starts_with(b"GET /jwks ") {
                continue;
            }
            served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = jwks.lock().unwrap().clone();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes());
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.conn.complete_io(&mut tls.sock);
        }
    });
    addr
}

/// `sasl.oauthbearer.jwks.endpoint.url` over https: the keys are fetched in the background,
/// and when the identity provider rotates them, a token signed by the new key makes the
/// broker fetch the set again at once; the retired key no longer authenticates.
#[test]
fn oauthbearer_keys_come_from_an_https_jwks_endpoint_and_follow_a_rotation() {
    let (old_key, new_key) = (es256_key(), es256_key());
    let tls_dir = tempfile::tempdir().unwrap();
    let certs = dev_certificates(&["localhost".into(), "127.0.0.1".into()]).unwrap();
    let ca = tls_dir.path().join("idp-ca.pem");
    std::fs::write(&ca, &certs.ca_pem).unwrap();
    let jwks = Arc::new(std::sync::Mutex::new(format!(
        r#"{{"keys":[{}]}}"#,
        es256_jwk(&old_key, "k1")
    )));
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let idp = jwks_server(
        certs.server_pem.as_bytes(),
        Arc::clone(&jwks),
        Arc::clone(&served),
    );
    let s = Secured::start("none", |c| {
        c.sasl_enabled_mechanisms = "OAUTHBEARER".into();
        c.sasl_oauthbearer_jwks_endpoint_url = Some(format!("https://{idp}/jwks"));
        c.brook_oauthbearer_jwks_ca_location = Some(ca.clone());
        c.sasl_oauthbearer_jwks_endpoint_retry_backoff_max_ms = 200;
    });
    let addr = s.addr("SASL_PLAINTEXT");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = format!(r#"{{"sub":"svc-orders","exp":{}}}"#, now + 600);
    let logs_in = |token: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, code, message, _) = oauth_login(&addr, token);
            if code == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "refused: {message:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    logs_in(&es256_token(&old_key, "k1", &claims));
    assert!(served.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // The provider rotates to k2: a k2 token is refused until the set is fetched again.
    *jwks.lock().unwrap() = format!(r#"{{"keys":[{}]}}"#, es256_jwk(&new_key, "k2"));
    logs_in(&es256_token(&new_key, "k2", &claims));
    let (_, code, message, _) = oauth_login(&addr, &es256_token(&old_key, "k1", &claims));
    assert_eq!(
        code,
        ErrorCode::SaslAuthenticationFailed.code(),
        "{message:?}"
    );
    // Fetched at start and after the rotation, not once per refused token.
    let fetches = served.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..20).contains(&fetches), "{fetches} fetches");
}
