//! A power-loss model: a [`FileSystem`] that remembers what each sync made durable, and puts
//! the files under its root back to exactly that after a simulated cut.
//!
//! What survives a power cut, as the model has it:
//! * a file's data and length as of its last `fdatasync`/`fsync` (nothing written since);
//! * a directory's entries as of its last fsync (an entry created, renamed or removed since
//!   is undone: a new file vanishes, a removed one comes back with its durable contents);
//! * everything, as it was, at a `syncfs`.
//!
//! Contents are kept per inode (a rename moves an inode, not its data) and read from the file
//! at each sync, so the model is for small test data. [`PowerLossFileSystem::cut`] makes
//! every later call fail with `EIO` (the machine is off: nothing more becomes durable), the
//! caller stops whatever used the file system, and [`PowerLossFileSystem::restore`] then
//! rewrites the tree under the root to its durable state.

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    io,
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicI64, Ordering},
    time::SystemTime,
};

use parking_lot::Mutex;

use crate::{
    fs::{FileSystem, OsFileSystem},
    mmap::Mapping,
};

/// One durable directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

/// A file's durable contents: the bytes up to its first hole, and its length (the rest reads
/// as zeros: segments are sized sparsely far beyond their data).
#[derive(Debug, Clone, Default)]
struct Contents {
    data: Vec<u8>,
    len: u64,
}

#[derive(Debug, Default)]
struct Durable {
    /// Entries of each directory as of its last sync (a directory never synced has none).
    dirs: HashMap<PathBuf, BTreeMap<String, Entry>>,
    /// Contents of each file inode as of its last sync.
    contents: HashMap<u64, Contents>,
}

/// The power-loss model (module docs).
#[derive(Debug)]
pub struct PowerLossFileSystem {
    inner: OsFileSystem,
    root: PathBuf,
    durable: Mutex<Durable>,
    off: AtomicBool,
    /// Calls left before the power goes off by itself (-1: no such cut planned).
    calls_left: AtomicI64,
    /// Syncs of files whose path contains this: how many more may happen before the rest
    /// stall until the power goes ([`PowerLossFileSystem::stall_syncs`]).
    stalled: Mutex<Option<(String, u64)>>,
}

fn off_error() -> io::Error {
    io::Error::from_raw_os_error(5)
}

fn read_contents(file: &File) -> io::Result<Contents> {
    let len = file.metadata()?.len();
    let data_end = OsFileSystem.first_hole(file)?.min(len);
    let mut data = vec![0u8; usize::try_from(data_end).map_err(io::Error::other)?];
    file.read_exact_at(&mut data, 0)?;
    Ok(Contents { data, len })
}

impl PowerLossFileSystem {
    /// A model of the tree under `root` (which must exist), taking what is there now as
    /// durable.
    pub fn new(root: &Path) -> io::Result<Self> {
        let model = Self {
            inner: OsFileSystem,
            root: root.to_path_buf(),
            durable: Mutex::new(Durable::default()),
            off: AtomicBool::new(false),
            calls_left: AtomicI64::new(-1),
            stalled: Mutex::new(None),
        };
        model.make_all_durable()?;
        Ok(model)
    }

    /// The power goes off: from now on every call fails with `EIO`.
    pub fn cut(&self) {
        self.off.store(true, Ordering::SeqCst);
    }

    /// Puts the tree under the root back to its durable state. Call after [`Self::cut`], once
    /// nothing uses the files any more.
    pub fn restore(&self) -> io::Result<()> {
        let durable = self.durable.lock();
        restore_dir(&self.root, &durable)
    }

    /// The power goes off after `calls` more calls to the file system (those still work), so
    /// that a test can cut an operation at each of its steps in turn.
    pub fn cut_after(&self, calls: u64) {
        let calls = i64::try_from(calls).unwrap_or(i64::MAX);
        self.calls_left.store(calls, Ordering::SeqCst);
    }

    /// After `pass` more syncs of files whose path contains `part`, such syncs stall until
    /// the power goes (then fail): a disk slow to make them durable, so that a test can show
    /// what waits for them and what does not.
    pub fn stall_syncs(&self, part: &str, pass: u64) {
        *self.stalled.lock() = Some((part.to_string(), pass));
    }

    /// Stalls a sync of `file` if [`PowerLossFileSystem::stall_syncs`] says so.
    fn maybe_stall(&self, file: &File) {
        use std::os::fd::AsRawFd;
        let stall = {
            let mut stalled = self.stalled.lock();
            let Some((part, pass)) = stalled.as_mut() else {
                return;
            };
            let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()));
            if !path.is_ok_and(|p| p.to_string_lossy().contains(part.as_str())) {
                return;
            }
            if *pass > 0 {
                *pass -= 1;
                false
            } else {
                true
            }
        };
        while stall && !self.is_off() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Whether the power is off.
    pub fn is_off(&self) -> bool {
        self.off.load(Ordering::SeqCst)
    }

    fn check(&self) -> io::Result<()> {
        let left = self.calls_left.load(Ordering::SeqCst);
        if left == 0 {
            self.cut();
        } else if left > 0 {
            self.calls_left.fetch_sub(1, Ordering::SeqCst);
        }
        if self.off.load(Ordering::SeqCst) {
            Err(off_error())
        } else {
            Ok(())
        }
    }

    fn record_file(&self, file: &File) -> io::Result<()> {
        let contents = read_contents(file)?;
        let ino = file.metadata()?.ino();
        self.durable.lock().contents.insert(ino, contents);
        Ok(())
    }

    fn record_dir(&self, dir: &Path) -> io::Result<()> {
        let mut entries = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            entries.insert(
                name,
                if meta.is_dir() {
                    Entry::Dir
                } else {
                    Entry::File(meta.ino())
                },
            );
        }
        self.durable.lock().dirs.insert(dir.to_path_buf(), entries);
        Ok(())
    }

    /// Everything under the root, as it is now, becomes durable (`syncfs`).
    fn make_all_durable(&self) -> io::Result<()> {
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            self.record_dir(&dir)?;
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    stack.push(entry.path());
                } else {
                    let contents = read_contents(&File::open(entry.path())?)?;
                    self.durable.lock().contents.insert(meta.ino(), contents);
                }
            }
        }
        Ok(())
    }
}

/// Rewrites `dir` to its durable entries, recursively.
fn restore_dir(dir: &Path, durable: &Durable) -> io::Result<()> {
    let empty = BTreeMap::new();
    let want = durable.dirs.get(dir).unwrap_or(&empty);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.metadata()?.is_dir();
        let keep = match want.get(&name) {
            Some(Entry::Dir) => is_dir,
            Some(Entry::File(_)) => !is_dir,
            None => false,
        };
        if !keep {
            if is_dir {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    for (name, entry) in want {
        let path = dir.join(name);
        match entry {
            Entry::Dir => {
                if !path.is_dir() {
                    std::fs::create_dir(&path)?;
                }
                restore_dir(&path, durable)?;
            }
            Entry::File(ino) => {
                let contents = durable.contents.get(ino).cloned().unwrap_or_default();
                std::fs::write(&path, &contents.data)?;
                File::options()
                    .write(true)
                    .open(&path)?
                    .set_len(contents.len)?;
            }
        }
    }
    Ok(())
}

impl FileSystem for PowerLossFileSystem {
    fn create(&self, path: &Path) -> io::Result<File> {
        self.check()?;
        let existed = path.exists();
        let file = self.inner.create(path)?;
        if !existed {
            // A new inode has nothing durable yet (an old record of a reused number is stale).
            let ino = file.metadata()?.ino();
            self.durable
                .lock()
                .contents
                .insert(ino, Contents::default());
        }
        Ok(file)
    }
    fn open(&self, path: &Path) -> io::Result<File> {
        self.check()?;
        self.inner.open(path)
    }
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.check()?;
        self.inner.read_file(path)
    }
    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()> {
        self.check()?;
        self.inner.write_at(file, buf, position)
    }
    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.maybe_stall(file);
        self.check()?;
        self.inner.sync_data(file)?;
        self.record_file(file)
    }
    fn sync_all(&self, file: &File) -> io::Result<()> {
        self.maybe_stall(file);
        self.check()?;
        self.inner.sync_all(file)?;
        self.record_file(file)
    }
    fn allocate(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.allocate(file, offset, len)
    }
    fn drop_cache(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.drop_cache(file, offset, len)
    }
    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.set_len(file, len)
    }
    fn file_len(&self, file: &File) -> io::Result<u64> {
        self.check()?;
        self.inner.file_len(file)
    }
    fn modified(&self, file: &File) -> io::Result<SystemTime> {
        self.check()?;
        self.inner.modified(file)
    }
    fn map(&self, file: &File, len: u64) -> io::Result<Option<Mapping>> {
        self.check()?;
        self.inner.map(file, len)
    }
    fn ensure_dir(&self, dir: &Path) -> io::Result<bool> {
        self.check()?;
        self.inner.ensure_dir(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check()?;
        self.inner.list_dir(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check()?;
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check()?;
        self.inner.remove_dir_all(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check()?;
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check()?;
        self.inner.sync_dir(dir)?;
        self.record_dir(dir)
    }
    fn first_hole(&self, file: &File) -> io::Result<u64> {
        self.check()?;
        self.inner.first_hole(file)
    }
    fn open_dir(&self, dir: &Path) -> io::Result<File> {
        self.check()?;
        self.inner.open_dir(dir)
    }
    fn sync_fs(&self, dir: &File) -> io::Result<()> {
        self.check()?;
        self.inner.sync_fs(dir)?;
        self.make_all_durable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_keeps_exactly_what_was_synced() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::write(r.join("old"), b"durable").unwrap();
        let fs = PowerLossFileSystem::new(r).unwrap();
        // Synced data, and an entry made durable by the directory's sync: survives.
        let a = fs.create(&r.join("a")).unwrap();
        fs.write_at(&a, b"hello", 0).unwrap();
        fs.sync_data(&a).unwrap();
        // Data written after the sync: lost.
        fs.write_at(&a, b" world", 5).unwrap();
        fs.sync_dir(r).unwrap();
        // A file whose data is synced but whose entry is not: lost.
        let b = fs.create(&r.join("b")).unwrap();
        fs.write_at(&b, b"b", 0).unwrap();
        fs.sync_data(&b).unwrap();
        // A removal never made durable: undone.
        fs.remove_file(&r.join("old")).unwrap();
        fs.cut();
        assert!(fs.create(&r.join("c")).is_err(), "the power is off");
        fs.restore().unwrap();
        assert_eq!(std::fs::read(r.join("a")).unwrap(), b"hello");
        assert!(!r.join("b").exists());
        assert_eq!(std::fs::read(r.join("old")).unwrap(), b"durable");
    }

    #[test]
    fn a_new_directory_needs_its_parent_synced() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let fs = PowerLossFileSystem::new(r).unwrap();
        fs.ensure_dir(&r.join("d")).unwrap();
        fs.sync_dir(r).unwrap();
        fs.ensure_dir(&r.join("d/e")).unwrap();
        fs.ensure_dir(&r.join("f")).unwrap();
        fs.cut();
        fs.restore().unwrap();
        assert!(r.join("d").is_dir());
        assert!(!r.join("d/e").exists(), "d was never synced");
        assert!(!r.join("f").exists(), "the root was not synced after f");
    }

    #[test]
    fn renames_become_durable_with_their_directory() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let fs = PowerLossFileSystem::new(r).unwrap();
        let write = |name: &str, data: &[u8]| {
            let f = fs.create(&r.join(name)).unwrap();
            fs.write_at(&f, data, 0).unwrap();
            fs.sync_all(&f).unwrap();
        };
        write("meta", b"v1");
        fs.sync_dir(r).unwrap();
        write("meta.tmp", b"v2");
        fs.rename(&r.join("meta.tmp"), &r.join("meta")).unwrap();
        fs.cut();
        fs.restore().unwrap();
        assert_eq!(
            std::fs::read(r.join("meta")).unwrap(),
            b"v1",
            "rename not synced"
        );
        assert!(!r.join("meta.tmp").exists());

        let fs = PowerLossFileSystem::new(r).unwrap();
        let f = fs.create(&r.join("meta.tmp")).unwrap();
        fs.write_at(&f, b"v3", 0).unwrap();
        fs.sync_all(&f).unwrap();
        fs.rename(&r.join("meta.tmp"), &r.join("meta")).unwrap();
        fs.sync_dir(r).unwrap();
        fs.cut();
        fs.restore().unwrap();
        assert_eq!(std::fs::read(r.join("meta")).unwrap(), b"v3");
    }
}
