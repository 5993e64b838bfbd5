//! Protobuf schemas for the registry: `.proto` text compiled with `protox` (a schema's
//! references are the files it imports, by import name; Google's well-known types resolve
//! by themselves), and compatibility by the changes Confluent documents as breaking for a
//! reader of data written with the other schema:
//! - the package changed; a message the writer has is gone;
//! - a field (matched by number) changed its kind between scalar, message, enum, or its
//!   scalar type outside a wire-compatible group (`int32 uint32 int64 uint64 bool`,
//!   `sint32 sint64`, `fixed32 sfixed32`, `fixed64 sfixed64`, `string bytes`), or its message
//!   or enum type;
//! - a field's cardinality changed (repeated against singular);
//! - a required field was added or removed (proto2);
//! - a field of a oneof was removed, or a field moved into an existing oneof.
//!
//! Adding or removing optional fields, messages the writer lacks, and enum values are fine:
//! a reader skips what it does not know.
//!
//! A schema comes as `.proto` text or, as confluent-kafka-python's serializer sends it, as a
//! base64 `FileDescriptorProto` ("serialized"); either is kept as sent, and either can be
//! answered in the serialized form (`?format=serialized`).

use std::collections::HashMap;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

/// The name the schema itself is compiled under.
const MAIN: &str = "schema.proto";

/// A compiled `.proto` schema and its stored text.
#[derive(Debug, Clone)]
pub(crate) struct ProtoSchema {
    pub(crate) file: FileDescriptorProto,
    /// The file with everything it imports, for decoding payloads.
    pub(crate) set: prost_types::FileDescriptorSet,
    /// The text as registered, trimmed: Confluent keeps the schema's own text too.
    pub(crate) text: String,
}

/// Sources by import name.
struct Sources(HashMap<String, String>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(source) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Compiles `text` (or decodes it, when it is a base64 `FileDescriptorProto`); `references`
/// are (import name, source) of the files it imports.
pub(crate) fn parse(text: &str, references: &[(String, String)]) -> Result<ProtoSchema, String> {
    match compile(text, references) {
        Ok(schema) => Ok(schema),
        Err(reason) => decode_serialized(text).ok_or(reason),
    }
}

/// A base64 `FileDescriptorProto`, if `text` is one.
fn decode_serialized(text: &str) -> Option<ProtoSchema> {
    use base64::Engine as _;
    use prost::Message as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    let file = FileDescriptorProto::decode(bytes.as_slice()).ok()?;
    // Something decodes from almost any bytes: a descriptor names itself and its messages.
    let named = file.name.is_some() && file.message_type.iter().all(|m| m.name.is_some());
    named.then(|| ProtoSchema {
        set: prost_types::FileDescriptorSet {
            file: vec![file.clone()],
        },
        file,
        text: text.trim().to_string(),
    })
}

/// The schema as a base64 `FileDescriptorProto` (Confluent's `format=serialized`).
pub(crate) fn serialized(schema: &ProtoSchema) -> String {
    use base64::Engine as _;
    use prost::Message as _;
    base64::engine::general_purpose::STANDARD.encode(schema.file.encode_to_vec())
}

fn compile(text: &str, references: &[(String, String)]) -> Result<ProtoSchema, String> {
    let mut sources: HashMap<String, String> = references.iter().cloned().collect();
    sources.insert(MAIN.to_string(), text.to_string());
    let mut resolver = ChainFileResolver::new();
    resolver.add(Sources(sources));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler
        .open_file(MAIN)
        .map_err(|e| format!("Invalid schema: {e}"))?;
    let set = compiler.file_descriptor_set();
    let file = set
        .file
        .iter()
        .find(|f| f.name() == MAIN)
        .cloned()
        .ok_or_else(|| "Invalid schema: nothing compiled".to_string())?;
    Ok(ProtoSchema {
        file,
        set,
        text: text.trim().to_string(),
    })
}

/// What checks a payload against a schema: its descriptors, and the schema's file name.
pub(crate) struct PayloadChecker {
    pool: prost_reflect::DescriptorPool,
    file: FileDescriptorProto,
}

impl PayloadChecker {
    pub(crate) fn new(schema: &ProtoSchema) -> Result<Self, String> {
        let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(schema.set.clone())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            pool,
            file: schema.file.clone(),
        })
    }

    /// Whether `payload` (Confluent's Protobuf framing after the id: the message indexes,
    /// then the message) decodes as the message the indexes name.
    pub(crate) fn check(&self, payload: &[u8]) -> Result<(), String> {
        let mut rest = payload;
        let mut varint = || -> Result<i64, String> {
            let v = prost::encoding::decode_varint(&mut rest)
                .map_err(|_| "the message indexes do not parse".to_string())?;
            // Zigzag, as Confluent writes them.
            Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
        };
        let count = varint()?;
        if !(0..=64).contains(&count) {
            return Err(format!("{count} message indexes"));
        }
        let indexes = if count == 0 {
            vec![0]
        } else {
            (0..count)
                .map(|_| varint())
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut list = &self.file.message_type;
        let mut name = self.file.package().to_string();
        for index in indexes {
            let m = usize::try_from(index)
                .ok()
                .and_then(|i| list.get(i))
                .ok_or_else(|| format!("no message at index {index}"))?;
            name = if name.is_empty() {
                m.name().to_string()
            } else {
                format!("{name}.{}", m.name())
            };
            list = &m.nested_type;
        }
        let desc = self
            .pool
            .get_message_by_name(&name)
            .ok_or_else(|| format!("no message {name}"))?;
        prost_reflect::DynamicMessage::decode(desc, rest)
            .map(|_| ())
            .map_err(|e| format!("it does not decode as {name}: {e}"))
    }
}

/// Whether data written with `writer` reads with `reader`; the reasons if not.
pub(crate) fn can_read(writer: &ProtoSchema, reader: &ProtoSchema) -> Result<(), String> {
    let mut problems = Vec::new();
    if writer.file.package() != reader.file.package() {
        problems.push(format!(
            "the package changed from '{}' to '{}'",
            writer.file.package(),
            reader.file.package()
        ));
    }
    let package = reader.file.package();
    let readers = messages(&reader.file.message_type, package);
    for (name, w) in messages(&writer.file.message_type, writer.file.package()) {
        match readers.get(&name) {
            None => problems.push(format!("message {name} was removed")),
            Some(r) => compare_message(&name, w, r, &mut problems),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Every message, nested ones included, by full name.
fn messages<'a>(list: &'a [DescriptorProto], scope: &str) -> HashMap<String, &'a DescriptorProto> {
    let mut out = HashMap::new();
    for m in list {
        let name = if scope.is_empty() {
            m.name().to_string()
        } else {
            format!("{scope}.{}", m.name())
        };
        out.extend(messages(&m.nested_type, &name));
        out.insert(name, m);
    }
    out
}

/// The wire-compatible group of a scalar type.
fn scalar_group(t: Type) -> u8 {
    match t {
        Type::Int32 | Type::Uint32 | Type::Int64 | Type::Uint64 | Type::Bool => 1,
        Type::Sint32 | Type::Sint64 => 2,
        Type::Fixed32 | Type::Sfixed32 => 3,
        Type::Fixed64 | Type::Sfixed64 => 4,
        Type::String | Type::Bytes => 5,
        Type::Float => 6,
        Type::Double => 7,
        Type::Message | Type::Group => 8,
        Type::Enum => 9,
    }
}

fn compare_message(
    name: &str,
    writer: &DescriptorProto,
    reader: &DescriptorProto,
    problems: &mut Vec<String>,
) {
    let by_number = |m: &DescriptorProto| -> HashMap<i32, FieldDescriptorProto> {
        m.field.iter().map(|f| (f.number(), f.clone())).collect()
    };
    let (wf, rf) = (by_number(writer), by_number(reader));
    for (number, w) in &wf {
        let Some(r) = rf.get(number) else {
            if w.label() == Label::Required {
                problems.push(format!("{name}: required field {} was removed", w.name()));
            }
            if w.oneof_index.is_some() {
                problems.push(format!("{name}: oneof field {} was removed", w.name()));
            }
            continue;
        };
        let (wt, rt) = (w.r#type(), r.r#type());
        if scalar_group(wt) != scalar_group(rt) {
            problems.push(format!(
                "{name}: field {} changed type from {wt:?} to {rt:?}",
                w.name()
            ));
        } else if matches!(wt, Type::Message | Type::Group | Type::Enum)
            && w.type_name() != r.type_name()
        {
            problems.push(format!(
                "{name}: field {} changed type from {} to {}",
                w.name(),
                w.type_name(),
                r.type_name()
            ));
        }
        if (w.label() == Label::Repeated) != (r.label() == Label::Repeated) {
            problems.push(format!("{name}: field {} changed cardinality", w.name()));
        }
        if w.oneof_index.is_none() && r.oneof_index.is_some() {
            let oneof = r.oneof_index.unwrap_or_default();
            let existing = wf.values().any(|f| {
                f.oneof_index.is_some()
                    && rf.get(&f.number()).and_then(|x| x.oneof_index) == Some(oneof)
            });
            if existing {
                problems.push(format!(
                    "{name}: field {} moved into an existing oneof",
                    w.name()
                ));
            }
        }
    }
    for (number, r) in &rf {
        if !wf.contains_key(number) && r.label() == Label::Required {
            problems.push(format!("{name}: required field {} was added", r.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"syntax = "proto3";
        package bank;
        message Loan { string id = 1; int32 amount = 2; repeated string tags = 3; }"#;

    fn schema(text: &str) -> ProtoSchema {
        parse(text, &[]).unwrap()
    }

    #[test]
    fn the_serialized_form_reads_back_and_compares_like_the_text() {
        let text = schema(V1);
        let encoded = serialized(&text);
        let decoded = parse(&encoded, &[]).unwrap();
        assert_eq!(decoded.file, text.file);
        assert_eq!(decoded.text, encoded, "kept as sent");
        assert!(can_read(&text, &decoded).is_ok());
        assert!(
            parse("bm90IGEgZGVzY3JpcHRvcg==", &[]).is_err(),
            "base64 of something else"
        );
    }

    #[test]
    fn payloads_must_decode_as_the_message_their_indexes_name() {
        let checker = PayloadChecker::new(&schema(V1)).unwrap();
        // [0] (the first message), then Loan{id: "a", amount: 5}.
        let mut payload = vec![0u8];
        payload.extend([0x0a, 1, b'a', 0x10, 5]);
        assert_eq!(checker.check(&payload), Ok(()));
        payload.truncate(3);
        assert!(checker.check(&payload).is_err(), "cut inside a field");
        assert!(checker.check(&[2, 6]).is_err(), "index 3 does not exist");
    }

    #[test]
    fn proto_text_compiles_with_imports_and_well_known_types() {
        assert!(parse("syntax = \"proto3\"; message {", &[]).is_err());
        let with_ts = r#"syntax = "proto3"; import "google/protobuf/timestamp.proto";
            message Event { google.protobuf.Timestamp at = 1; }"#;
        assert!(parse(with_ts, &[]).is_ok(), "well-known types");
        let money = (
            "money.proto".to_string(),
            r#"syntax = "proto3"; package fin; message Money { int64 cents = 1; }"#.to_string(),
        );
        let loan = r#"syntax = "proto3"; import "money.proto";
            message Loan { fin.Money amount = 1; }"#;
        assert!(
            parse(loan, std::slice::from_ref(&money)).is_ok(),
            "a reference"
        );
        assert!(parse(loan, &[]).is_err(), "the import is missing");
    }

    /// (writer, reader, readable, what): Confluent's breaking changes and some that are not.
    #[test]
    fn compatibility_follows_confluents_protobuf_rules() {
        let loan = |fields: &str| {
            format!("syntax = \"proto3\"; package bank; message Loan {{ {fields} }}")
        };
        let cases: Vec<(String, String, bool, &str)> = vec![
            (V1.into(), V1.into(), true, "the same schema"),
            (
                loan("string id = 1;"),
                loan("string id = 1; double rate = 4;"),
                true,
                "a field added",
            ),
            (
                loan("string id = 1; int32 amount = 2;"),
                loan("string id = 1;"),
                true,
                "a field removed",
            ),
            (
                loan("int32 amount = 2;"),
                loan("int64 amount = 2;"),
                true,
                "int32 to int64 (same wire group)",
            ),
            (
                loan("int32 amount = 2;"),
                loan("string amount = 2;"),
                false,
                "int32 to string",
            ),
            (
                loan("string id = 1;"),
                loan("bytes id = 1;"),
                true,
                "string to bytes",
            ),
            (
                loan("string tags = 3;"),
                loan("repeated string tags = 3;"),
                false,
                "singular to repeated",
            ),
            (
                V1.into(),
                "syntax = \"proto3\"; package other; message Loan { string id = 1; }".into(),
                false,
                "the package changed",
            ),
            (
                format!("{V1} message Audit {{ string at = 1; }}"),
                V1.into(),
                false,
                "a message removed",
            ),
            (
                loan("oneof amount { int32 cents = 2; string text = 5; }"),
                loan("oneof amount { int32 cents = 2; }"),
                false,
                "a oneof field removed",
            ),
            (
                loan("int32 cents = 2; oneof amount { string text = 5; }"),
                loan("oneof amount { int32 cents = 2; string text = 5; }"),
                false,
                "a field moved into an existing oneof",
            ),
        ];
        for (writer, reader, readable, what) in cases {
            let verdict = can_read(&schema(&writer), &schema(&reader));
            assert_eq!(verdict.is_ok(), readable, "{what}: {verdict:?}");
        }
    }
}
