//! The crate's error type.
//!
//! Owns [`StorageError`], returned by every fallible operation, and [`Corruption`], the
//! reasons a stored byte range is not part of a valid log.

use std::{io, path::PathBuf};

use brook_protocol::batch::BatchError;
use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file-system call failed; `op` names the call and `path` the file or directory.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A read or lookup asked for an offset outside `[start, end]`.
    #[error("offset {requested} is out of range: the log holds [{start}, {end}]")]
    OffsetOutOfRange {
        requested: i64,
        start: i64,
        end: i64,
    },
    /// The bytes handed to `append` are not a sequence of whole v2 batches.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// `append` was called with no bytes.
    #[error("append called with no record batch")]
    EmptyAppend,
    /// Assigning offsets would overflow `i64`.
    #[error("offset overflow: cannot assign {records} offsets after {next_offset}")]
    OffsetOverflow { next_offset: i64, records: i64 },
    /// Stored data that should be valid is not (found while reading a segment).
    #[error("corrupt segment {} at byte {position}: {corruption}", path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        corruption: Corruption,
    },
    /// The file system is full (`ENOSPC`). Nothing was committed by the failing call; the log
    /// stays consistent and writable, and the same call can be retried once space is freed.
    #[error("no space left on device: {op} {}: {source}", path.display())]
    NoSpace {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An earlier write or fsync failed (or [`crate::PartitionLog::fail`] was called); the
    /// log refuses writes until it is reopened, because it can no longer tell which
    /// acknowledged data is durable.
    #[error("log {} no longer accepts writes after an earlier failure: {reason}", dir.display())]
    WritesDisabled { dir: PathBuf, reason: String },
}

/// Why bytes in a segment are not part of a valid log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Corruption {
    /// Not a whole, well-formed v2 batch (zero fill, torn write, bad length or magic, CRC).
    #[error("{0}")]
    Batch(BatchError),
    #[error("negative last offset delta {0}")]
    NegativeOffsetDelta(i32),
    #[error("batch base offset {found} is below the segment base offset {segment_base}")]
    BelowSegmentBase { segment_base: i64, found: i64 },
    #[error("batch base offset {found} does not follow the previous batch (expected {expected})")]
    NonContiguous { expected: i64, found: i64 },
    #[error("offset {offset} is too far from the segment base offset {segment_base}")]
    RelativeOffsetOverflow { segment_base: i64, offset: i64 },
    #[error("batch position {0} does not fit a 32-bit index entry")]
    PositionOverflow(u64),
    #[error("index points past the end of the segment")]
    IndexBeyondEnd,
}

/// `ENOSPC` on Linux.
const ENOSPC: i32 = 28;

impl StorageError {
    /// Builds the `Io` variant, or `NoSpace` for a full file system; used as
    /// `.map_err(StorageError::io("write", path))`.
    pub(crate) fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| {
            if is_no_space(&source) {
                Self::NoSpace { op, path, source }
            } else {
                Self::Io { op, path, source }
            }
        }
    }

    /// Whether the file system was full: the failed call left the log consistent and can be
    /// retried once space is freed. The error's [`StorageError::io_kind`] is then
    /// [`io::ErrorKind::StorageFull`].
    pub fn is_no_space(&self) -> bool {
        matches!(self, Self::NoSpace { .. })
    }

    /// The kind of the underlying I/O error, if a file-system call failed.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Self::Io { source, .. } | Self::NoSpace { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// Whether this error leaves the durability of acknowledged data or the layout of the log
    /// uncertain, so the log must stop accepting writes: any failed file-system call except a
    /// full disk (which fails cleanly before anything is committed).
    pub(crate) fn disables_writes(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}

fn is_no_space(e: &io::Error) -> bool {
    e.raw_os_error() == Some(ENOSPC) || e.kind() == io::ErrorKind::StorageFull
}
