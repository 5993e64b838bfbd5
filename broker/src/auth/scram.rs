//! SCRAM (RFC 5802; SHA-256 per RFC 7677, SHA-512 as Kafka adds it), server side.
//!
//! A user's [`ScramCredential`] keeps only the salt, the iteration count and the two keys
//! derived from the salted password (never the password). An authentication is two rounds:
//! [`ServerExchange::start`] reads the client's first message and answers with the server's
//! (salt, iterations, the combined nonce); [`ServerExchange::finish`] checks the client's
//! proof and answers with the server's signature.
//!
//! What is refused, as Kafka refuses it: channel binding (only the `n,,` header is
//! accepted), an authorization id other than the user, mandatory extensions, a nonce that
//! does not continue the exchange's, a wrong proof. An unknown user goes through the same
//! two rounds with a made-up credential and fails at the proof, like a wrong password, so
//! that the answers do not tell which users exist. Proofs are compared in constant time.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Mac, SimpleHmac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The fewest iterations a credential may have (Kafka's minimum for SCRAM).
pub const MIN_ITERATIONS: u32 = 4096;

/// The SCRAM mechanisms Brook serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Sha256,
    Sha512,
    /// RFC 5802's own example: only for checking the exchange against its test vector.
    #[cfg(test)]
    Sha1,
}

impl Mechanism {
    /// The SASL mechanism name (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
            #[cfg(test)]
            Self::Sha1 => "SCRAM-SHA-1",
        }
    }

    /// The mechanism with this SASL name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
            #[cfg(test)]
            Self::Sha1 => sha1::Sha1::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<D: Digest + hmac::digest::core_api::BlockSizeUser>(
            key: &[u8],
            data: &[u8],
        ) -> Vec<u8> {
            // SimpleHmac takes keys of any length.
            let mut mac = <SimpleHmac<D> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha256 => run::<Sha256>(key, data),
            Self::Sha512 => run::<Sha512>(key, data),
            #[cfg(test)]
            Self::Sha1 => run::<sha1::Sha1>(key, data),
        }
    }

    /// Hi(password, salt, i): PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            Self::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
            #[cfg(test)]
            Self::Sha1 => {
                pbkdf2::pbkdf2_hmac_array::<sha1::Sha1, 20>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// Why an exchange failed. Every failure ends the authentication; the connection answers
/// SASL_AUTHENTICATION_FAILED.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The client's message does not follow RFC 5802.
    #[error("invalid SCRAM message: {0}")]
    Malformed(&'static str),
    /// Channel binding or an authorization id that is not the user: not supported.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A wrong password or an unknown user (deliberately not told apart).
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {0}")]
    InvalidCredentials(&'static str),
    /// A credential cannot be made as asked.
    #[error("{0}")]
    BadCredential(String),
}

/// What the server keeps of a user's password for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub mechanism: Mechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// H(ClientKey), where ClientKey = HMAC(SaltedPassword, "Client Key").
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// The credential of `password` with `salt` and `iterations` (at least
    /// [`MIN_ITERATIONS`]).
    pub fn new(
        mechanism: Mechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, ScramError> {
        if iterations < MIN_ITERATIONS {
            return Err(ScramError::BadCredential(format!(
                "{} needs at least {MIN_ITERATIONS} iterations, not {iterations}",
                mechanism.name()
            )));
        }
        if salt.is_empty() {
            return Err(ScramError::BadCredential("the salt is empty".into()));
        }
        Ok(Self::derive(
            mechanism,
            password.as_bytes(),
            salt,
            iterations,
        ))
    }

    fn derive(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = mechanism.salted_password(password, salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// Whether `password` is the one this credential was made from (SASL/PLAIN checks
    /// passwords against the SCRAM credentials). Compared in constant time.
    pub fn matches_password(&self, password: &str) -> bool {
        let other = Self::derive(
            self.mechanism,
            password.as_bytes(),
            &self.salt,
            self.iterations,
        );
        bool::from(other.stored_key.ct_eq(&self.stored_key))
    }

    /// The credential of an already salted password (what Kafka's
    /// AlterUserScramCredentials carries, so the password never reaches the broker).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Self {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }
}

/// An exchange between its two rounds.
#[derive(Debug)]
pub struct ServerExchange {
    mechanism: Mechanism,
    username: String,
    /// `None` for an unknown user: the exchange then fails at the proof.
    credential: Option<ScramCredential>,
    /// The gs2 header as the client sent it (its base64 is the final message's `c=`).
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    /// How much of `nonce` is the client's part.
    client_nonce_len: usize,
}

impl ServerExchange {
    /// Reads the client's first message and answers with the server's. `server_nonce` is
    /// this exchange's random part (printable, without commas); `lookup` finds the user's
    /// credential for this mechanism; `decoy_secret` makes an unknown user's salt look like
    /// a real one (the same for the same name, different between brokers).
    pub fn start(
        mechanism: Mechanism,
        client_first: &[u8],
        server_nonce: &str,
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        decoy_secret: &[u8],
    ) -> Result<(Self, String), ScramError> {
        let message =
            std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (gs2_header, bare) = split_gs2_header(message)?;
        let mut fields = bare.split(',');
        let username = match fields.next().and_then(|f| f.strip_prefix("n=")) {
            Some(name) => decode_saslname(name)?,
            None => return Err(ScramError::Malformed("the first field must be n=<user>")),
        };
        let client_nonce = match fields.next().and_then(|f| f.strip_prefix("r=")) {
            Some(nonce) if !nonce.is_empty() => nonce,
            _ => return Err(ScramError::Malformed("the second field must be r=<nonce>")),
        };
        if fields.clone().any(|f| f.starts_with("m=")) {
            return Err(ScramError::Unsupported(
                "mandatory SCRAM extensions are not supported",
            ));
        }
        if let Some(authzid) = gs2_header.1 {
            if authzid != username {
                return Err(ScramError::Unsupported(
                    "an authorization id other than the user is not supported",
                ));
            }
        }
        let credential = lookup(&username).filter(|c| c.mechanism == mechanism);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                mechanism.hmac(decoy_secret, username.as_bytes()),
                MIN_ITERATIONS,
            ),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(salt));
        Ok((
            Self {
                mechanism,
                username,
                credential,
                gs2_header: gs2_header.0.to_string(),
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
                client_nonce_len: client_nonce.len(),
            },
            server_first,
        ))
    }

    /// The exchange's mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The user this exchange authenticates (as the client named it).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Checks the client's final message; on success the server's final message (`v=...`).
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let message =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("the last field must be p=<proof>"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::Malformed("the first field must be c=<binding>"))?;
        if BASE64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(ScramError::Malformed(
                "the channel binding does not repeat the first message's header",
            ));
        }
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramError::Malformed("the second field must be r=<nonce>"))?;
        // librdkafka before 2.6.1 (Debian's kcat among its users) repeats its own nonce in
        // front of the combined one; Kafka 3.x accepts that form, so Brook does too. The
        // combined nonce, with the server's fresh part, must still be there whole.
        let client_nonce = &self.nonce[..self.client_nonce_len];
        let old_librdkafka = nonce.len() == self.nonce.len() + client_nonce.len()
            && nonce.starts_with(client_nonce)
            && nonce.ends_with(&self.nonce);
        if nonce != self.nonce && !old_librdkafka {
            return Err(ScramError::Malformed("the nonce is not this exchange's"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("the proof is not base64"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let failed = ScramError::InvalidCredentials(self.mechanism.name());
        let Some(credential) = self.credential else {
            return Err(failed);
        };
        let signature = self
            .mechanism
            .hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(failed);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let matches = self
            .mechanism
            .hash(&client_key)
            .ct_eq(&credential.stored_key);
        if !bool::from(matches) {
            return Err(failed);
        }
        let server_signature = self
            .mechanism
            .hmac(&credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

/// Splits `n,[a=authzid],` from the rest: ((the header, the authorization id), the bare
/// message). Only `n` (no channel binding) is accepted.
fn split_gs2_header(message: &str) -> Result<((&str, Option<String>), &str), ScramError> {
    let mut parts = message.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid = parts.next().ok_or(ScramError::Malformed("no gs2 header"))?;
    let bare = parts.next().ok_or(ScramError::Malformed("no gs2 header"))?;
    match flag {
        "n" => {}
        "y" | "p" => {
            return Err(ScramError::Unsupported(
                "channel binding is not supported: the gs2 header must be n,,",
            ))
        }
        _ if flag.starts_with("p=") => {
            return Err(ScramError::Unsupported(
                "channel binding is not supported: the gs2 header must be n,,",
            ))
        }
        _ => return Err(ScramError::Malformed("the gs2 header must start with n")),
    }
    let authzid = match authzid {
        "" => None,
        a => Some(decode_saslname(a.strip_prefix("a=").ok_or(
            ScramError::Malformed("the authorization id must be a=<name>"),
        )?)?),
    };
    let header_len = flag.len() + 1 + message[flag.len() + 1..].find(',').unwrap_or(0) + 1;
    Ok(((&message[..header_len], authzid), bare))
}

/// A saslname: `=2C` is a comma and `=3D` an equals sign; any other `=` is an error.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("a name has a bad =XX escape")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("the user name is empty"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a whole exchange with the client's two messages; the server's two answers.
    fn exchange(
        mechanism: Mechanism,
        credential: Option<ScramCredential>,
        client_first: &str,
        server_nonce: &str,
        client_final: &str,
    ) -> Result<(String, String), ScramError> {
        let (server, first) = ServerExchange::start(
            mechanism,
            client_first.as_bytes(),
            server_nonce,
            |_| credential,
            b"secret",
        )?;
        let last = server.finish(client_final.as_bytes())?;
        Ok((first, last))
    }

    #[test]
    fn rfc_5802_test_vector() {
        let salt = BASE64.decode("QSXCR+Q6sek8bf92").unwrap();
        let credential = ScramCredential::derive(Mechanism::Sha1, b"pencil", &salt, 4096);
        let (first, last) = exchange(
            Mechanism::Sha1,
            Some(credential),
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        )
        .unwrap();
        assert_eq!(
            first,
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
        );
        assert_eq!(last, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }

    fn rfc_7677() -> ScramCredential {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramCredential::new(Mechanism::Sha256, "pencil", &salt, 4096).unwrap()
    }

    const FIRST_7677: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const NONCE_7677: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const FINAL_7677: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

    #[test]
    fn rfc_7677_test_vector() {
        let (first, last) = exchange(
            Mechanism::Sha256,
            Some(rfc_7677()),
            FIRST_7677,
            NONCE_7677,
            FINAL_7677,
        )
        .unwrap();
        assert_eq!(
            first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        assert_eq!(last, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn altered_or_replayed_final_messages_are_refused() {
        let run = |final_message: &str, nonce: &str| {
            exchange(
                Mechanism::Sha256,
                Some(rfc_7677()),
                FIRST_7677,
                nonce,
                final_message,
            )
        };
        // Replayed into an exchange with another server nonce: the nonce no longer matches.
        assert_eq!(
            run(FINAL_7677, "another-server-nonce").unwrap_err(),
            ScramError::Malformed("the nonce is not this exchange's")
        );
        // One bit of the proof changed.
        let altered = FINAL_7677.replace("p=dHz", "p=dHy");
        assert_eq!(
            run(&altered, NONCE_7677).unwrap_err(),
            ScramError::InvalidCredentials("SCRAM-SHA-256")
        );
        // The channel binding changed (claims y,,).
        let rebound = FINAL_7677.replace("c=biws", "c=eSws");
        assert!(matches!(
            run(&rebound, NONCE_7677).unwrap_err(),
            ScramError::Malformed(_)
        ));
        assert!(matches!(
            run("c=biws,r=x", NONCE_7677).unwrap_err(),
            ScramError::Malformed(_)
        ));
    }

    #[test]
    fn unknown_users_and_wrong_passwords_fail_alike() {
        let wrong = {
            let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
            ScramCredential::new(Mechanism::Sha256, "not pencil", &salt, 4096).unwrap()
        };
        let wrong_password = exchange(
            Mechanism::Sha256,
            Some(wrong),
            FIRST_7677,
            NONCE_7677,
            FINAL_7677,
        );
        let unknown_user = exchange(Mechanism::Sha256, None, FIRST_7677, NONCE_7677, FINAL_7677);
        assert_eq!(wrong_password, unknown_user);
        assert_eq!(
            unknown_user.unwrap_err().to_string(),
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
        );
        // An unknown user's first answer looks like a real one: a salt (the same each
        // time for the same name) and the minimum iterations.
        let first = |name: &str| {
            ServerExchange::start(
                Mechanism::Sha256,
                format!("n,,n={name},r=abc").as_bytes(),
                "xyz",
                |_| None,
                b"secret",
            )
            .unwrap()
            .1
        };
        assert_eq!(first("ghost"), first("ghost"));
        assert_ne!(first("ghost"), first("other"));
        assert!(first("ghost").ends_with(",i=4096"));
        // A credential of the other mechanism is not used.
        let sha512 = ScramCredential::new(Mechanism::Sha512, "pencil", b"salt", 4096).unwrap();
        assert!(exchange(
            Mechanism::Sha256,
            Some(sha512),
            FIRST_7677,
            NONCE_7677,
            FINAL_7677
        )
        .is_err());
    }

    #[test]
    fn first_messages_are_checked() {
        let start = |message: &str| {
            ServerExchange::start(
                Mechanism::Sha256,
                message.as_bytes(),
                "s",
                |_| Some(rfc_7677()),
                b"secret",
            )
            .map(|(exchange, _)| exchange.username().to_string())
        };
        assert_eq!(start("n,,n=user,r=abc").unwrap(), "user");
        assert_eq!(start("n,a=user,n=user,r=abc").unwrap(), "user");
        assert_eq!(start("n,,n=a=2Cb=3Dc,r=abc").unwrap(), "a,b=c");
        for (message, what) in [
            ("y,,n=user,r=abc", "channel binding"),
            ("p=tls-unique,,n=user,r=abc", "channel binding"),
            ("n,a=admin,n=user,r=abc", "authorization id"),
            ("n,,n=user,r=abc,m=ext", "mandatory"),
            ("n,,n=us=er,r=abc", "escape"),
            ("n,,r=abc", "n=<user>"),
            ("n,,n=user", "r=<nonce>"),
            ("n,,", "n=<user>"),
            ("x,,n=user,r=abc", "start with n"),
        ] {
            let err = start(message).unwrap_err().to_string();
            assert!(err.contains(what), "{message}: {err}");
        }
        assert!(ServerExchange::start(Mechanism::Sha256, &[0xff], "s", |_| None, b"k").is_err());
    }

    #[test]
    fn passwords_are_checked_against_credentials() {
        let c = ScramCredential::new(Mechanism::Sha512, "pencil", b"salt-1", 4096).unwrap();
        assert!(c.matches_password("pencil"));
        assert!(!c.matches_password("pencil "));
        assert!(!c.matches_password(""));
    }

    #[test]
    fn credentials_need_enough_iterations_and_a_salt() {
        assert!(ScramCredential::new(Mechanism::Sha512, "p", b"salt", 4095).is_err());
        assert!(ScramCredential::new(Mechanism::Sha512, "p", b"", 4096).is_err());
        let c = ScramCredential::new(Mechanism::Sha512, "p", b"salt", 4096).unwrap();
        assert_eq!((c.stored_key.len(), c.server_key.len()), (64, 64));
        assert_eq!(
            Mechanism::from_name("SCRAM-SHA-512"),
            Some(Mechanism::Sha512)
        );
        assert_eq!(Mechanism::from_name("SCRAM-SHA-1"), None);
    }
}
