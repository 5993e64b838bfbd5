//! The per-partition checkpoint file: log start offset and recovery point.
//!
//! Owns the file's format and the crash-safe way it is replaced. Deciding *when* it is
//! written belongs to [`crate::log`]; what the values mean on open to [`crate::recovery`].
//!
//! # Format (`<partition-dir>/checkpoint`, 32 bytes, integers big-endian)
//!
//! ```text
//! offset  size  field
//!      0     4  magic              "BRKC" (0x42 0x52 0x4B 0x43)
//!      4     2  version            1
//!      6     2  flags              0 (reserved)
//!      8     8  log_start_offset   i64, >= 0: reads below it are out of range
//!     16     8  recovery_point     i64, >= 0: every offset below it was durable
//!     24     4  reserved           0
//!     28     4  crc                CRC32C of bytes 0..28
//! ```
//!
//! A file of another length, another magic or version, a bad CRC or negative offsets is
//! corrupt; the log then opens as if there were no checkpoint (full scan, log start at the
//! first segment) and says so in a warning.
//!
//! # Replacement
//!
//! Written to `checkpoint.tmp`, fsynced, renamed over `checkpoint`, and the directory
//! fsynced: a crash leaves the old file or the new one, never a mix.

use std::path::Path;

use crate::{
    error::StorageError,
    fs::{self, FileHandle, SharedFs},
};

type Result<T> = std::result::Result<T, StorageError>;

pub(crate) const CHECKPOINT_FILE: &str = "checkpoint";
const TMP_FILE: &str = "checkpoint.tmp";
const MAGIC: [u8; 4] = *b"BRKC";
const VERSION: u16 = 1;
const LEN: usize = 32;
const CRC_AT: usize = 28;

/// What a checkpoint records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) log_start_offset: i64,
    pub(crate) recovery_point: i64,
}

/// The checkpoint found when opening a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Loaded {
    Found(Checkpoint),
    Missing,
    Corrupt(String),
}

impl Checkpoint {
    pub(crate) fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        let mut put = |at: usize, bytes: &[u8]| {
            if let Some(slot) = out.get_mut(at..at + bytes.len()) {
                slot.copy_from_slice(bytes);
            }
        };
        put(0, &MAGIC);
        put(4, &VERSION.to_be_bytes());
        put(8, &self.log_start_offset.to_be_bytes());
        put(16, &self.recovery_point.to_be_bytes());
        let crc = crc32c::crc32c(out.get(..CRC_AT).unwrap_or_default());
        if let Some(slot) = out.get_mut(CRC_AT..) {
            slot.copy_from_slice(&crc.to_be_bytes());
        }
        out
    }

    /// Decodes and validates a whole checkpoint file; `Err(reason)` if it is not one.
    pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() != LEN {
            return Err(format!("length {} instead of {LEN}", bytes.len()));
        }
        let field = |at: usize, len: usize| bytes.get(at..at + len).unwrap_or_default();
        if field(0, 4) != MAGIC {
            return Err("bad magic".to_string());
        }
        let be_u32 = |at| u32::from_be_bytes(field(at, 4).try_into().unwrap_or_default());
        let be_i64 = |at| i64::from_be_bytes(field(at, 8).try_into().unwrap_or_default());
        let crc = crc32c::crc32c(field(0, CRC_AT));
        if crc != be_u32(CRC_AT) {
            return Err("CRC mismatch".to_string());
        }
        let version = u16::from_be_bytes(field(4, 2).try_into().unwrap_or_default());
        if version != VERSION {
            return Err(format!("unknown version {version}"));
        }
        let checkpoint = Self {
            log_start_offset: be_i64(8),
            recovery_point: be_i64(16),
        };
        if checkpoint.log_start_offset < 0 || checkpoint.recovery_point < 0 {
            return Err(format!("negative offset in {checkpoint:?}"));
        }
        Ok(checkpoint)
    }
}

/// Reads `dir/checkpoint`.
pub(crate) fn read(fs: &SharedFs, dir: &Path) -> Result<Loaded> {
    let path = dir.join(CHECKPOINT_FILE);
    let Some(file) = FileHandle::open_existing(fs, &path)? else {
        return Ok(Loaded::Missing);
    };
    let len = file.file_len()?;
    if len != LEN as u64 {
        return Ok(Loaded::Corrupt(format!("length {len} instead of {LEN}")));
    }
    let map = file.map(len)?;
    let bytes = map.as_ref().and_then(|m| m.get(0..LEN)).unwrap_or_default();
    Ok(match Checkpoint::decode(bytes) {
        Ok(c) => Loaded::Found(c),
        Err(reason) => Loaded::Corrupt(reason),
    })
}

/// Replaces `dir/checkpoint` crash-safely (module docs).
pub(crate) fn write(fs: &SharedFs, dir: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let tmp = dir.join(TMP_FILE);
    let file = FileHandle::create(fs, &tmp)?;
    file.write_all_at(&checkpoint.encode(), 0)?;
    file.sync_all()?;
    drop(file);
    fs::rename(fs, &tmp, &dir.join(CHECKPOINT_FILE))?;
    fs::sync_dir(fs, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_byte_by_byte_as_documented() {
        let c = Checkpoint {
            log_start_offset: 0x0102_0304_0506_0708,
            recovery_point: 42,
        };
        let b = c.encode();
        assert_eq!(&b[0..4], b"BRKC");
        assert_eq!(&b[4..8], &[0, 1, 0, 0]);
        assert_eq!(&b[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[16..24], &[0, 0, 0, 0, 0, 0, 0, 42]);
        assert_eq!(&b[24..28], &[0; 4]);
        assert_eq!(&b[28..32], &crc32c::crc32c(&b[..28]).to_be_bytes());
        assert_eq!(Checkpoint::decode(&b), Ok(c));
    }

    #[test]
    fn rejects_anything_but_a_valid_file() {
        let good = Checkpoint {
            log_start_offset: 5,
            recovery_point: 9,
        }
        .encode();
        assert!(Checkpoint::decode(&good[..31]).is_err());
        for i in 0..LEN {
            for bit in 0..8 {
                let mut b = good;
                b[i] ^= 1 << bit;
                assert!(Checkpoint::decode(&b).is_err(), "byte {i} bit {bit}");
            }
        }
        // A valid CRC over a wrong version or a negative offset.
        let mut b = good;
        b[5] = 2;
        let crc = crc32c::crc32c(&b[..CRC_AT]);
        b[CRC_AT..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(Checkpoint::decode(&b), Err("unknown version 2".to_string()));
        let neg = Checkpoint {
            log_start_offset: -1,
            recovery_point: 0,
        }
        .encode();
        assert!(Checkpoint::decode(&neg).is_err());
    }

    #[test]
    fn write_then_read_round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs: SharedFs = std::sync::Arc::new(crate::fs::OsFileSystem);
        assert_eq!(read(&fs, dir.path()).unwrap(), Loaded::Missing);
        for (start, rp) in [(0, 0), (7, 100), (7, 250)] {
            let c = Checkpoint {
                log_start_offset: start,
                recovery_point: rp,
            };
            write(&fs, dir.path(), &c).unwrap();
            assert_eq!(read(&fs, dir.path()).unwrap(), Loaded::Found(c));
        }
        assert!(!dir.path().join(TMP_FILE).exists());
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"short").unwrap();
        assert!(matches!(read(&fs, dir.path()).unwrap(), Loaded::Corrupt(_)));
    }
}
