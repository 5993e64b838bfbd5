//! The key -> latest offset map of a cleaning pass, in a fixed amount of memory (Kafka's
//! `SkimpyOffsetMap`): an open-addressing table in one buffer of
//! `log.cleaner.dedupe.buffer.size` bytes, each slot a 16-byte hash of the key and the
//! offset of its latest record. Keys are not stored: two keys whose 128-bit hashes collide
//! count as one (a chance of about 2^-128 per pair). The table is full at 90% of its slots;
//! a pass that fills it stops there and leaves the rest of the log for the next pass.

use std::hash::{DefaultHasher, Hash, Hasher};

const HASH: usize = 16;
const SLOT: usize = HASH + 8;
/// Share of the slots used before the map counts as full.
const LOAD_FACTOR: f64 = 0.9;

/// The map is full: the pass cleans up to the offsets already in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

pub struct OffsetMap {
    slots: Vec<u8>,
    capacity: usize,
    max_entries: usize,
    entries: usize,
}

impl OffsetMap {
    /// A map in `buffer_bytes` bytes (at least one slot).
    pub fn new(buffer_bytes: usize) -> Self {
        let capacity = (buffer_bytes / SLOT).max(1);
        Self {
            slots: vec![0; capacity * SLOT],
            capacity,
            max_entries: ((capacity as f64 * LOAD_FACTOR) as usize).max(1),
            entries: 0,
        }
    }

    /// Bytes the map holds (its whole buffer, allocated up front).
    pub fn memory_bytes(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Records `offset` as `key`'s latest; [`Full`] if a new key does not fit (the map is
    /// unchanged then).
    pub fn put(&mut self, key: &[u8], offset: i64) -> Result<(), Full> {
        let hash = hash(key);
        let slot = self.find(&hash);
        let at = slot * SLOT;
        let empty = self.slots[at..at + HASH].iter().all(|b| *b == 0);
        if empty {
            if self.entries >= self.max_entries {
                return Err(Full);
            }
            self.slots[at..at + HASH].copy_from_slice(&hash);
            self.entries += 1;
        }
        self.slots[at + HASH..at + SLOT].copy_from_slice(&offset.to_be_bytes());
        Ok(())
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let hash = hash(key);
        let at = self.find(&hash) * SLOT;
        if self.slots[at..at + HASH] != hash {
            return None;
        }
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&self.slots[at + HASH..at + SLOT]);
        Some(i64::from_be_bytes(offset))
    }

    /// The slot holding `hash`, or the empty slot where it would go (linear probing; the
    /// table is never full, so an empty slot exists).
    fn find(&self, hash: &[u8; HASH]) -> usize {
        let mut start = [0u8; 8];
        start.copy_from_slice(&hash[..8]);
        let mut slot = (u64::from_be_bytes(start) % self.capacity as u64) as usize;
        loop {
            let at = slot * SLOT;
            let stored = &self.slots[at..at + HASH];
            if stored == hash || stored.iter().all(|b| *b == 0) {
                return slot;
            }
            slot = (slot + 1) % self.capacity;
        }
    }
}

/// A 128-bit hash of `key` (two SipHash-1-3 runs with different prefixes), never all zeros
/// (that marks an empty slot).
fn hash(key: &[u8]) -> [u8; HASH] {
    let mut out = [0u8; HASH];
    for (i, half) in out.chunks_mut(8).enumerate() {
        let mut h = DefaultHasher::new();
        (i as u8).hash(&mut h);
        key.hash(&mut h);
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    out[0] |= 1;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offsets_per_key_within_the_buffer() {
        let mut m = OffsetMap::new(24 * 100);
        assert_eq!(m.memory_bytes(), 2400);
        for offset in 0..1000i64 {
            let key = format!("key-{}", offset % 50);
            m.put(key.as_bytes(), offset).unwrap();
        }
        assert_eq!(m.len(), 50);
        for k in 0..50 {
            assert_eq!(m.get(format!("key-{k}").as_bytes()), Some(950 + k));
        }
        assert_eq!(m.get(b"other"), None);
    }

    #[test]
    fn a_full_map_refuses_new_keys_but_updates_known_ones() {
        let mut m = OffsetMap::new(24 * 10);
        let mut stored = 0;
        for i in 0..20i64 {
            if m.put(format!("k{i}").as_bytes(), i).is_ok() {
                stored += 1;
            }
        }
        assert_eq!(stored, 9, "90% of 10 slots");
        assert_eq!(m.put(b"k0", 100), Ok(()));
        assert_eq!(m.get(b"k0"), Some(100));
        assert_eq!(m.put(b"k19", 1), Err(Full));
    }
}
