//! The client's side of SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Mac, SimpleHmac};
use sha2::{Digest, Sha256, Sha512};

/// SHA-256 or SHA-512.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<D: Digest + hmac::digest::core_api::BlockSizeUser>(
            key: &[u8],
            data: &[u8],
        ) -> Vec<u8> {
            let mut mac = <SimpleHmac<D> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha256 => run::<Sha256>(key, data),
            Self::Sha512 => run::<Sha512>(key, data),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            Self::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// The fewest iterations the client accepts from a server (a lower count would make a
/// stolen exchange cheap to attack).
const MIN_ITERATIONS: u32 = 4096;

/// An exchange after the client's first message.
pub(crate) struct ClientExchange {
    hash: Hash,
    password: String,
    nonce: String,
    first_bare: String,
}

/// What the server's final message must carry.
pub(crate) struct Expected {
    server_signature: String,
}

impl ClientExchange {
    /// The client's first message (`n,,n=user,r=nonce`).
    pub(crate) fn start(hash: Hash, user: &str, password: &str, nonce: &str) -> (Self, String) {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let first_bare = format!("n={name},r={nonce}");
        let first = format!("n,,{first_bare}");
        (
            Self {
                hash,
                password: password.to_string(),
                nonce: nonce.to_string(),
                first_bare,
            },
            first,
        )
    }

    /// The client's final message for the server's first, and what the server must answer.
    pub(crate) fn respond(self, server_first: &[u8]) -> Result<(String, Expected), String> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| "the server's first SCRAM message is not UTF-8".to_string())?;
        let field = |name: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(name))
                .ok_or_else(|| format!("the server's first SCRAM message has no {name}"))
        };
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() {
            return Err("the server's SCRAM nonce does not extend the client's".into());
        }
        let salt = BASE64
            .decode(field("s=")?)
            .map_err(|_| "the server's SCRAM salt is not base64".to_string())?;
        let iterations: u32 = field("i=")?
            .parse()
            .map_err(|_| "the server's SCRAM iteration count is not a number".to_string())?;
        if iterations < MIN_ITERATIONS {
            return Err(format!(
                "the server asks for {iterations} SCRAM iterations, fewer than {MIN_ITERATIONS}"
            ));
        }
        let h = self.hash;
        let salted = h.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        let server_signature = BASE64.encode(h.hmac(&server_key, auth_message.as_bytes()));
        Ok((
            format!("{without_proof},p={}", BASE64.encode(proof)),
            Expected { server_signature },
        ))
    }
}

impl Expected {
    /// Checks the server's final message (`v=signature`): the server knew the credential.
    pub(crate) fn check(&self, server_final: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_final).unwrap_or("");
        if let Some(error) = text.strip_prefix("e=") {
            return Err(format!("the server refused: {error}"));
        }
        match text.strip_prefix("v=") {
            Some(signature) if signature == self.server_signature => Ok(()),
            _ => Err("the server's SCRAM signature is wrong: it does not know the password".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example, from the client's side.
    #[test]
    fn rfc_7677_test_vector() {
        let (exchange, first) =
            ClientExchange::start(Hash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let (last, expected) = exchange
            .respond(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        expected
            .check(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(expected.check(b"v=AAAA").is_err());
    }

    #[test]
    fn weak_or_foreign_server_messages_are_refused() {
        let start = || ClientExchange::start(Hash::Sha256, "user", "pencil", "abc").0;
        assert!(start().respond(b"r=xyz123,s=AAAA,i=4096").is_err());
        assert!(start().respond(b"r=abc123,s=AAAA,i=1000").is_err());
        assert!(start().respond(b"r=abc,s=AAAA,i=4096").is_err());
        assert!(start().respond(b"r=abc123,i=4096").is_err());
    }
}
