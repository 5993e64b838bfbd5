//! The per-key index of a partition (topic config `brook.key.index=true`): for every record
//! key, where its records are (offset), which revision each is (the 0-based count of the
//! key's earlier records in the partition), and when it was written.
//!
//! - [`file`]: a sealed segment's immutable index, sorted by key hash, with a Bloom filter
//!   ([`filter`]) so that a lookup skips segments that lack the key;
//! - [`ActiveKeyIndex`]: the active segment's entries in memory, written out as a sealed
//!   index when the segment rolls, rebuilt from the log at recovery.
//!
//! Keys are hashed with [`key_hash`], a function fixed by the file format. Not wired into the
//! log yet: this is the format and its lookups (issue 14 goes on from here).

pub mod file;
pub(crate) mod filter;

use std::collections::HashMap;

/// One record of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntry {
    pub offset: i64,
    /// The 0-based count of the key's earlier records in the partition.
    pub revision: i64,
    pub timestamp: i64,
}

/// A key's 64-bit hash, as the index files store it: CRC-32C of the key in the high half,
/// CRC-32C continued from the seed `0x5bd1e995` in the low half. Fixed by the format.
pub fn key_hash(key: &[u8]) -> u64 {
    let high = u64::from(crc32c::crc32c(key));
    let low = u64::from(crc32c::crc32c_append(0x5bd1_e995, key));
    (high << 32) | low
}

/// The active segment's entries, by key.
#[derive(Debug, Default)]
pub struct ActiveKeyIndex {
    keys: HashMap<Vec<u8>, Vec<KeyEntry>>,
    entries: usize,
}

impl ActiveKeyIndex {
    /// Records the next record of `key` (its revision is the caller's to know: it counts
    /// the key's records in earlier segments too).
    pub fn push(&mut self, key: &[u8], entry: KeyEntry) {
        self.keys.entry(key.to_vec()).or_default().push(entry);
        self.entries += 1;
    }

    /// The key's entries in this segment, in offset order.
    pub fn lookup(&self, key: &[u8]) -> &[KeyEntry] {
        self.keys.get(key).map_or(&[], Vec::as_slice)
    }

    /// The key's last entry in this segment.
    pub fn last(&self, key: &[u8]) -> Option<KeyEntry> {
        self.lookup(key).last().copied()
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The sealed index of these entries (the segment rolled), emptying this one.
    pub fn seal(&mut self) -> Vec<u8> {
        let entries: Vec<(Vec<u8>, KeyEntry)> = self
            .keys
            .drain()
            .flat_map(|(k, es)| es.into_iter().map(move |e| (k.clone(), e)))
            .collect();
        self.entries = 0;
        file::encode(&entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_formats_and_spreads_keys() {
        // Fixed by the file format: a change here breaks every index on disk.
        assert_eq!(
            key_hash(b""),
            u64::from(crc32c::crc32c_append(0x5bd1_e995, b""))
        );
        assert_eq!(
            key_hash(b"loan-42") >> 32,
            u64::from(crc32c::crc32c(b"loan-42"))
        );
        let distinct: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| key_hash(format!("k{i}").as_bytes()))
            .collect();
        assert_eq!(distinct.len(), 10_000);
    }

    #[test]
    fn the_active_index_seals_into_a_file_that_answers_the_same() {
        let mut active = ActiveKeyIndex::default();
        for i in 0..300i64 {
            let key = format!("agg-{}", i % 7);
            let revision = active.lookup(key.as_bytes()).len() as i64;
            active.push(
                key.as_bytes(),
                KeyEntry {
                    offset: 1_000 + i,
                    revision,
                    timestamp: i,
                },
            );
        }
        assert_eq!(active.len(), 300);
        let before: Vec<Vec<KeyEntry>> = (0..7)
            .map(|k| active.lookup(format!("agg-{k}").as_bytes()).to_vec())
            .collect();
        assert_eq!(active.last(b"agg-0").map(|e| e.revision), Some(42));
        let sealed = file::SealedKeyIndex::open(bytes::Bytes::from(active.seal())).unwrap();
        assert!(active.is_empty());
        for (k, entries) in before.iter().enumerate() {
            assert_eq!(&sealed.lookup(format!("agg-{k}").as_bytes()), entries);
        }
    }
}
