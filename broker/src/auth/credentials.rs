//! The users' SCRAM credentials, durable in the data directory (`scram-credentials.json`,
//! replaced atomically before a change is acknowledged). Only what SCRAM needs is kept:
//! salt, iterations, StoredKey and ServerKey per user and mechanism; never a password.
//!
//! Changes follow Kafka's AlterUserScramCredentials: per user, all of its alterations apply
//! or none; see [`CredentialStore::alter`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use brook_protocol::ErrorCode;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::scram::{Mechanism, ScramCredential, MIN_ITERATIONS};
use crate::files::Files;

/// The file in the data directory.
pub(crate) const FILE: &str = "scram-credentials.json";

/// The most iterations a credential may have (Kafka's limit).
pub(crate) const MAX_ITERATIONS: u32 = 16384;

/// Kafka's mechanism numbers in the user-SCRAM APIs.
pub(crate) fn mechanism_of(id: i8) -> Option<Mechanism> {
    match id {
        1 => Some(Mechanism::Sha256),
        2 => Some(Mechanism::Sha512),
        _ => None,
    }
}

pub(crate) fn mechanism_id(mechanism: Mechanism) -> i8 {
    match mechanism {
        Mechanism::Sha256 => 1,
        Mechanism::Sha512 => 2,
        #[cfg(test)]
        Mechanism::Sha1 => 0,
    }
}

/// One credential as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    mechanism: String,
    iterations: u32,
    salt: String,
    stored_key: String,
    server_key: String,
}

/// The file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    users: BTreeMap<String, Vec<Stored>>,
}

/// One requested change.
#[derive(Debug, Clone)]
pub(crate) enum Alteration {
    Delete {
        user: String,
        mechanism: i8,
    },
    Upsert {
        user: String,
        mechanism: i8,
        iterations: i32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
}

impl Alteration {
    fn user(&self) -> &str {
        match self {
            Self::Delete { user, .. } | Self::Upsert { user, .. } => user,
        }
    }

    fn mechanism(&self) -> i8 {
        match self {
            Self::Delete { mechanism, .. } | Self::Upsert { mechanism, .. } => *mechanism,
        }
    }
}

/// A user's outcome: `None` for success, or the error code and Kafka's message.
pub(crate) type Outcome = Option<(ErrorCode, String)>;

/// The users' credentials (see the module docs).
pub(crate) struct CredentialStore {
    path: PathBuf,
    files: Files,
    users: RwLock<BTreeMap<String, Vec<ScramCredential>>>,
    /// Serialises changes and their file writes.
    changes: Mutex<()>,
    /// Random per broker run: makes an unknown user's SCRAM salt look like a real one
    /// (stable for a name while the broker runs).
    decoy_secret: [u8; 32],
}

impl CredentialStore {
    /// Reads the credentials from the data directory (none if the file is missing).
    pub(crate) fn open(data_dir: &Path, files: Files) -> std::io::Result<Self> {
        let path = data_dir.join(FILE);
        let file: StoreFile = match files.read(&path)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            None => StoreFile::default(),
        };
        let mut users = BTreeMap::new();
        for (user, stored) in file.users {
            let credentials = stored
                .iter()
                .map(decode)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    std::io::Error::other(format!(
                        "{}: a credential of {user:?} is damaged",
                        path.display()
                    ))
                })?;
            users.insert(user, credentials);
        }
        Ok(Self {
            path,
            files,
            users: RwLock::new(users),
            changes: Mutex::new(()),
            decoy_secret: super::random_bytes()?,
        })
    }

    /// The secret unknown users' made-up salts are derived from.
    pub(crate) fn decoy_secret(&self) -> &[u8] {
        &self.decoy_secret
    }

    /// Whether `password` is `user`'s (SASL/PLAIN), checked against the user's SCRAM-SHA-256
    /// credential, or SCRAM-SHA-512 when it has only that. An unknown user costs the same
    /// work as a known one, so timing does not tell which users exist.
    pub(crate) fn check_password(&self, user: &str, password: &str) -> bool {
        let credential = self
            .get(user, Mechanism::Sha256)
            .or_else(|| self.get(user, Mechanism::Sha512));
        match credential {
            Some(c) => c.matches_password(password),
            None => {
                let decoy = ScramCredential::from_salted_password(
                    Mechanism::Sha256,
                    &self.decoy_secret,
                    user.as_bytes(),
                    MIN_ITERATIONS,
                );
                let _ = decoy.matches_password(password);
                false
            }
        }
    }

    /// The user's credential for `mechanism`.
    pub(crate) fn get(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        self.users
            .read()
            .get(user)?
            .iter()
            .find(|c| c.mechanism == mechanism)
            .cloned()
    }

    /// Every user with credentials, and (mechanism, iterations) of each.
    pub(crate) fn describe(&self) -> BTreeMap<String, Vec<(Mechanism, u32)>> {
        self.users
            .read()
            .iter()
            .map(|(u, cs)| {
                (
                    u.clone(),
                    cs.iter().map(|c| (c.mechanism, c.iterations)).collect(),
                )
            })
            .collect()
    }

    /// Applies `alterations` as Kafka does: per user (in the order users first appear), all
    /// of its alterations or none. A user whose alterations name one mechanism twice gets
    /// DUPLICATE_RESOURCE; an unknown mechanism UNSUPPORTED_SASL_MECHANISM; an empty name,
    /// or iterations outside 4096..=16384, UNACCEPTABLE_CREDENTIAL; deleting a credential
    /// that does not exist RESOURCE_NOT_FOUND. The file is written before this returns.
    pub(crate) fn alter(
        &self,
        alterations: &[Alteration],
    ) -> std::io::Result<Vec<(String, Outcome)>> {
        let _change = self.changes.lock();
        let mut next = self.users.read().clone();
        let order = users_in_order(alterations);
        let mut results = Vec::with_capacity(order.len());
        for user in order {
            let mine: Vec<&Alteration> = alterations.iter().filter(|a| a.user() == user).collect();
            let outcome = apply_user(&mut next, &user, &mine);
            results.push((user, outcome));
        }
        if results.iter().any(|(_, o)| o.is_none()) {
            self.write(&next)?;
            *self.users.write() = next;
        }
        Ok(results)
    }

    /// Sets `user`'s password for each of `mechanisms` (new random salts), as one
    /// alteration: what `brook user create` and the initial admin user do.
    pub(crate) fn set_password(
        &self,
        user: &str,
        password: &str,
        mechanisms: &[Mechanism],
        iterations: u32,
    ) -> std::io::Result<Outcome> {
        let mut alterations = Vec::with_capacity(mechanisms.len());
        for &mechanism in mechanisms {
            let salt = super::users::new_salt()?;
            alterations.push(Alteration::Upsert {
                user: user.to_string(),
                mechanism: mechanism_id(mechanism),
                iterations: i32::try_from(iterations).unwrap_or(i32::MAX),
                salted_password: mechanism.salted_password(password.as_bytes(), &salt, iterations),
                salt,
            });
        }
        let results = self.alter(&alterations)?;
        Ok(results.into_iter().find_map(|(_, outcome)| outcome))
    }

    /// Removes every credential of `user`; false when it had none.
    pub(crate) fn delete_user(&self, user: &str) -> std::io::Result<bool> {
        let deletions: Vec<Alteration> = self
            .describe()
            .get(user)
            .map(|infos| {
                infos
                    .iter()
                    .map(|(m, _)| Alteration::Delete {
                        user: user.to_string(),
                        mechanism: mechanism_id(*m),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if deletions.is_empty() {
            return Ok(false);
        }
        let results = self.alter(&deletions)?;
        Ok(results.iter().all(|(_, outcome)| outcome.is_none()))
    }

    fn write(&self, users: &BTreeMap<String, Vec<ScramCredential>>) -> std::io::Result<()> {
        let file = StoreFile {
            users: users
                .iter()
                .map(|(u, cs)| (u.clone(), cs.iter().map(encode).collect()))
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        self.files.write_atomically(&self.path, &bytes)
    }
}

/// The users `alterations` name, each once, in the order they first appear (the order of
/// AlterUserScramCredentials' results).
pub(crate) fn users_in_order(alterations: &[Alteration]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for a in alterations {
        if !order.iter().any(|u| u == a.user()) {
            order.push(a.user().to_string());
        }
    }
    order
}

/// One user's alterations applied to `users`, or left out whole with the first error.
fn apply_user(
    users: &mut BTreeMap<String, Vec<ScramCredential>>,
    user: &str,
    alterations: &[&Alteration],
) -> Outcome {
    let refuse = |code: ErrorCode, message: &str| Some((code, message.to_string()));
    if user.is_empty() {
        return refuse(
            ErrorCode::UnacceptableCredential,
            "Username must not be empty",
        );
    }
    let mut seen = Vec::new();
    for a in alterations {
        if seen.contains(&a.mechanism()) {
            return refuse(
                ErrorCode::DuplicateResource,
                "A user credential cannot be altered twice in the same request",
            );
        }
        seen.push(a.mechanism());
    }
    let mut credentials = users.get(user).cloned().unwrap_or_default();
    for a in alterations {
        let Some(mechanism) = mechanism_of(a.mechanism()) else {
            return refuse(
                ErrorCode::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism",
            );
        };
        match a {
            Alteration::Delete { .. } => {
                let before = credentials.len();
                credentials.retain(|c| c.mechanism != mechanism);
                if credentials.len() == before {
                    return refuse(
                        ErrorCode::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist",
                    );
                }
            }
            Alteration::Upsert {
                iterations,
                salt,
                salted_password,
                ..
            } => {
                let iterations = u32::try_from(*iterations).unwrap_or(0);
                if iterations < MIN_ITERATIONS {
                    return refuse(ErrorCode::UnacceptableCredential, "Too few iterations");
                }
                if iterations > MAX_ITERATIONS {
                    return refuse(ErrorCode::UnacceptableCredential, "Too many iterations");
                }
                if salt.is_empty() || salted_password.is_empty() {
                    return refuse(
                        ErrorCode::UnacceptableCredential,
                        "The salt and the salted password must not be empty",
                    );
                }
                let credential = ScramCredential::from_salted_password(
                    mechanism,
                    salted_password,
                    salt,
                    iterations,
                );
                credentials.retain(|c| c.mechanism != mechanism);
                credentials.push(credential);
            }
        }
    }
    if credentials.is_empty() {
        users.remove(user);
    } else {
        users.insert(user.to_string(), credentials);
    }
    None
}

fn encode(c: &ScramCredential) -> Stored {
    Stored {
        mechanism: c.mechanism.name().to_string(),
        iterations: c.iterations,
        salt: BASE64.encode(&c.salt),
        stored_key: BASE64.encode(&c.stored_key),
        server_key: BASE64.encode(&c.server_key),
    }
}

fn decode(s: &Stored) -> Option<ScramCredential> {
    Some(ScramCredential {
        mechanism: Mechanism::from_name(&s.mechanism)?,
        iterations: s.iterations,
        salt: BASE64.decode(&s.salt).ok()?,
        stored_key: BASE64.decode(&s.stored_key).ok()?,
        server_key: BASE64.decode(&s.server_key).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> CredentialStore {
        CredentialStore::open(
            dir,
            Files::new(std::sync::Arc::new(brook_storage::OsFileSystem)),
        )
        .unwrap()
    }

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> Alteration {
        Alteration::Upsert {
            user: user.into(),
            mechanism,
            iterations,
            salt: b"salt".to_vec(),
            salted_password: b"salted".to_vec(),
        }
    }

    #[test]
    fn alterations_apply_per_user_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let results = s
            .alter(&[
                upsert("alice", 1, 4096),
                upsert("alice", 2, 8192),
                upsert("bob", 1, 4095),
                upsert("carol", 3, 4096),
                upsert("dave", 1, 4096),
                Alteration::Delete {
                    user: "dave".into(),
                    mechanism: 1,
                },
                Alteration::Delete {
                    user: "erin".into(),
                    mechanism: 1,
                },
                upsert("", 1, 4096),
                upsert("frank", 1, 20_000),
            ])
            .unwrap();
        let codes: Vec<(&str, Option<ErrorCode>)> = results
            .iter()
            .map(|(u, o)| (u.as_str(), o.as_ref().map(|e| e.0)))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("alice", None),
                ("bob", Some(ErrorCode::UnacceptableCredential)),
                ("carol", Some(ErrorCode::UnsupportedSaslMechanism)),
                ("dave", Some(ErrorCode::DuplicateResource)),
                ("erin", Some(ErrorCode::ResourceNotFound)),
                ("", Some(ErrorCode::UnacceptableCredential)),
                ("frank", Some(ErrorCode::UnacceptableCredential)),
            ]
        );
        let described = s.describe();
        assert_eq!(described.len(), 1, "only alice's alterations applied");
        assert_eq!(
            described["alice"],
            vec![(Mechanism::Sha256, 4096), (Mechanism::Sha512, 8192)]
        );
        // The file holds keys, not the salted password.
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!text.contains(&BASE64.encode(b"salted")), "{text}");
        let expected =
            ScramCredential::from_salted_password(Mechanism::Sha256, b"salted", b"salt", 4096);
        drop(s);
        let s = store(dir.path());
        assert_eq!(s.get("alice", Mechanism::Sha256), Some(expected));
        let results = s
            .alter(&[Alteration::Delete {
                user: "alice".into(),
                mechanism: 2,
            }])
            .unwrap();
        assert_eq!(results[0].1, None);
        assert_eq!(s.describe()["alice"], vec![(Mechanism::Sha256, 4096)]);
    }
}
