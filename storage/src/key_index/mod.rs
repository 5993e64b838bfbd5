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
use std::sync::Arc;

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

/// Hashes a [`key_hash`], already well mixed, as itself: for maps whose keys are hashed
/// once, before the map is asked.
#[derive(Debug, Default, Clone, Copy)]
pub struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
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

/// A map by [`key_hash`] with [`PreHashed`].
pub type ByKeyHash<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PreHashed>>;

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

/// Asks the CPU to load `value`'s cache line, without waiting for it.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn prefetch<T>(value: &T) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: a prefetch is a hint that reads nothing and cannot fault; SSE, which the
    // instruction belongs to, is part of every x86-64 CPU.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast()) }
}

/// Elsewhere, an ordinary read that nothing waits for does nearly the same.
#[cfg(not(target_arch = "x86_64"))]
fn prefetch<T>(value: &T) {
    std::hint::black_box(std::ptr::from_ref(value));
}

/// Two keys with the same [`key_hash`] (CRCs are linear, so such pairs are easy to make):
/// tests use them to show that keys, not hashes, name streams.
#[cfg(test)]
pub(crate) const COLLIDING_KEYS: [&[u8]; 2] = [b"loan-1", &[157, 25, 141, 107, 44, 49]];

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

    /// Forgets the key's head (it may be stale).
    fn remove(&mut self, key: &[u8]) {
        self.hot.remove(key);
        self.cold.remove(key);
    }

    fn len(&self) -> usize {
        self.hot.len() + self.cold.len()
    }
}

/// What the index knows of the segments before the active one.
#[derive(Debug, Default)]
struct Earlier {
    /// Sealed segments' index files by segment base offset.
    sealed: BTreeMap<i64, SealedKeyIndex>,
    /// The segment that rolled last (base offset, entries) while its file is written
    /// ([`KeyIndex::start_seal`]); newer than every file in `sealed`.
    sealing: Option<(i64, Arc<ActiveKeyIndex>)>,
    /// The last entry of each key whose segments retention or compaction removed: so that
    /// such a stream's next event continues its revisions instead of starting again at 0.
    retired: Option<SealedKeyIndex>,
}

impl Earlier {
    /// The key's last entry in these segments, newest segment first.
    fn head(&self, key: &[u8]) -> Option<KeyEntry> {
        if let Some(Some(last)) = self.sealing.as_ref().and_then(|(_, s)| s.last(key)) {
            return Some(last);
        }
        self.sealed
            .values()
            .rev()
            .find_map(|s| s.lookup(key).last().copied())
            .or_else(|| self.retired.as_ref()?.lookup(key).last().copied())
    }

    /// The key's head through `heads`, the cache of recently used heads.
    fn cached_head(&self, heads: &mut HeadCache, key: &[u8]) -> Option<KeyEntry> {
        if let Some(cached) = heads.get(key) {
            return cached;
        }
        let head = self.head(key);
        heads.put(key.to_vec(), head);
        head
    }

    /// The key's entries in these segments (retired heads aside), in no particular order.
    fn entries<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = KeyEntry> + 'a {
        let sealing = self.sealing.as_ref().map(|(_, s)| s.lookup(key));
        self.sealed
            .values()
            .flat_map(|s| s.lookup(key))
            .chain(sealing.into_iter().flatten())
    }
}

/// One partition's key index (see the module docs). Every method is called with the
/// partition's log locked.
#[derive(Debug)]
pub struct KeyIndex {
    earlier: Earlier,
    active: ActiveKeyIndex,
    heads: HeadCache,
    /// Producer id -> its ongoing transaction's keyed records, in offset order.
    pending: HashMap<i64, Vec<PendingRecord>>,
}

impl KeyIndex {
    /// An empty index whose head cache holds at most `cache_keys` keys.
    pub fn new(cache_keys: usize) -> Self {
        Self {
            earlier: Earlier::default(),
            active: ActiveKeyIndex::default(),
            heads: HeadCache::new(cache_keys),
            pending: HashMap::new(),
        }
    }

    /// The key's stream head: its last committed record (`None`: no stream).
    pub fn head(&mut self, key: &[u8]) -> Option<KeyEntry> {
        match self.active.last(key) {
            Some(Some(last)) => Some(last),
            // Carried over without records here: the cache may not have followed it (see
            // `start_seal`), the earlier segments have.
            Some(None) => self.earlier.head(key),
            None => self.earlier.cached_head(&mut self.heads, key),
        }
    }

    /// The revision of the key's stream head (`None`: no stream): [`KeyIndex::head`]
    /// without reading the entry, for conditional appends.
    pub fn head_revision(&mut self, key: &[u8]) -> Option<i64> {
        self.head_revision_hashed(key, key_hash(key))
    }

    /// [`KeyIndex::head_revision`] with the key's [`key_hash`] known.
    pub fn head_revision_hashed(&mut self, key: &[u8], hash: u64) -> Option<i64> {
        match self.active.last_revision(key, hash) {
            Some(r) => Some(r),
            None => self
                .earlier
                .cached_head(&mut self.heads, key)
                .map(|h| h.revision),
        }
    }

    /// Every indexed record of the key, in revision order (entries of records that
    /// compaction or retention removed included: the caller reads each offset and skips
    /// those it no longer finds).
    pub fn entries(&self, key: &[u8]) -> Vec<KeyEntry> {
        let mut out: Vec<KeyEntry> = self.earlier.entries(key).collect();
        out.extend(self.active.lookup(key));
        out.sort_by_key(|e| e.revision);
        out
    }

    /// Indexes an appended batch (offsets assigned): each keyed record of a
    /// non-transactional batch now; a transactional batch's records at its COMMIT marker.
    pub fn observe(&mut self, view: &BatchView<'_>) {
        self.observe_keys(view, None);
    }

    /// [`KeyIndex::observe`] with the batch's keys already read (`None`: read them here).
    pub fn observe_keys(&mut self, view: &BatchView<'_>, keys: Option<&BatchKeys>) {
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
        let read;
        let keys = match keys {
            Some(keys) if keys.records.len() == view.records_count().max(0) as usize => keys,
            _ => match BatchKeys::read(view) {
                Ok(keys) => {
                    read = keys;
                    &read
                }
                Err(e) => {
                    // The log validated the batch on the way in: only a damaged log gets here.
                    tracing::warn!(offset = view.base_offset(), error = %e, "key index: a batch's records cannot be read; not indexed");
                    return;
                }
            },
        };
        let (base_offset, section) = (view.base_offset(), keys.section(view));
        let append_time = view.is_log_append_time().then(|| view.max_timestamp());
        if view.is_transactional() {
            let pid = view.producer_id();
            let mut pending = self.pending.remove(&pid).unwrap_or_default();
            let keyed = keys
                .records
                .iter()
                .filter_map(|r| Some((r, keys.key_in(section, r)?)));
            for (r, key) in keyed {
                pending.push(PendingRecord {
                    key: key.to_vec(),
                    offset: base_offset + i64::from(r.index),
                    timestamp: append_time.unwrap_or(r.timestamp),
                    position: r.position,
                });
            }
            self.pending.insert(pid, pending);
            return;
        }
        // Each key's place in the table is prefetched a few records ahead, and its stored
        // key (found there) half as far: the cache misses of a batch then overlap instead
        // of coming one after another.
        const AHEAD: usize = 16;
        for r in keys.records.iter().take(AHEAD) {
            self.active.prefetch(r.hash);
        }
        for (i, r) in keys.records.iter().enumerate() {
            if let Some(next) = keys.records.get(i + AHEAD) {
                self.active.prefetch(next.hash);
            }
            if let Some(next) = keys.records.get(i + AHEAD / 2) {
                self.active.prefetch_key(next.hash);
            }
            if let Some(key) = keys.key_in(section, r) {
                let timestamp = append_time.unwrap_or(r.timestamp);
                let offset = base_offset + i64::from(r.index);
                self.index_hashed(key, r.hash, offset, timestamp, r.position);
            }
        }
    }

    /// Starts loading where the active table keeps `hash`, for a lookup of it soon after.
    pub fn prefetch(&self, hash: u64) {
        self.active.prefetch(hash);
    }

    /// Starts loading the stored key of `hash`, once its place in the table has arrived
    /// (some time after [`KeyIndex::prefetch`]).
    pub fn prefetch_key(&self, hash: u64) {
        self.active.prefetch_key(hash);
    }

    /// Gives the key's next revision to the record at `offset`.
    fn index_record(&mut self, key: &[u8], offset: i64, timestamp: i64, position: u32) {
        self.index_hashed(key, key_hash(key), offset, timestamp, position);
    }

    /// [`KeyIndex::index_record`] with the key's hash known.
    fn index_hashed(&mut self, key: &[u8], hash: u64, offset: i64, timestamp: i64, position: u32) {
        // The common case, a key the active table knows, costs one lookup. The head cache
        // is only asked for keys the table does not know, so it is brought up to date when
        // the segment is sealed, not here.
        let (earlier, heads) = (&self.earlier, &mut self.heads);
        self.active
            .append(key, hash, offset, timestamp, position, |last| {
                last.map_or_else(
                    || {
                        earlier
                            .cached_head(heads, key)
                            .map_or(0, |h| h.revision + 1)
                    },
                    |r| r + 1,
                )
            });
    }

    /// The active segment rolled (its base offset is `base`): its entries are handed out to
    /// be written as its index file, and the next segment's index starts. The caller writes
    /// the file (on another thread if it likes) and installs it with
    /// [`KeyIndex::sealed_written`]; until then lookups read the entries here. One segment at
    /// a time: the previous one's file is installed first.
    pub(crate) fn start_seal(&mut self, base: i64) -> Arc<ActiveKeyIndex> {
        // The next segment starts with no entries. While the keys fit the cache's size, the
        // active table keeps them with their revisions; beyond, the cache takes their heads.
        // Either way each key's first record there need not search the files.
        let carry = self.active.keys() <= self.heads.capacity;
        // The cache is only asked about keys the table does not know, and a key the table
        // does not know has not been written since the cache learned its head: so while the
        // table carries its keys, nothing here can make a cached head stale. When it lets
        // them go, the cache takes the heads of those written here and forgets the others
        // (the files answer for them).
        if !carry {
            for (key, last) in self.active.heads() {
                match last {
                    Some(last) => self.heads.put(key.to_vec(), Some(last)),
                    None => self.heads.remove(key),
                }
            }
        }
        let next = self.active.next_segment(carry);
        let entries = Arc::new(std::mem::replace(&mut self.active, next));
        self.earlier.sealing = Some((base, Arc::clone(&entries)));
        entries
    }

    /// Installs segment `base`'s index file, written from what [`KeyIndex::start_seal`]
    /// handed out (or loaded at open).
    pub(crate) fn sealed_written(&mut self, base: i64, index: SealedKeyIndex) {
        if self
            .earlier
            .sealing
            .as_ref()
            .is_some_and(|(b, _)| *b == base)
        {
            self.earlier.sealing = None;
        }
        self.earlier.sealed.insert(base, index);
    }

    pub(crate) fn sealed(&self, base: i64) -> Option<&SealedKeyIndex> {
        self.earlier.sealed.get(&base)
    }

    pub(crate) fn set_retired(&mut self, retired: Option<SealedKeyIndex>) {
        self.earlier.retired = retired;
    }

    /// Writes to `sink` the retired index once the sealed indexes of `bases` are folded into
    /// it: per key, the entry with the greatest revision. Streamed (see
    /// [`file::write_merged`]): memory does not grow with the number of keys.
    pub(crate) fn write_retired_with<E>(
        &self,
        bases: &[i64],
        sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let sources: Vec<&SealedKeyIndex> = self
            .earlier
            .retired
            .iter()
            .chain(bases.iter().filter_map(|b| self.earlier.sealed.get(b)))
            .collect();
        file::write_merged(&sources, sink)
    }

    /// Forgets a removed segment's index (after [`KeyIndex::write_retired_with`] took its
    /// heads).
    pub(crate) fn remove_sealed(&mut self, base: i64) {
        self.earlier.sealed.remove(&base);
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

/// A batch's records as the index needs them, read before the partition is locked (the
/// produce path fills this from its validation walk): each key found and hashed, so that
/// indexing the batch under the lock is table work only.
#[derive(Debug, Default)]
pub struct BatchKeys {
    records: Vec<BatchKey>,
    /// A compressed batch's records section, decompressed (positions are into it).
    decompressed: Option<Vec<u8>>,
}

/// One record of [`BatchKeys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchKey {
    /// The record's offset delta (its index in the batch).
    pub index: i32,
    /// Where the key is in the records section (start, length); `None`: no key.
    pub key: Option<(u32, u32)>,
    /// The key's [`key_hash`] (0 without a key).
    pub hash: u64,
    /// The record's create time (base timestamp plus its delta).
    pub timestamp: i64,
    /// Where the record starts in the records section.
    pub position: u32,
}

impl BatchKeys {
    /// Room for `records` records of an uncompressed batch.
    pub fn with_capacity(records: usize) -> Self {
        Self {
            records: Vec::with_capacity(records),
            decompressed: None,
        }
    }

    /// Adds the next record: it starts at `position` in `section` (the batch's records
    /// section), its key at `key` (start, length) if it has one.
    pub fn push(
        &mut self,
        section: &[u8],
        index: i32,
        position: usize,
        key: Option<(usize, usize)>,
        timestamp: i64,
    ) {
        let found = key.and_then(|(at, len)| {
            let bytes = section.get(at..at.checked_add(len)?)?;
            let place = (u32::try_from(at).ok()?, u32::try_from(len).ok()?);
            Some((place, key_hash(bytes)))
        });
        let (key, hash) = (found.map(|f| f.0), found.map_or(0, |f| f.1));
        self.records.push(BatchKey {
            index,
            key,
            hash,
            timestamp,
            position: u32::try_from(position).unwrap_or(NO_POSITION),
        });
    }

    /// Reads every record of `view` (decompressing a compressed batch).
    pub fn read(view: &BatchView<'_>) -> Result<Self, String> {
        let count = usize::try_from(view.records_count()).unwrap_or(0);
        let mut keys = Self::with_capacity(count);
        let decompressed = match view.compression() {
            Some(Compression::None) => None,
            Some(codec) => Some(
                brook_protocol::compression::decompress(
                    codec,
                    view.records_data(),
                    MAX_DECOMPRESSED,
                )
                .map_err(|e| e.to_string())?,
            ),
            None => return Err("unknown compression codec".into()),
        };
        let section = decompressed.as_deref().unwrap_or(view.records_data());
        let base_ts = view.base_timestamp();
        let mut iter = Records::new(section, view.records_count());
        loop {
            let position = iter.position();
            let Some(record) = iter.next() else {
                break;
            };
            let record = record.map_err(|e| e.to_string())?;
            let key = record.key.map(|k| {
                // The key borrows from the section: its place is its distance from the start.
                (k.as_ptr() as usize - section.as_ptr() as usize, k.len())
            });
            keys.push(
                section,
                record.offset_delta,
                position,
                key,
                base_ts + record.timestamp_delta,
            );
        }
        keys.decompressed = decompressed;
        Ok(keys)
    }

    pub fn records(&self) -> &[BatchKey] {
        &self.records
    }

    /// The records section the positions refer to: the decompressed one, or `view`'s own.
    pub fn section<'a>(&'a self, view: &'a BatchView<'_>) -> &'a [u8] {
        self.decompressed.as_deref().unwrap_or(view.records_data())
    }

    /// The key of `record` in `section` (from [`BatchKeys::section`]).
    pub fn key_in<'a>(&self, section: &'a [u8], record: &BatchKey) -> Option<&'a [u8]> {
        let (at, len) = record.key?;
        section.get(at as usize..at as usize + len as usize)
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
        assert_eq!(
            active.last(b"agg-0").flatten().map(|e| e.revision),
            Some(42)
        );
        let sealed =
            file::SealedKeyIndex::open(bytes::Bytes::from(active.seal_to_vec(false))).unwrap();
        assert!(active.is_empty());
        for (k, entries) in before.iter().enumerate() {
            assert_eq!(&sealed.lookup(format!("agg-{k}").as_bytes()), entries);
        }
    }

    #[test]
    fn batch_keys_read_the_same_from_plain_and_compressed_batches() {
        use brook_protocol::batch::testing::{build_batch, TestRecord};
        let records: Vec<TestRecord> = ["loan-1", "", "loan-2"]
            .iter()
            .enumerate()
            .map(|(i, k)| TestRecord {
                key: (!k.is_empty()).then(|| k.as_bytes().to_vec()),
                value: Some(vec![b'x'; 100 * i]),
                timestamp_delta: i as i64,
                headers: Vec::new(),
            })
            .collect();
        let plain = build_batch(5_000, &records);
        let read = |b: &[u8]| {
            let view = BatchView::parse(b).unwrap();
            let keys = BatchKeys::read(&view).unwrap();
            let section = keys.section(&view);
            keys.records()
                .iter()
                .map(|r| {
                    let key = keys.key_in(section, r).map(<[u8]>::to_vec);
                    (r.index, key, r.hash, r.timestamp, r.position)
                })
                .collect::<Vec<_>>()
        };
        let expected = read(&plain);
        assert_eq!(expected.len(), 3);
        assert_eq!(expected[0].1.as_deref(), Some(&b"loan-1"[..]));
        assert_eq!(expected[0].2, key_hash(b"loan-1"));
        assert_eq!((expected[1].1.clone(), expected[1].2), (None, 0));
        assert_eq!(expected[2].3, 5_002);
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
            let b = brook_protocol::batch::testing::compressed(&plain, codec);
            assert_eq!(read(&b), expected, "{codec:?}");
        }
    }

    #[test]
    fn given_keys_index_as_read_ones_and_foreign_ones_are_ignored() {
        use brook_protocol::batch::testing::{build_batch, TestRecord};
        let batch = |keys: &[&str], base: i64| {
            let records: Vec<TestRecord> = keys
                .iter()
                .map(|k| TestRecord {
                    key: Some(k.as_bytes().to_vec()),
                    ..TestRecord::default()
                })
                .collect();
            let mut b = build_batch(0, &records);
            brook_protocol::batch::set_base_offset(&mut b, base);
            b
        };
        let (first, second) = (batch(&["a", "b", "a"], 0), batch(&["b"], 3));
        let mut read = KeyIndex::new(8);
        read.observe(&BatchView::parse(&first).unwrap());
        read.observe(&BatchView::parse(&second).unwrap());
        let mut given = KeyIndex::new(8);
        let keys = BatchKeys::read(&BatchView::parse(&first).unwrap()).unwrap();
        given.observe_keys(&BatchView::parse(&first).unwrap(), Some(&keys));
        // Keys of another batch (three records, not one) are not trusted for this one.
        given.observe_keys(&BatchView::parse(&second).unwrap(), Some(&keys));
        for key in [&b"a"[..], b"b"] {
            assert_eq!(given.entries(key), read.entries(key));
        }
        assert_eq!(given.head_revision(b"b"), Some(1));
    }
}
