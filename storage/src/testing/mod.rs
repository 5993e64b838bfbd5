//! Fault injection for tests, in this crate and in the broker's.
//!
//! Owns [`FaultyFileSystem`], a [`FileSystem`] that passes every call to [`OsFileSystem`]
//! unless told, at run time, to fail some of them the way a sick disk does: `EIO` from
//! fsync or from writes, `ENOSPC` from a full disk; and [`PowerLossFileSystem`], which
//! remembers what was made durable and can put a directory tree back to exactly that, as a
//! power cut would leave it. Open a log on it with
//! [`crate::OpenOptions::with_fs`]:
//!
//! ```
//! # fn main() -> Result<(), brook_storage::StorageError> {
//! use std::sync::Arc;
//! use brook_storage::{testing::FaultyFileSystem, LogConfig, OpenOptions, PartitionLog};
//! # let dir = tempfile::tempdir().unwrap();
//! let faults = Arc::new(FaultyFileSystem::new());
//! let options = OpenOptions::default().with_fs(faults.clone());
//! let mut log = PartitionLog::open_with(dir.path(), LogConfig::default(), options)?;
//! faults.fail_next_syncs(1);
//! assert!(log.flush().is_err()); // and the log now refuses writes
//! # Ok(())
//! # }
//! ```

use std::{
    fs::File,
    io,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime},
};

use parking_lot::{Condvar, Mutex};

use crate::{
    fs::{FileSystem, OsFileSystem},
    mmap::Mapping,
};

mod power_loss;
pub use power_loss::PowerLossFileSystem;

/// An injected failure: the error a failing call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `EIO` (raw OS error 5): the device failed.
    Eio,
    /// `ENOSPC` (raw OS error 28, [`io::ErrorKind::StorageFull`]): the disk is full.
    NoSpace,
}

impl Fault {
    /// The `io::Error` a call fails with.
    pub fn to_io_error(self) -> io::Error {
        io::Error::from_raw_os_error(match self {
            Fault::Eio => 5,
            Fault::NoSpace => 28,
        })
    }
}

#[derive(Debug, Default)]
struct Faults {
    /// This many of the next fdatasync / fsync calls (files and directories) fail with EIO.
    failing_syncs: u64,
    /// Every positioned write fails with this.
    writes: Option<Fault>,
    /// `allocate` and writes that would need new blocks fail with ENOSPC.
    disk_full: bool,
    /// Files whose name ends with this are not created until released.
    held_creates: Option<String>,
}

/// A [`FileSystem`] that behaves like [`OsFileSystem`] until told to fail.
///
/// Shared between the test and the log (`Arc`); every switch takes effect at once, for
/// every handle already open.
#[derive(Debug, Default)]
pub struct FaultyFileSystem {
    inner: OsFileSystem,
    faults: Mutex<Faults>,
    syncs: AtomicU64,
    failed_syncs: AtomicU64,
    /// Wakes creates held by [`FaultyFileSystem::hold_creates`].
    released: Condvar,
}

impl FaultyFileSystem {
    /// A file system that does not fail (yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` fdatasync / fsync calls, of files or directories, fail with `EIO`
    /// (added to any still pending).
    pub fn fail_next_syncs(&self, n: u64) {
        let mut f = self.faults.lock();
        f.failing_syncs = f.failing_syncs.saturating_add(n);
    }

    /// Every positioned write fails with `fault` until [`FaultyFileSystem::heal`].
    pub fn fail_writes(&self, fault: Fault) {
        self.faults.lock().writes = Some(fault);
    }

    /// Simulates a full disk, as a real one behaves: `allocate` of a range that is not
    /// backed by blocks yet fails with `ENOSPC`, and so does any write that would need new
    /// blocks (past the file's end, or into a sparse hole); writes into space already
    /// allocated still succeed. `false` frees the space again.
    ///
    /// What is allocated is judged from the file's block count: the first
    /// `min(length, blocks * 512)` bytes count as allocated. That is exact for the files this
    /// crate writes, which are allocated (or written) from the start without gaps, and
    /// conservative for anything else (a hole in the middle makes the tail count as
    /// unallocated).
    pub fn set_disk_full(&self, full: bool) {
        self.faults.lock().disk_full = full;
    }

    /// Creating a file whose name ends with `suffix` waits until
    /// [`FaultyFileSystem::release_creates`] (or 10 s): a slow disk, to catch work done while
    /// it waits.
    pub fn hold_creates(&self, suffix: &str) {
        self.faults.lock().held_creates = Some(suffix.to_string());
    }

    /// Lets held creates go on.
    pub fn release_creates(&self) {
        self.faults.lock().held_creates = None;
        self.released.notify_all();
    }

    /// Stops every injected failure.
    pub fn heal(&self) {
        *self.faults.lock() = Faults::default();
        self.released.notify_all();
    }

    /// fdatasync / fsync calls made so far (files and directories, failed ones included).
    pub fn sync_calls(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// fdatasync / fsync calls failed on purpose so far.
    pub fn failed_syncs(&self) -> u64 {
        self.failed_syncs.load(Ordering::Relaxed)
    }

    fn sync(&self, call: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        {
            let mut f = self.faults.lock();
            if f.failing_syncs > 0 {
                f.failing_syncs -= 1;
                self.failed_syncs.fetch_add(1, Ordering::Relaxed);
                return Err(Fault::Eio.to_io_error());
            }
        }
        call()
    }

    fn disk_full(&self) -> bool {
        self.faults.lock().disk_full
    }
}

/// The bytes of `file` counted as backed by blocks (see [`FaultyFileSystem::set_disk_full`]).
fn allocated_prefix(file: &File) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok(meta.len().min(meta.blocks().saturating_mul(512)))
}

impl FileSystem for FaultyFileSystem {
    fn create(&self, path: &Path) -> io::Result<File> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut faults = self.faults.lock();
        while faults
            .held_creates
            .as_ref()
            .is_some_and(|suffix| path.to_string_lossy().ends_with(suffix.as_str()))
        {
            if self.released.wait_until(&mut faults, deadline).timed_out() {
                break;
            }
        }
        drop(faults);
        self.inner.create(path)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        self.inner.open(path)
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read_file(path)
    }

    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()> {
        let (writes, full) = {
            let f = self.faults.lock();
            (f.writes, f.disk_full)
        };
        if let Some(fault) = writes {
            return Err(fault.to_io_error());
        }
        let end = position.saturating_add(buf.len() as u64);
        if full && end > allocated_prefix(file)? {
            return Err(Fault::NoSpace.to_io_error());
        }
        self.inner.write_at(file, buf, position)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.sync(|| self.inner.sync_data(file))
    }

    fn sync_all(&self, file: &File) -> io::Result<()> {
        self.sync(|| self.inner.sync_all(file))
    }

    fn allocate(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        if self.disk_full() && len > 0 && offset.saturating_add(len) > allocated_prefix(file)? {
            return Err(Fault::NoSpace.to_io_error());
        }
        self.inner.allocate(file, offset, len)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        self.inner.set_len(file, len)
    }

    fn file_len(&self, file: &File) -> io::Result<u64> {
        self.inner.file_len(file)
    }

    fn modified(&self, file: &File) -> io::Result<SystemTime> {
        self.inner.modified(file)
    }

    fn drop_cache(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        self.inner.drop_cache(file, offset, len)
    }

    fn map(&self, file: &File, len: u64) -> io::Result<Option<Mapping>> {
        self.inner.map(file, len)
    }

    fn ensure_dir(&self, dir: &Path) -> io::Result<bool> {
        self.inner.ensure_dir(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.sync(|| self.inner.sync_dir(dir))
    }

    fn first_hole(&self, file: &File) -> io::Result<u64> {
        self.inner.first_hole(file)
    }

    fn open_dir(&self, dir: &Path) -> io::Result<File> {
        self.inner.open_dir(dir)
    }

    fn sync_fs(&self, dir: &File) -> io::Result<()> {
        self.sync(|| self.inner.sync_fs(dir))
    }
}
