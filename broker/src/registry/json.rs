//! JSON Schema for the registry: a schema must pass its draft's meta-schema (`jsonschema`),
//! and compatibility follows the rules Confluent documents for JSON Schema, reading data
//! written against `writer` with `reader`:
//! - types: the reader must accept every type the writer allows (`integer` widens to
//!   `number`);
//! - objects: a property the writer may write must be readable: the reader declares it
//!   compatibly, or the reader's content model is open; a property only the reader declares
//!   is fine when the writer's model is closed (`additionalProperties: false`), and refused
//!   when it is open (the writer may have written anything under that name); the reader may
//!   not require a property the writer does not;
//! - enums: the reader must list every value the writer may write;
//! - arrays: items compatibly, recursively;
//! - bounds: the reader may not be narrower (`maxLength`, `minLength`, `maximum`,
//!   `minimum`, `maxItems`, `minItems`).
//!
//! Keywords outside these (`oneOf`, `$ref`, `pattern`, ...) are compared for equality: a
//! change there counts as incompatible rather than guessed at.

use serde_json::{Map, Value};

/// A parsed JSON schema and its stored text (compact, object keys in order, as
/// [`super::avro::AvroSchema`]).
#[derive(Debug, Clone)]
pub(crate) struct JsonSchema {
    pub(crate) schema: Value,
    pub(crate) text: String,
    /// Schemas it references, by the name its `$ref`s use.
    pub(crate) references: Vec<(String, Value)>,
}

/// Parses and checks `text` against its draft's meta-schema; `references` are (name, text)
/// of the schemas its `$ref`s name.
pub(crate) fn parse(text: &str, references: &[(String, String)]) -> Result<JsonSchema, String> {
    let schema: Value = serde_json::from_str(text).map_err(|e| format!("Invalid schema: {e}"))?;
    if !schema.is_object() && !schema.is_boolean() {
        return Err("Invalid schema: a JSON Schema is an object or a boolean".into());
    }
    match jsonschema::meta::try_validate(&schema) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("Invalid schema: {e}")),
        Err(e) => return Err(format!("Invalid schema: {e}")),
    }
    let text = serde_json::to_string(&schema).map_err(|e| format!("Invalid schema: {e}"))?;
    let references = references
        .iter()
        .map(|(name, text)| {
            serde_json::from_str(text)
                .map(|v| (name.clone(), v))
                .map_err(|e| format!("Invalid schema: reference {name}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let parsed = JsonSchema {
        schema,
        text,
        references,
    };
    // Every `$ref` must resolve: building the validator resolves them.
    validator(&parsed)?;
    Ok(parsed)
}

/// A validator for payloads of `schema`, its references resolvable by name.
pub(crate) fn validator(schema: &JsonSchema) -> Result<jsonschema::Validator, String> {
    let mut options = jsonschema::options();
    for (name, value) in &schema.references {
        let resource = jsonschema::Resource::from_contents(value.clone())
            .map_err(|e| format!("Invalid schema: reference {name}: {e}"))?;
        // A relative `$ref` resolves against the default base; an absolute one is the name.
        options = options.with_resource(format!("json-schema:///{name}"), resource.clone());
        if name.contains(':') {
            options = options.with_resource(name.clone(), resource);
        }
    }
    options
        .build(&schema.schema)
        .map_err(|e| format!("Invalid schema: {e}"))
}

/// Whether `payload` is a JSON document `schema` accepts (produce-time `full` validation).
pub(crate) fn check_document(
    validator: &jsonschema::Validator,
    payload: &[u8],
) -> Result<(), String> {
    let doc: Value = serde_json::from_slice(payload).map_err(|e| format!("it is not JSON: {e}"))?;
    validator
        .validate(&doc)
        .map_err(|e| format!("the schema refuses it: {e}"))
}

/// Whether data written against `writer` reads with `reader`; the reasons if not.
pub(crate) fn can_read(writer: &Value, reader: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    compare(writer, reader, "#", &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

const HANDLED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "items",
    "maxLength",
    "minLength",
    "maximum",
    "minimum",
    "maxItems",
    "minItems",
    "title",
    "description",
    "default",
    "$schema",
    "$id",
    "examples",
];

fn types(schema: &Map<String, Value>) -> Option<Vec<String>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// The content model is open unless `additionalProperties` is `false`.
fn open(schema: &Map<String, Value>) -> bool {
    schema.get("additionalProperties") != Some(&Value::Bool(false))
}

fn compare(writer: &Value, reader: &Value, at: &str, problems: &mut Vec<String>) {
    let (w, r) = match (writer, reader) {
        (_, Value::Bool(true)) => return,
        (Value::Bool(false), _) => return,
        (Value::Object(w), Value::Object(r)) => (w, r),
        (Value::Bool(true), Value::Object(r)) if r.is_empty() => return,
        _ => {
            problems.push(format!("{at}: the reader accepts less than the writer"));
            return;
        }
    };
    // Types.
    match (types(w), types(r)) {
        (_, None) => {}
        (None, Some(_)) => problems.push(format!("{at}: the reader restricts the type")),
        (Some(wt), Some(rt)) => {
            for t in wt {
                let ok = rt.contains(&t) || (t == "integer" && rt.iter().any(|x| x == "number"));
                if !ok {
                    problems.push(format!("{at}: the reader does not accept type {t}"));
                }
            }
        }
    }
    // Objects.
    let empty = Map::new();
    let wp = w
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let rp = r
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, ws) in wp {
        match rp.get(name) {
            Some(rs) => compare(ws, rs, &format!("{at}/properties/{name}"), problems),
            None if open(r) => {}
            None => problems.push(format!(
                "{at}: property {name} removed from a closed content model"
            )),
        }
    }
    for name in rp.keys().filter(|n| !wp.contains_key(*n)) {
        if open(w) {
            problems.push(format!(
                "{at}: property {name} added to an open content model"
            ));
        }
    }
    let required = |s: &Map<String, Value>| -> Vec<String> {
        s.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let writer_required = required(w);
    for name in required(r) {
        if !writer_required.contains(&name) {
            problems.push(format!("{at}: property {name} became required"));
        }
    }
    if !open(r) && open(w) {
        problems.push(format!("{at}: the reader closed an open content model"));
    }
    // Enums.
    if let Some(re) = r.get("enum").and_then(Value::as_array) {
        match w.get("enum").and_then(Value::as_array) {
            Some(we) => {
                for v in we.iter().filter(|v| !re.contains(v)) {
                    problems.push(format!("{at}: enum value {v} removed"));
                }
            }
            None => problems.push(format!("{at}: the reader added an enum")),
        }
    }
    // Arrays.
    if let Some(ri) = r.get("items") {
        let wi = w.get("items").cloned().unwrap_or(Value::Bool(true));
        compare(&wi, ri, &format!("{at}/items"), problems);
    }
    // Bounds: the reader may not be narrower.
    for (key, upper) in [
        ("maxLength", true),
        ("maximum", true),
        ("maxItems", true),
        ("minLength", false),
        ("minimum", false),
        ("minItems", false),
    ] {
        let Some(rv) = r.get(key).and_then(Value::as_f64) else {
            continue;
        };
        let narrower = match w.get(key).and_then(Value::as_f64) {
            None => true,
            Some(wv) if upper => rv < wv,
            Some(wv) => rv > wv,
        };
        if narrower {
            problems.push(format!("{at}: {key} narrowed"));
        }
    }
    // Anything else must not change.
    let others = |s: &Map<String, Value>| -> Vec<(String, Value)> {
        s.iter()
            .filter(|(k, _)| !HANDLED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    if others(w) != others(r) {
        problems.push(format!(
            "{at}: keywords this registry does not reason about changed"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V1: &str = r#"{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"integer"}},"required":["id"]}"#;

    fn verdict(writer: Value, reader: Value) -> bool {
        can_read(&writer, &reader).is_ok()
    }

    #[test]
    fn a_payload_must_be_a_document_the_schema_accepts() {
        let v1 = parse(V1, &[]).unwrap();
        let validator = jsonschema::validator_for(&v1.schema).unwrap();
        assert_eq!(
            check_document(&validator, br#"{"id":"a","amount":3}"#),
            Ok(())
        );
        assert!(
            check_document(&validator, br#"{"amount":3}"#).is_err(),
            "id missing"
        );
        assert!(check_document(&validator, br#"{"id":"a","amount":"x"}"#).is_err());
        assert!(check_document(&validator, b"not json").is_err());
    }

    #[test]
    fn references_resolve_by_name_for_payloads() {
        let money = (
            "money.json".to_string(),
            r#"{"type":"object","properties":{"cents":{"type":"integer"}},"required":["cents"]}"#
                .to_string(),
        );
        let payment = r#"{"type":"object","properties":{"amount":{"$ref":"money.json"}}}"#;
        let parsed = parse(payment, std::slice::from_ref(&money)).unwrap();
        let v = validator(&parsed).unwrap();
        assert_eq!(check_document(&v, br#"{"amount":{"cents":5}}"#), Ok(()));
        assert!(check_document(&v, br#"{"amount":{"cents":"x"}}"#).is_err());
        assert!(parse(payment, &[]).is_err(), "an unresolvable $ref");
    }

    #[test]
    fn schemas_must_pass_their_meta_schema() {
        assert!(parse(V1, &[]).is_ok());
        assert!(parse(r#"{"type":"invalid_type"}"#, &[]).is_err());
        assert!(parse(r#"{"properties":[1]}"#, &[]).is_err());
        assert!(parse("42", &[]).is_err());
        assert!(parse("{", &[]).is_err());
        let a = parse(r#"{"type": "string", "maxLength": 3}"#, &[]).unwrap();
        let b = parse(r#"{"maxLength":3,"type":"string"}"#, &[]).unwrap();
        assert_eq!(a.text, b.text);
    }

    /// (writer, reader, readable, why): Confluent's JSON Schema rules.
    #[test]
    fn compatibility_follows_confluents_json_schema_rules() {
        let v1: Value = serde_json::from_str(V1).unwrap();
        let closed =
            |props: Value| json!({"type":"object","properties":props,"additionalProperties":false});
        let cases: Vec<(Value, Value, bool, &str)> = vec![
            (v1.clone(), v1.clone(), true, "the same schema"),
            (
                json!({"type":"integer"}),
                json!({"type":"number"}),
                true,
                "integer widened to number",
            ),
            (
                json!({"type":"number"}),
                json!({"type":"integer"}),
                false,
                "number narrowed to integer",
            ),
            (
                json!({"type":"string"}),
                json!({"type":["string","null"]}),
                true,
                "null added",
            ),
            (
                closed(json!({"id":{"type":"string"}})),
                closed(json!({"id":{"type":"string"},"rate":{"type":"number"}})),
                true,
                "a property added to a closed writer model",
            ),
            (
                json!({"type":"object","properties":{"id":{"type":"string"}}}),
                json!({"type":"object","properties":{"id":{"type":"string"},"rate":{"type":"number"}}}),
                false,
                "a property added to an open writer model",
            ),
            (
                v1.clone(),
                json!({"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}),
                true,
                "a property removed from an open reader model",
            ),
            (
                closed(json!({"id":{"type":"string"},"x":{"type":"string"}})),
                closed(json!({"id":{"type":"string"}})),
                false,
                "a property removed from a closed reader model",
            ),
            (
                json!({"type":"object","properties":{"id":{"type":"string"}}}),
                json!({"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}),
                false,
                "a property that became required",
            ),
            (
                json!({"enum":["A","B"]}),
                json!({"enum":["A","B","C"]}),
                true,
                "an enum value added",
            ),
            (
                json!({"enum":["A","B"]}),
                json!({"enum":["A"]}),
                false,
                "an enum value removed",
            ),
            (
                json!({"type":"string","maxLength":10}),
                json!({"type":"string","maxLength":20}),
                true,
                "maxLength widened",
            ),
            (
                json!({"type":"string","maxLength":10}),
                json!({"type":"string","maxLength":5}),
                false,
                "maxLength narrowed",
            ),
            (
                json!({"type":"array","items":{"type":"integer"}}),
                json!({"type":"array","items":{"type":"string"}}),
                false,
                "array items changing type",
            ),
            (
                json!({"type":"object","properties":{"n":{"type":"object","properties":{"a":{"type":"integer"}}}}}),
                json!({"type":"object","properties":{"n":{"type":"object","properties":{"a":{"type":"string"}}}}}),
                false,
                "a nested property changing type",
            ),
            (
                json!({"type":"string"}),
                json!({"type":"string","pattern":"^a"}),
                false,
                "a pattern added",
            ),
        ];
        for (writer, reader, readable, what) in cases {
            assert_eq!(verdict(writer, reader), readable, "{what}");
        }
    }
}
