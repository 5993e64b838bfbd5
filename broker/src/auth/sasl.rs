//! SASL on one connection: which requests are served before authentication, the handshake,
//! the mechanism's rounds (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), the session's lifetime and
//! re-authentication (KIP-368).
//!
//! A [`Session`] belongs to one connection and changes only as that connection's requests are
//! handled, one at a time. It is a state machine over the client's messages and the time,
//! with no I/O: the connection and the SaslHandshake / SaslAuthenticate handlers drive it and
//! close the connection when it says so ([`Session::must_close`]).
//!
//! Before a SASL listener's client has authenticated, only ApiVersions, SaslHandshake and
//! SaslAuthenticate are served (anything else closes the connection, as Kafka does), and its
//! frames are capped at `sasl.server.max.receive.size`. A handshake of version 0 means the
//! mechanism's messages follow as bare frames without a Kafka header (Kafka's pre-KIP-152
//! form); version 1 means they come in SaslAuthenticate requests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_protocol::kafka_protocol::messages::ApiKey;
use brook_protocol::ErrorCode;

use super::credentials::CredentialStore;
use super::principal::Principal;
use super::scram::{Mechanism, ServerExchange};

/// A SASL mechanism Brook serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SaslMechanism {
    Plain,
    Scram(Mechanism),
    OAuthBearer,
}

impl SaslMechanism {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.name(),
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            "OAUTHBEARER" => Some(Self::OAuthBearer),
            other => Mechanism::from_name(other).map(Self::Scram),
        }
    }
}

/// `sasl.enabled.mechanisms`, parsed.
pub(crate) fn enabled_mechanisms(list: &str) -> Result<Vec<SaslMechanism>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let mechanism = SaslMechanism::from_name(name).ok_or_else(|| {
            format!(
                "{name:?} is not a mechanism Brook serves (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"
            )
        })?;
        if !out.contains(&mechanism) {
            out.push(mechanism);
        }
    }
    if out.is_empty() {
        return Err("names no mechanism".into());
    }
    Ok(out)
}

/// A refused handshake or authentication: the error for the response; the connection is
/// closed once it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SaslAuthenticationFailed, message)
    }

    /// Whether the refusal is a failed authentication (answered after
    /// `connection.failed.authentication.delay.ms`).
    pub(crate) fn is_failed_authentication(&self) -> bool {
        self.code == ErrorCode::SaslAuthenticationFailed
    }
}

/// One round's answer to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Round {
    /// The mechanism's reply (empty when it has none).
    pub(crate) reply: Vec<u8>,
    /// Once authenticated: the session's lifetime in ms when `connections.max.reauth.ms`
    /// limits it (KIP-368), else 0.
    pub(crate) session_lifetime_ms: i64,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for a SaslHandshake (first authentication or a re-authentication).
    Handshake,
    /// The mechanism is chosen; its first message comes next.
    Chosen { mechanism: SaslMechanism, raw: bool },
    /// SCRAM: the server's first message was sent; the client's final one comes next.
    ScramFinal {
        exchange: Box<ServerExchange>,
        raw: bool,
    },
}

#[derive(Debug)]
struct Authenticated {
    mechanism: SaslMechanism,
    expires: Option<Instant>,
}

/// What a SASL listener's connection has done so far (see the module docs).
#[derive(Debug)]
pub(crate) struct SaslSession {
    enabled: Vec<SaslMechanism>,
    phase: Phase,
    authenticated: Option<Authenticated>,
    /// Shared with the connection's reader: frames are capped until this is set.
    authenticated_flag: Arc<AtomicBool>,
    reauth_ms: i64,
    /// How OAUTHBEARER tokens are checked (when that mechanism is enabled).
    oauth: Option<Arc<super::oauth::Validator>>,
}

/// A connection's identity and, on SASL listeners, its SASL state.
#[derive(Debug)]
pub(crate) struct Session {
    principal: Principal,
    sasl: Option<SaslSession>,
    close: bool,
}

impl Session {
    /// A connection that does not authenticate through SASL: `principal` is ANONYMOUS, or the
    /// subject of its TLS client certificate.
    pub(crate) fn without_sasl(principal: Principal) -> Self {
        Self {
            principal,
            sasl: None,
            close: false,
        }
    }

    /// A connection of a SASL listener, before authentication. `reauth_ms` is
    /// `connections.max.reauth.ms`; `oauth` checks OAUTHBEARER tokens.
    pub(crate) fn with_sasl(
        enabled: Vec<SaslMechanism>,
        reauth_ms: i64,
        oauth: Option<Arc<super::oauth::Validator>>,
    ) -> Self {
        Self {
            principal: Principal::anonymous(),
            sasl: Some(SaslSession {
                enabled,
                phase: Phase::Handshake,
                authenticated: None,
                authenticated_flag: Arc::new(AtomicBool::new(false)),
                reauth_ms,
                oauth,
            }),
            close: false,
        }
    }

    pub(crate) fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Set once the client has authenticated (always set without SASL): the reader lifts its
    /// small frame cap then.
    pub(crate) fn authenticated_flag(&self) -> Arc<AtomicBool> {
        match &self.sasl {
            Some(s) => s.authenticated_flag.clone(),
            None => Arc::new(AtomicBool::new(true)),
        }
    }

    /// Whether the connection must be closed once the current response is sent.
    pub(crate) fn must_close(&self) -> bool {
        self.close
    }

    /// Whether the next frame is a bare mechanism message (after a version 0 handshake).
    pub(crate) fn expects_raw_token(&self) -> bool {
        matches!(
            self.sasl.as_ref().map(|s| &s.phase),
            Some(Phase::Chosen { raw: true, .. } | Phase::ScramFinal { raw: true, .. })
        )
    }

    /// Whether a request for `key` may be served now; `Err` says why the connection is
    /// closed instead.
    pub(crate) fn admits(&self, key: ApiKey, now: Instant) -> Result<(), String> {
        let Some(sasl) = &self.sasl else {
            return Ok(());
        };
        if matches!(
            key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) {
            return Ok(());
        }
        match &sasl.authenticated {
            None => Err(format!(
                "unexpected {key:?} request before SASL authentication"
            )),
            Some(a) if a.expires.is_some_and(|e| now >= e) => Err(format!(
                "the SASL session of {} expired (connections.max.reauth.ms) without re-authentication",
                self.principal
            )),
            Some(_) => Ok(()),
        }
    }

    /// A SaslHandshake of `version` asking for `mechanism`: the enabled mechanisms, or a
    /// refusal (and the connection closes).
    pub(crate) fn handshake(
        &mut self,
        version: i16,
        mechanism: &str,
    ) -> Result<Vec<&'static str>, (Refusal, Vec<&'static str>)> {
        let Some(sasl) = &mut self.sasl else {
            self.close = true;
            return Err((
                Refusal::new(
                    ErrorCode::IllegalSaslState,
                    "this listener does not use SASL",
                ),
                Vec::new(),
            ));
        };
        let names: Vec<&'static str> = sasl.enabled.iter().map(|m| m.name()).collect();
        let refuse = |code, message: String| (Refusal::new(code, message), names.clone());
        let outcome = if !matches!(sasl.phase, Phase::Handshake) {
            Err(refuse(
                ErrorCode::IllegalSaslState,
                "a SASL handshake is already in progress".into(),
            ))
        } else if sasl.authenticated.is_some() && version < 1 {
            Err(refuse(
                ErrorCode::IllegalSaslState,
                "re-authentication needs SaslHandshake version 1 or later".into(),
            ))
        } else {
            match SaslMechanism::from_name(mechanism).filter(|m| sasl.enabled.contains(m)) {
                None => Err(refuse(
                    ErrorCode::UnsupportedSaslMechanism,
                    format!("unsupported SASL mechanism {mechanism}"),
                )),
                Some(m)
                    if sasl
                        .authenticated
                        .as_ref()
                        .is_some_and(|a| a.mechanism != m) =>
                {
                    Err(refuse(
                        ErrorCode::SaslAuthenticationFailed,
                        "the SASL mechanism cannot change on re-authentication".into(),
                    ))
                }
                Some(m) => {
                    sasl.phase = Phase::Chosen {
                        mechanism: m,
                        raw: version == 0,
                    };
                    Ok(names.clone())
                }
            }
        };
        if outcome.is_err() {
            self.close = true;
        }
        outcome
    }

    /// One of the mechanism's messages, from a SaslAuthenticate request (`raw` false) or a
    /// bare frame after a version 0 handshake (`raw` true). `nonce` is fresh randomness for
    /// SCRAM's server nonce.
    pub(crate) fn authenticate(
        &mut self,
        message: &[u8],
        raw: bool,
        credentials: &CredentialStore,
        nonce: &str,
        now: Instant,
    ) -> Result<Round, Refusal> {
        let outcome = self.step(message, raw, credentials, nonce, now);
        if outcome.is_err() {
            self.close = true;
            if let Some(sasl) = &mut self.sasl {
                sasl.phase = Phase::Handshake;
            }
        }
        outcome
    }

    fn step(
        &mut self,
        message: &[u8],
        raw: bool,
        credentials: &CredentialStore,
        nonce: &str,
        now: Instant,
    ) -> Result<Round, Refusal> {
        let Some(sasl) = &mut self.sasl else {
            return Err(Refusal::new(
                ErrorCode::IllegalSaslState,
                "this listener does not use SASL",
            ));
        };
        let illegal = |what: &str| {
            Refusal::new(
                ErrorCode::IllegalSaslState,
                format!("unexpected {what} during the SASL exchange"),
            )
        };
        match std::mem::replace(&mut sasl.phase, Phase::Handshake) {
            Phase::Handshake => {
                if sasl.authenticated.is_some() {
                    Err(illegal("SaslAuthenticate after authentication"))
                } else {
                    Err(illegal("SaslAuthenticate before SaslHandshake"))
                }
            }
            Phase::Chosen { raw: r, .. } | Phase::ScramFinal { raw: r, .. } if r != raw => {
                Err(illegal(if raw {
                    "bare SASL message after a version 1 handshake"
                } else {
                    "SaslAuthenticate after a version 0 handshake"
                }))
            }
            Phase::Chosen {
                mechanism: SaslMechanism::Plain,
                ..
            } => {
                let user = check_plain(message, credentials)?;
                let lifetime =
                    sasl.finish(SaslMechanism::Plain, &self.principal, &user, now, None)?;
                self.principal = Principal::user(&user);
                Ok(Round {
                    reply: Vec::new(),
                    session_lifetime_ms: lifetime,
                })
            }
            Phase::Chosen {
                mechanism: SaslMechanism::OAuthBearer,
                ..
            } => {
                let validator = sasl
                    .oauth
                    .clone()
                    .ok_or_else(|| Refusal::failed("OAUTHBEARER is not configured"))?;
                let (authzid, token) = super::oauth::client_token(message)
                    .map_err(|e| Refusal::failed(format!("Invalid OAUTHBEARER message: {e}")))?;
                let accepted = validator
                    .validate(&token, crate::handlers::now_ms())
                    .map_err(|e| Refusal::failed(format!("Authentication failed: {e}")))?;
                if authzid.is_some_and(|a| a != accepted.principal) {
                    return Err(Refusal::failed(
                        "Authentication failed: the authorization id is not the token's principal",
                    ));
                }
                let user = accepted.principal;
                let lifetime = sasl.finish(
                    SaslMechanism::OAuthBearer,
                    &self.principal,
                    &user,
                    now,
                    Some(accepted.lifetime_ms),
                )?;
                self.principal = Principal::user(&user);
                Ok(Round {
                    reply: Vec::new(),
                    session_lifetime_ms: lifetime,
                })
            }
            Phase::Chosen {
                mechanism: SaslMechanism::Scram(m),
                raw,
            } => {
                let (exchange, server_first) = ServerExchange::start(
                    m,
                    message,
                    nonce,
                    |user| credentials.get(user, m),
                    credentials.decoy_secret(),
                )
                .map_err(|e| Refusal::failed(format!("Authentication failed: {e}")))?;
                sasl.phase = Phase::ScramFinal {
                    exchange: Box::new(exchange),
                    raw,
                };
                Ok(Round {
                    reply: server_first.into_bytes(),
                    session_lifetime_ms: 0,
                })
            }
            Phase::ScramFinal { exchange, .. } => {
                let user = exchange.username().to_string();
                let mechanism = SaslMechanism::Scram(exchange.mechanism());
                let server_final = exchange.finish(message).map_err(|e| match e {
                    super::scram::ScramError::InvalidCredentials(_) => {
                        Refusal::failed(e.to_string())
                    }
                    other => Refusal::failed(format!("Authentication failed: {other}")),
                })?;
                let lifetime = sasl.finish(mechanism, &self.principal, &user, now, None)?;
                self.principal = Principal::user(&user);
                Ok(Round {
                    reply: server_final.into_bytes(),
                    session_lifetime_ms: lifetime,
                })
            }
        }
    }
}

impl SaslSession {
    /// Records a successful authentication of `user`; the session's lifetime in ms (0: no
    /// limit). With re-authentication on, a session ends with its credential (a token's
    /// `credential_ms`) if that comes first (KIP-368). A re-authentication must be of the
    /// same user.
    fn finish(
        &mut self,
        mechanism: SaslMechanism,
        current: &Principal,
        user: &str,
        now: Instant,
        credential_ms: Option<i64>,
    ) -> Result<i64, Refusal> {
        if self.authenticated.is_some() && *current != Principal::user(user) {
            return Err(Refusal::failed(format!(
                "Cannot change principals during re-authentication from {current}: User:{user}"
            )));
        }
        let lifetime = match credential_ms {
            Some(credential) if self.reauth_ms > 0 => self.reauth_ms.min(credential.max(1)),
            _ => self.reauth_ms.max(0),
        };
        self.authenticated = Some(Authenticated {
            mechanism,
            expires: (lifetime > 0)
                .then(|| now + Duration::from_millis(u64::try_from(lifetime).unwrap_or(0))),
        });
        self.authenticated_flag.store(true, Ordering::Release);
        Ok(lifetime)
    }
}

/// Checks a SASL/PLAIN message (`authzid NUL user NUL password`, RFC 4616); the user.
fn check_plain(message: &[u8], credentials: &CredentialStore) -> Result<String, Refusal> {
    let text = std::str::from_utf8(message)
        .map_err(|_| Refusal::failed("Invalid SASL/PLAIN response: not UTF-8"))?;
    let tokens: Vec<&str> = text.split('\0').collect();
    let [authzid, user, password] = tokens[..] else {
        return Err(Refusal::failed(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            tokens.len()
        )));
    };
    if user.is_empty() {
        return Err(Refusal::failed(
            "Authentication failed: username not specified",
        ));
    }
    if password.is_empty() {
        return Err(Refusal::failed(
            "Authentication failed: password not specified",
        ));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(Refusal::failed(
            "Authentication failed: Client requested an authorization id that is different from username",
        ));
    }
    if !credentials.check_password(user, password) {
        return Err(Refusal::failed(
            "Authentication failed: Invalid username or password",
        ));
    }
    Ok(user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::credentials::Alteration;
    use crate::auth::scram::ScramCredential;

    fn store(dir: &std::path::Path) -> CredentialStore {
        let store = CredentialStore::open(
            dir,
            crate::files::Files::new(Arc::new(brook_storage::OsFileSystem)),
        )
        .unwrap();
        for (mechanism, id) in [(Mechanism::Sha256, 1), (Mechanism::Sha512, 2)] {
            let salt = b"0123456789abcdef".to_vec();
            let c = ScramCredential::new(mechanism, "alice-secret", &salt, 4096).unwrap();
            let salted = salted(mechanism, "alice-secret", &salt);
            assert_eq!(
                ScramCredential::from_salted_password(mechanism, &salted, &salt, 4096),
                c
            );
            let results = store
                .alter(&[Alteration::Upsert {
                    user: "alice".into(),
                    mechanism: id,
                    iterations: 4096,
                    salt,
                    salted_password: salted,
                }])
                .unwrap();
            assert!(results.iter().all(|(_, r)| r.is_none()), "{results:?}");
        }
        store
    }

    fn salted(mechanism: Mechanism, password: &str, salt: &[u8]) -> Vec<u8> {
        match mechanism {
            Mechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password.as_bytes(), salt, 4096)
                    .to_vec()
            }
            _ => pbkdf2::pbkdf2_hmac_array::<sha2::Sha512, 64>(password.as_bytes(), salt, 4096)
                .to_vec(),
        }
    }

    fn sasl_session(reauth_ms: i64) -> Session {
        Session::with_sasl(
            enabled_mechanisms("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER").unwrap(),
            reauth_ms,
            Some(Arc::new(
                crate::auth::oauth::Validator::from_config(&crate::config::BrokerConfig::default())
                    .unwrap(),
            )),
        )
    }

    #[test]
    fn only_the_sasl_apis_are_served_before_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = store(dir.path());
        let now = Instant::now();
        let mut s = sasl_session(0);
        assert!(s.admits(ApiKey::ApiVersions, now).is_ok());
        assert!(s.admits(ApiKey::SaslHandshake, now).is_ok());
        assert!(s.admits(ApiKey::Metadata, now).is_err());
        assert!(!s.authenticated_flag().load(Ordering::Acquire));
        s.handshake(1, "PLAIN").unwrap();
        let round = s
            .authenticate(b"\0alice\0alice-secret", false, &credentials, "n", now)
            .unwrap();
        assert_eq!(round.session_lifetime_ms, 0);
        assert_eq!(s.principal(), &Principal::user("alice"));
        assert!(s.admits(ApiKey::Metadata, now).is_ok());
        assert!(s.authenticated_flag().load(Ordering::Acquire));
        assert!(!s.must_close());
        // Without SASL everything is served.
        let plain = Session::without_sasl(Principal::anonymous());
        assert!(plain.admits(ApiKey::Produce, now).is_ok());
    }

    #[test]
    fn plain_failures_are_refused_and_close() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = store(dir.path());
        let now = Instant::now();
        for (message, expected) in [
            (&b"\0alice\0wrong"[..], "Invalid username or password"),
            (b"\0bob\0alice-secret", "Invalid username or password"),
            (b"\0alice", "expected 3 tokens, got 2"),
            (b"mallory\0alice\0alice-secret", "authorization id"),
            (b"\0\0x", "username not specified"),
        ] {
            let mut s = sasl_session(0);
            s.handshake(1, "PLAIN").unwrap();
            let refusal = s
                .authenticate(message, false, &credentials, "n", now)
                .unwrap_err();
            assert_eq!(refusal.code, ErrorCode::SaslAuthenticationFailed);
            assert!(refusal.message.contains(expected), "{}", refusal.message);
            assert!(s.must_close());
            assert!(s.admits(ApiKey::Metadata, now).is_err());
        }
    }

    /// A client's side of SCRAM, for driving the server.
    fn scram_client_final(
        mechanism: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> String {
        let nonce = server_first
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=")
            .unwrap();
        scram_client_final_with_nonce(mechanism, password, client_first_bare, server_first, nonce)
    }

    /// The client's final message, naming `nonce` (what it should: the combined nonce).
    fn scram_client_final_with_nonce(
        mechanism: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        nonce: &str,
    ) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let fields: Vec<&str> = server_first.split(',').collect();
        let salt = b64.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
        let salted = salted(mechanism, password, &salt);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        assert_eq!(
            mechanism,
            Mechanism::Sha256,
            "the test client speaks SCRAM-SHA-256"
        );
        let client_key = hmac256(&salted, b"Client Key");
        let stored_key = {
            use sha2::Digest;
            sha2::Sha256::digest(&client_key).to_vec()
        };
        let signature = hmac256(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", b64.encode(proof))
    }

    fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    fn scram_login(
        s: &mut Session,
        credentials: &CredentialStore,
        password: &str,
        raw: bool,
        now: Instant,
    ) -> Result<Round, Refusal> {
        let first_bare = "n=alice,r=clientnonce";
        let server_first = s.authenticate(
            format!("n,,{first_bare}").as_bytes(),
            raw,
            credentials,
            "servernonce",
            now,
        )?;
        let server_first = String::from_utf8(server_first.reply).unwrap();
        assert!(server_first.starts_with("r=clientnonceservernonce,"));
        let last = scram_client_final(Mechanism::Sha256, password, first_bare, &server_first);
        s.authenticate(last.as_bytes(), raw, credentials, "unused", now)
    }

    #[test]
    fn scram_over_sasl_authenticate_and_over_bare_frames() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = store(dir.path());
        let now = Instant::now();
        for (version, raw) in [(1, false), (0, true)] {
            let mut s = sasl_session(0);
            s.handshake(version, "SCRAM-SHA-256").unwrap();
            assert_eq!(s.expects_raw_token(), raw);
            let done = scram_login(&mut s, &credentials, "alice-secret", raw, now).unwrap();
            assert!(String::from_utf8(done.reply).unwrap().starts_with("v="));
            assert_eq!(s.principal(), &Principal::user("alice"));
            assert!(!s.expects_raw_token());
        }
        let mut s = sasl_session(0);
        s.handshake(1, "SCRAM-SHA-256").unwrap();
        let refusal = scram_login(&mut s, &credentials, "wrong", false, now).unwrap_err();
        assert_eq!(
            refusal.message,
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
        );
        assert!(s.must_close());
        // A version 1 handshake's messages must come in SaslAuthenticate requests.
        let mut s = sasl_session(0);
        s.handshake(1, "SCRAM-SHA-256").unwrap();
        let refusal = s
            .authenticate(b"n,,n=alice,r=x", true, &credentials, "n", now)
            .unwrap_err();
        assert_eq!(refusal.code, ErrorCode::IllegalSaslState);
    }

    #[test]
    fn old_librdkafkas_repeated_client_nonce_is_accepted_and_nothing_looser() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = store(dir.path());
        let now = Instant::now();
        let first_bare = "n=alice,r=clientnonce";
        for (nonce_in_final, accepted) in [
            // librdkafka < 2.6.1: its own nonce, then the combined one.
            ("clientnonceclientnonceservernonce", true),
            ("clientnonceservernonce", true),
            ("XXXXXXXXXXXclientnonceservernonce", false),
            ("clientnonceservernonceclientnonce", false),
            ("clientnonce", false),
        ] {
            let mut s = sasl_session(0);
            s.handshake(1, "SCRAM-SHA-256").unwrap();
            let first = s
                .authenticate(
                    format!("n,,{first_bare}").as_bytes(),
                    false,
                    &credentials,
                    "servernonce",
                    now,
                )
                .unwrap();
            let server_first = String::from_utf8(first.reply).unwrap();
            let last = scram_client_final_with_nonce(
                Mechanism::Sha256,
                "alice-secret",
                first_bare,
                &server_first,
                nonce_in_final,
            );
            let outcome = s.authenticate(last.as_bytes(), false, &credentials, "n", now);
            assert_eq!(outcome.is_ok(), accepted, "{nonce_in_final}: {outcome:?}");
        }
    }

    #[test]
    fn oauthbearer_tokens_authenticate_their_subject_for_their_lifetime() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let credentials = store(dir.path());
        let now = Instant::now();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let exp = (crate::handlers::now_ms() / 1000) + 30;
        let token = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none"}"#),
            b64.encode(format!(r#"{{"sub":"carol","exp":{exp}}}"#))
        );
        let message = format!("n,,\x01auth=Bearer {token}\x01\x01");
        let mut s = sasl_session(3_600_000);
        s.handshake(1, "OAUTHBEARER").unwrap();
        let round = s
            .authenticate(message.as_bytes(), false, &credentials, "n", now)
            .unwrap();
        assert_eq!(s.principal(), &Principal::user("carol"));
        // The session ends with the token (about 30 s), not after the hour of reauth.
        assert!(
            (20_000..=30_000).contains(&round.session_lifetime_ms),
            "{}",
            round.session_lifetime_ms
        );
        // An expired token, or one naming another authorization id, is refused.
        let expired = format!(
            "n,,\x01auth=Bearer {}.{}.\x01\x01",
            b64.encode(r#"{"alg":"none"}"#),
            b64.encode(r#"{"sub":"carol","exp":1000}"#)
        );
        let mut s = sasl_session(0);
        s.handshake(1, "OAUTHBEARER").unwrap();
        let refusal = s
            .authenticate(expired.as_bytes(), false, &credentials, "n", now)
            .unwrap_err();
        assert!(refusal.message.contains("expired"), "{}", refusal.message);
        assert!(s.must_close());
        let other = format!("n,a=dave,\x01auth=Bearer {token}\x01\x01");
        let mut s = sasl_session(0);
        s.handshake(1, "OAUTHBEARER").unwrap();
        assert!(s
            .authenticate(other.as_bytes(), false, &credentials, "n", now)
            .is_err());
    }

    #[test]
    fn handshakes_refuse_unknown_mechanisms_and_repeats() {
        let mut s = Session::with_sasl(enabled_mechanisms("SCRAM-SHA-512").unwrap(), 0, None);
        let (refusal, offered) = s.handshake(1, "PLAIN").unwrap_err();
        assert_eq!(refusal.code, ErrorCode::UnsupportedSaslMechanism);
        assert_eq!(offered, ["SCRAM-SHA-512"]);
        assert!(s.must_close());
        let mut s = sasl_session(0);
        s.handshake(1, "PLAIN").unwrap();
        let (refusal, _) = s.handshake(1, "PLAIN").unwrap_err();
        assert_eq!(refusal.code, ErrorCode::IllegalSaslState);
        let mut s = Session::without_sasl(Principal::anonymous());
        let (refusal, _) = s.handshake(1, "PLAIN").unwrap_err();
        assert_eq!(refusal.code, ErrorCode::IllegalSaslState);
        assert!(enabled_mechanisms("GSSAPI").is_err());
        assert!(enabled_mechanisms(" , ").is_err());
    }

    #[test]
    fn sessions_expire_and_are_renewed_by_reauthentication_of_the_same_user() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = store(dir.path());
        let start = Instant::now();
        let mut s = sasl_session(60_000);
        s.handshake(1, "SCRAM-SHA-256").unwrap();
        let round = scram_login(&mut s, &credentials, "alice-secret", false, start).unwrap();
        assert_eq!(round.session_lifetime_ms, 60_000);
        let later = start + Duration::from_secs(59);
        assert!(s.admits(ApiKey::Fetch, later).is_ok());
        let expired = start + Duration::from_secs(60);
        assert!(s
            .admits(ApiKey::Fetch, expired)
            .unwrap_err()
            .contains("expired"));
        // Re-authentication on the same connection renews the session.
        s.handshake(1, "SCRAM-SHA-256").unwrap();
        scram_login(&mut s, &credentials, "alice-secret", false, expired).unwrap();
        assert!(s
            .admits(ApiKey::Fetch, expired + Duration::from_secs(59))
            .is_ok());
        // ...but not with another mechanism, nor through a version 0 handshake.
        let (refusal, _) = s.handshake(1, "PLAIN").unwrap_err();
        assert_eq!(refusal.code, ErrorCode::SaslAuthenticationFailed);
        let mut s = sasl_session(60_000);
        s.handshake(1, "PLAIN").unwrap();
        s.authenticate(b"\0alice\0alice-secret", false, &credentials, "n", start)
            .unwrap();
        assert_eq!(
            s.handshake(0, "PLAIN").unwrap_err().0.code,
            ErrorCode::IllegalSaslState
        );
    }

    #[test]
    fn reauthentication_cannot_change_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = store(dir.path());
        credentials
            .alter(&[Alteration::Upsert {
                user: "bob".into(),
                mechanism: 1,
                iterations: 4096,
                salt: b"bob-salt".to_vec(),
                salted_password: salted(Mechanism::Sha256, "bob-secret", b"bob-salt"),
            }])
            .unwrap();
        let now = Instant::now();
        let mut s = sasl_session(60_000);
        s.handshake(1, "PLAIN").unwrap();
        s.authenticate(b"\0alice\0alice-secret", false, &credentials, "n", now)
            .unwrap();
        s.handshake(1, "PLAIN").unwrap();
        let refusal = s
            .authenticate(b"\0bob\0bob-secret", false, &credentials, "n", now)
            .unwrap_err();
        assert!(
            refusal.message.contains("Cannot change principals"),
            "{}",
            refusal.message
        );
        assert_eq!(s.principal(), &Principal::user("alice"));
        assert!(s.must_close());
    }
}
