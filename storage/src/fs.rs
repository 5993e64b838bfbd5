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
//! # File descriptors are opened lazily and closed when idle
//!
//! A [`FileHandle`] holds its descriptor only while it is used: every call opens the file if it
//! is closed, and the process-wide budget ([`set_max_open_files`]) closes the least recently
//! used handles once more are open than it allows. So ten thousand partitions, three files
//! each, fit under a descriptor limit of a few thousand: idle ones hold none. The memory maps
//! of a file stay valid without its descriptor, so reads never reopen anything.
//!
//! A handle is closed only while nothing written through it awaits a sync. Linux reports a
//! failed write-back to the descriptors open at the time (and to those opened before it), so
//! a descriptor opened after a failure could fsync "successfully" over lost data. Files whose
//! contents are rebuilt after a crash anyway (indexes) are exempt ([`FileHandle::unguarded`]).
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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Weak;

use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
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
    /// Reads the whole file `path` (`NotFound` if missing); for small files such as the
    /// broker's metadata.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
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
    /// Where the file's first hole starts (`SEEK_HOLE` from 0; the file's length if it has
    /// none or the file system cannot tell). Bytes from there on were never written: segments
    /// allocate and write from the start, so no batch lies past it.
    fn first_hole(&self, file: &File) -> io::Result<u64>;
    /// Opens a directory read-only, to name its file system in [`FileSystem::sync_fs`].
    fn open_dir(&self, dir: &Path) -> io::Result<File>;
    /// syncfs: makes everything written to the file system holding `dir` durable (file
    /// data and lengths, directory entries), reporting write-back errors since `dir` was
    /// opened.
    fn sync_fs(&self, dir: &File) -> io::Result<()>;
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

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
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

    fn first_hole(&self, file: &File) -> io::Result<u64> {
        match rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(0)) {
            Ok(at) => Ok(at),
            Err(Errno::INVAL | Errno::NXIO | Errno::OPNOTSUPP) => Ok(file.metadata()?.len()),
            Err(e) => Err(e.into()),
        }
    }

    fn open_dir(&self, dir: &Path) -> io::Result<File> {
        File::open(dir)
    }

    fn sync_fs(&self, dir: &File) -> io::Result<()> {
        rustix::fs::syncfs(dir)?;
        Ok(())
    }
}

/// The file system a log uses, shared by all its file handles.
pub(crate) type SharedFs = Arc<dyn FileSystem>;

/// The process-wide budget of descriptors held by log files (module docs).
struct OpenFiles {
    max: AtomicUsize,
    open: AtomicUsize,
    /// Handles that may hold a descriptor (closed and dropped ones are swept out when the
    /// budget is enforced).
    registry: Mutex<Vec<Weak<Slot>>>,
    /// Ticks for least-recently-used order.
    clock: AtomicU64,
    /// When the last budget pass ran ([`monotonic_ms`]).
    last_pass: AtomicU64,
    /// The last pass could not get under the budget (handles awaiting syncs): the next one
    /// waits [`ENFORCE_EVERY_MS`].
    stuck: AtomicBool,
}

/// The shortest time between two budget passes not forced by running out of descriptors.
const ENFORCE_EVERY_MS: u64 = 10;

/// Milliseconds since the first call, for spacing budget passes.
fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    u64::try_from(
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

static OPEN_FILES: OpenFiles = OpenFiles {
    max: AtomicUsize::new(usize::MAX),
    open: AtomicUsize::new(0),
    registry: Mutex::new(Vec::new()),
    clock: AtomicU64::new(0),
    last_pass: AtomicU64::new(0),
    stuck: AtomicBool::new(false),
};

/// Sets how many file descriptors log files may hold at once (default: no limit). Handles
/// past it are closed, least recently used first, and reopened when next used.
pub fn set_max_open_files(max: usize) {
    OPEN_FILES.max.store(max.max(16), Ordering::Relaxed);
    OPEN_FILES.enforce(true);
}

/// How many file descriptors log files hold now.
pub fn open_files() -> usize {
    OPEN_FILES.open.load(Ordering::Relaxed)
}

impl OpenFiles {
    fn opened(&self, slot: &Arc<Slot>) {
        self.registry.lock().push(Arc::downgrade(slot));
        if self.open.fetch_add(1, Ordering::Relaxed) + 1 > self.max.load(Ordering::Relaxed) {
            self.enforce(false);
        }
    }

    /// Closes idle handles, least recently used first, until a tenth below the budget. A pass
    /// sorts every open handle, so unless `now` (out of descriptors) passes run at most every
    /// [`ENFORCE_EVERY`]: while many handles await their sync, none can be closed, and
    /// every open would otherwise pay for a pass that finds nothing.
    fn enforce(&self, now: bool) {
        let max = self.max.load(Ordering::Relaxed);
        if self.open.load(Ordering::Relaxed) <= max {
            return;
        }
        let tick = monotonic_ms();
        let last = self.last_pass.load(Ordering::Relaxed);
        let stuck = self.stuck.load(Ordering::Relaxed);
        if !now && stuck && tick < last.saturating_add(ENFORCE_EVERY_MS) {
            return;
        }
        self.last_pass.store(tick, Ordering::Relaxed);
        let target = max - max / 10;
        let mut registry = self.registry.lock();
        let mut candidates: Vec<(u64, Arc<Slot>)> = registry
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| s.closable())
            .map(|s| (s.last_used.load(Ordering::Relaxed), s))
            .collect();
        candidates.sort_unstable_by_key(|(used, _)| *used);
        for (_, slot) in candidates {
            if self.open.load(Ordering::Relaxed) <= target {
                break;
            }
            slot.try_close();
        }
        registry.retain(|w| w.upgrade().is_some_and(|s| s.is_open()));
        self.stuck
            .store(self.open.load(Ordering::Relaxed) > max, Ordering::Relaxed);
    }
}

/// Runs `open` (any call that takes a descriptor); if the process is out of descriptors,
/// closes idle log files and tries once more.
fn with_descriptor<T>(open: impl Fn() -> io::Result<T>) -> io::Result<T> {
    match open() {
        Err(e) if e.raw_os_error() == Some(Errno::MFILE.raw_os_error()) => {
            OPEN_FILES.enforce(true);
            open()
        }
        other => other,
    }
}

/// A file and the descriptor it holds, if any.
#[derive(Debug)]
struct Slot {
    fs: SharedFs,
    path: PathBuf,
    file: RwLock<Option<File>>,
    last_used: AtomicU64,
    /// Closable only while no write awaits a sync (module docs).
    guarded: AtomicBool,
    unsynced: AtomicBool,
}

impl Slot {
    fn is_open(&self) -> bool {
        self.file.try_read().is_none_or(|f| f.is_some())
    }

    fn closable(&self) -> bool {
        !self.awaits_sync() && self.is_open()
    }

    fn awaits_sync(&self) -> bool {
        self.guarded.load(Ordering::Relaxed) && self.unsynced.load(Ordering::Acquire)
    }

    /// Closes the descriptor unless the file is in use or has unsynced writes.
    fn try_close(&self) -> bool {
        let Some(mut file) = self.file.try_write() else {
            return false;
        };
        if file.is_none() || self.awaits_sync() {
            return false;
        }
        *file = None;
        OPEN_FILES.open.fetch_sub(1, Ordering::Relaxed);
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.file.get_mut().is_some() {
            OPEN_FILES.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A file of the log, read-write, with its path kept for error messages. Its descriptor is
/// opened on use and may be closed while idle (module docs).
#[derive(Debug)]
pub(crate) struct FileHandle {
    slot: Arc<Slot>,
    /// The first failed sync of this file, if any (module docs: failed syncs are sticky).
    /// The lock is held across each sync.
    sync_failure: Mutex<Option<String>>,
}

impl FileHandle {
    fn new(fs: &SharedFs, file: File, path: &Path) -> Self {
        let slot = Arc::new(Slot {
            fs: Arc::clone(fs),
            path: path.to_path_buf(),
            file: RwLock::new(Some(file)),
            last_used: AtomicU64::new(OPEN_FILES.clock.fetch_add(1, Ordering::Relaxed)),
            guarded: AtomicBool::new(true),
            unsynced: AtomicBool::new(false),
        });
        OPEN_FILES.opened(&slot);
        Self {
            slot,
            sync_failure: Mutex::new(None),
        }
    }

    /// Marks a file whose contents are rebuilt after a crash (an index): its descriptor may be
    /// closed even with writes not yet synced.
    pub(crate) fn unguarded(self) -> Self {
        self.slot.guarded.store(false, Ordering::Relaxed);
        self
    }

    /// Runs `call` on the open file, opening it first if its descriptor was closed. The
    /// descriptor cannot be closed while `call` runs (closing needs the write lock).
    fn with_file<R>(
        &self,
        op: &'static str,
        call: impl FnOnce(&dyn FileSystem, &File) -> io::Result<R>,
    ) -> Result<R> {
        let slot = &self.slot;
        slot.last_used.store(
            OPEN_FILES.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        let guard = slot.file.read();
        let guard = if guard.is_some() {
            guard
        } else {
            drop(guard);
            self.reopen()?
        };
        match guard.as_ref() {
            Some(file) => call(slot.fs.as_ref(), file).map_err(StorageError::io(op, &slot.path)),
            None => unreachable!("reopen returns an open file"),
        }
    }

    /// Opens the file again after its descriptor was closed; returns it locked for reading, so
    /// the budget check it triggers cannot close it again before it is used.
    fn reopen(&self) -> Result<RwLockReadGuard<'_, Option<File>>> {
        let slot = &self.slot;
        let mut file = slot.file.write();
        if file.is_none() {
            let opened = with_descriptor(|| slot.fs.open(&slot.path))
                .map_err(StorageError::io("open", &slot.path))?;
            *file = Some(opened);
            let file = RwLockWriteGuard::downgrade(file);
            OPEN_FILES.opened(slot);
            return Ok(file);
        }
        Ok(RwLockWriteGuard::downgrade(file))
    }

    /// Opens an existing file for reading and writing; `None` if it does not exist.
    pub(crate) fn open_existing(fs: &SharedFs, path: &Path) -> Result<Option<Self>> {
        match with_descriptor(|| fs.open(path)) {
            Ok(file) => Ok(Some(Self::new(fs, file, path))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("open", path)(e)),
        }
    }

    /// Creates a file (truncating any existing one) for reading and writing.
    pub(crate) fn create(fs: &SharedFs, path: &Path) -> Result<Self> {
        let file = with_descriptor(|| fs.create(path)).map_err(StorageError::io("create", path))?;
        Ok(Self::new(fs, file, path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.slot.path
    }

    /// Where the file's first hole starts (see [`FileSystem::first_hole`]).
    pub(crate) fn first_hole(&self) -> Result<u64> {
        self.with_file("lseek", |fs, file| fs.first_hole(file))
    }

    /// Current length of the file.
    pub(crate) fn file_len(&self) -> Result<u64> {
        self.with_file("stat", |fs, file| fs.file_len(file))
    }

    /// Last modification time of the file.
    pub(crate) fn modified(&self) -> Result<SystemTime> {
        self.with_file("stat", |fs, file| fs.modified(file))
    }

    /// Extends (sparsely) or shortens the file.
    pub(crate) fn set_len(&self, len: u64) -> Result<()> {
        self.with_file("set_len", |fs, file| fs.set_len(file, len))
    }

    /// Evicts the clean page-cache pages of the `len` bytes from `offset` (advisory).
    pub(crate) fn drop_cache(&self, offset: u64, len: u64) -> Result<()> {
        self.with_file("fadvise", |fs, file| fs.drop_cache(file, offset, len))
    }

    /// Reserves real blocks for the `len` bytes from `offset`, extending the file if shorter.
    pub(crate) fn allocate(&self, offset: u64, len: u64) -> Result<()> {
        self.with_file("fallocate", |fs, file| fs.allocate(file, offset, len))
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
                    file = %self.path().display(),
                    "cannot preallocate from byte {allocated} on: {e}"
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Writes all of `buf` at `position`.
    pub(crate) fn write_all_at(&self, buf: &[u8], position: u64) -> Result<()> {
        // Before the write: the descriptor must not be closed while it awaits a sync.
        self.slot.unsynced.store(true, Ordering::Release);
        self.with_file("write", |fs, file| fs.write_at(file, buf, position))
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
                path: self.path().to_path_buf(),
                source: io::Error::other(format!("an earlier sync of this file failed: {earlier}")),
            });
        }
        // Cleared before the sync: a write racing with it sets it again.
        self.slot.unsynced.store(false, Ordering::Release);
        self.with_file(op, call).inspect_err(|e| {
            self.slot.unsynced.store(true, Ordering::Release);
            *failure = Some(e.to_string());
        })
    }

    /// Maps the first `len` bytes read-only (`None` when `len == 0`).
    pub(crate) fn map(&self, len: u64) -> Result<Option<Mapping>> {
        self.with_file("mmap", |fs, file| fs.map(file, len))
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
    with_descriptor(|| fs.ensure_dir(dir)).map_err(StorageError::io("create_dir_all", dir))
}

/// Names of the entries of `dir` that are valid UTF-8 (others cannot be ours).
pub(crate) fn list_dir(fs: &SharedFs, dir: &Path) -> Result<Vec<String>> {
    with_descriptor(|| fs.list_dir(dir)).map_err(StorageError::io("read_dir", dir))
}

/// Removes a file; a file that is already gone is not an error.
pub(crate) fn remove_file(fs: &SharedFs, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StorageError::io("remove", path)(e)),
        _ => Ok(()),
    }
}

pub(crate) fn remove_dir_all(fs: &SharedFs, dir: &Path) -> Result<()> {
    with_descriptor(|| fs.remove_dir_all(dir)).map_err(StorageError::io("remove_dir_all", dir))
}

pub(crate) fn rename(fs: &SharedFs, from: &Path, to: &Path) -> Result<()> {
    fs.rename(from, to)
        .map_err(StorageError::io("rename", from))
}

/// fsyncs a directory so that file creations, renames and removals in it are durable.
pub(crate) fn sync_dir(fs: &SharedFs, dir: &Path) -> Result<()> {
    with_descriptor(|| fs.sync_dir(dir)).map_err(StorageError::io("fsync dir", dir))
}
