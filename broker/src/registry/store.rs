//! The records of the `_schemas` topic, in Confluent Schema Registry's key and value JSON, so
//! that the topic reads the same as Confluent's:
//!
//! ```text
//! key {"keytype":"SCHEMA","subject":"s","version":1,"magic":1}
//!   value {"subject":"s","version":1,"id":1,"schema":"...","deleted":false}
//!         (+ "schemaType" unless AVRO, + "references"); null: the version is gone for good
//! key {"keytype":"CONFIG","subject":"s"|null,"magic":0}
//!   value {"compatibilityLevel":"FULL"}; null: back to the default
//! key {"keytype":"MODE","subject":"s"|null,"magic":0}
//!   value {"mode":"READONLY"}; null: back to the default
//! key {"keytype":"DELETE_SUBJECT","subject":"s","magic":0}
//!   value {"subject":"s","version":3}: every version up to 3 soft-deleted
//! key {"keytype":"BROOK_NEXT_ID","magic":0}
//!   value {"next_id":8}: Brook's own, written with every permanent deletion, so that an id
//!   whose last record compaction removed is still never given out again
//! ```
//! A null subject is the global setting. Other key types (Confluent's NOOP, ...) are skipped.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Level, Mode, Reference, SchemaType};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Key {
    Schema {
        subject: String,
        version: i32,
        magic: i32,
    },
    Config {
        subject: Option<String>,
        magic: i32,
    },
    Mode {
        subject: Option<String>,
        magic: i32,
    },
    DeleteSubject {
        subject: String,
        magic: i32,
    },
    BrookNextId {
        magic: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NextIdValue {
    pub(crate) next_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SchemaValue {
    pub(crate) subject: String,
    pub(crate) version: i32,
    pub(crate) id: i32,
    pub(crate) schema: String,
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub(crate) schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) references: Vec<Reference>,
    #[serde(default)]
    pub(crate) deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConfigValue {
    #[serde(rename = "compatibilityLevel")]
    pub(crate) level: Level,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ModeValue {
    pub(crate) mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeleteSubjectValue {
    pub(crate) subject: String,
    pub(crate) version: i32,
}

/// One record of the topic, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    Schema(String, i32, Option<SchemaValue>),
    Config(Option<String>, Option<Level>),
    Mode(Option<String>, Option<Mode>),
    DeleteSubject(String, i32),
    /// The next id to give out (no id below it is given out again).
    NextId(i32),
}

impl Record {
    /// The record's key and value bytes.
    pub(crate) fn encode(&self) -> (Bytes, Option<Bytes>) {
        fn json<T: Serialize>(v: &T) -> Bytes {
            // Serialising these plain structs cannot fail.
            Bytes::from(serde_json::to_vec(v).unwrap_or_default())
        }
        match self {
            Record::Schema(subject, version, value) => (
                json(&Key::Schema {
                    subject: subject.clone(),
                    version: *version,
                    magic: 1,
                }),
                value.as_ref().map(json),
            ),
            Record::Config(subject, level) => (
                json(&Key::Config {
                    subject: subject.clone(),
                    magic: 0,
                }),
                level.map(|level| json(&ConfigValue { level })),
            ),
            Record::Mode(subject, mode) => (
                json(&Key::Mode {
                    subject: subject.clone(),
                    magic: 0,
                }),
                mode.map(|mode| json(&ModeValue { mode })),
            ),
            Record::NextId(next_id) => (
                json(&Key::BrookNextId { magic: 0 }),
                Some(json(&NextIdValue { next_id: *next_id })),
            ),
            Record::DeleteSubject(subject, version) => (
                json(&Key::DeleteSubject {
                    subject: subject.clone(),
                    magic: 0,
                }),
                Some(json(&DeleteSubjectValue {
                    subject: subject.clone(),
                    version: *version,
                })),
            ),
        }
    }

    /// Decodes a record; `None` for key types the registry does not keep.
    pub(crate) fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Record>, String> {
        let raw: serde_json::Value = serde_json::from_slice(key).map_err(|e| e.to_string())?;
        let known = matches!(
            raw.get("keytype").and_then(|k| k.as_str()),
            Some("SCHEMA" | "CONFIG" | "MODE" | "DELETE_SUBJECT" | "BROOK_NEXT_ID")
        );
        if !known {
            return Ok(None);
        }
        let key: Key = serde_json::from_value(raw).map_err(|e| e.to_string())?;
        let parse = |v: &[u8]| serde_json::from_slice::<serde_json::Value>(v);
        let value = value.map(parse).transpose().map_err(|e| e.to_string())?;
        fn from<T: for<'de> Deserialize<'de>>(v: serde_json::Value) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| e.to_string())
        }
        Ok(Some(match key {
            Key::Schema {
                subject, version, ..
            } => Record::Schema(subject, version, value.map(from).transpose()?),
            Key::Config { subject, .. } => Record::Config(
                subject,
                value.map(from::<ConfigValue>).transpose()?.map(|c| c.level),
            ),
            Key::Mode { subject, .. } => Record::Mode(
                subject,
                value.map(from::<ModeValue>).transpose()?.map(|m| m.mode),
            ),
            Key::BrookNextId { .. } => {
                let value = value.ok_or("a BROOK_NEXT_ID record without a value")?;
                Record::NextId(from::<NextIdValue>(value)?.next_id)
            }
            Key::DeleteSubject { subject, .. } => {
                let value = value.ok_or("a DELETE_SUBJECT record without a value")?;
                let v: DeleteSubjectValue = from(value)?;
                Record::DeleteSubject(subject, v.version)
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_look_like_confluents() {
        let schema = Record::Schema(
            "loans-value".into(),
            2,
            Some(SchemaValue {
                subject: "loans-value".into(),
                version: 2,
                id: 7,
                schema: r#"{"type":"string"}"#.into(),
                schema_type: SchemaType::Avro,
                references: Vec::new(),
                deleted: false,
            }),
        );
        let (key, value) = schema.encode();
        assert_eq!(
            std::str::from_utf8(&key).unwrap(),
            r#"{"keytype":"SCHEMA","subject":"loans-value","version":2,"magic":1}"#
        );
        assert_eq!(
            std::str::from_utf8(value.as_ref().unwrap()).unwrap(),
            r#"{"subject":"loans-value","version":2,"id":7,"schema":"{\"type\":\"string\"}","deleted":false}"#
        );
        for record in [
            schema,
            Record::Schema("s".into(), 1, None),
            Record::Config(None, Some(Level::Full)),
            Record::Config(Some("s".into()), None),
            Record::Mode(Some("s".into()), Some(Mode::ReadOnly)),
            Record::DeleteSubject("s".into(), 3),
            Record::NextId(8),
        ] {
            let (k, v) = record.encode();
            assert_eq!(
                Record::decode(&k, v.as_deref()).unwrap(),
                Some(record.clone())
            );
        }
        let noop = br#"{"keytype":"NOOP","magic":0}"#;
        assert_eq!(Record::decode(noop, None).unwrap(), None);
        assert!(Record::decode(b"garbage", None).is_err());
    }
}
