//! Opening or creating many partition logs with one file-system sync instead of an fsync per
//! file.
//!
//! Opening a log makes everything it holds durable, and creating one makes its new files and
//! directory entries durable: a few fsyncs each, milliseconds per partition, and tens of
//! seconds for ten thousand. [`BulkSync`] hands out a file system whose syncs are skipped
//! while it is open; [`BulkSync::finish`] then makes all of it durable with one `syncfs` of
//! the data directory's file system, after which syncs of the logs opened through it go
//! through again. Nothing opened through it may be used for writes that are acknowledged
//! before `finish` returned.
//!
//! A [`SyncGroup`] hands out the batches of one owner (a broker's partitions) and can defer
//! the syncs of all of them at once ([`SyncGroup::defer_all`]): closing ten thousand logs
//! cleanly then costs one `syncfs`, not six fsyncs each.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::SystemTime,
};

use crate::{error::StorageError, fs::FileSystem, mmap::Mapping};

/// The batches of one owner, whose syncs can also be deferred all at once (module docs).
#[derive(Debug)]
pub struct SyncGroup {
    base: Arc<dyn FileSystem>,
    all: Arc<AtomicBool>,
}

impl SyncGroup {
    pub fn new(base: Arc<dyn FileSystem>) -> Self {
        Self {
            base,
            all: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts a batch of opens or creations under `dir`.
    pub fn batch(&self, dir: &Path) -> Result<BulkSync, StorageError> {
        BulkSync::begin_in(self.base.clone(), dir, self.all.clone())
    }

    /// Defers the syncs of every log of every batch of this group until the returned batch
    /// finishes (or is dropped). Only while no write is acknowledged: at shutdown.
    pub fn defer_all(&self, dir: &Path) -> Result<DeferAll, StorageError> {
        let handle = self
            .base
            .open_dir(dir)
            .map_err(StorageError::io("open dir", dir))?;
        self.all.store(true, Ordering::Release);
        Ok(DeferAll {
            base: self.base.clone(),
            all: self.all.clone(),
            dir: handle,
            dir_path: dir.to_path_buf(),
        })
    }
}

/// Every sync of a [`SyncGroup`] deferred until [`DeferAll::finish`].
#[derive(Debug)]
pub struct DeferAll {
    base: Arc<dyn FileSystem>,
    all: Arc<AtomicBool>,
    dir: File,
    dir_path: PathBuf,
}

impl DeferAll {
    /// Makes everything written meanwhile durable with one `syncfs`.
    pub fn finish(self) -> Result<(), StorageError> {
        self.base
            .sync_fs(&self.dir)
            .map_err(StorageError::io("syncfs", &self.dir_path))
    }
}

impl Drop for DeferAll {
    fn drop(&mut self) {
        self.all.store(false, Ordering::Release);
    }
}

/// A batch of log opens or creations that share one sync (module docs).
#[derive(Debug)]
pub struct BulkSync {
    fs: Arc<Deferring>,
    /// Opened before any write of the batch, so `syncfs` reports every write-back error since.
    dir: File,
    dir_path: PathBuf,
}

impl BulkSync {
    /// Starts a batch on `fs` for logs under `dir`.
    pub fn begin(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<Self, StorageError> {
        Self::begin_in(fs, dir, Arc::new(AtomicBool::new(false)))
    }

    fn begin_in(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        all: Arc<AtomicBool>,
    ) -> Result<Self, StorageError> {
        let handle = fs
            .open_dir(dir)
            .map_err(StorageError::io("open dir", dir))?;
        Ok(Self {
            fs: Arc::new(Deferring {
                inner: fs,
                deferring: AtomicBool::new(true),
                all,
            }),
            dir: handle,
            dir_path: dir.to_path_buf(),
        })
    }

    /// The file system to open the batch's logs on.
    pub fn fs(&self) -> Arc<dyn FileSystem> {
        self.fs.clone()
    }

    /// Makes everything the batch wrote durable; from here on its logs sync normally.
    pub fn finish(self) -> Result<(), StorageError> {
        self.fs
            .inner
            .sync_fs(&self.dir)
            .map_err(StorageError::io("syncfs", &self.dir_path))
    }
}

impl Drop for BulkSync {
    fn drop(&mut self) {
        // Finished or abandoned: either way, later syncs must reach the disk.
        self.fs.deferring.store(false, Ordering::Release);
    }
}

/// Delegates everything, skipping syncs while its batch is open.
#[derive(Debug)]
struct Deferring {
    inner: Arc<dyn FileSystem>,
    /// This batch is open.
    deferring: AtomicBool,
    /// Its group defers everything ([`SyncGroup::defer_all`]).
    all: Arc<AtomicBool>,
}

impl Deferring {
    fn sync(&self, call: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        if self.deferring.load(Ordering::Acquire) || self.all.load(Ordering::Acquire) {
            Ok(())
        } else {
            call()
        }
    }
}

impl FileSystem for Deferring {
    fn create(&self, path: &Path) -> io::Result<File> {
        self.inner.create(path)
    }
    fn open(&self, path: &Path) -> io::Result<File> {
        self.inner.open(path)
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read_file(path)
    }
    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()> {
        self.inner.write_at(file, buf, position)
    }
    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.sync(|| self.inner.sync_data(file))
    }
    fn sync_all(&self, file: &File) -> io::Result<()> {
        self.sync(|| self.inner.sync_all(file))
    }
    fn allocate(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        self.inner.allocate(file, offset, len)
    }
    fn drop_cache(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        self.inner.drop_cache(file, offset, len)
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
        self.inner.sync_fs(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FaultyFileSystem;
    use crate::{LogConfig, OpenOptions, PartitionLog};

    #[test]
    fn syncs_are_deferred_to_one_syncfs_and_pass_through_after() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(FaultyFileSystem::new());
        let bulk = BulkSync::begin(faults.clone(), dir.path()).unwrap();
        // Every sync of the batch would fail: none is made, so the opens succeed.
        faults.fail_next_syncs(1_000);
        let mut logs: Vec<PartitionLog> = (0..5)
            .map(|i| {
                PartitionLog::open_with(
                    &dir.path().join(format!("t-{i}")),
                    LogConfig::default(),
                    OpenOptions::default().with_fs(bulk.fs()),
                )
                .unwrap()
            })
            .collect();
        // The one syncfs at the end reports the failure.
        assert!(bulk.finish().is_err());
        faults.heal();
        // Afterwards the logs' own syncs reach the file system again.
        let mut b = brook_protocol::batch::testing::simple_batch(1, 1);
        logs[0].append(&mut b, 0).unwrap();
        logs[0].flush().unwrap();
        let mut b = brook_protocol::batch::testing::simple_batch(2, 1);
        logs[1].append(&mut b, 0).unwrap();
        faults.fail_next_syncs(1);
        assert!(logs[1].flush().is_err());
    }

    #[test]
    fn a_group_defers_every_batch_for_a_close() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(FaultyFileSystem::new());
        let group = SyncGroup::new(faults.clone());
        let open = |batch: &BulkSync, name: &str| {
            PartitionLog::open_with(
                &dir.path().join(name),
                LogConfig::default(),
                OpenOptions::default().with_fs(batch.fs()),
            )
            .unwrap()
        };
        let first = group.batch(dir.path()).unwrap();
        let mut a = open(&first, "a");
        first.finish().unwrap();
        let second = group.batch(dir.path()).unwrap();
        let b = open(&second, "b");
        second.finish().unwrap();
        let mut batch = brook_protocol::batch::testing::simple_batch(1, 1);
        a.append(&mut batch, 0).unwrap();
        let before = faults.sync_calls();
        let all = group.defer_all(dir.path()).unwrap();
        a.close().unwrap();
        b.close().unwrap();
        assert_eq!(faults.sync_calls(), before, "no fsync while deferred");
        all.finish().unwrap();
        assert_eq!(faults.sync_calls(), before + 1, "one syncfs");
    }
}
