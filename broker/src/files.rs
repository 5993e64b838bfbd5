//! The broker's own files (the data directory, the metadata file, the clean-shutdown marker,
//! partition directories) through the same [`FileSystem`] as the partition logs, so that a
//! fault-injecting file system sees every call the broker makes. Only the data directory's
//! lock (`flock` on `.lock`) goes around it: it is released by the kernel with the process
//! and holds no data.
//!
//! Each change is made durable where it is made: a replaced file is written to a temporary
//! name, synced, renamed and its directory synced; a created or removed entry has its
//! directory synced; a created directory is synced into its parent, up to the first one that
//! existed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brook_storage::FileSystem;

/// The broker's file operations on one file system.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    fs: Arc<dyn FileSystem>,
}

impl Files {
    pub(crate) fn new(fs: Arc<dyn FileSystem>) -> Self {
        Self { fs }
    }

    pub(crate) fn fs(&self) -> Arc<dyn FileSystem> {
        self.fs.clone()
    }

    /// The whole file, or `None` if it does not exist.
    pub(crate) fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match self.fs.read_file(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names in `dir`.
    pub(crate) fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.fs.list_dir(dir)
    }

    /// Replaces `path` with `bytes` so that a crash or power cut leaves either the old or the
    /// new content.
    pub(crate) fn write_atomically(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let file = self.fs.create(&tmp)?;
            self.fs.write_at(&file, bytes, 0)?;
            self.fs.sync_all(&file)?;
        }
        self.fs.rename(&tmp, path)?;
        self.sync_parent(path)
    }

    /// Creates an empty file `path` and makes it and its entry durable.
    pub(crate) fn create_durably(&self, path: &Path) -> io::Result<()> {
        let file = self.fs.create(path)?;
        self.fs.sync_all(&file)?;
        self.sync_parent(path)
    }

    /// Removes the file `path` (gone already is fine) and makes the removal durable.
    pub(crate) fn remove_durably(&self, path: &Path) -> io::Result<()> {
        match self.fs.remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        self.sync_parent(path)
    }

    /// Removes a directory and everything in it (gone already is fine); the caller syncs the
    /// parent once for a batch of removals.
    pub(crate) fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        match self.fs.remove_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// fsyncs `dir`.
    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.fs.sync_dir(dir)
    }

    /// Makes everything written to the file system holding `dir` durable (`syncfs`).
    pub(crate) fn sync_file_system(&self, dir: &Path) -> io::Result<()> {
        let handle = self.fs.open_dir(dir)?;
        self.fs.sync_fs(&handle)
    }

    /// Creates `dir` and its missing parents, each synced into its parent, so that a power
    /// cut cannot take the data directory (cluster id, metadata, logs) away with it.
    pub(crate) fn create_dir_durably(&self, dir: &Path) -> io::Result<()> {
        let ancestors: Vec<&Path> = dir
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .collect();
        // From the root down: each one created here is synced into its parent.
        for d in ancestors.into_iter().rev() {
            if self.fs.ensure_dir(d)? {
                self.sync_parent(d)?;
            }
        }
        Ok(())
    }

    fn sync_parent(&self, path: &Path) -> io::Result<()> {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        self.fs.sync_dir(parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_storage::testing::FaultyFileSystem;

    #[test]
    fn creations_and_replacements_are_synced_where_they_happen() {
        let root = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultyFileSystem::new());
        let files = Files::new(fs.clone());
        let dir = root.path().join("a/b/data");
        let before = fs.sync_calls();
        files.create_dir_durably(&dir).unwrap();
        assert_eq!(
            fs.sync_calls() - before,
            3,
            "a, b and data, each into its parent"
        );
        files.create_dir_durably(&dir).unwrap();
        assert_eq!(fs.sync_calls() - before, 3, "nothing new");

        let meta = dir.join("meta.json");
        assert_eq!(files.read(&meta).unwrap(), None);
        files.write_atomically(&meta, b"one").unwrap();
        files.write_atomically(&meta, b"two").unwrap();
        assert_eq!(files.read(&meta).unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(files.read(&dir.join("meta.json.tmp")).unwrap(), None);

        files.create_durably(&dir.join("marker")).unwrap();
        assert!(files.read(&dir.join("marker")).unwrap().is_some());
        files.remove_durably(&dir.join("marker")).unwrap();
        files.remove_durably(&dir.join("marker")).unwrap();
        assert_eq!(files.read(&dir.join("marker")).unwrap(), None);

        // A failed sync is an error, not a silent success.
        fs.fail_next_syncs(1);
        assert!(files.write_atomically(&meta, b"three").is_err());
    }
}
