//! Group-commit support: syncing outside the log's lock, and the failed state.
//!
//! Owns [`SyncPoint`], the cheap handle a caller takes under the partition lock and syncs
//! after releasing it, and [`FailState`], the failed flag shared by a log and its sync
//! points. The bookkeeping of what is durable ([`crate::PartitionLog::mark_durable`]) stays in
//! the log.
//!
//! # Why a sync point of a segment that has since rolled is still enough
//!
//! A sync point holds the active segment's `.log` file and the log end offset `E` at the
//! moment it was taken; `fdatasync` of that file makes every batch in it below `E` durable.
//! The segments before it were sealed before it was created, and sealing fsyncs a segment
//! before the next one exists, so they were durable already. If the segment rolls between
//! taking the point and syncing it, the roll has fsynced it (all of it, `E` included) before
//! sealing completed; the file handle stays valid (the sync point keeps it open), and the
//! later `fdatasync` is then merely redundant. If that roll's fsync failed instead, the log
//! is failed, and [`SyncPoint::sync`] reports it: a sync point never reports success after
//! the log failed, so nothing written after a failure is ever reported durable.

use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use tracing::error;

use crate::{error::StorageError, fs::FileHandle};

type Result<T> = std::result::Result<T, StorageError>;

/// The failed state of one opened log: set at most once, by the log or by a sync point,
/// and cleared only by reopening the log.
#[derive(Debug, Default)]
pub(crate) struct FailState(OnceLock<String>);

impl FailState {
    /// Records the failure (the first reason wins) and logs it once.
    pub(crate) fn fail(&self, dir: &std::path::Path, reason: String) {
        if self.0.set(reason.clone()).is_ok() {
            error!(dir = %dir.display(), "log stops accepting writes until reopened: {reason}");
        }
    }

    pub(crate) fn reason(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// `WritesDisabled` if failed.
    pub(crate) fn check(&self, dir: &std::path::Path) -> Result<()> {
        match self.reason() {
            None => Ok(()),
            Some(reason) => Err(StorageError::WritesDisabled {
                dir: dir.to_path_buf(),
                reason: reason.to_string(),
            }),
        }
    }
}

/// A point to make durable: the active segment's file and the log end offset it covers.
/// Taken with [`crate::PartitionLog::sync_point`] under the caller's lock, synced with
/// [`SyncPoint::sync`] without it; then [`crate::PartitionLog::mark_durable`] records it.
/// Cheap to take (two `Arc` clones) and `Send + Sync`.
#[derive(Debug, Clone)]
pub struct SyncPoint {
    pub(crate) file: Arc<FileHandle>,
    pub(crate) end_offset: i64,
    pub(crate) failed: Arc<FailState>,
    pub(crate) dir: PathBuf,
}

impl SyncPoint {
    /// Every offset below this one is durable once [`SyncPoint::sync`] succeeded.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// fdatasync of the segment (blocking; call it without holding the log). Fails if the
    /// log failed before or while it ran; a failure here also puts the log in the failed
    /// state (calling [`crate::PartitionLog::fail`] as well does no harm). See the module
    /// docs for why this covers everything below [`SyncPoint::end_offset`].
    pub fn sync(&self) -> Result<()> {
        self.failed.check(&self.dir)?;
        if let Err(e) = self.file.sync_data() {
            self.failed
                .fail(&self.dir, format!("fdatasync failed: {e}"));
            return Err(e);
        }
        self.failed.check(&self.dir)
    }
}
