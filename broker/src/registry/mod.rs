//! The built-in schema registry (Confluent Schema Registry's model): subjects with numbered
//! versions, each naming a schema by a global id; compatibility levels and modes, global and
//! per subject; soft and permanent deletion.
//!
//! [`Registry`] is the state and its rules, without I/O: an operation checks a request and
//! returns the records that carry it out, which are applied once durable (and the same way
//! at replay). [`SchemaRegistry`] keeps those records in the compacted `_schemas` topic
//! ([`store`], Confluent's formats), fsyncs them before answering and replays them at start.
//! Ids are global, never reused, and the same schema (same type and text) keeps one id
//! across subjects. The HTTP API is `crate::http::registry`.
//!
//! Schema types: AVRO ([`avro`]), JSON ([`json`], JSON Schema) and PROTOBUF ([`protobuf`],
//! `.proto` text).

pub(crate) mod avro;
pub(crate) mod json;
pub(crate) mod protobuf;
pub(crate) mod store;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex as AsyncMutex;

use crate::internal_log::{InternalLog, Replayed};
use crate::topics::{TopicError, TopicRegistry};
use store::{Record, SchemaValue};

/// The topic the registry keeps its records in, as Confluent names it.
pub(crate) const SCHEMAS_TOPIC: &str = "_schemas";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub(crate) fn is_avro(&self) -> bool {
        *self == SchemaType::Avro
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

/// A compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    /// (new schema must read the old ones' data, old ones must read the new one's, against
    /// every earlier version rather than the latest).
    fn rules(self) -> (bool, bool, bool) {
        match self {
            Level::None => (false, false, false),
            Level::Backward => (true, false, false),
            Level::BackwardTransitive => (true, false, true),
            Level::Forward => (false, true, false),
            Level::ForwardTransitive => (false, true, true),
            Level::Full => (true, true, false),
            Level::FullTransitive => (true, true, true),
        }
    }
}

/// A registry mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Mode {
    #[serde(rename = "READWRITE")]
    ReadWrite,
    #[serde(rename = "READONLY")]
    ReadOnly,
    Import,
}

/// A schema a schema refers to by name (Confluent's references).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Reference {
    pub(crate) name: String,
    pub(crate) subject: String,
    pub(crate) version: i32,
}

/// A refused request: Confluent's error code (its first three digits are the HTTP status)
/// and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegistryError {
    pub(crate) code: u32,
    pub(crate) message: String,
}

impl RegistryError {
    fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub(crate) fn subject_not_found(subject: &str) -> Self {
        Self::new(40401, format!("Subject '{subject}' not found."))
    }
    pub(crate) fn version_not_found(subject: &str, version: i32) -> Self {
        Self::new(
            40402,
            format!("Version {version} not found for subject '{subject}'."),
        )
    }
    pub(crate) fn schema_not_found() -> Self {
        Self::new(40403, "Schema not found")
    }
    pub(crate) fn invalid_schema(reason: impl Into<String>) -> Self {
        Self::new(42201, reason)
    }
    pub(crate) fn invalid_version(version: &str) -> Self {
        Self::new(
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }
    pub(crate) fn invalid_level(level: &str) -> Self {
        Self::new(
            42203,
            format!("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive (got {level})"),
        )
    }
    pub(crate) fn invalid_mode(mode: &str) -> Self {
        Self::new(
            42204,
            format!("Invalid mode. Valid values are READWRITE, READONLY and IMPORT (got {mode})"),
        )
    }
    pub(crate) fn store(reason: impl Into<String>) -> Self {
        Self::new(50001, reason)
    }

    /// The HTTP status: the code's first three digits.
    pub(crate) fn status(&self) -> u16 {
        let mut code = self.code;
        while code >= 1000 {
            code /= 10;
        }
        u16::try_from(code).unwrap_or(500)
    }
}

/// A parsed schema of any supported type.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
    Protobuf(Box<protobuf::ProtoSchema>),
}

impl Parsed {
    /// The text the schema is stored and compared in.
    pub(crate) fn text(&self) -> &str {
        match self {
            Parsed::Avro(s) => &s.text,
            Parsed::Json(s) => &s.text,
            Parsed::Protobuf(s) => &s.text,
        }
    }

    /// Whether data written with `writer` reads with `reader` (schemas of different types
    /// never do).
    fn can_read(writer: &Parsed, reader: &Parsed) -> Result<(), String> {
        match (writer, reader) {
            (Parsed::Avro(w), Parsed::Avro(r)) => avro::can_read(&w.schema, &r.schema),
            (Parsed::Json(w), Parsed::Json(r)) => json::can_read(&w.schema, &r.schema),
            (Parsed::Protobuf(w), Parsed::Protobuf(r)) => protobuf::can_read(w, r),
            _ => Err("the schema type changed".into()),
        }
    }
}

/// A version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VersionEntry {
    id: i32,
    deleted: bool,
}

/// A stored schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSchema {
    pub(crate) schema_type: SchemaType,
    pub(crate) text: String,
    pub(crate) references: Vec<Reference>,
}

/// A version as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionView {
    pub(crate) subject: String,
    pub(crate) version: i32,
    pub(crate) id: i32,
    pub(crate) schema: StoredSchema,
}

/// Which version a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionRef {
    Latest,
    Number(i32),
}

impl VersionRef {
    /// Parses `latest`, `-1` (also latest) or a number from 1 up.
    pub(crate) fn parse(text: &str) -> Result<Self, RegistryError> {
        if text == "latest" {
            return Ok(VersionRef::Latest);
        }
        match text.parse::<i32>() {
            Ok(-1) => Ok(VersionRef::Latest),
            Ok(n) if n >= 1 => Ok(VersionRef::Number(n)),
            _ => Err(RegistryError::invalid_version(text)),
        }
    }
}

/// The registry's state (module docs).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    schemas: HashMap<i32, StoredSchema>,
    /// (type, text) -> id: the same schema keeps its id.
    ids: HashMap<(SchemaType, String), i32>,
    subjects: BTreeMap<String, BTreeMap<i32, VersionEntry>>,
    levels: HashMap<Option<String>, Level>,
    modes: HashMap<Option<String>, Mode>,
    next_id: i32,
}

/// What a registration writes and answers.
pub(crate) struct Registration {
    pub(crate) id: i32,
    pub(crate) records: Vec<Record>,
}

impl Registration {
    /// A new version `version` of `subject` holding schema `id`.
    fn new(
        subject: &str,
        version: i32,
        id: i32,
        parsed: &Parsed,
        schema_type: SchemaType,
        references: Vec<Reference>,
    ) -> Self {
        let value = SchemaValue {
            subject: subject.to_string(),
            version,
            id,
            schema: parsed.text().to_string(),
            schema_type,
            references,
            deleted: false,
        };
        Self {
            id,
            records: vec![Record::Schema(subject.to_string(), version, Some(value))],
        }
    }
}

/// The version after a subject's last (soft-deleted ones count: numbers are not reused).
fn next_version(versions: Option<&BTreeMap<i32, VersionEntry>>) -> i32 {
    versions
        .and_then(|v| v.keys().next_back())
        .map_or(1, |n| n + 1)
}

impl Registry {
    /// Applies one record (after it is durable, and at replay).
    pub(crate) fn apply(&mut self, record: Record) {
        match record {
            Record::Schema(subject, version, Some(v)) => {
                let schema = StoredSchema {
                    schema_type: v.schema_type,
                    text: v.schema,
                    references: v.references,
                };
                self.ids
                    .entry((schema.schema_type, schema.text.clone()))
                    .or_insert(v.id);
                self.schemas.entry(v.id).or_insert(schema);
                self.next_id = self.next_id.max(v.id + 1);
                self.subjects.entry(subject).or_default().insert(
                    version,
                    VersionEntry {
                        id: v.id,
                        deleted: v.deleted,
                    },
                );
            }
            Record::Schema(subject, version, None) => {
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    versions.remove(&version);
                    if versions.is_empty() {
                        self.subjects.remove(&subject);
                    }
                }
            }
            Record::Config(subject, Some(level)) => {
                self.levels.insert(subject, level);
            }
            Record::Config(subject, None) => {
                self.levels.remove(&subject);
            }
            Record::Mode(subject, Some(mode)) => {
                self.modes.insert(subject, mode);
            }
            Record::Mode(subject, None) => {
                self.modes.remove(&subject);
            }
            Record::NextId(next) => self.next_id = self.next_id.max(next),
            Record::DeleteSubject(subject, upto) => {
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    for (_, v) in versions.range_mut(..=upto) {
                        v.deleted = true;
                    }
                }
            }
        }
    }

    /// The level in force for `subject`: its own, else the global one, else BACKWARD.
    pub(crate) fn level(&self, subject: Option<&str>) -> Level {
        subject
            .and_then(|s| self.levels.get(&Some(s.to_string())))
            .or_else(|| self.levels.get(&None))
            .copied()
            .unwrap_or(Level::Backward)
    }

    /// The level set for exactly `subject` (or globally, for `None`).
    pub(crate) fn own_level(&self, subject: Option<&str>) -> Option<Level> {
        self.levels.get(&subject.map(str::to_string)).copied()
    }

    pub(crate) fn mode(&self, subject: Option<&str>) -> Mode {
        subject
            .and_then(|s| self.modes.get(&Some(s.to_string())))
            .or_else(|| self.modes.get(&None))
            .copied()
            .unwrap_or(Mode::ReadWrite)
    }

    /// Subjects with a live version (with soft-deleted ones when `deleted`).
    pub(crate) fn subjects(&self, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, v)| deleted || v.values().any(|e| !e.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// A subject's version numbers.
    pub(crate) fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, RegistryError> {
        let versions: Vec<i32> = self
            .subjects
            .get(subject)
            .map(|v| {
                v.iter()
                    .filter(|(_, e)| deleted || !e.deleted)
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(versions)
    }

    /// A subject's versions, if it has a live one (or any, when `deleted`).
    fn live_subject(
        &self,
        subject: &str,
        deleted: bool,
    ) -> Result<&BTreeMap<i32, VersionEntry>, RegistryError> {
        self.subjects
            .get(subject)
            .filter(|v| deleted || v.values().any(|e| !e.deleted))
            .ok_or_else(|| RegistryError::subject_not_found(subject))
    }

    /// One version of a subject (a soft-deleted one only when `deleted`).
    pub(crate) fn version(
        &self,
        subject: &str,
        version: VersionRef,
        deleted: bool,
    ) -> Result<VersionView, RegistryError> {
        let versions = self.live_subject(subject, deleted)?;
        let found = match version {
            VersionRef::Latest => versions.iter().rev().find(|(_, e)| deleted || !e.deleted),
            VersionRef::Number(n) => versions
                .get_key_value(&n)
                .filter(|(_, e)| deleted || !e.deleted),
        };
        let (number, entry) = found.ok_or_else(|| match version {
            VersionRef::Number(n) => RegistryError::version_not_found(subject, n),
            VersionRef::Latest => RegistryError::subject_not_found(subject),
        })?;
        Ok(VersionView {
            subject: subject.to_string(),
            version: *number,
            id: entry.id,
            schema: self
                .schemas
                .get(&entry.id)
                .cloned()
                .ok_or_else(RegistryError::schema_not_found)?,
        })
    }

    pub(crate) fn schema(&self, id: i32) -> Result<&StoredSchema, RegistryError> {
        self.schemas
            .get(&id)
            .ok_or_else(RegistryError::schema_not_found)
    }

    /// The ids of a subject's live versions (produce-time validation).
    pub(crate) fn subject_ids(&self, subject: &str) -> std::collections::HashSet<i32> {
        self.subjects
            .get(subject)
            .map(|v| v.values().filter(|e| !e.deleted).map(|e| e.id).collect())
            .unwrap_or_default()
    }

    /// (subject, version) pairs that use schema `id`.
    pub(crate) fn uses(&self, id: i32, deleted: bool) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for (subject, versions) in &self.subjects {
            for (n, e) in versions {
                if e.id == id && (deleted || !e.deleted) {
                    out.push((subject.clone(), *n));
                }
            }
        }
        out
    }

    /// `normalize=true`: the schema's text in its normalized form (Avro: as `apache-avro`
    /// writes it back; JSON Schema is stored with its keys in order anyway; Protobuf as
    /// given).
    pub(crate) fn normalize(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Result<String, RegistryError> {
        if schema_type != SchemaType::Avro {
            return Ok(text.to_string());
        }
        let referenced: Vec<String> = self
            .referenced(references)?
            .into_iter()
            .map(|(_, text)| text)
            .collect();
        avro::normalize(text, &referenced).map_err(RegistryError::invalid_schema)
    }

    /// (name, schema text) of each reference, from the subject versions they name.
    fn referenced(&self, references: &[Reference]) -> Result<Vec<(String, String)>, RegistryError> {
        references
            .iter()
            .map(|r| {
                self.version(&r.subject, VersionRef::Number(r.version), true)
                    .map(|v| (r.name.clone(), v.schema.text))
                    .map_err(|_| {
                        RegistryError::invalid_schema(format!(
                            "Invalid schema: reference {} (subject {} version {}) not found",
                            r.name, r.subject, r.version
                        ))
                    })
            })
            .collect()
    }

    /// Parses a schema of `schema_type` with its references resolved.
    pub(crate) fn parse(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Result<Parsed, RegistryError> {
        match schema_type {
            SchemaType::Avro => {}
            SchemaType::Json => {
                let referenced = self.referenced(references)?;
                return json::parse(text, &referenced)
                    .map(Parsed::Json)
                    .map_err(RegistryError::invalid_schema);
            }
            SchemaType::Protobuf => {
                let imports = self.referenced(references)?;
                return protobuf::parse(text, &imports)
                    .map(|p| Parsed::Protobuf(Box::new(p)))
                    .map_err(RegistryError::invalid_schema);
            }
        }
        let referenced: Vec<String> = self
            .referenced(references)?
            .into_iter()
            .map(|(_, text)| text)
            .collect();
        avro::parse(text, &referenced)
            .map(Parsed::Avro)
            .map_err(RegistryError::invalid_schema)
    }

    /// The version of `subject` holding this exact schema, if any (POST /subjects/{s}).
    pub(crate) fn lookup(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
        deleted: bool,
    ) -> Result<VersionView, RegistryError> {
        let versions = self.live_subject(subject, deleted)?;
        let parsed = self.parse(schema_type, text, references)?;
        let id = self
            .ids
            .get(&(schema_type, parsed.text().to_string()))
            .ok_or_else(RegistryError::schema_not_found)?;
        let (number, _) = versions
            .iter()
            .rev()
            .find(|(_, e)| e.id == *id && (deleted || !e.deleted))
            .ok_or_else(RegistryError::schema_not_found)?;
        self.version(subject, VersionRef::Number(*number), deleted)
    }

    /// Why `candidate` may not follow the versions of `subject` now (empty: it may); against
    /// `against` only when given (POST /compatibility).
    pub(crate) fn incompatibilities(
        &self,
        subject: &str,
        candidate: &Parsed,
        against: Option<i32>,
    ) -> Result<Vec<String>, RegistryError> {
        let (backward, forward, transitive) = self.level(Some(subject)).rules();
        let live: Vec<(i32, i32)> = self
            .subjects
            .get(subject)
            .map(|v| {
                v.iter()
                    .filter(|(_, e)| !e.deleted)
                    .map(|(n, e)| (*n, e.id))
                    .collect()
            })
            .unwrap_or_default();
        let previous: Vec<(i32, i32)> = match against {
            Some(n) => live.into_iter().filter(|(v, _)| *v == n).collect(),
            None if transitive => live,
            None => live.last().copied().into_iter().collect(),
        };
        let mut problems = Vec::new();
        for (version, id) in previous {
            let stored = self.schema(id)?;
            let old = self.parse(stored.schema_type, &stored.text, &stored.references)?;
            if backward {
                if let Err(e) = Parsed::can_read(&old, candidate) {
                    problems.push(format!(
                        "{{oldSchemaVersion: {version}, reason: the new schema cannot read data written with it: {e}}}"
                    ));
                }
            }
            if forward {
                if let Err(e) = Parsed::can_read(candidate, &old) {
                    problems.push(format!(
                        "{{oldSchemaVersion: {version}, reason: it cannot read data written with the new schema: {e}}}"
                    ));
                }
            }
        }
        Ok(problems)
    }

    /// Checks a registration and returns the records that make it (none when the subject
    /// already has this schema: its id is the answer).
    pub(crate) fn register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: Vec<Reference>,
    ) -> Result<Registration, RegistryError> {
        if self.mode(Some(subject)) == Mode::ReadOnly {
            return Err(RegistryError::new(
                42205,
                format!("Subject {subject} is in read-only mode"),
            ));
        }
        let parsed = self.parse(schema_type, text, &references)?;
        let existing = self
            .ids
            .get(&(schema_type, parsed.text().to_string()))
            .copied();
        let versions = self.subjects.get(subject);
        if let Some(id) = existing {
            let live = versions.is_some_and(|v| v.values().any(|e| e.id == id && !e.deleted));
            if live {
                return Ok(Registration {
                    id,
                    records: Vec::new(),
                });
            }
        }
        let problems = self.incompatibilities(subject, &parsed, None)?;
        if !problems.is_empty() {
            return Err(RegistryError::new(
                409,
                format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                    problems.join(", ")
                ),
            ));
        }
        let id = existing.unwrap_or(self.next_id.max(1));
        let version = next_version(versions);
        Ok(Registration::new(
            subject,
            version,
            id,
            &parsed,
            schema_type,
            references,
        ))
    }

    /// IMPORT mode's registration: the schema keeps the id and version it had in the
    /// registry it comes from (no compatibility check, as in Confluent's IMPORT mode).
    pub(crate) fn import(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: Vec<Reference>,
        id: i32,
        version: Option<i32>,
    ) -> Result<Registration, RegistryError> {
        if self.mode(Some(subject)) != Mode::Import {
            return Err(RegistryError::new(
                42205,
                format!(
                    "Subject {subject} is not in import mode: a schema id may be given only then"
                ),
            ));
        }
        if id < 1 {
            return Err(RegistryError::invalid_schema(format!(
                "Invalid schema id {id}"
            )));
        }
        let parsed = self.parse(schema_type, text, &references)?;
        if let Some(existing) = self.schemas.get(&id) {
            if (existing.schema_type, existing.text.as_str()) != (schema_type, parsed.text()) {
                return Err(RegistryError::new(
                    42207,
                    format!("Overwrite new schema with id {id} is not permitted"),
                ));
            }
        }
        let versions = self.subjects.get(subject);
        let version = match version {
            Some(v) if v < 1 => return Err(RegistryError::invalid_version(&v.to_string())),
            Some(v) => v,
            None => next_version(versions),
        };
        match versions.and_then(|v| v.get(&version)) {
            Some(e) if e.id == id => {
                return Ok(Registration {
                    id,
                    records: Vec::new(),
                })
            }
            Some(_) => {
                return Err(RegistryError::new(
                    42205,
                    format!("Subject {subject} already has a version {version}"),
                ))
            }
            None => {}
        }
        Ok(Registration::new(
            subject,
            version,
            id,
            &parsed,
            schema_type,
            references,
        ))
    }

    /// Whether any subject has a live version (switching to IMPORT needs none, unless
    /// forced).
    pub(crate) fn has_subjects(&self) -> bool {
        !self.subjects(false).is_empty()
    }

    /// Deletes one version: soft first, then (`permanent`) for good.
    pub(crate) fn delete_version(
        &self,
        subject: &str,
        version: VersionRef,
        permanent: bool,
    ) -> Result<(i32, Vec<Record>), RegistryError> {
        let view = self.version(subject, version, permanent)?;
        let entry = self.subjects[subject][&view.version];
        let value = |deleted| SchemaValue {
            subject: subject.to_string(),
            version: view.version,
            id: view.id,
            schema: view.schema.text.clone(),
            schema_type: view.schema.schema_type,
            references: view.schema.references.clone(),
            deleted,
        };
        let records = if !permanent {
            vec![Record::Schema(
                subject.to_string(),
                view.version,
                Some(value(true)),
            )]
        } else if entry.deleted {
            vec![
                Record::Schema(subject.to_string(), view.version, None),
                Record::NextId(self.next_id),
            ]
        } else {
            return Err(RegistryError::new(
                40407,
                format!(
                    "Subject '{subject}' Version {} was not deleted first before being permanently deleted",
                    view.version
                ),
            ));
        };
        Ok((view.version, records))
    }

    /// Deletes a subject: soft first (all versions), then (`permanent`) for good.
    pub(crate) fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<(Vec<i32>, Vec<Record>), RegistryError> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let live: Vec<i32> = versions
            .iter()
            .filter(|(_, e)| !e.deleted)
            .map(|(n, _)| *n)
            .collect();
        if !permanent {
            let Some(last) = live.last() else {
                return Err(RegistryError::new(
                    40404,
                    format!("Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"),
                ));
            };
            return Ok((
                live.clone(),
                vec![Record::DeleteSubject(subject.to_string(), *last)],
            ));
        }
        if !live.is_empty() {
            return Err(RegistryError::new(
                40405,
                format!(
                    "Subject '{subject}' was not deleted first before being permanently deleted"
                ),
            ));
        }
        let all: Vec<i32> = versions.keys().copied().collect();
        let mut records: Vec<Record> = all
            .iter()
            .map(|n| Record::Schema(subject.to_string(), *n, None))
            .collect();
        if self.own_level(Some(subject)).is_some() {
            records.push(Record::Config(Some(subject.to_string()), None));
        }
        records.push(Record::NextId(self.next_id));
        Ok((all, records))
    }
}

/// What a payload is checked with; built once per schema id (a schema never changes).
enum Checker {
    Avro(Box<avro::AvroSchema>),
    Json(Box<jsonschema::Validator>),
    Protobuf(Box<protobuf::PayloadChecker>),
}

/// The registry, kept in `_schemas`.
pub(crate) struct SchemaRegistry {
    state: parking_lot::RwLock<Registry>,
    /// Produce-time `full` validation's checkers, by schema id.
    checkers: parking_lot::Mutex<HashMap<i32, std::sync::Arc<Checker>>>,
    log: InternalLog,
    /// One write at a time: checked, made durable, then applied.
    writes: AsyncMutex<()>,
}

impl SchemaRegistry {
    /// Opens the registry and replays `_schemas` if it exists.
    pub(crate) fn open(topics: &TopicRegistry, fsync: bool) -> Result<Self, TopicError> {
        let registry = Self {
            state: parking_lot::RwLock::new(Registry::default()),
            checkers: parking_lot::Mutex::new(HashMap::new()),
            log: InternalLog::open(topics, SCHEMAS_TOPIC, fsync)?,
            writes: AsyncMutex::new(()),
        };
        let (mut records, mut skipped) = (0u64, 0u64);
        {
            let mut state = registry.state.write();
            let bad = registry.log.replay(|replayed| {
                if let Replayed::Records { records: batch, .. } = replayed {
                    for (key, value) in batch {
                        match Record::decode(key, value) {
                            Ok(Some(r)) => {
                                records += 1;
                                state.apply(r);
                            }
                            Ok(None) => {}
                            Err(_) => skipped += 1,
                        }
                    }
                }
            });
            if records > 0 || skipped > 0 || bad > 0 {
                tracing::info!(
                    records,
                    skipped,
                    bad_batches = bad,
                    subjects = state.subjects.len(),
                    "schema registry replayed _schemas"
                );
            }
        }
        Ok(registry)
    }

    /// Reads the state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Registry) -> R) -> R {
        f(&self.state.read())
    }

    /// Whether `payload` (what follows the magic byte and the id) is valid data of schema
    /// `id`: one Avro datum, or a JSON document the JSON Schema accepts.
    pub(crate) fn check_payload(&self, id: i32, payload: &[u8]) -> Result<(), String> {
        match &*self.checker(id)? {
            Checker::Avro(schema) => avro::check_datum(schema, payload),
            Checker::Json(validator) => json::check_document(validator, payload),
            Checker::Protobuf(checker) => checker.check(payload),
        }
    }

    fn checker(&self, id: i32) -> Result<std::sync::Arc<Checker>, String> {
        if let Some(c) = self.checkers.lock().get(&id) {
            return Ok(c.clone());
        }
        let parsed = self.read(|r| {
            let s = r.schema(id).map_err(|e| e.message)?.clone();
            r.parse(s.schema_type, &s.text, &s.references)
                .map_err(|e| e.message)
        })?;
        let checker = std::sync::Arc::new(match parsed {
            Parsed::Avro(a) => Checker::Avro(Box::new(a)),
            Parsed::Json(j) => Checker::Json(Box::new(json::validator(&j)?)),
            Parsed::Protobuf(p) => Checker::Protobuf(Box::new(protobuf::PayloadChecker::new(&p)?)),
        });
        self.checkers.lock().insert(id, checker.clone());
        Ok(checker)
    }

    /// Runs a change: `plan` checks it against the state and returns the records to write
    /// and the answer; the records are appended, fsynced and applied before the answer.
    pub(crate) async fn change<T>(
        &self,
        topics: &TopicRegistry,
        plan: impl FnOnce(&Registry) -> Result<(T, Vec<Record>), RegistryError>,
    ) -> Result<T, RegistryError> {
        let _one_at_a_time = self.writes.lock().await;
        let (answer, records) = plan(&self.state.read())?;
        if records.is_empty() {
            return Ok(answer);
        }
        self.log.ensure(topics).map_err(|e| {
            RegistryError::store(format!("Error while creating {SCHEMAS_TOPIC}: {e}"))
        })?;
        let encoded = records.iter().map(Record::encode).collect();
        let end = self.log.append(encoded, None).map_err(|e| {
            RegistryError::store(format!("Error while writing to {SCHEMAS_TOPIC}: {e:?}"))
        })?;
        self.log.wait_durable(end).await.map_err(|e| {
            RegistryError::store(format!("Error while syncing {SCHEMAS_TOPIC}: {e:?}"))
        })?;
        let mut state = self.state.write();
        for r in records {
            state.apply(r);
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"},{"name":"rate","type":"double","default":0.0}]}"#;
    const BAD: &str = r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"int"}]}"#;

    fn register(r: &mut Registry, subject: &str, text: &str) -> Result<i32, RegistryError> {
        let reg = r.register(subject, SchemaType::Avro, text, Vec::new())?;
        for record in reg.records {
            r.apply(record);
        }
        Ok(reg.id)
    }

    fn apply(r: &mut Registry, records: Vec<Record>) {
        for record in records {
            r.apply(record);
        }
    }

    #[test]
    fn ids_are_global_and_the_same_schema_keeps_its_id() {
        let mut r = Registry::default();
        assert_eq!(register(&mut r, "loans-value", V1), Ok(1));
        assert_eq!(register(&mut r, "loans-value", V1), Ok(1), "again: same id");
        assert_eq!(register(&mut r, "loans-value", V2), Ok(2));
        assert_eq!(
            register(&mut r, "audit-value", V1),
            Ok(1),
            "another subject"
        );
        assert_eq!(r.versions("loans-value", false), Ok(vec![1, 2]));
        assert_eq!(r.versions("audit-value", false), Ok(vec![1]));
        let latest = r.version("loans-value", VersionRef::Latest, false).unwrap();
        assert_eq!((latest.version, latest.id), (2, 2));
        assert_eq!(
            r.uses(1, false),
            vec![("audit-value".into(), 1), ("loans-value".into(), 1)]
        );
    }

    #[test]
    fn an_incompatible_schema_is_refused_per_level() {
        let mut r = Registry::default();
        register(&mut r, "s", V1).unwrap();
        let refused = register(&mut r, "s", BAD).unwrap_err();
        assert_eq!((refused.code, refused.status()), (409, 409));
        r.apply(Record::Config(Some("s".into()), Some(Level::None)));
        assert_eq!(register(&mut r, "s", BAD), Ok(2), "NONE checks nothing");
        assert_eq!(r.level(Some("other")), Level::Backward, "the default");
    }

    #[test]
    fn deletion_is_soft_then_permanent() {
        let mut r = Registry::default();
        register(&mut r, "s", V1).unwrap();
        register(&mut r, "s", V2).unwrap();
        let early = r.delete_subject("s", true).unwrap_err();
        assert_eq!(early.code, 40405);
        let (versions, records) = r.delete_subject("s", false).unwrap();
        assert_eq!(versions, vec![1, 2]);
        apply(&mut r, records);
        assert_eq!(r.subjects(false), Vec::<String>::new());
        assert_eq!(r.subjects(true), vec!["s".to_string()]);
        assert_eq!(r.versions("s", false).unwrap_err().code, 40401);
        assert_eq!(r.delete_subject("s", false).unwrap_err().code, 40404);
        let (_, records) = r.delete_subject("s", true).unwrap();
        apply(&mut r, records);
        assert!(r.subjects(true).is_empty());
        assert!(r.schema(1).unwrap().text.contains("Loan"), "ids stay");
        assert_eq!(
            register(&mut r, "s", V2),
            Ok(2),
            "the id of the same schema"
        );
        assert_eq!(r.versions("s", false), Ok(vec![1]));
    }

    #[test]
    fn an_id_is_not_given_out_again_once_compaction_removed_its_last_record() {
        let mut r = Registry::default();
        register(&mut r, "s", V1).unwrap();
        let mut log: Vec<Record> = Vec::new();
        let (_, soft) = r.delete_subject("s", false).unwrap();
        apply(&mut r, soft.clone());
        let (_, hard) = r.delete_subject("s", true).unwrap();
        log.extend(hard);
        // What replay finds after compaction: the tombstone's key gone, the next id kept.
        let mut replayed = Registry::default();
        for record in log.into_iter().filter(|r| matches!(r, Record::NextId(_))) {
            replayed.apply(record);
        }
        assert_eq!(register(&mut replayed, "t", V2), Ok(2), "id 1 stays used");
    }

    #[test]
    fn import_mode_keeps_ids_and_versions_and_ids_go_on_after_them() {
        let mut r = Registry::default();
        let refused = r
            .import("s", SchemaType::Avro, V1, Vec::new(), 40, Some(3))
            .err()
            .map(|e| e.code);
        assert_eq!(refused, Some(42205), "not in import mode");
        r.apply(Record::Mode(None, Some(Mode::Import)));
        let reg = r
            .import("s", SchemaType::Avro, V1, Vec::new(), 40, Some(3))
            .unwrap();
        apply(&mut r, reg.records);
        let v = r.version("s", VersionRef::Latest, false).unwrap();
        assert_eq!((v.version, v.id), (3, 40));
        let clash = r.import("t", SchemaType::Avro, V2, Vec::new(), 40, None);
        assert_eq!(
            clash.err().map(|e| e.code),
            Some(42207),
            "id 40 is another schema"
        );
        r.apply(Record::Mode(None, Some(Mode::ReadWrite)));
        assert_eq!(
            register(&mut r, "t", V2),
            Ok(41),
            "ids go on after the imported ones"
        );
    }

    #[test]
    fn versions_parse_like_confluents() {
        assert_eq!(VersionRef::parse("latest"), Ok(VersionRef::Latest));
        assert_eq!(VersionRef::parse("-1"), Ok(VersionRef::Latest));
        assert_eq!(VersionRef::parse("3"), Ok(VersionRef::Number(3)));
        for bad in ["0", "-2", "x", "99999999999"] {
            assert_eq!(VersionRef::parse(bad).unwrap_err().code, 42202, "{bad}");
        }
        assert_eq!(RegistryError::invalid_version("x").status(), 422);
        assert_eq!(RegistryError::subject_not_found("s").status(), 404);
    }
}
