//! The per-partition checkpoint file: log start offset, recovery point and durable prefix.
//!
//! Owns the file's format and the crash-safe way it is replaced. Deciding *when* it is
//! written belongs to [`crate::log`]; what the values mean on open to [`crate::recovery`].
//!
//! # Format (`<partition-dir>/checkpoint`, integers big-endian)
//!
//! Version 2, 64 bytes (written since the durable prefix exists):
//!
//! ```text
//! offset  size  field
//!      0     4  magic                 "BRKC" (0x42 0x52 0x4B 0x43)
//!      4     2  version               2
//!      6     2  flags                 bit 0: the prefix fields below are set; others 0
//!      8     8  log_start_offset      i64, >= 0: reads below it are out of range
//!     16     8  recovery_point        i64, >= 0: every offset below it was durable
//!     24     8  prefix_segment_base   i64: the segment the durable prefix belongs to
//!     32     8  prefix_next_offset    i64: the offset of the first batch after the prefix
//!     40     8  prefix_position       u64: bytes 0..position of that segment's .log
//!     48     4  prefix_offset_entries u32: .index entries covering the prefix
//!     52     4  prefix_time_entries   u32: .timeindex entries covering the prefix
//!     56     4  reserved              0
//!     60     4  crc                   CRC32C of bytes 0..60
//! ```
//!
//! The *durable prefix* says: when this file was written, the first `prefix_position` bytes
//! of the segment's `.log` were whole batches ending just before `prefix_next_offset`, and
//! they and the first entries of its two index files were fsynced. Recovery after a crash
//! checks that prefix cheaply and reads only what follows it, so a partition that was fully
//! flushed costs no scan. Without bit 0 the prefix fields are 0 and recovery reads the
//! segment containing the recovery point from its start.
//!
//! Version 1, 32 bytes (read, never written): magic, version 1, flags 0, log start offset,
//! recovery point, 4 reserved bytes, and the CRC of bytes 0..28 at byte 28.
//!
//! A file of another length, another magic or version, a bad CRC, unknown flags or negative
//! offsets is corrupt; the log then opens as if there were no checkpoint (full scan, log
//! start at the first segment) and says so in a warning.
//!
//! # Replacement
//!
//! Written to `checkpoint.tmp`, fsynced, renamed over `checkpoint`, and the directory
//! fsynced: a crash leaves the old file or the new one, never a mix. The broker's periodic
//! checkpoints of many logs stage every `checkpoint.tmp` first, make them durable (with the
//! index entries they name) by one `syncfs`, rename them all, and `syncfs` again.

use std::path::Path;

use crate::{
    error::StorageError,
    fs::{self, FileHandle, SharedFs},
};

type Result<T> = std::result::Result<T, StorageError>;

pub(crate) const CHECKPOINT_FILE: &str = "checkpoint";
const TMP_FILE: &str = "checkpoint.tmp";
const MAGIC: [u8; 4] = *b"BRKC";
const VERSION: u16 = 2;
const LEN: usize = 64;
const CRC_AT: usize = 60;
const V1_LEN: usize = 32;
const V1_CRC_AT: usize = 28;
const FLAG_PREFIX: u16 = 1;

/// What a checkpoint records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) log_start_offset: i64,
    pub(crate) recovery_point: i64,
    pub(crate) prefix: Option<DurablePrefix>,
}

/// A durable start of one segment's `.log` and the index entries covering it (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurablePrefix {
    pub(crate) segment_base: i64,
    pub(crate) next_offset: i64,
    pub(crate) position: u64,
    pub(crate) offset_entries: u32,
    pub(crate) time_entries: u32,
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
        if let Some(p) = &self.prefix {
            put(6, &FLAG_PREFIX.to_be_bytes());
            put(24, &p.segment_base.to_be_bytes());
            put(32, &p.next_offset.to_be_bytes());
            put(40, &p.position.to_be_bytes());
            put(48, &p.offset_entries.to_be_bytes());
            put(52, &p.time_entries.to_be_bytes());
        }
        let crc = crc32c::crc32c(out.get(..CRC_AT).unwrap_or_default());
        if let Some(slot) = out.get_mut(CRC_AT..) {
            slot.copy_from_slice(&crc.to_be_bytes());
        }
        out
    }

    /// Decodes and validates a whole checkpoint file of either version; `Err(reason)` if it
    /// is not one.
    pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        let (expected_version, crc_at) = match bytes.len() {
            LEN => (VERSION, CRC_AT),
            V1_LEN => (1, V1_CRC_AT),
            len => return Err(format!("length {len} instead of {LEN}")),
        };
        let field = |at: usize, len: usize| bytes.get(at..at + len).unwrap_or_default();
        if field(0, 4) != MAGIC {
            return Err("bad magic".to_string());
        }
        let be_u16 = |at| u16::from_be_bytes(field(at, 2).try_into().unwrap_or_default());
        let be_u32 = |at| u32::from_be_bytes(field(at, 4).try_into().unwrap_or_default());
        let be_u64 = |at| u64::from_be_bytes(field(at, 8).try_into().unwrap_or_default());
        let be_i64 = |at| i64::from_be_bytes(field(at, 8).try_into().unwrap_or_default());
        if crc32c::crc32c(field(0, crc_at)) != be_u32(crc_at) {
            return Err("CRC mismatch".to_string());
        }
        let version = be_u16(4);
        if version != expected_version {
            return Err(format!(
                "unknown version {version} in {} bytes",
                bytes.len()
            ));
        }
        let flags = be_u16(6);
        if flags & !FLAG_PREFIX != 0 || (version == 1 && flags != 0) {
            return Err(format!("unknown flags {flags:#x}"));
        }
        let prefix = (flags & FLAG_PREFIX != 0).then(|| DurablePrefix {
            segment_base: be_i64(24),
            next_offset: be_i64(32),
            position: be_u64(40),
            offset_entries: be_u32(48),
            time_entries: be_u32(52),
        });
        let checkpoint = Self {
            log_start_offset: be_i64(8),
            recovery_point: be_i64(16),
            prefix,
        };
        let negative = checkpoint.log_start_offset < 0
            || checkpoint.recovery_point < 0
            || prefix.is_some_and(|p| p.segment_base < 0 || p.next_offset < p.segment_base);
        if negative {
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
    if len != LEN as u64 && len != V1_LEN as u64 {
        return Ok(Loaded::Corrupt(format!("length {len} instead of {LEN}")));
    }
    let map = file.map(len)?;
    let bytes = usize::try_from(len)
        .ok()
        .and_then(|len| map.as_ref()?.get(0..len))
        .unwrap_or_default();
    Ok(match Checkpoint::decode(bytes) {
        Ok(c) => Loaded::Found(c),
        Err(reason) => Loaded::Corrupt(reason),
    })
}

/// Writes `dir/checkpoint.tmp` without syncing: the first half of a replacement whose syncs
/// the caller batches with other logs' ([`crate::PartitionLog::stage_checkpoint`]).
pub(crate) fn stage(fs: &SharedFs, dir: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let file = FileHandle::create(fs, &dir.join(TMP_FILE))?;
    file.write_all_at(&checkpoint.encode(), 0)
}

/// Renames a staged `checkpoint.tmp` over `checkpoint`, once a sync made it durable; the
/// directory is synced by the caller. `false` if there is none (a direct [`write`] since
/// replaced the checkpoint and took it).
pub(crate) fn commit_staged(fs: &SharedFs, dir: &Path) -> Result<bool> {
    match fs.rename(&dir.join(TMP_FILE), &dir.join(CHECKPOINT_FILE)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StorageError::io("rename", &dir.join(TMP_FILE))(e)),
    }
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

    fn with_prefix() -> Checkpoint {
        Checkpoint {
            log_start_offset: 0x0102_0304_0506_0708,
            recovery_point: 42,
            prefix: Some(DurablePrefix {
                segment_base: 40,
                next_offset: 42,
                position: 0x1_0000_0001,
                offset_entries: 3,
                time_entries: 2,
            }),
        }
    }

    #[test]
    fn encodes_byte_by_byte_as_documented() {
        let c = with_prefix();
        let b = c.encode();
        assert_eq!(&b[0..4], b"BRKC");
        assert_eq!(&b[4..8], &[0, 2, 0, 1]);
        assert_eq!(&b[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[16..24], &42i64.to_be_bytes());
        assert_eq!(&b[24..32], &40i64.to_be_bytes());
        assert_eq!(&b[32..40], &42i64.to_be_bytes());
        assert_eq!(&b[40..48], &[0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(&b[48..56], &[0, 0, 0, 3, 0, 0, 0, 2]);
        assert_eq!(&b[56..60], &[0; 4]);
        assert_eq!(&b[60..64], &crc32c::crc32c(&b[..60]).to_be_bytes());
        assert_eq!(Checkpoint::decode(&b), Ok(c));

        let without = Checkpoint { prefix: None, ..c };
        let b = without.encode();
        assert_eq!(&b[6..8], &[0, 0], "no flags");
        assert_eq!(&b[24..60], &[0; 36]);
        assert_eq!(Checkpoint::decode(&b), Ok(without));
    }

    #[test]
    fn reads_version_1_files() {
        let mut b = [0u8; V1_LEN];
        b[0..4].copy_from_slice(b"BRKC");
        b[4..6].copy_from_slice(&1u16.to_be_bytes());
        b[8..16].copy_from_slice(&5i64.to_be_bytes());
        b[16..24].copy_from_slice(&9i64.to_be_bytes());
        let crc = crc32c::crc32c(&b[..V1_CRC_AT]);
        b[V1_CRC_AT..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            Checkpoint::decode(&b),
            Ok(Checkpoint {
                log_start_offset: 5,
                recovery_point: 9,
                prefix: None,
            })
        );
    }

    #[test]
    fn rejects_anything_but_a_valid_file() {
        let good = with_prefix().encode();
        assert!(Checkpoint::decode(&good[..63]).is_err());
        for i in 0..LEN {
            for bit in 0..8 {
                let mut b = good;
                b[i] ^= 1 << bit;
                assert!(Checkpoint::decode(&b).is_err(), "byte {i} bit {bit}");
            }
        }
        let resealed = |mut b: [u8; LEN]| {
            let crc = crc32c::crc32c(&b[..CRC_AT]);
            b[CRC_AT..].copy_from_slice(&crc.to_be_bytes());
            Checkpoint::decode(&b)
        };
        // A valid CRC over a wrong version, an unknown flag or a negative offset.
        let mut b = good;
        b[5] = 3;
        assert_eq!(
            resealed(b),
            Err("unknown version 3 in 64 bytes".to_string())
        );
        let mut b = good;
        b[7] = 3;
        assert_eq!(resealed(b), Err("unknown flags 0x3".to_string()));
        let neg = Checkpoint {
            log_start_offset: -1,
            recovery_point: 0,
            prefix: None,
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
                prefix: None,
            };
            write(&fs, dir.path(), &c).unwrap();
            assert_eq!(read(&fs, dir.path()).unwrap(), Loaded::Found(c));
        }
        write(&fs, dir.path(), &with_prefix()).unwrap();
        assert_eq!(read(&fs, dir.path()).unwrap(), Loaded::Found(with_prefix()));
        assert!(!dir.path().join(TMP_FILE).exists());
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"short").unwrap();
        assert!(matches!(read(&fs, dir.path()).unwrap(), Loaded::Corrupt(_)));
    }
}
