//! Aggregate streams on indexed topics (`brook.key.index=true`): a key's records are its
//! stream, numbered by revision (see `brook_storage::key_index`). This module owns the
//! conditional append: the `brook.expected.revision` header, what it may say, and the check
//! of a batch's conditions against the stream heads, which Produce runs with the partition
//! locked, just before the append. The HTTP stream API (`http::streams`) appends through
//! Produce's path and reads through the index.

use brook_protocol::batch::BatchView;
use brook_protocol::validate::EXPECTED_REVISION_HEADER;
use brook_storage::key_index::{KeyIndex, KeyMap};

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

/// One record of a conditional batch: its index, key, and condition if it has one.
#[derive(Debug)]
pub(crate) struct KeyedRecord {
    pub(crate) index: i32,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) expected: Option<Expected>,
}

/// A batch's conditions could not be read or met: per record (index, reason).
pub(crate) type RecordErrors = Vec<(i32, String)>;

/// Reads the key and condition of every record of a batch known to carry the header.
pub(crate) fn read_conditions(
    view: &BatchView<'_>,
    max_decompressed: usize,
) -> Result<Vec<KeyedRecord>, RecordErrors> {
    let mut out = Vec::with_capacity(view.records_count().max(0) as usize);
    let mut errors = Vec::new();
    brook_storage::cleaner::filter::for_each_record(view, max_decompressed, |r, _| {
        let header = r
            .headers
            .iter()
            .find(|(k, _)| *k == EXPECTED_REVISION_HEADER);
        let expected = match header {
            None => None,
            Some((_, value)) => {
                let text = value.map(String::from_utf8_lossy).unwrap_or_default();
                match Expected::parse(&text) {
                    Ok(e) => Some(e),
                    Err(reason) => {
                        errors.push((r.offset_delta, reason));
                        None
                    }
                }
            }
        };
        if expected.is_some() && r.key.is_none() {
            errors.push((
                r.offset_delta,
                "a record with brook.expected.revision needs a key: the key names its stream"
                    .into(),
            ));
        }
        out.push(KeyedRecord {
            index: r.offset_delta,
            key: r.key.map(<[u8]>::to_vec),
            expected,
        });
    })
    .map_err(|e| vec![(0, format!("the batch's records cannot be read: {e}"))])?;
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks every condition against the stream heads, records of the same key chaining (the
/// second expects the revision the first gets). All or nothing: the errors of every failed
/// condition, or the revision each record will get (-1 for a record without a key).
pub(crate) fn check(
    index: &mut KeyIndex,
    records: &[KeyedRecord],
) -> Result<Vec<i64>, RecordErrors> {
    // Key -> its last revision as the batch goes on (`None`: no stream yet).
    let mut heads: KeyMap<&[u8], Option<i64>> = KeyMap::default();
    let mut errors = Vec::new();
    let mut revisions = Vec::with_capacity(records.len());
    for record in records {
        let Some(key) = record.key.as_deref() else {
            revisions.push(-1);
            continue;
        };
        let head = *heads.entry(key).or_insert_with(|| index.head_revision(key));
        if let Some(expected) = record.expected {
            if !expected.allows(head) {
                let at = head.map_or("the stream does not exist".to_string(), |h| {
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
        let revision = head.map_or(0, |h| h + 1);
        revisions.push(revision);
        heads.insert(key, Some(revision));
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

    fn run(index: &mut KeyIndex, records: &[TestRecord]) -> Result<(), RecordErrors> {
        let b = build_batch(0, records);
        let view = BatchView::parse(&b).unwrap();
        let conditions = read_conditions(&view, 1 << 20)?;
        check(index, &conditions).map(|_| ())
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
}
