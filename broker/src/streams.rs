//! Aggregate streams on indexed topics (`brook.key.index=true`): a key's records are its
//! stream, numbered by revision (see `brook_storage::key_index`). This module owns the
//! conditional append: the `brook.expected.revision` header, what it may say, and the check
//! of a batch's conditions against the stream heads, which Produce runs with the partition
//! locked, just before the append. The HTTP stream API (`http::streams`) appends through
//! Produce's path and reads through the index.

use brook_protocol::validate::EXPECTED_REVISION_HEADER;
use brook_storage::key_index::{BatchKeys, ByKeyHash, KeyIndex, KeyMap};

/// What a conditional append expects of its key's stream (KurrentDB's expected states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expected {
    /// No condition (the HTTP API's default).
    Any,
    /// The stream has no event yet.
    NoStream,
    /// The stream has at least one event.
    Exists,
    /// The stream's last event has this revision.
    Revision(i64),
}

impl Expected {
    /// Parses a header value or the HTTP API's string form: `any`, `no-stream`, `exists`,
    /// or a decimal revision (>= 0).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "any" => Ok(Self::Any),
            "no-stream" => Ok(Self::NoStream),
            "exists" => Ok(Self::Exists),
            n => match n.parse::<i64>() {
                Ok(r) if r >= 0 => Ok(Self::Revision(r)),
                _ => Err(format!(
                    "{} must be no-stream, exists, any or a revision (a number >= 0), not {text:?}",
                    String::from_utf8_lossy(EXPECTED_REVISION_HEADER)
                )),
            },
        }
    }

    /// Whether a stream whose last revision is `head` (`None`: no stream) meets it.
    fn allows(self, head: Option<i64>) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => head.is_none(),
            Self::Exists => head.is_some(),
            Self::Revision(r) => head == Some(r),
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Any => "any".into(),
            Self::NoStream => "no stream".into(),
            Self::Exists => "an existing stream".into(),
            Self::Revision(r) => r.to_string(),
        }
    }
}

/// How the message of a failed condition starts (the HTTP API answers those with 409).
pub(crate) const CONFLICT: &str = "wrong expected revision";

/// A batch's conditions could not be read or met: per record (index, reason).
pub(crate) type RecordErrors = Vec<(i32, String)>;

/// Each record's condition (by record index; `None`: none), from the header values that the
/// produce validation found: `headers` lists (record index, where the value is in the
/// records `section`, its length). A value that does not parse, or a condition on a record
/// without a key, is a record error.
pub(crate) fn read_conditions(
    keys: &BatchKeys,
    section: &[u8],
    headers: &[(i32, u64, i32)],
) -> Result<Vec<Option<Expected>>, RecordErrors> {
    let mut out = vec![None; keys.records().len()];
    let mut errors = Vec::new();
    for &(index, at, len) in headers {
        let value = usize::try_from(at)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(at, len)| section.get(at..at.checked_add(len)?));
        let text = value.map(String::from_utf8_lossy).unwrap_or_default();
        let Some(slot) = usize::try_from(index).ok().and_then(|i| out.get_mut(i)) else {
            continue;
        };
        match Expected::parse(&text) {
            Ok(expected) => *slot = Some(expected),
            Err(reason) => errors.push((index, reason)),
        }
        let keyless = keys
            .records()
            .get(index as usize)
            .is_none_or(|r| r.key.is_none());
        if keyless {
            errors.push((
                index,
                "a record with brook.expected.revision needs a key: the key names its stream"
                    .into(),
            ));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks every condition (`expected`, by record index) against the stream heads, records
/// of the same key chaining (the second expects the revision the first gets). All or
/// nothing: the errors of every failed condition, or the revision each record will get (-1
/// for a record without a key). `section` is the records section `keys` point into.
pub(crate) fn check(
    index: &mut KeyIndex,
    keys: &BatchKeys,
    section: &[u8],
    expected: &[Option<Expected>],
) -> Result<Vec<i64>, RecordErrors> {
    let records = keys.records();
    // Key hash -> the key and its last revision as the batch goes on (`None`: no stream
    // yet); keys whose hash another key of the batch took first go to `collided`.
    let mut heads: ByKeyHash<(&[u8], Option<i64>)> =
        ByKeyHash::with_capacity_and_hasher(records.len(), Default::default());
    let mut collided: KeyMap<&[u8], Option<i64>> = KeyMap::default();
    let mut errors = Vec::new();
    let mut revisions = Vec::with_capacity(records.len());
    // As when indexing: each key's place in the table, then its stored key, is prefetched
    // a few records ahead.
    const AHEAD: usize = 16;
    for r in records.iter().take(AHEAD) {
        index.prefetch(r.hash);
    }
    for (i, record) in records.iter().enumerate() {
        if let Some(next) = records.get(i + AHEAD) {
            index.prefetch(next.hash);
        }
        if let Some(next) = records.get(i + AHEAD / 2) {
            index.prefetch_key(next.hash);
        }
        let Some(key) = keys.key_in(section, record) else {
            revisions.push(-1);
            continue;
        };
        let (held, head) = heads
            .entry(record.hash)
            .or_insert_with(|| (key, index.head_revision_hashed(key, record.hash)));
        let head = if *held == key {
            head
        } else {
            collided
                .entry(key)
                .or_insert_with(|| index.head_revision_hashed(key, record.hash))
        };
        let before = *head;
        if let Some(expected) = expected.get(i).copied().flatten() {
            if !expected.allows(before) {
                let at = before.map_or("the stream does not exist".to_string(), |h| {
                    format!("stream is at {h}")
                });
                errors.push((
                    record.index,
                    format!(
                        "{CONFLICT} for key {:?}: expected {}, {at}",
                        String::from_utf8_lossy(key),
                        expected.describe()
                    ),
                ));
            }
        }
        let revision = before.map_or(0, |h| h + 1);
        revisions.push(revision);
        *head = Some(revision);
    }
    if errors.is_empty() {
        Ok(revisions)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::batch::testing::{build_batch, conditional_record, TestRecord};
    use brook_protocol::batch::BatchView;

    fn record(key: &str, expected: Option<&str>) -> TestRecord {
        conditional_record(key, b"{}", expected)
    }

    /// An index holding `revisions[k] + 1` records of key k.
    fn index_with(streams: &[(&str, i64)]) -> KeyIndex {
        let mut index = KeyIndex::new(16);
        let mut offset = 0;
        for (key, last) in streams {
            for _ in 0..=*last {
                let mut b = build_batch(0, &[record(key, None)]);
                brook_protocol::batch::set_base_offset(&mut b, offset);
                index.observe(&BatchView::parse(&b).unwrap());
                offset += 1;
            }
        }
        index
    }

    /// Reads and checks a batch's conditions as Produce does.
    fn run(index: &mut KeyIndex, records: &[TestRecord]) -> Result<(), RecordErrors> {
        let b = build_batch(0, records);
        let view = BatchView::parse(&b).unwrap();
        let mut headers = Vec::new();
        brook_protocol::validate::check_records(&view, 1 << 20, |m| {
            if let Some((at, len)) = m.expected_revision {
                headers.push((m.index, at, len));
            }
        })
        .unwrap();
        let keys = BatchKeys::read(&view).unwrap();
        let section = keys.section(&view);
        let expected = read_conditions(&keys, section, &headers)?;
        check(index, &keys, section, &expected).map(|_| ())
    }

    #[test]
    fn expected_states_parse_as_kurrentdb_names_them() {
        assert_eq!(Expected::parse("no-stream"), Ok(Expected::NoStream));
        assert_eq!(Expected::parse("exists"), Ok(Expected::Exists));
        assert_eq!(Expected::parse("any"), Ok(Expected::Any));
        assert_eq!(Expected::parse(" 41 "), Ok(Expected::Revision(41)));
        for bad in ["-1", "", "41x", "NoStream"] {
            assert!(Expected::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions_are_checked_against_heads_and_chain_within_a_batch() {
        let mut index = index_with(&[("loan-42", 43), ("loan-7", 0)]);
        assert_eq!(run(&mut index, &[record("loan-42", Some("43"))]), Ok(()));
        assert_eq!(
            run(&mut index, &[record("loan-42", Some("41"))]),
            Err(vec![(
                0,
                "wrong expected revision for key \"loan-42\": expected 41, stream is at 43".into()
            )])
        );
        assert_eq!(run(&mut index, &[record("new", Some("no-stream"))]), Ok(()));
        assert!(run(&mut index, &[record("new", Some("exists"))]).is_err());
        assert!(run(&mut index, &[record("loan-7", Some("no-stream"))]).is_err());
        assert_eq!(run(&mut index, &[record("loan-7", Some("exists"))]), Ok(()));
        // Chaining: the second record of a key expects the revision the first one gets,
        // whether or not the first carried a condition.
        assert_eq!(
            run(
                &mut index,
                &[
                    record("new", Some("no-stream")),
                    record("new", Some("0")),
                    record("new", None),
                    record("new", Some("2")),
                    record("loan-7", Some("0")),
                ]
            ),
            Ok(())
        );
        let failed = run(
            &mut index,
            &[
                record("loan-7", Some("0")),
                record("loan-7", Some("0")),
                record("loan-42", Some("43")),
            ],
        )
        .unwrap_err();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, 1, "the second record of loan-7 fails");
    }

    #[test]
    fn bad_header_values_and_keyless_conditions_are_record_errors() {
        let mut index = index_with(&[]);
        let errors = run(&mut index, &[record("a", None), record("b", Some("soon"))]).unwrap_err();
        assert_eq!(errors[0].0, 1);
        assert!(errors[0].1.contains("not \"soon\""), "{}", errors[0].1);
        let keyless = TestRecord {
            key: None,
            ..record("x", Some("0"))
        };
        let errors = run(&mut index, &[keyless]).unwrap_err();
        assert!(errors[0].1.contains("needs a key"));
    }

    #[test]
    fn keys_with_the_same_hash_are_checked_as_different_streams() {
        // Equal CRC-32C (so equal key hashes): made from the CRC's linearity.
        let (a, b): (&[u8], &[u8]) = (b"loan-1", &[157, 25, 141, 107, 44, 49]);
        assert_eq!(
            brook_storage::key_index::key_hash(a),
            brook_storage::key_index::key_hash(b)
        );
        let raw = |key: &[u8], expected: &str| TestRecord {
            key: Some(key.to_vec()),
            ..conditional_record("x", b"{}", Some(expected))
        };
        let mut index = index_with(&[("loan-1", 2)]);
        assert_eq!(
            run(
                &mut index,
                &[raw(b, "no-stream"), raw(a, "2"), raw(b, "0"), raw(a, "3")]
            ),
            Ok(())
        );
        let errors = run(&mut index, &[raw(b, "exists")]).unwrap_err();
        assert!(
            errors[0].1.contains("the stream does not exist"),
            "{errors:?}"
        );
    }
}
