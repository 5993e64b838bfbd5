//! The key index of a sealed segment (`<base>.keyindex`), immutable once written. All
//! integers big-endian:
//!
//! ```text
//! offset  size   field
//! 0       4      magic "BKI2"
//! 4       4      entry count N (u32)
//! 8       4      filter bytes F (u32)
//! 12      1      filter probes K (u8)
//! 13      3      reserved (zero)
//! 16      40*N   entries, sorted by (key hash, revision):
//!                  key hash u64, offset i64, revision i64, timestamp i64,
//!                  record position u32 (in its batch's records section, u32::MAX unknown),
//!                  key position u32 (into the key section)
//! 16+40N  F      Bloom filter bits (see `filter.rs`)
//! ...     ...    key section: each distinct key once, as length u32 + bytes
//! end-4   4      CRC-32C of everything before it
//! ```
//!
//! A lookup checks the filter, binary-searches the entries for the key's hash, and compares
//! each candidate's stored key with the key asked for (different keys may share a hash).

use bytes::Bytes;

use super::filter::{Filter, PROBES};
use super::{key_hash, KeyEntry};

const MAGIC: &[u8; 4] = b"BKI2";
const HEADER: usize = 16;
const ENTRY: usize = 40;

/// A key index file that cannot be used (it is rebuilt from the log instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyIndexError {
    #[error("key index: {0}")]
    Corrupt(&'static str),
}

/// Encodes the index of `entries` (key and entry, in any order).
pub fn encode(entries: &[(Vec<u8>, KeyEntry)]) -> Vec<u8> {
    let mut ids: std::collections::HashMap<&[u8], u32> = std::collections::HashMap::new();
    let items = entries
        .iter()
        .map(|(k, e)| {
            let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
            let id = *ids.entry(k.as_slice()).or_insert(next);
            (key_hash(k), k.as_slice(), id, *e)
        })
        .collect();
    encode_items(items)
}

/// Encodes the index of `items`: (key hash, key, an id the same for equal keys and
/// different for different ones, entry), in any order.
pub(crate) fn encode_items(mut items: Vec<(u64, &[u8], u32, KeyEntry)>) -> Vec<u8> {
    items.sort_unstable_by_key(|(h, _, _, e)| (*h, e.revision));
    let mut keys: Vec<u8> = Vec::new();
    let mut positions: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    let mut filter = Filter::with_capacity(items.len());
    let mut body = Vec::with_capacity(items.len() * ENTRY);
    // Entries of one key are adjacent (sorted by hash): the map is asked once per key.
    let mut previous: Option<(u32, u32)> = None;
    for (hash, key, id, entry) in &items {
        let position = match previous {
            Some((p_id, p_pos)) if p_id == *id => p_pos,
            _ => *positions.entry(*id).or_insert_with(|| {
                filter.insert(*hash);
                let at = u32::try_from(keys.len()).unwrap_or(u32::MAX);
                keys.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
                keys.extend_from_slice(key);
                at
            }),
        };
        previous = Some((*id, position));
        body.extend_from_slice(&hash.to_be_bytes());
        body.extend_from_slice(&entry.offset.to_be_bytes());
        body.extend_from_slice(&entry.revision.to_be_bytes());
        body.extend_from_slice(&entry.timestamp.to_be_bytes());
        body.extend_from_slice(&entry.position.to_be_bytes());
        body.extend_from_slice(&position.to_be_bytes());
    }
    let mut out = Vec::with_capacity(HEADER + body.len() + filter.bits.len() + keys.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(items.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(
        &u32::try_from(filter.bits.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.push(PROBES);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&body);
    out.extend_from_slice(&filter.bits);
    out.extend_from_slice(&keys);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A sealed segment's key index, read from its bytes (a memory map in use).
#[derive(Debug, Clone)]
pub struct SealedKeyIndex {
    bytes: Bytes,
    count: usize,
    filter: std::ops::Range<usize>,
    probes: u8,
    keys: std::ops::Range<usize>,
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl SealedKeyIndex {
    /// Checks the header, the layout and the CRC.
    pub fn open(bytes: Bytes) -> Result<Self, KeyIndexError> {
        let corrupt = KeyIndexError::Corrupt;
        if bytes.len() < HEADER + 4 || &bytes[..4] != MAGIC {
            return Err(corrupt("not a key index"));
        }
        let body_end = bytes.len() - 4;
        let stored = be_u32(&bytes, body_end).ok_or(corrupt("short"))?;
        if crc32c::crc32c(&bytes[..body_end]) != stored {
            return Err(corrupt("checksum mismatch"));
        }
        let count = be_u32(&bytes, 4).ok_or(corrupt("short"))? as usize;
        let filter_len = be_u32(&bytes, 8).ok_or(corrupt("short"))? as usize;
        let probes = bytes[12];
        let filter_start = count
            .checked_mul(ENTRY)
            .and_then(|n| n.checked_add(HEADER))
            .ok_or(corrupt("entry count overflows"))?;
        let keys_start = filter_start
            .checked_add(filter_len)
            .filter(|k| *k <= body_end)
            .ok_or(corrupt("sections overrun the file"))?;
        Ok(Self {
            count,
            filter: filter_start..keys_start,
            probes,
            keys: keys_start..body_end,
            bytes,
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the key may have entries here (`false`: it certainly has none).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        Filter::may_contain(&self.bytes[self.filter.clone()], self.probes, key_hash(key))
    }

    fn entry_at(&self, i: usize) -> Option<(u64, KeyEntry, u32)> {
        let at = HEADER + i * ENTRY;
        let b = &self.bytes;
        Some((
            u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?),
            KeyEntry {
                offset: be_i64(b, at + 8)?,
                revision: be_i64(b, at + 16)?,
                timestamp: be_i64(b, at + 24)?,
                position: be_u32(b, at + 32)?,
            },
            be_u32(b, at + 36)?,
        ))
    }

    fn key_at(&self, position: u32) -> Option<&[u8]> {
        let keys = &self.bytes[self.keys.clone()];
        let at = position as usize;
        let len = be_u32(keys, at)? as usize;
        keys.get(at + 4..at + 4 + len)
    }

    /// Every entry with its key, in file order (by key hash, then revision).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], KeyEntry)> + '_ {
        (0..self.count).filter_map(|i| {
            let (_, entry, position) = self.entry_at(i)?;
            Some((self.key_at(position)?, entry))
        })
    }

    /// The greatest offset any entry names (-1 if none): a segment's entries never name an
    /// offset at or past its end, so a larger one means the index is not this segment's.
    pub fn max_offset(&self) -> i64 {
        (0..self.count)
            .filter_map(|i| self.entry_at(i))
            .map(|(_, e, _)| e.offset)
            .max()
            .unwrap_or(-1)
    }

    /// The key's entries here, in revision order.
    pub fn lookup(&self, key: &[u8]) -> Vec<KeyEntry> {
        if !self.may_contain(key) {
            return Vec::new();
        }
        let hash = key_hash(key);
        // The first entry whose hash is not below the key's.
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.entry_at(mid) {
                Some((h, _, _)) if h < hash => lo = mid + 1,
                _ => hi = mid,
            }
        }
        let mut out = Vec::new();
        for i in lo..self.count {
            let Some((h, entry, position)) = self.entry_at(i) else {
                break;
            };
            if h != hash {
                break;
            }
            if self.key_at(position) == Some(key) {
                out.push(entry);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: i64, revision: i64) -> KeyEntry {
        KeyEntry {
            offset,
            revision,
            timestamp: 1_000 + offset,
            position: offset as u32,
        }
    }

    #[test]
    fn entries_read_back_by_key_in_revision_order() {
        let entries = vec![
            (b"loan-2".to_vec(), entry(11, 0)),
            (b"loan-1".to_vec(), entry(10, 3)),
            (b"loan-1".to_vec(), entry(12, 4)),
            (b"loan-3".to_vec(), entry(13, 0)),
            (b"loan-1".to_vec(), entry(14, 5)),
        ];
        let index = SealedKeyIndex::open(Bytes::from(encode(&entries))).unwrap();
        assert_eq!(index.len(), 5);
        assert_eq!(
            index.lookup(b"loan-1"),
            vec![entry(10, 3), entry(12, 4), entry(14, 5)]
        );
        assert_eq!(index.lookup(b"loan-3"), vec![entry(13, 0)]);
        assert!(index.lookup(b"loan-9").is_empty());
        assert!(index.lookup(b"").is_empty());
        let empty = SealedKeyIndex::open(Bytes::from(encode(&[]))).unwrap();
        assert!(empty.is_empty() && empty.lookup(b"x").is_empty());
    }

    #[test]
    fn many_keys_each_find_only_their_own_entries() {
        let entries: Vec<(Vec<u8>, KeyEntry)> = (0..5_000)
            .map(|i| (format!("k{}", i % 1_000).into_bytes(), entry(i, i / 1_000)))
            .collect();
        let index = SealedKeyIndex::open(Bytes::from(encode(&entries))).unwrap();
        for k in [0, 1, 499, 999] {
            let found = index.lookup(format!("k{k}").as_bytes());
            let offsets: Vec<i64> = found.iter().map(|e| e.offset).collect();
            assert_eq!(
                offsets,
                (0..5).map(|r| r * 1_000 + k).collect::<Vec<_>>(),
                "k{k}"
            );
        }
    }

    #[test]
    fn damage_is_detected_not_read() {
        let mut bytes = encode(&[(b"a".to_vec(), entry(1, 0))]);
        assert!(SealedKeyIndex::open(Bytes::from(bytes.clone())).is_ok());
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        assert_eq!(
            SealedKeyIndex::open(Bytes::from(bytes)).unwrap_err(),
            KeyIndexError::Corrupt("checksum mismatch")
        );
        assert!(SealedKeyIndex::open(Bytes::from_static(b"BKI1")).is_err());
        assert!(SealedKeyIndex::open(Bytes::from_static(b"nope, not an index at all")).is_err());
    }
}
