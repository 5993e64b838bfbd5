//! Every file-system call the crate makes, in one place.
//!
//! Owns [`FileHandle`] (an open file plus its path, for error context) and the directory
//! operations. Nothing else in the crate touches `std::fs`, so a fault-injecting file-system
//! layer can later be slotted in here without changing the log logic. Errors carry the name
//! of the call and the path.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use crate::{error::StorageError, mmap::Mapping};

type Result<T> = std::result::Result<T, StorageError>;

/// An open file, read-write, with its path kept for error messages.
#[derive(Debug)]
pub(crate) struct FileHandle {
    file: File,
    path: PathBuf,
}

impl FileHandle {
    /// Opens an existing file for reading and writing; `None` if it does not exist.
    pub(crate) fn open_existing(path: &Path) -> Result<Option<Self>> {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => Ok(Some(Self {
                file,
                path: path.to_path_buf(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("open", path)(e)),
        }
    }

    /// Creates a file (truncating any existing one) for reading and writing.
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(StorageError::io("create", path))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Current length of the file.
    pub(crate) fn file_len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(StorageError::io("stat", &self.path))?
            .len())
    }

    /// Extends (sparsely) or shortens the file.
    pub(crate) fn set_len(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(StorageError::io("set_len", &self.path))
    }

    /// Writes all of `buf` at `position` (a positioned write: no shared cursor).
    pub(crate) fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()> {
        self.file
            .write_all_at(buf, position)
            .map_err(StorageError::io("write", &self.path))
    }

    /// fdatasync: the data, and the metadata needed to read it back.
    pub(crate) fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(StorageError::io("fdatasync", &self.path))
    }

    /// fsync: data and all metadata (used after a length change).
    pub(crate) fn sync_all(&self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(StorageError::io("fsync", &self.path))
    }

    /// Maps the first `len` bytes read-only (`None` when `len == 0`).
    pub(crate) fn map(&self, len: u64) -> Result<Option<Mapping>> {
        Mapping::new(&self.file, len).map_err(StorageError::io("mmap", &self.path))
    }
}

/// Creates `dir` (and missing parents) unless it exists; whether it was created.
pub(crate) fn ensure_dir(dir: &Path) -> Result<bool> {
    if fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Ok(false);
    }
    fs::create_dir_all(dir).map_err(StorageError::io("create_dir_all", dir))?;
    Ok(true)
}

/// Names of the entries of `dir` that are valid UTF-8 (others cannot be ours).
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(StorageError::io("read_dir", dir))? {
        let entry = entry.map_err(StorageError::io("read_dir", dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes a file; a file that is already gone is not an error.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StorageError::io("remove", path)(e)),
        _ => Ok(()),
    }
}

pub(crate) fn remove_dir_all(dir: &Path) -> Result<()> {
    fs::remove_dir_all(dir).map_err(StorageError::io("remove_dir_all", dir))
}

pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(StorageError::io("rename", from))
}

/// fsyncs a directory so that file creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("fsync dir", dir))
}
