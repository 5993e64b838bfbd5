//! The records of the internal `__consumer_offsets` topic: committed offsets and group
//! metadata, in Kafka's own key and value schemas (so Kafka's tools could read them).
//!
//! - offset commit: key v1 `(group, topic, partition)`, value v3 `(offset, leader epoch,
//!   metadata, commit timestamp)`;
//! - group metadata: key v2 `(group)`, value v3 `(protocol type, generation, protocol,
//!   leader, state timestamp, members)`;
//! - a record with a null value (tombstone) deletes its key.
//!
//! Replaying the records in log order rebuilds every group's offsets and membership.

use bytes::{BufMut, Bytes, BytesMut};

use super::group::{CommittedOffset, StoredGroup, StoredMember};
use crate::record_codec::{
    get_bytes, get_i16, get_i32, get_i64, get_nullable_str, get_str, put_bytes, put_nullable_str,
    put_str, Malformed,
};

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

/// A decoded record of the offsets topic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StoreRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        /// `None`: the offset was deleted.
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        /// `None`: the group was deleted.
        value: Option<StoredGroup>,
    },
}

/// A record that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("malformed __consumer_offsets record: {0}")]
pub(crate) struct StoreDecodeError(&'static str);

impl From<Malformed> for StoreDecodeError {
    fn from(m: Malformed) -> Self {
        Self(m.0)
    }
}

pub(crate) fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(OFFSET_KEY_VERSION);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

pub(crate) fn offset_value(o: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(OFFSET_VALUE_VERSION);
    b.put_i64(o.offset);
    b.put_i32(o.leader_epoch);
    put_str(&mut b, &o.metadata);
    b.put_i64(o.commit_timestamp_ms);
    b.freeze()
}

pub(crate) fn group_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_KEY_VERSION);
    put_str(&mut b, group);
    b.freeze()
}

pub(crate) fn group_value(g: &StoredGroup) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut b, &g.protocol_type);
    b.put_i32(g.generation);
    put_nullable_str(&mut b, g.protocol.as_deref());
    put_nullable_str(&mut b, g.leader.as_deref());
    b.put_i64(g.state_timestamp_ms);
    b.put_i32(g.members.len() as i32);
    for m in &g.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// Decodes one record of the offsets topic.
pub(crate) fn decode(key: &[u8], value: Option<&[u8]>) -> Result<StoreRecord, StoreDecodeError> {
    let mut k = key;
    let version = get_i16(&mut k)?;
    match version {
        0 | 1 => {
            let group = get_str(&mut k)?;
            let topic = get_str(&mut k)?;
            let partition = get_i32(&mut k)?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(StoreRecord::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = get_str(&mut k)?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(StoreRecord::Group { group, value })
        }
        _ => Err(StoreDecodeError("unknown key version")),
    }
}

fn decode_offset_value(mut v: &[u8]) -> Result<CommittedOffset, StoreDecodeError> {
    let version = get_i16(&mut v)?;
    let offset = get_i64(&mut v)?;
    let leader_epoch = if version >= 3 { get_i32(&mut v)? } else { -1 };
    let metadata = get_str(&mut v)?;
    let commit_timestamp_ms = get_i64(&mut v)?;
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn decode_group_value(mut v: &[u8]) -> Result<StoredGroup, StoreDecodeError> {
    let version = get_i16(&mut v)?;
    if !(0..=4).contains(&version) {
        return Err(StoreDecodeError("unknown group value version"));
    }
    let protocol_type = get_str(&mut v)?;
    let generation = get_i32(&mut v)?;
    let protocol = get_nullable_str(&mut v)?;
    let leader = get_nullable_str(&mut v)?;
    let state_timestamp_ms = if version >= 2 { get_i64(&mut v)? } else { -1 };
    let count = get_i32(&mut v)?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let member_id = get_str(&mut v)?;
        let instance_id = if version >= 3 {
            get_nullable_str(&mut v)?
        } else {
            None
        };
        let client_id = get_str(&mut v)?;
        let client_host = get_str(&mut v)?;
        let rebalance_timeout_ms = if version >= 1 { get_i32(&mut v)? } else { -1 };
        let session_timeout_ms = get_i32(&mut v)?;
        let subscription = get_bytes(&mut v)?;
        let assignment = get_bytes(&mut v)?;
        members.push(StoredMember {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(StoredGroup {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_with_metadata() {
        let o = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "checkpoint ü".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        let rec = decode(&offset_key("g", "orders", 7), Some(&offset_value(&o))).unwrap();
        assert_eq!(
            rec,
            StoreRecord::Offset {
                group: "g".into(),
                topic: "orders".into(),
                partition: 7,
                value: Some(o)
            }
        );
        let tomb = decode(&offset_key("g", "orders", 7), None).unwrap();
        assert!(matches!(tomb, StoreRecord::Offset { value: None, .. }));
    }

    #[test]
    fn group_metadata_round_trips() {
        let g = StoredGroup {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            state_timestamp_ms: 99,
            members: vec![StoredMember {
                member_id: "m-1".into(),
                instance_id: Some("i-1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 30_000,
                session_timeout_ms: 10_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let rec = decode(&group_key("g"), Some(&group_value(&g))).unwrap();
        assert_eq!(
            rec,
            StoreRecord::Group {
                group: "g".into(),
                value: Some(g)
            }
        );
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let value = offset_value(&CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        });
        for cut in 0..value.len() {
            assert!(decode(&offset_key("g", "t", 0), Some(&value[..cut])).is_err());
        }
        let key = group_key("group");
        for cut in 0..key.len() {
            assert!(decode(&key[..cut], None).is_err());
        }
        assert!(decode(&[0, 9, 0, 0], None).is_err());
    }
}
