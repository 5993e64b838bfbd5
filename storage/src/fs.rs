//! The file-system boundary: every file-system call the crate makes goes through
//! [`FileSystem`].
//!
//! Owns the [`FileSystem`] trait, its real implementation [`OsFileSystem`], and the
//! crate-internal [`FileHandle`] (an open file, its path for error context, and the file
//! system it came from) plus the directory helpers. Nothing else in the crate touches
//! `std::fs`, so tests can swap in a file system that fails on command
//! ([`crate::testing::FaultyFileSystem`]) without changing the log logic. The helpers here
//! turn `io::Error`s into [`StorageError`]s naming the call and the path (`ENOSPC` becomes
//! [`StorageError::NoSpace`]).
//!
//! # Failed syncs are sticky
//!
//! After an fsync fails, Linux may report the error only once and then mark the dirty pages
//! clean, so a second fsync of the same file can succeed although the data never reached
//! the disk. A [`FileHandle`] therefore remembers its first sync failure and fails every later
//! sync with it; syncs of one handle are serialized so that no caller sees a success that
//! raced past another caller's failure.

use std::{
    fmt::Debug,
    fs::{self, File},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use parking_lot::Mutex;
use rustix::{fs::FallocateFlags, io::Errno};

use crate::{error::StorageError, mmap::Mapping};

type Result<T> = std::result::Result<T, StorageError>;

/// The file-system operations of the storage engine.
///
/// The log only ever calls these, so an implementation can inject failures (see
/// [`crate::testing::FaultyFileSystem`]). Handles are plain [`File`]s opened by
/// [`FileSystem::open`] or [`FileSystem::create`]. [`FileSystem::map`] can only be
/// implemented by delegating to [`OsFileSystem`] (a [`Mapping`] has no public constructor).
pub trait FileSystem: Send + Sync + Debug {
    /// Creates `path` (truncating an existing file), opened for reading and writing.
    fn create(&self, path: &Path) -> io::Result<File>;
    /// Opens the existing file `path` for reading and writing (`NotFound` if missing).
    fn open(&self, path: &Path) -> io::Result<File>;
    /// Writes all of `buf` at `position` (a positioned write: no shared cursor).
    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()>;
    /// fdatasync: the data, and the metadata needed to read it back.
    fn sync_data(&self, file: &File) -> io::Result<()>;
    /// fsync: data and all metadata.
    fn sync_all(&self, file: &File) -> io::Result<()>;
    /// Reserves disk blocks for the `len` bytes from `offset` (extending the file to
    /// `offset + len` if it is shorter; never shortening it), so later writes into that range
    /// cannot hit a full disk. A full disk is `ENOSPC` here, with nothing written.
    fn allocate(&self, file: &File, offset: u64, len: u64) -> io::Result<()>;
    /// Asks the kernel to evict the clean page-cache pages of the `len` bytes from `offset`
    /// (`POSIX_FADV_DONTNEED`). Advisory: the file's bytes are unchanged, only where later
    /// reads find them.
    fn drop_cache(&self, file: &File, offset: u64, len: u64) -> io::Result<()>;
    /// Sets the file's length (shortening it, or extending it sparsely).
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
    /// The file's current length.
    fn file_len(&self, file: &File) -> io::Result<u64>;
    /// The file's last modification time.
    fn modified(&self, file: &File) -> io::Result<SystemTime>;
    /// Maps the first `len` bytes read-only and shared (`None` when `len == 0`). The file
    /// must be at least `len` bytes long.
    fn map(&self, file: &File, len: u64) -> io::Result<Option<Mapping>>;
    /// Creates `dir` and missing parents unless it exists; whether it was created.
    fn ensure_dir(&self, dir: &Path) -> io::Result<bool>;
    /// Names of the entries of `dir` that are valid UTF-8.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Removes a file (`NotFound` if it does not exist).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsyncs a directory, making creations, renames and removals in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system (Linux system calls through `std` and `rustix`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFileSystem;

impl FileSystem for OsFileSystem {
    fn create(&self, path: &Path) -> io::Result<File> {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        fs::OpenOptions::new().read(true).write(true).open(path)
    }

    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()> {
        file.write_all_at(buf, position)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_all(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }

    /// `fallocate(fd, 0, offset, len)`: real blocks, so a full disk shows up here rather
    /// than as `ENOSPC` from a later write. File systems without fallocate (`EOPNOTSUPP`) get
    /// a sparse `set_len` instead, the best they offer.
    fn allocate(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        match rustix::fs::fallocate(file, FallocateFlags::empty(), offset, len) {
            Ok(()) => Ok(()),
            Err(Errno::OPNOTSUPP) => {
                let end = offset.saturating_add(len);
                if file.metadata()?.len() < end {
                    file.set_len(end)?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn drop_cache(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        let Some(len) = std::num::NonZeroU64::new(len) else {
            return Ok(());
        };
        rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed)?;
        Ok(())
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn file_len(&self, file: &File) -> io::Result<u64> {
        Ok(file.metadata()?.len())
    }

    fn modified(&self, file: &File) -> io::Result<SystemTime> {
        file.metadata()?.modified()
    }

    fn map(&self, file: &File, len: u64) -> io::Result<Option<Mapping>> {
        Mapping::new(file, len)
    }

    fn ensure_dir(&self, dir: &Path) -> io::Result<bool> {
        if fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Ok(false);
        }
        fs::create_dir_all(dir)?;
        Ok(true)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir_all(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// The file system a log uses, shared by all its file handles.
pub(crate) type SharedFs = Arc<dyn FileSystem>;

/// An open file, read-write, with its path kept for error messages.
#[derive(Debug)]
pub(crate) struct FileHandle {
    fs: SharedFs,
    file: File,
    path: PathBuf,
    /// The first failed sync of this file, if any (module docs: failed syncs are sticky).
    /// The lock is held across each sync.
    sync_failure: Mutex<Option<String>>,
}

impl FileHandle {
    fn new(fs: &SharedFs, file: File, path: &Path) -> Self {
        Self {
            fs: Arc::clone(fs),
            file,
            path: path.to_path_buf(),
            sync_failure: Mutex::new(None),
        }
    }

    /// Opens an existing file for reading and writing; `None` if it does not exist.
    pub(crate) fn open_existing(fs: &SharedFs, path: &Path) -> Result<Option<Self>> {
        match fs.open(path) {
            Ok(file) => Ok(Some(Self::new(fs, file, path))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("open", path)(e)),
        }
    }

    /// Creates a file (truncating any existing one) for reading and writing.
    pub(crate) fn create(fs: &SharedFs, path: &Path) -> Result<Self> {
        let file = fs.create(path).map_err(StorageError::io("create", path))?;
        Ok(Self::new(fs, file, path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Current length of the file.
    pub(crate) fn file_len(&self) -> Result<u64> {
        self.fs
            .file_len(&self.file)
            .map_err(StorageError::io("stat", &self.path))
    }

    /// Last modification time of the file.
    pub(crate) fn modified(&self) -> Result<SystemTime> {
        self.fs
            .modified(&self.file)
            .map_err(StorageError::io("stat", &self.path))
    }

    /// Extends (sparsely) or shortens the file.
    pub(crate) fn set_len(&self, len: u64) -> Result<()> {
        self.fs
            .set_len(&self.file, len)
            .map_err(StorageError::io("set_len", &self.path))
    }

    /// Evicts the clean page-cache pages of the `len` bytes from `offset` (advisory).
    pub(crate) fn drop_cache(&self, offset: u64, len: u64) -> Result<()> {
        self.fs
            .drop_cache(&self.file, offset, len)
            .map_err(StorageError::io("fadvise", &self.path))
    }

    /// Reserves real blocks for the `len` bytes from `offset`, extending the file if shorter.
    pub(crate) fn allocate(&self, offset: u64, len: u64) -> Result<()> {
        self.fs
            .allocate(&self.file, offset, len)
            .map_err(StorageError::io("fallocate", &self.path))
    }

    /// Makes sure the blocks below `need` are allocated, given that those below `*allocated`
    /// already are: if `need` is past `*allocated`, allocates from there up to
    /// [`chunk_end`]`(need, chunk, limit)` and advances `*allocated`. On error (`NoSpace` on
    /// a full disk) nothing was written and `*allocated` is unchanged.
    pub(crate) fn allocate_ahead(
        &self,
        allocated: &mut u64,
        need: u64,
        chunk: u64,
        limit: u64,
    ) -> Result<()> {
        if need <= *allocated {
            return Ok(());
        }
        let end = chunk_end(need, chunk, limit);
        self.allocate(*allocated, end - *allocated)?;
        *allocated = end;
        Ok(())
    }

    /// [`FileHandle::allocate_ahead`] when (re)activating a file. When `required` is false a
    /// full disk is not an error: it is logged and nothing more is allocated (the next
    /// growth then fails cleanly with `NoSpace`). Used when reopening, so that a log on a
    /// full disk can still be opened and read.
    pub(crate) fn preallocate(
        &self,
        allocated: &mut u64,
        need: u64,
        chunk: u64,
        limit: u64,
        required: bool,
    ) -> Result<()> {
        match self.allocate_ahead(allocated, need, chunk, limit) {
            Err(e) if !required && e.is_no_space() => {
                tracing::warn!(
                    file = %self.path.display(),
                    "cannot preallocate from byte {allocated} on: {e}"
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Writes all of `buf` at `position`.
    pub(crate) fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()> {
        self.fs
            .write_at(&self.file, buf, position)
            .map_err(StorageError::io("write", &self.path))
    }

    /// fdatasync: the data, and the metadata needed to read it back.
    pub(crate) fn sync_data(&self) -> Result<()> {
        self.sync("fdatasync", |fs, file| fs.sync_data(file))
    }

    /// fsync: data and all metadata (used after a length change).
    pub(crate) fn sync_all(&self) -> Result<()> {
        self.sync("fsync", |fs, file| fs.sync_all(file))
    }

    fn sync(
        &self,
        op: &'static str,
        call: impl FnOnce(&dyn FileSystem, &File) -> io::Result<()>,
    ) -> Result<()> {
        let mut failure = self.sync_failure.lock();
        if let Some(earlier) = failure.as_ref() {
            return Err(StorageError::Io {
                op,
                path: self.path.clone(),
                source: io::Error::other(format!("an earlier sync of this file failed: {earlier}")),
            });
        }
        call(self.fs.as_ref(), &self.file).map_err(|e| {
            *failure = Some(e.to_string());
            StorageError::io(op, &self.path)(e)
        })
    }

    /// Maps the first `len` bytes read-only (`None` when `len == 0`).
    pub(crate) fn map(&self, len: u64) -> Result<Option<Mapping>> {
        self.fs
            .map(&self.file, len)
            .map_err(StorageError::io("mmap", &self.path))
    }
}

/// Where to allocate up to so that the bytes below `need` are backed by blocks: `need`
/// rounded up to a multiple of `chunk`, but not past `limit` (the file's preallocated
/// maximum), and never below `need` itself (a batch larger than its segment). With `chunk`
/// = `u64::MAX` (Kafka's `preallocate=true`) that is the whole of `limit` at once.
pub(crate) fn chunk_end(need: u64, chunk: u64, limit: u64) -> u64 {
    let chunk = chunk.max(1);
    need.div_ceil(chunk)
        .saturating_mul(chunk)
        .min(limit)
        .max(need)
}

/// Creates `dir` (and missing parents) unless it exists; whether it was created.
pub(crate) fn ensure_dir(fs: &SharedFs, dir: &Path) -> Result<bool> {
    fs.ensure_dir(dir)
        .map_err(StorageError::io("create_dir_all", dir))
}

/// Names of the entries of `dir` that are valid UTF-8 (others cannot be ours).
pub(crate) fn list_dir(fs: &SharedFs, dir: &Path) -> Result<Vec<String>> {
    fs.list_dir(dir).map_err(StorageError::io("read_dir", dir))
}

/// Removes a file; a file that is already gone is not an error.
pub(crate) fn remove_file(fs: &SharedFs, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StorageError::io("remove", path)(e)),
        _ => Ok(()),
    }
}

pub(crate) fn remove_dir_all(fs: &SharedFs, dir: &Path) -> Result<()> {
    fs.remove_dir_all(dir)
        .map_err(StorageError::io("remove_dir_all", dir))
}

pub(crate) fn rename(fs: &SharedFs, from: &Path, to: &Path) -> Result<()> {
    fs.rename(from, to)
        .map_err(StorageError::io("rename", from))
}

/// fsyncs a directory so that file creations, renames and removals in it are durable.
pub(crate) fn sync_dir(fs: &SharedFs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(StorageError::io("fsync dir", dir))
}
