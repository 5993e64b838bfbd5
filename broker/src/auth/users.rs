//! SCRAM users managed in a stopped broker's data directory (`brook user ... --data-dir`).
//!
//! The data directory's lock is taken first, so a running broker's credentials are never
//! changed behind its back (a running broker is changed through AlterUserScramCredentials).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::credentials::CredentialStore;
use super::scram::Mechanism;
use crate::files::Files;

/// Why a user could not be changed or listed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    DataDir(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("user {0:?} has no credentials")]
    NotFound(String),
}

/// The iterations `brook user create` uses unless told otherwise (Kafka's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// A fresh random salt for a new credential.
pub fn new_salt() -> std::io::Result<Vec<u8>> {
    Ok(super::random_bytes::<32>()?.to_vec())
}

/// Opens the credentials of `data_dir` with its lock held (`create`: make the directory).
fn open(data_dir: &Path, create: bool) -> Result<(std::fs::File, CredentialStore), UserError> {
    if create {
        std::fs::create_dir_all(data_dir).map_err(|source| UserError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
    } else if !data_dir.is_dir() {
        return Err(UserError::DataDir(format!(
            "{} is not a data directory",
            data_dir.display()
        )));
    }
    let lock = crate::topics::lock_data_dir(data_dir).map_err(|e| {
        UserError::DataDir(format!(
            "{e}: a running broker's users are changed through it (AlterUserScramCredentials), not in its data directory"
        ))
    })?;
    let files = Files::new(Arc::new(brook_storage::OsFileSystem));
    let store = CredentialStore::open(data_dir, files).map_err(|source| UserError::Io {
        path: data_dir
            .join(super::credentials::FILE)
            .display()
            .to_string(),
        source,
    })?;
    Ok((lock, store))
}

/// Creates `user` or changes its password, for each of `mechanisms`.
pub fn create_user(
    data_dir: &Path,
    user: &str,
    password: &str,
    mechanisms: &[Mechanism],
    iterations: u32,
) -> Result<(), UserError> {
    if password.is_empty() {
        return Err(UserError::Refused("the password must not be empty".into()));
    }
    let (_lock, store) = open(data_dir, true)?;
    let outcome = store
        .set_password(user, password, mechanisms, iterations)
        .map_err(|source| UserError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
    match outcome {
        None => Ok(()),
        Some((_, message)) => Err(UserError::Refused(message)),
    }
}

/// Removes every credential of `user`.
pub fn delete_user(data_dir: &Path, user: &str) -> Result<(), UserError> {
    let (_lock, store) = open(data_dir, false)?;
    match store.delete_user(user) {
        Ok(true) => Ok(()),
        Ok(false) => Err(UserError::NotFound(user.to_string())),
        Err(source) => Err(UserError::Io {
            path: data_dir.display().to_string(),
            source,
        }),
    }
}

/// Every user, with (mechanism, iterations) of each credential.
pub fn list_users(data_dir: &Path) -> Result<BTreeMap<String, Vec<(Mechanism, u32)>>, UserError> {
    let (_lock, store) = open(data_dir, false)?;
    Ok(store.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_created_listed_and_deleted_in_a_stopped_brokers_directory() {
        let dir = tempfile::tempdir().unwrap();
        let both = [Mechanism::Sha256, Mechanism::Sha512];
        create_user(dir.path(), "alice", "pw", &both, 8192).unwrap();
        create_user(dir.path(), "bob", "pw", &[Mechanism::Sha512], 4096).unwrap();
        let users = list_users(dir.path()).unwrap();
        assert_eq!(
            users["alice"],
            [(Mechanism::Sha256, 8192), (Mechanism::Sha512, 8192)]
        );
        assert_eq!(users["bob"], [(Mechanism::Sha512, 4096)]);
        // The password works (PLAIN checks it against the stored credential).
        let (_lock, store) = open(dir.path(), false).unwrap();
        assert!(store.check_password("alice", "pw"));
        assert!(!store.check_password("alice", "pw2"));
        drop(_lock);
        delete_user(dir.path(), "alice").unwrap();
        assert!(matches!(
            delete_user(dir.path(), "alice"),
            Err(UserError::NotFound(_))
        ));
        assert_eq!(list_users(dir.path()).unwrap().len(), 1);
        assert!(matches!(
            create_user(dir.path(), "carol", "pw", &both, 100),
            Err(UserError::Refused(m)) if m.contains("Too few iterations")
        ));
    }

    #[test]
    fn a_running_brokers_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _held = crate::topics::lock_data_dir(dir.path()).unwrap();
        let err = create_user(dir.path(), "alice", "pw", &[Mechanism::Sha256], 4096)
            .unwrap_err()
            .to_string();
        assert!(err.contains("in use by another broker"), "{err}");
    }
}
