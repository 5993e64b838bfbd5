//! The Bloom filter of a sealed key index: a lookup skips a segment whose filter says its
//! key is absent. Ten bits per key and seven probes (about 1% false positives); probe `i`
//! sets bit `(h1 + i * h2) mod bits`, where `h1` and `h2` are the low and high halves of the
//! key's 64-bit hash ([`super::key_hash`]).

/// Bits per key in a filter.
pub(crate) const BITS_PER_KEY: u32 = 10;
/// Probes per key.
pub(crate) const PROBES: u8 = 7;

/// A filter's bits (at least 64, a multiple of 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) bits: Vec<u8>,
}

fn probes(hash: u64, bits: u32, count: u8) -> impl Iterator<Item = usize> {
    let (h1, h2) = (hash as u32, (hash >> 32) as u32);
    (0..u32::from(count)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % bits) as usize)
}

impl Filter {
    /// A filter sized for `keys` distinct keys.
    pub(crate) fn with_capacity(keys: usize) -> Self {
        let bits = (u32::try_from(keys).unwrap_or(u32::MAX / BITS_PER_KEY) * BITS_PER_KEY)
            .max(64)
            .div_ceil(8)
            * 8;
        Self {
            bits: vec![0; bits as usize / 8],
        }
    }

    fn bit_count(&self) -> u32 {
        u32::try_from(self.bits.len() * 8).unwrap_or(u32::MAX)
    }

    pub(crate) fn insert(&mut self, hash: u64) {
        for bit in probes(hash, self.bit_count(), PROBES) {
            self.bits[bit / 8] |= 1 << (bit % 8);
        }
    }

    /// Whether a key with this hash may be present (`false`: it is certainly absent).
    pub(crate) fn may_contain(bits: &[u8], probes_count: u8, hash: u64) -> bool {
        let count = u32::try_from(bits.len() * 8).unwrap_or(u32::MAX);
        count > 0
            && probes(hash, count, probes_count).all(|bit| bits[bit / 8] & (1 << (bit % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_index::key_hash;

    #[test]
    fn inserted_keys_are_found_and_most_others_are_not() {
        let mut filter = Filter::with_capacity(1_000);
        for i in 0..1_000 {
            filter.insert(key_hash(format!("loan-{i}").as_bytes()));
        }
        for i in 0..1_000 {
            let hash = key_hash(format!("loan-{i}").as_bytes());
            assert!(
                Filter::may_contain(&filter.bits, PROBES, hash),
                "no false negatives"
            );
        }
        let false_positives = (0..10_000)
            .filter(|i| {
                let hash = key_hash(format!("other-{i}").as_bytes());
                Filter::may_contain(&filter.bits, PROBES, hash)
            })
            .count();
        assert!(false_positives < 300, "{false_positives} of 10,000");
        assert!(
            !Filter::may_contain(&[], PROBES, 1),
            "an empty filter holds nothing"
        );
    }
}
