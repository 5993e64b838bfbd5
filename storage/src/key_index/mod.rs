//! The per-key index of a partition (topic config `brook.key.index=true`): for every record
//! key, where its records are (offset), which revision each is (the 0-based count of the
//! key's earlier records in the partition), and when it was written.
//!
//! - [`file`]: a sealed segment's immutable index, sorted by key hash, with a Bloom filter
//!   ([`filter`]) so that a lookup skips segments that lack the key;
//! - [`ActiveKeyIndex`]: the active segment's entries in memory, written out as a sealed
//!   index when the segment rolls, rebuilt from the log at recovery.
//!
//! - [`KeyIndex`]: one partition's whole index (sealed files, the active entries, a bounded
//!   cache of stream heads, and the keys of ongoing transactions, which count only once
//!   committed). The log feeds it every appended batch; files are the log's business
//!   (`crate::log::keys`).
//!
//! Keys are hashed with [`key_hash`], a function fixed by the file format.

mod active;
pub mod file;
pub(crate) mod filter;

pub use active::ActiveKeyIndex;

use std::collections::{BTreeMap, HashMap};

use brook_protocol::batch::{BatchView, Compression};
use brook_protocol::control::{self, ControlType};
use brook_protocol::records::Records;

use file::SealedKeyIndex;

/// The most a compressed batch is decompressed to while indexing it (Produce has already
/// bounded it by the topic's limit; this only stops a damaged log from exhausting memory).
const MAX_DECOMPRESSED: usize = 1 << 30;

/// Hashes keys for the in-memory maps with CRC-32C (a single instruction per 8 bytes on
/// x86-64 and Arm), spread over 64 bits: every appended record costs a lookup, and the
/// standard SipHash is several times slower on short keys. Keys come from producers, but a
/// collision flood only slows the producer's own partition.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = (self.0 << 32) | u64::from(crc32c::crc32c_append(self.0 as u32, bytes));
    }
    fn write_usize(&mut self, n: usize) {
        self.0 ^= n as u64;
    }
    fn finish(&self) -> u64 {
        // Fibonacci hashing: the map takes its control bits from the top of the hash.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// A map by key with [`KeyHasher`].
pub type KeyMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// One record of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntry {
    pub offset: i64,
    /// The 0-based count of the key's earlier records in the partition.
    pub revision: i64,
    pub timestamp: i64,
    /// Where the record starts in its batch's records section (decompressed, for a
    /// compressed batch), so that a reader decodes it alone; [`NO_POSITION`] if unknown.
    pub position: u32,
}

/// [`KeyEntry::position`] when it is not known.
pub const NO_POSITION: u32 = u32::MAX;

/// A key's 64-bit hash, as the index files store it: CRC-32C of the key in the high half,
/// CRC-32C continued from the seed `0x5bd1e995` in the low half. Fixed by the format.
pub fn key_hash(key: &[u8]) -> u64 {
    let high = u64::from(crc32c::crc32c(key));
    let low = u64::from(crc32c::crc32c_append(0x5bd1_e995, key));
    (high << 32) | low
}

/// A record of an ongoing transaction: indexed when its COMMIT marker is appended, dropped
/// at its ABORT marker.
#[derive(Debug)]
struct PendingRecord {
    key: Vec<u8>,
    offset: i64,
    timestamp: i64,
    position: u32,
}

/// The last entry of recently used keys (`None`: the key has no stream): at least the last
/// `capacity` keys used and at most twice as many, in two generations, the older dropped
/// whole when the newer fills up; so memory stays bounded however many keys the partition
/// holds.
#[derive(Debug)]
struct HeadCache {
    capacity: usize,
    hot: KeyMap<Vec<u8>, Option<KeyEntry>>,
    cold: KeyMap<Vec<u8>, Option<KeyEntry>>,
}

impl HeadCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            hot: KeyMap::default(),
            cold: KeyMap::default(),
        }
    }

    fn get(&mut self, key: &[u8]) -> Option<Option<KeyEntry>> {
        if let Some(head) = self.hot.get(key) {
            return Some(*head);
        }
        let head = self.cold.remove(key)?;
        self.put(key.to_vec(), head);
        Some(head)
    }

    fn put(&mut self, key: Vec<u8>, head: Option<KeyEntry>) {
        if self.capacity == 0 {
            return;
        }
        if self.hot.len() >= self.capacity {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.hot.insert(key, head);
    }

    /// A key's head moved: a cached value would be stale.
    fn update(&mut self, key: &[u8], head: KeyEntry) {
        if let Some(h) = self.hot.get_mut(key) {
            *h = Some(head);
        } else if let Some(h) = self.cold.get_mut(key) {
            *h = Some(head);
        }
    }

    fn len(&self) -> usize {
        self.hot.len() + self.cold.len()
    }
}

/// One partition's key index (see the module docs). Every method is called with the
/// partition's log locked.
#[derive(Debug)]
pub struct KeyIndex {
    /// Sealed segments' indexes by segment base offset.
    sealed: BTreeMap<i64, SealedKeyIndex>,
    /// The last entry of each key whose segments retention or compaction removed: so that
    /// such a stream's next event continues its revisions instead of starting again at 0.
    retired: Option<SealedKeyIndex>,
    active: ActiveKeyIndex,
    heads: HeadCache,
    /// Producer id -> its ongoing transaction's keyed records, in offset order.
    pending: HashMap<i64, Vec<PendingRecord>>,
}

impl KeyIndex {
    /// An empty index whose head cache holds at most `cache_keys` keys.
    pub fn new(cache_keys: usize) -> Self {
        Self {
            sealed: BTreeMap::new(),
            retired: None,
            active: ActiveKeyIndex::default(),
            heads: HeadCache::new(cache_keys),
            pending: HashMap::new(),
        }
    }

    /// The key's stream head: its last committed record (`None`: no stream).
    pub fn head(&mut self, key: &[u8]) -> Option<KeyEntry> {
        if let Some(last) = self.active.last(key) {
            return Some(last);
        }
        head_outside_active(&self.sealed, &self.retired, &mut self.heads, key)
    }

    /// The revision of the key's stream head (`None`: no stream): [`KeyIndex::head`]
    /// without reading the entry, for conditional appends.
    pub fn head_revision(&mut self, key: &[u8]) -> Option<i64> {
        match self.active.last_revision(key) {
            Some(r) => Some(r),
            None => head_outside_active(&self.sealed, &self.retired, &mut self.heads, key)
                .map(|h| h.revision),
        }
    }

    /// Every indexed record of the key, in revision order (entries of records that
    /// compaction or retention removed included: the caller reads each offset and skips
    /// those it no longer finds).
    pub fn entries(&self, key: &[u8]) -> Vec<KeyEntry> {
        let mut out: Vec<KeyEntry> = self.sealed.values().flat_map(|s| s.lookup(key)).collect();
        out.extend(self.active.lookup(key));
        out.sort_by_key(|e| e.revision);
        out
    }

    /// Indexes an appended batch (offsets assigned): each keyed record of a
    /// non-transactional batch now; a transactional batch's records at its COMMIT marker.
    pub fn observe(&mut self, view: &BatchView<'_>) {
        if view.is_control() {
            if let Some(marker) = control::parse_marker(view) {
                let records = self.pending.remove(&view.producer_id());
                if marker.control == ControlType::Commit {
                    for r in records.into_iter().flatten() {
                        self.index_record(&r.key, r.offset, r.timestamp, r.position);
                    }
                }
            }
            return;
        }
        if view.is_transactional() {
            let pid = view.producer_id();
            let mut pending = self.pending.remove(&pid).unwrap_or_default();
            for_each_keyed(view, |key, offset, timestamp, position| {
                pending.push(PendingRecord {
                    key: key.to_vec(),
                    offset,
                    timestamp,
                    position,
                })
            });
            self.pending.insert(pid, pending);
        } else {
            with_keyed(view, |records| {
                // Each record's table entry is touched a few records ahead: the cache
                // misses of a batch then overlap instead of coming one after another.
                const AHEAD: usize = 6;
                for (i, r) in records.iter().enumerate() {
                    if let Some(next) = records.get(i + AHEAD) {
                        self.active.touch(next.hash);
                    }
                    self.index_hashed(r.key, r.hash, r.offset, r.timestamp, r.position);
                }
            });
        }
    }

    /// Gives the key's next revision to the record at `offset`.
    fn index_record(&mut self, key: &[u8], offset: i64, timestamp: i64, position: u32) {
        self.index_hashed(key, key_hash(key), offset, timestamp, position);
    }

    /// [`KeyIndex::index_record`] with the key's hash known.
    fn index_hashed(&mut self, key: &[u8], hash: u64, offset: i64, timestamp: i64, position: u32) {
        // The common case, a key already written in this segment, costs one lookup; the
        // head cache is brought up to date for such keys when the segment is sealed.
        let (sealed, retired, heads) = (&self.sealed, &self.retired, &mut self.heads);
        let (entry, first_here) =
            self.active
                .append(key, hash, offset, timestamp, position, |last| {
                    last.map_or_else(
                        || {
                            head_outside_active(sealed, retired, heads, key)
                                .map_or(0, |h| h.revision + 1)
                        },
                        |r| r + 1,
                    )
                });
        // A cached head is stale once the key has entries here; later ones are caught up
        // when the segment is sealed.
        if first_here {
            self.heads.update(key, entry);
        }
    }

    /// The active entries as a sealed index file's bytes, emptying them (the segment rolls).
    pub(crate) fn seal_active(&mut self) -> Vec<u8> {
        // The next segment starts with no entries. While the keys fit the cache's size, the
        // active table keeps them with their revisions; beyond, the cache takes their heads.
        // Either way each key's first record there need not search the files.
        let carry = self.active.keys() <= self.heads.capacity;
        for (key, last) in self.active.heads() {
            if carry {
                self.heads.update(key, last);
            } else {
                self.heads.put(key.to_vec(), Some(last));
            }
        }
        self.active.seal(carry)
    }

    pub(crate) fn add_sealed(&mut self, base: i64, index: SealedKeyIndex) {
        self.sealed.insert(base, index);
    }

    pub(crate) fn sealed(&self, base: i64) -> Option<&SealedKeyIndex> {
        self.sealed.get(&base)
    }

    pub(crate) fn set_retired(&mut self, retired: Option<SealedKeyIndex>) {
        self.retired = retired;
    }

    /// The retired index once the sealed indexes of `bases` are folded into it: per key,
    /// the entry with the greatest revision.
    pub(crate) fn retired_with(&self, bases: &[i64]) -> Vec<u8> {
        let mut last: HashMap<&[u8], KeyEntry> = HashMap::new();
        let sources = self
            .retired
            .iter()
            .chain(bases.iter().filter_map(|b| self.sealed.get(b)));
        for index in sources {
            for (key, entry) in index.iter() {
                let slot = last.entry(key).or_insert(entry);
                if entry.revision > slot.revision {
                    *slot = entry;
                }
            }
        }
        let entries: Vec<(Vec<u8>, KeyEntry)> =
            last.into_iter().map(|(k, e)| (k.to_vec(), e)).collect();
        file::encode(&entries)
    }

    /// Forgets a removed segment's index (after [`KeyIndex::retired_with`] took its heads).
    pub(crate) fn remove_sealed(&mut self, base: i64) {
        self.sealed.remove(&base);
        // Cached heads stay right: a head never moves back.
    }

    /// Entries of the active segment (in memory).
    pub fn active_entries(&self) -> usize {
        self.active.len()
    }

    /// Keys whose head is cached.
    pub fn cached_heads(&self) -> usize {
        self.heads.len()
    }

    /// Keyed records of ongoing transactions, not yet indexed.
    pub fn pending_records(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }
}

/// The key's head as the sealed and retired indexes know it, through the cache.
fn head_outside_active(
    sealed: &BTreeMap<i64, SealedKeyIndex>,
    retired: &Option<SealedKeyIndex>,
    heads: &mut HeadCache,
    key: &[u8],
) -> Option<KeyEntry> {
    if let Some(cached) = heads.get(key) {
        return cached;
    }
    let head = sealed
        .values()
        .rev()
        .find_map(|s| s.lookup(key).last().copied())
        .or_else(|| retired.as_ref()?.lookup(key).last().copied());
    heads.put(key.to_vec(), head);
    head
}

/// Calls `f(key, offset, timestamp)` for each record of `view` that has a key. A batch whose
/// records cannot be read is skipped (the log validated it on the way in; only a damaged
/// log gets here).
fn for_each_keyed(view: &BatchView<'_>, mut f: impl FnMut(&[u8], i64, i64, u32)) {
    with_keyed(view, |records| {
        for r in records {
            f(r.key, r.offset, r.timestamp, r.position);
        }
    });
}

/// A keyed record of a batch being indexed.
struct Keyed<'a> {
    key: &'a [u8],
    hash: u64,
    offset: i64,
    timestamp: i64,
    position: u32,
}

/// Calls `f` once with every keyed record of `view`, keys hashed. A batch whose records
/// cannot be read is skipped (the log validated it on the way in; only a damaged log gets
/// here).
fn with_keyed(view: &BatchView<'_>, f: impl FnOnce(&[Keyed<'_>])) {
    let (base_offset, base_ts) = (view.base_offset(), view.base_timestamp());
    let append_time = view.is_log_append_time().then(|| view.max_timestamp());
    let collect = |data: &[u8], f: &mut dyn FnMut(&[Keyed<'_>])| {
        let mut records: Vec<Keyed<'_>> = Vec::with_capacity(view.records_count().max(0) as usize);
        let mut iter = Records::new(data, view.records_count());
        loop {
            let position = u32::try_from(iter.position()).unwrap_or(NO_POSITION);
            let Some(Ok(record)) = iter.next() else {
                break;
            };
            if let Some(key) = record.key {
                records.push(Keyed {
                    key,
                    hash: key_hash(key),
                    offset: base_offset + i64::from(record.offset_delta),
                    timestamp: append_time.unwrap_or(base_ts + record.timestamp_delta),
                    position,
                });
            }
        }
        f(&records);
    };
    let mut f = Some(f);
    let mut call = |records: &[Keyed<'_>]| {
        if let Some(f) = f.take() {
            f(records);
        }
    };
    match view.compression() {
        Some(Compression::None) => collect(view.records_data(), &mut call),
        Some(codec) => {
            match brook_protocol::compression::decompress(
                codec,
                view.records_data(),
                MAX_DECOMPRESSED,
            ) {
                Ok(data) => collect(&data, &mut call),
                Err(e) => {
                    tracing::warn!(offset = base_offset, error = %e, "key index: a batch's records cannot be read; not indexed")
                }
            }
        }
        None => {}
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
                    position: i as u32,
                },
            );
        }
        assert_eq!(active.len(), 300);
        let before: Vec<Vec<KeyEntry>> = (0..7)
            .map(|k| active.lookup(format!("agg-{k}").as_bytes()).to_vec())
            .collect();
        assert_eq!(active.last(b"agg-0").map(|e| e.revision), Some(42));
        let sealed = file::SealedKeyIndex::open(bytes::Bytes::from(active.seal(false))).unwrap();
        assert!(active.is_empty());
        for (k, entries) in before.iter().enumerate() {
            assert_eq!(&sealed.lookup(format!("agg-{k}").as_bytes()), entries);
        }
    }
}
