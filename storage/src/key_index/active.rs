//! The active segment's key index, in memory: every record's entry in append order, each
//! distinct key once, and a table from key hash to the key's last entry. Appending costs
//! one table probe and two array writes, and memory is about 48 bytes per record plus each
//! key once (no allocation per key), which matters because every appended record of an
//! indexed topic passes through here with the partition locked.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{file, key_hash, KeyEntry};

/// No previous entry.
const NONE: u32 = u32::MAX;

/// One record's entry.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    entry: KeyEntry,
    /// Where the key starts in the key arena.
    key_at: u32,
    /// The key's previous entry in this segment, or [`NONE`].
    prev: u32,
}

/// The key hashes are already well mixed: the table uses them as they are.
#[derive(Debug, Default, Clone, Copy)]
struct Identity(u64);

impl Hasher for Identity {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// What the table keeps of a key's last record: enough to append the next one without
/// touching the slots (a cache miss each in a large segment).
#[derive(Debug, Clone, Copy)]
struct Last {
    slot: u32,
    key_at: u32,
    revision: i64,
}

type ByHash = HashMap<u64, Last, BuildHasherDefault<Identity>>;

/// The active segment's entries (see the module docs).
#[derive(Debug, Default)]
pub struct ActiveKeyIndex {
    slots: Vec<Slot>,
    /// Each distinct key once: length (u32, native order) and bytes.
    keys: Vec<u8>,
    /// Key hash -> the last record of the first key seen with that hash.
    last: ByHash,
    /// Keys whose hash another key took first (64-bit collisions: practically never) ->
    /// their last record.
    collided: HashMap<Vec<u8>, Last>,
}

impl ActiveKeyIndex {
    fn key_at(&self, at: u32) -> &[u8] {
        let at = at as usize;
        let len = self
            .keys
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_ne_bytes) as usize;
        self.keys.get(at + 4..at + 4 + len).unwrap_or_default()
    }

    /// The key's last record, found by its hash.
    fn find(&self, key: &[u8], hash: u64) -> Option<Last> {
        let last = *self.last.get(&hash)?;
        if self.key_at(last.key_at) == key {
            Some(last)
        } else {
            self.collided.get(key).copied()
        }
    }

    /// The revision of the key's last record, if this index knows it (an entry here or
    /// carried over), without reading the entry.
    pub fn last_revision(&self, key: &[u8]) -> Option<i64> {
        self.find(key, key_hash(key)).map(|l| l.revision)
    }

    /// The key's last entry in this segment (`None` also for a key only carried over).
    pub fn last(&self, key: &[u8]) -> Option<KeyEntry> {
        let last = self.find(key, key_hash(key))?;
        self.slots.get(last.slot as usize).map(|s| s.entry)
    }

    /// Appends the key's next record: `revision(last)` gives its revision from the
    /// revision of the key's last record this index knows (in this segment, or carried
    /// over from the previous one; `None`: unknown here). Returns the entry, and whether it
    /// is the key's first in this segment.
    pub fn append(
        &mut self,
        key: &[u8],
        hash: u64,
        offset: i64,
        timestamp: i64,
        position: u32,
        revision: impl FnOnce(Option<i64>) -> i64,
    ) -> (KeyEntry, bool) {
        let previous = self.find(key, hash);
        let entry = KeyEntry {
            offset,
            revision: revision(previous.map(|p| p.revision)),
            timestamp,
            position,
        };
        let first_here = previous.is_none_or(|p| p.slot == NONE);
        let index = u32::try_from(self.slots.len()).unwrap_or(NONE);
        let key_at = match previous {
            Some(p) => p.key_at,
            None => {
                let at = u32::try_from(self.keys.len()).unwrap_or(NONE);
                self.keys
                    .extend_from_slice(&u32::try_from(key.len()).unwrap_or(0).to_ne_bytes());
                self.keys.extend_from_slice(key);
                at
            }
        };
        self.slots.push(Slot {
            hash,
            entry,
            key_at,
            prev: previous.map_or(NONE, |p| p.slot),
        });
        let last = Last {
            slot: index,
            key_at,
            revision: entry.revision,
        };
        match self.last.get_mut(&hash) {
            // Another key holds the hash.
            Some(held) if held.key_at != key_at => {
                self.collided.insert(key.to_vec(), last);
            }
            Some(held) => *held = last,
            None => {
                self.last.insert(hash, last);
            }
        }
        (entry, first_here)
    }

    /// Records the next record of `key` with its revision given (the caller counts the
    /// key's records in earlier segments too).
    pub fn push(&mut self, key: &[u8], entry: KeyEntry) {
        self.append(
            key,
            key_hash(key),
            entry.offset,
            entry.timestamp,
            entry.position,
            |_| entry.revision,
        );
    }

    /// Reads the table where `hash` would be, so that a lookup of it soon after finds the
    /// memory in the cache.
    pub fn touch(&self, hash: u64) {
        std::hint::black_box(self.last.get(&hash).map(|l| l.revision));
    }

    /// The key's entries in this segment, in revision order.
    pub fn lookup(&self, key: &[u8]) -> Vec<KeyEntry> {
        let mut out = Vec::new();
        let mut at = self.find(key, key_hash(key)).map_or(NONE, |l| l.slot);
        while let Some(s) = self.slots.get(at as usize) {
            out.push(s.entry);
            at = s.prev;
        }
        out.reverse();
        out
    }

    /// Each key with its last entry.
    pub fn heads(&self) -> impl Iterator<Item = (&[u8], KeyEntry)> + '_ {
        self.last
            .values()
            .chain(self.collided.values())
            .filter_map(|l| {
                Some((
                    self.key_at(l.key_at),
                    self.slots.get(l.slot as usize)?.entry,
                ))
            })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Keys the table knows (with entries here or carried over).
    pub fn keys(&self) -> usize {
        self.last.len() + self.collided.len()
    }

    /// The sealed index of these entries (the segment rolled), emptying this one. With
    /// `carry`, the keys and their last revisions stay in the table for the next segment
    /// (without entries there), so that each key's first record there is found at once.
    pub fn seal(&mut self, carry: bool) -> Vec<u8> {
        let items: Vec<(u64, &[u8], u32, KeyEntry)> = self
            .slots
            .iter()
            .map(|s| (s.hash, self.key_at(s.key_at), s.key_at, s.entry))
            .collect();
        let bytes = file::encode_items(items);
        if carry {
            self.slots = Vec::new();
            for last in self.last.values_mut().chain(self.collided.values_mut()) {
                last.slot = NONE;
            }
        } else {
            *self = Self::default();
        }
        bytes
    }
}
