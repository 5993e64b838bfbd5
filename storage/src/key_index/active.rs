//! The active segment's key index, in memory: every record's entry in append order, each
//! distinct key once, and a table from key hash to the key's last entry. Appending costs
//! one table probe and two array writes, and memory is about 48 bytes per record plus each
//! key once (no allocation per key), which matters because every appended record of an
//! indexed topic passes through here with the partition locked.

use std::collections::HashMap;

use super::{file, key_hash, prefetch, KeyEntry};

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

/// What the table keeps of a key's last record: enough to append the next one without
/// touching the slots (a cache miss each in a large segment).
#[derive(Debug, Clone, Copy)]
struct Last {
    slot: u32,
    key_at: u32,
    revision: i64,
}

/// One place of [`LastTable`]; empty while `last.key_at` is [`NONE`]. Aligned so that it
/// never straddles two cache lines: one prefetch brings all of it.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct Bucket {
    hash: u64,
    last: Last,
}

const EMPTY: Bucket = Bucket {
    hash: 0,
    last: Last {
        slot: NONE,
        key_at: NONE,
        revision: 0,
    },
};

/// Key hash -> the last record of the first key seen with that hash: open addressing with
/// linear probing over a power-of-two array. A hash's place is known before it is probed,
/// so the places of a batch's keys are prefetched a few records ahead ([`prefetch`]): with
/// many keys nearly every probe is a cache miss, and this is most of what indexing costs.
/// Keys are never removed (a sealed segment's table is dropped or carried whole).
#[derive(Debug, Default, Clone)]
struct LastTable {
    buckets: Vec<Bucket>,
    len: usize,
}

impl LastTable {
    /// Where a probe for `hash` starts (the table is not empty). The hashes are CRCs,
    /// already well mixed: their low bits are used as they are.
    fn home(&self, hash: u64) -> usize {
        (hash as usize) & (self.buckets.len() - 1)
    }

    /// The place holding `hash`, or the empty place where it would go.
    fn place(&self, hash: u64) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let mask = self.buckets.len() - 1;
        let mut at = self.home(hash);
        // The table is never full (at most seven eighths), so this ends.
        loop {
            let bucket = &self.buckets[at];
            if bucket.last.key_at == NONE || bucket.hash == hash {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    fn get(&self, hash: u64) -> Option<&Last> {
        let bucket = &self.buckets[self.place(hash)?];
        (bucket.last.key_at != NONE).then_some(&bucket.last)
    }

    fn get_mut(&mut self, hash: u64) -> Option<&mut Last> {
        let at = self.place(hash)?;
        let bucket = &mut self.buckets[at];
        (bucket.last.key_at != NONE).then_some(&mut bucket.last)
    }

    /// Adds a hash the table does not hold.
    fn insert(&mut self, hash: u64, last: Last) {
        // Up to seven eighths full: probes stay short (most end in the first cache line)
        // and the table small, which matters more here, where nearly every probe misses.
        if (self.len + 1) * 8 > self.buckets.len() * 7 {
            self.grow();
        }
        if let Some(at) = self.place(hash) {
            self.buckets[at] = Bucket { hash, last };
            self.len += 1;
        }
    }

    fn grow(&mut self) {
        let size = (self.buckets.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; size]);
        self.len = 0;
        for bucket in old.into_iter().filter(|b| b.last.key_at != NONE) {
            self.insert(bucket.hash, bucket.last);
        }
    }

    /// Starts loading the place of `hash` into the cache.
    fn prefetch(&self, hash: u64) {
        if !self.buckets.is_empty() {
            prefetch(&self.buckets[self.home(hash)]);
        }
    }

    fn values(&self) -> impl Iterator<Item = &Last> {
        self.buckets
            .iter()
            .filter(|b| b.last.key_at != NONE)
            .map(|b| &b.last)
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut Last> {
        self.buckets
            .iter_mut()
            .filter(|b| b.last.key_at != NONE)
            .map(|b| &mut b.last)
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// The active segment's entries (see the module docs).
#[derive(Debug, Default)]
pub struct ActiveKeyIndex {
    slots: Vec<Slot>,
    /// Each distinct key once: length (u32, native order) and bytes.
    keys: Vec<u8>,
    /// Key hash -> the last record of the first key seen with that hash.
    last: LastTable,
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
        let last = *self.last.get(hash)?;
        if self.key_at(last.key_at) == key {
            Some(last)
        } else {
            self.collided.get(key).copied()
        }
    }

    /// The revision of the key's last record, if this index knows it (an entry here or
    /// carried over), without reading the entry.
    pub fn last_revision(&self, key: &[u8], hash: u64) -> Option<i64> {
        self.find(key, hash).map(|l| l.revision)
    }

    /// The key's last entry in this segment if the table knows the key (`Some(None)`: the
    /// key is only carried over, without entries here).
    pub fn last(&self, key: &[u8]) -> Option<Option<KeyEntry>> {
        let last = self.find(key, key_hash(key))?;
        Some(self.slots.get(last.slot as usize).map(|s| s.entry))
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
        match self.last.get_mut(hash) {
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

    /// Starts loading the table where `hash` would be, so that a lookup of it soon after
    /// finds the memory in the cache.
    pub fn prefetch(&self, hash: u64) {
        self.last.prefetch(hash);
    }

    /// Starts loading the stored key of `hash`, which a lookup compares with the key asked
    /// for; best called some time after [`ActiveKeyIndex::prefetch`], when the table's
    /// place has arrived.
    pub fn prefetch_key(&self, hash: u64) {
        if let Some(key) = self
            .last
            .get(hash)
            .and_then(|last| self.keys.get(last.key_at as usize))
        {
            prefetch(key);
        }
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

    /// Each key the table knows, with its last entry here (`None` for a key only carried
    /// over).
    pub fn heads(&self) -> impl Iterator<Item = (&[u8], Option<KeyEntry>)> + '_ {
        self.last.values().chain(self.collided.values()).map(|l| {
            (
                self.key_at(l.key_at),
                self.slots.get(l.slot as usize).map(|s| s.entry),
            )
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

    /// Writes the sealed index of these entries to `sink` (see [`file::write_items`]).
    pub fn write_sealed<E>(&self, sink: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        // Slots are in append order, so each key's entries are in revision order.
        file::write_items(
            self.slots.len(),
            self.keys(),
            |i| {
                let s = &self.slots[i];
                (s.hash, s.key_at, s.entry)
            },
            |key_at| self.key_at(key_at),
            |key_at| {
                if let Some(key) = self.keys.get(key_at as usize) {
                    prefetch(key);
                }
            },
            sink,
        )
    }

    /// The index of the next segment, while this one's is written: with `carry`, it knows
    /// this one's keys and their last revisions (without entries), so that each key's first
    /// record there is found at once; otherwise it is empty. Its entries get as much room as
    /// these took, so that filling it does not grow it step by step.
    pub fn next_segment(&self, carry: bool) -> ActiveKeyIndex {
        let slots = Vec::with_capacity(self.slots.len());
        if !carry {
            return ActiveKeyIndex {
                slots,
                ..ActiveKeyIndex::default()
            };
        }
        let mut next = ActiveKeyIndex {
            slots,
            keys: self.keys.clone(),
            last: self.last.clone(),
            collided: self.collided.clone(),
        };
        for last in next.last.values_mut().chain(next.collided.values_mut()) {
            last.slot = NONE;
        }
        next
    }

    /// Writes the sealed index of these entries to `sink`, then becomes the next segment's
    /// index ([`ActiveKeyIndex::next_segment`]).
    pub fn seal<E>(
        &mut self,
        carry: bool,
        sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let written = self.write_sealed(sink);
        *self = self.next_segment(carry);
        written
    }

    /// [`ActiveKeyIndex::seal`] into memory.
    #[cfg(test)]
    pub fn seal_to_vec(&mut self, carry: bool) -> Vec<u8> {
        file::in_memory(|sink| self.seal(carry, sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_grows_and_keeps_every_keys_revisions() {
        let mut active = ActiveKeyIndex::default();
        // Enough keys to grow the table several times; each written a few times.
        for round in 0..3i64 {
            for k in 0..5_000i64 {
                let key = format!("key-{k}");
                let offset = round * 5_000 + k;
                active.append(
                    key.as_bytes(),
                    key_hash(key.as_bytes()),
                    offset,
                    0,
                    0,
                    |last| last.map_or(0, |r| r + 1),
                );
            }
        }
        assert_eq!(active.keys(), 5_000);
        assert!(active.last.len() * 8 <= active.last.buckets.len() * 7);
        for k in [0, 1, 2_500, 4_999] {
            let key = format!("key-{k}");
            assert_eq!(
                active.last_revision(key.as_bytes(), key_hash(key.as_bytes())),
                Some(2)
            );
            let offsets: Vec<i64> = active
                .lookup(key.as_bytes())
                .iter()
                .map(|e| e.offset)
                .collect();
            assert_eq!(offsets, vec![k, 5_000 + k, 10_000 + k]);
        }
        assert_eq!(
            active.last_revision(b"key-5000", key_hash(b"key-5000")),
            None
        );
        // Carried into the next segment: known with their revisions, without entries.
        let sealed =
            file::SealedKeyIndex::open(bytes::Bytes::from(active.seal_to_vec(true))).unwrap();
        assert_eq!(sealed.len(), 15_000);
        assert_eq!(active.len(), 0);
        assert_eq!(active.last(b"key-7"), Some(None));
        assert_eq!(active.last_revision(b"key-7", key_hash(b"key-7")), Some(2));
    }
}
