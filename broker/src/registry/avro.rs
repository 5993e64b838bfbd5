//! Avro schemas for the registry (`apache-avro`): parsing, the form a schema is stored and
//! compared in, and reader/writer compatibility by the Avro specification's resolution rules
//! (a reader may add a field only with a default, drop a field, promote int -> long -> float
//! -> double and string <-> bytes, must know every enum symbol the writer may write unless
//! it has a default, and must read every branch of a writer's union).

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

/// A parsed Avro schema and its stored text.
#[derive(Debug, Clone)]
pub(crate) struct AvroSchema {
    pub(crate) schema: Schema,
    /// The schemas it references (named types it uses), for decoding.
    pub(crate) referenced: Vec<Schema>,
    /// The schema's JSON, compact and with object keys in order: two registrations of the
    /// same schema (whatever their whitespace and key order) store and compare equal, while
    /// a changed default or doc is a new schema, as in Confluent's registry.
    pub(crate) text: String,
}

/// Parses `text` (with `references`, the schemas it names, already parsed texts).
pub(crate) fn parse(text: &str, references: &[String]) -> Result<AvroSchema, String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("Invalid schema: {e}"))?;
    let (schema, referenced) = if references.is_empty() {
        (
            Schema::parse(&json).map_err(|e| format!("Invalid schema: {e}"))?,
            Vec::new(),
        )
    } else {
        Schema::parse_str_with_list(text, references).map_err(|e| format!("Invalid schema: {e}"))?
    };
    let text = serde_json::to_string(&json).map_err(|e| format!("Invalid schema: {e}"))?;
    Ok(AvroSchema {
        schema,
        referenced,
        text,
    })
}

/// `normalize=true`: the schema as `apache-avro` writes it back (full names, every type in
/// its object form where Avro has one), keys in order, so that schemas that say the same in
/// different words store as one.
pub(crate) fn normalize(text: &str, references: &[String]) -> Result<String, String> {
    let parsed = parse(text, references)?;
    let value = serde_json::to_value(&parsed.schema).map_err(|e| format!("Invalid schema: {e}"))?;
    serde_json::to_string(&value).map_err(|e| format!("Invalid schema: {e}"))
}

/// Whether `payload` is exactly one datum of `schema` (produce-time `full` validation).
pub(crate) fn check_datum(schema: &AvroSchema, payload: &[u8]) -> Result<(), String> {
    let mut rest = payload;
    let decoded = if schema.referenced.is_empty() {
        apache_avro::from_avro_datum(&schema.schema, &mut rest, None)
    } else {
        apache_avro::from_avro_datum_schemata(
            &schema.schema,
            schema.referenced.iter().collect(),
            &mut rest,
            None,
        )
    };
    decoded.map_err(|e| format!("it does not decode with the schema: {e}"))?;
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("{} bytes follow the datum", rest.len()))
    }
}

/// Whether data written with `writer` can be read with `reader`; the reason if not.
pub(crate) fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    SchemaCompatibility::can_read(writer, reader).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> Schema {
        parse(text, &[]).unwrap().schema
    }

    const V1: &str = r#"{"type":"record","name":"Loan","fields":[
        {"name":"id","type":"string"},{"name":"amount","type":"int"}]}"#;

    /// (writer, reader, readable): Avro's resolution rules, the tricky ones included.
    #[test]
    fn reader_writer_compatibility_follows_the_avro_resolution_rules() {
        let cases: &[(&str, &str, bool, &str)] = &[
            (V1, V1, true, "the same schema"),
            (
                V1,
                r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"},
                    {"name":"amount","type":"int"},{"name":"rate","type":"double","default":0.0}]}"#,
                true,
                "a reader field added with a default",
            ),
            (
                V1,
                r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"},
                    {"name":"amount","type":"int"},{"name":"rate","type":"double"}]}"#,
                false,
                "a reader field added without a default",
            ),
            (
                V1,
                r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"}]}"#,
                true,
                "a field the reader drops",
            ),
            (
                V1,
                r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"},
                    {"name":"amount","type":"long"}]}"#,
                true,
                "int promoted to long",
            ),
            (
                r#"{"type":"record","name":"Loan","fields":[{"name":"amount","type":"long"}]}"#,
                r#"{"type":"record","name":"Loan","fields":[{"name":"amount","type":"int"}]}"#,
                false,
                "long narrowed to int",
            ),
            (
                r#"{"type":"enum","name":"State","symbols":["OPEN","CLOSED"]}"#,
                r#"{"type":"enum","name":"State","symbols":["OPEN"]}"#,
                false,
                "an enum symbol the reader lacks",
            ),
            (
                r#"{"type":"enum","name":"State","symbols":["OPEN"]}"#,
                r#"{"type":"enum","name":"State","symbols":["OPEN","CLOSED"]}"#,
                true,
                "an enum symbol added for the reader",
            ),
            (
                r#"["null","string"]"#,
                r#"["string","null"]"#,
                true,
                "union branches reordered",
            ),
            (
                r#"["null","string","int"]"#,
                r#"["null","string"]"#,
                false,
                "a writer union branch the reader cannot read",
            ),
            (
                r#"{"type":"record","name":"Outer","fields":[{"name":"inner","type":
                    {"type":"record","name":"Inner","fields":[{"name":"a","type":"int"}]}}]}"#,
                r#"{"type":"record","name":"Outer","fields":[{"name":"inner","type":
                    {"type":"record","name":"Inner","fields":[{"name":"a","type":"string"}]}}]}"#,
                false,
                "a nested record's field changing type",
            ),
        ];
        for (writer, reader, readable, what) in cases.iter().chain(TRICKY) {
            let verdict = can_read(&schema(writer), &schema(reader));
            assert_eq!(verdict.is_ok(), *readable, "{what}: {verdict:?}");
        }
    }

    /// Aliases: a reader may rename a field or a record and name the old name as an alias.
    const TRICKY: &[(&str, &str, bool, &str)] = &[
        (
            r#"{"type":"record","name":"Loan","fields":[{"name":"amount","type":"int"}]}"#,
            r#"{"type":"record","name":"Loan","fields":[{"name":"principal","type":"int","aliases":["amount"]}]}"#,
            true,
            "a field renamed with the old name as an alias",
        ),
        (
            r#"{"type":"record","name":"Loan","fields":[{"name":"amount","type":"int"}]}"#,
            r#"{"type":"record","name":"Loan","fields":[{"name":"principal","type":"int"}]}"#,
            false,
            "a field renamed without an alias (and no default)",
        ),
        (
            r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"}]}"#,
            r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"},{"name":"tags","type":{"type":"array","items":"string"},"default":[]}]}"#,
            true,
            "an array field added with a default",
        ),
    ];

    #[test]
    fn a_payload_must_be_exactly_one_datum_of_the_schema() {
        let loan = parse(V1, &[]).unwrap();
        // id "a" (length 1 zigzag = 2, then 'a'), amount 21 (zigzag 42).
        assert_eq!(check_datum(&loan, &[2, b'a', 42]), Ok(()));
        assert!(check_datum(&loan, &[2, b'a']).is_err(), "cut short");
        assert!(
            check_datum(&loan, &[2, b'a', 42, 0]).is_err(),
            "bytes after it"
        );
        assert!(
            check_datum(&loan, b"{\"id\":\"a\"}").is_err(),
            "JSON is not Avro"
        );
    }

    #[test]
    fn a_default_of_the_wrong_type_is_an_invalid_schema() {
        let wrong = r#"{"type":"record","name":"Loan","fields":[{"name":"rate","type":"double","default":"high"}]}"#;
        assert!(parse(wrong, &[]).is_err(), "a string default for a double");
    }

    #[test]
    fn normalizing_makes_equivalent_spellings_one_schema() {
        let short = r#"{"type":"record","name":"Loan","namespace":"bank","fields":[{"name":"id","type":"string"}]}"#;
        let long = r#"{"type":"record","name":"bank.Loan","fields":[{"name":"id","type":{"type":"string"}}]}"#;
        assert_ne!(
            parse(short, &[]).unwrap().text,
            parse(long, &[]).unwrap().text
        );
        assert_eq!(
            normalize(short, &[]).unwrap(),
            normalize(long, &[]).unwrap()
        );
        let doc = r#"{"type":"record","name":"bank.Loan","doc":"d","fields":[{"name":"id","type":"string"}]}"#;
        assert_ne!(
            normalize(short, &[]).unwrap(),
            normalize(doc, &[]).unwrap(),
            "docs count"
        );
    }

    #[test]
    fn stored_text_ignores_layout_but_not_content() {
        let a = parse(r#"{"type": "record", "name": "A", "fields": []}"#, &[]).unwrap();
        let b = parse(r#"{"fields":[],"name":"A","type":"record"}"#, &[]).unwrap();
        assert_eq!(a.text, b.text);
        let c = parse(r#"{"type":"record","name":"A","doc":"x","fields":[]}"#, &[]).unwrap();
        assert_ne!(a.text, c.text);
        assert!(
            parse(r#"{"type":"record","name":"A"}"#, &[]).is_err(),
            "no fields"
        );
        assert!(parse("not json", &[]).is_err());
    }
}
