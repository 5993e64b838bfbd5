//! The records of the internal `__transaction_state` topic, in Kafka's own schemas
//! (`TransactionLogKey` v0, `TransactionLogValue` v0), so Kafka's tools could read them:
//!
//! ```text
//! key   (version 0): version i16, transactional_id string
//! value (version 0): version i16, producer_id i64, producer_epoch i16,
//!                    transaction_timeout_ms i32, transaction_status i8,
//!                    transaction_partitions [topic string, partition_ids [i32]] (nullable),
//!                    transaction_last_update_timestamp_ms i64,
//!                    transaction_start_timestamp_ms i64
//! ```
//!
//! `transaction_status` is [`TxnState::id`]. A record with a null value (tombstone) removes
//! an expired transactional id. Replaying the records in log order gives every id's state.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{Txn, TxnState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
use crate::record_codec::{get_i16, get_i32, get_i64, get_i8, get_str, put_str, Malformed};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

pub(crate) fn key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(KEY_VERSION);
    put_str(&mut b, transactional_id);
    b.freeze()
}

pub(crate) fn value(t: &Txn) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(VALUE_VERSION);
    b.put_i64(t.producer_id);
    b.put_i16(t.producer_epoch);
    b.put_i32(t.timeout_ms);
    b.put_i8(t.state.id());
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &t.partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    b.put_i32(by_topic.len() as i32);
    for (topic, partitions) in by_topic {
        put_str(&mut b, topic);
        b.put_i32(partitions.len() as i32);
        for p in partitions {
            b.put_i32(p);
        }
    }
    b.put_i64(t.last_update_ms);
    b.put_i64(t.start_ms);
    b.freeze()
}

/// A decoded record: the transactional id and its state, or `None` for a tombstone.
pub(crate) fn decode(key: &[u8], value: Option<&[u8]>) -> Result<(String, Option<Txn>), Malformed> {
    let mut k = key;
    if get_i16(&mut k)? != KEY_VERSION {
        return Err(Malformed("unknown key version"));
    }
    let id = get_str(&mut k)?;
    let Some(mut v) = value else {
        return Ok((id, None));
    };
    let version = get_i16(&mut v)?;
    if version != VALUE_VERSION {
        return Err(Malformed("unknown value version"));
    }
    let producer_id = get_i64(&mut v)?;
    let producer_epoch = get_i16(&mut v)?;
    let timeout_ms = get_i32(&mut v)?;
    let state = TxnState::from_id(get_i8(&mut v)?).ok_or(Malformed("unknown state"))?;
    let mut partitions = std::collections::BTreeSet::new();
    let topics = get_i32(&mut v)?;
    for _ in 0..topics.max(0) {
        let topic = get_str(&mut v)?;
        let count = get_i32(&mut v)?;
        if usize::try_from(count).unwrap_or(0) > v.len() / 4 {
            return Err(Malformed("partition count beyond the record"));
        }
        for _ in 0..count.max(0) {
            partitions.insert((topic.clone(), get_i32(&mut v)?));
        }
    }
    let last_update_ms = get_i64(&mut v)?;
    let start_ms = get_i64(&mut v)?;
    Ok((
        id.clone(),
        Some(Txn {
            transactional_id: id,
            producer_id,
            prev_producer_id: NO_PRODUCER_ID,
            producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state,
            partitions,
            start_ms,
            last_update_ms,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_match_kafkas_layout() {
        let t = Txn {
            transactional_id: "orders-1".into(),
            producer_id: 4000,
            prev_producer_id: NO_PRODUCER_ID,
            producer_epoch: 3,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("a".to_string(), 1),
                ("a".to_string(), 0),
                ("b".to_string(), 2),
            ]
            .into_iter()
            .collect(),
            start_ms: 100,
            last_update_ms: 200,
        };
        let k = key(&t.transactional_id);
        assert_eq!(&k[..], b"\0\0\0\x08orders-1");
        let v = value(&t);
        // version, producer id, epoch, timeout, state, 2 topics.
        assert_eq!(&v[..2], &[0, 0]);
        assert_eq!(&v[2..10], &4000i64.to_be_bytes());
        assert_eq!(&v[10..12], &3i16.to_be_bytes());
        assert_eq!(&v[12..16], &60_000i32.to_be_bytes());
        assert_eq!(v[16], 1);
        assert_eq!(&v[17..21], &2i32.to_be_bytes());
        assert_eq!(&v[21..24], b"\0\x01a");
        assert_eq!(&v[24..36], &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&v[v.len() - 16..v.len() - 8], &200i64.to_be_bytes());
        assert_eq!(&v[v.len() - 8..], &100i64.to_be_bytes());
        assert_eq!(
            decode(&k, Some(&v)),
            Ok((t.transactional_id.clone(), Some(t)))
        );
        assert_eq!(decode(&k, None), Ok(("orders-1".to_string(), None)));
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let v = value(&Txn::new("x", 1, 10, 0));
        for cut in 0..v.len() {
            assert!(decode(&key("x"), Some(&v[..cut])).is_err(), "cut at {cut}");
        }
        assert!(decode(b"\0\x01\0\x01x", None).is_err());
        let mut bad_state = v.to_vec();
        bad_state[16] = 9;
        assert!(decode(&key("x"), Some(&bad_state)).is_err());
    }
}
