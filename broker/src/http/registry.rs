//! The schema registry's REST API, as Confluent Schema Registry serves it (the one
//! confluent-kafka's `SchemaRegistryClient`, `@kafkajs/confluent-schema-registry` and Java's
//! serializers call): subjects and versions, schemas by id, compatibility checks, config and
//! mode. Answers are `application/vnd.schemaregistry.v1+json`; errors are Confluent's
//! `{"error_code":40401,"message":...}` with the code's first three digits as the status.
//! Request bodies are read as JSON whatever their media type. The rules are
//! `crate::registry`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::registry::{
    Level, Mode, Parsed, Reference, Registry, RegistryError, SchemaType, StoredSchema, VersionRef,
    VersionView,
};
use crate::state::BrokerState;

const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Shared = State<Arc<BrokerState>>;
type Params = Query<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/schemas/types", get(types))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_compatibility),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route("/mode", get(get_global_mode).put(put_global_mode))
        .route("/mode/{subject}", get(get_mode).put(put_mode))
}

/// A JSON answer in the registry's media type.
fn ok(value: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, MEDIA_TYPE)],
        value.to_string(),
    )
        .into_response()
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(header::CONTENT_TYPE, MEDIA_TYPE)],
            json!({ "error_code": self.code, "message": self.message }).to_string(),
        )
            .into_response()
    }
}

type Answer = Result<Response, RegistryError>;

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A registration or lookup body.
#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
    /// IMPORT mode: the id (and version) the schema had where it comes from.
    #[serde(default)]
    id: Option<i32>,
    #[serde(default)]
    version: Option<i32>,
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, RegistryError> {
    serde_json::from_slice(body).map_err(|e| RegistryError {
        code: 42201,
        message: format!("Invalid request body: {e}"),
    })
}

fn schema_type(name: Option<&str>) -> Result<SchemaType, RegistryError> {
    match name.map(str::to_ascii_uppercase).as_deref() {
        None | Some("AVRO") => Ok(SchemaType::Avro),
        Some("JSON") => Ok(SchemaType::Json),
        Some("PROTOBUF") => Ok(SchemaType::Protobuf),
        Some(other) => Err(RegistryError::invalid_schema(format!(
            "Invalid schema type {other}"
        ))),
    }
}

/// A schema's fields in an answer: `schema`, and `schemaType`/`references` when not the
/// defaults.
fn schema_fields(out: &mut serde_json::Map<String, Value>, schema: &StoredSchema) {
    if schema.schema_type != SchemaType::Avro {
        out.insert("schemaType".into(), json!(schema.schema_type.name()));
    }
    if !schema.references.is_empty() {
        out.insert("references".into(), json!(schema.references));
    }
    out.insert("schema".into(), json!(schema.text));
}

fn version_json(v: &VersionView) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("subject".into(), json!(v.subject));
    out.insert("version".into(), json!(v.version));
    out.insert("id".into(), json!(v.id));
    schema_fields(&mut out, &v.schema);
    Value::Object(out)
}

fn read<R>(state: &BrokerState, f: impl FnOnce(&Registry) -> R) -> R {
    state.registry.read(f)
}

async fn list_subjects(State(state): Shared, Query(p): Params) -> Answer {
    let deleted = flag(&p, "deleted");
    Ok(ok(json!(read(&state, |r| r.subjects(deleted)))))
}

async fn list_versions(
    State(state): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Answer {
    let deleted = flag(&p, "deleted");
    Ok(ok(json!(read(&state, |r| r.versions(&subject, deleted))?)))
}

/// The version a `/subjects/{subject}/versions/{version}` path names (`?deleted=true`:
/// soft-deleted ones too), in the format asked.
fn named_version(
    state: &BrokerState,
    subject: &str,
    version: &str,
    p: &HashMap<String, String>,
) -> Result<VersionView, RegistryError> {
    let version = VersionRef::parse(version)?;
    let deleted = flag(p, "deleted");
    let mut v = read(state, |r| r.version(subject, version, deleted))?;
    v.schema = in_format(state, v.schema, p)?;
    Ok(v)
}

/// `?format=serialized`: a Protobuf schema as a base64 `FileDescriptorProto`, as
/// confluent-kafka's Protobuf deserializer asks for it; other formats as stored.
fn in_format(
    state: &BrokerState,
    mut schema: StoredSchema,
    p: &HashMap<String, String>,
) -> Result<StoredSchema, RegistryError> {
    let serialized = p.get("format").is_some_and(|f| f == "serialized");
    if serialized && schema.schema_type == SchemaType::Protobuf {
        let parsed = read(state, |r| {
            r.parse(schema.schema_type, &schema.text, &schema.references)
        })?;
        if let Parsed::Protobuf(proto) = parsed {
            schema.text = crate::registry::protobuf::serialized(&proto);
        }
    }
    Ok(schema)
}

async fn get_version(
    State(state): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Answer {
    let v = named_version(&state, &subject, &version, &p)?;
    Ok(ok(version_json(&v)))
}

async fn get_version_schema(
    State(state): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Answer {
    let v = named_version(&state, &subject, &version, &p)?;
    Ok(ok_text(v.schema.text))
}

/// A schema's own text as the body (`.../schema` endpoints).
fn ok_text(text: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, MEDIA_TYPE)], text).into_response()
}

/// A request carrying a schema: its body, its type, and its text (normalized when
/// `?normalize=true`).
struct SchemaRequest {
    body: SchemaBody,
    kind: SchemaType,
    text: String,
}

fn schema_request(
    state: &BrokerState,
    body: &Bytes,
    p: &HashMap<String, String>,
) -> Result<SchemaRequest, RegistryError> {
    let body: SchemaBody = parse_body(body)?;
    let kind = schema_type(body.schema_type.as_deref())?;
    let text = if flag(p, "normalize") {
        read(state, |r| r.normalize(kind, &body.schema, &body.references))?
    } else {
        body.schema.clone()
    };
    Ok(SchemaRequest { body, kind, text })
}

async fn register(
    State(state): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> Answer {
    let SchemaRequest { body, kind, text } = schema_request(&state, &body, &p)?;
    let id = state
        .registry
        .change(&state.topics, |r| {
            let reg = match body.id {
                Some(id) => r.import(&subject, kind, &text, body.references, id, body.version)?,
                None => r.register(&subject, kind, &text, body.references)?,
            };
            Ok((reg.id, reg.records))
        })
        .await?;
    Ok(ok(json!({ "id": id })))
}

async fn lookup(
    State(state): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> Answer {
    let SchemaRequest { body, kind, text } = schema_request(&state, &body, &p)?;
    let deleted = flag(&p, "deleted");
    let v = read(&state, |r| {
        r.lookup(&subject, kind, &text, &body.references, deleted)
    })?;
    Ok(ok(version_json(&v)))
}

async fn delete_subject(
    State(state): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Answer {
    let permanent = flag(&p, "permanent");
    let versions = state
        .registry
        .change(&state.topics, |r| r.delete_subject(&subject, permanent))
        .await?;
    Ok(ok(json!(versions)))
}

async fn delete_version(
    State(state): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Answer {
    let version = VersionRef::parse(&version)?;
    let permanent = flag(&p, "permanent");
    let number = state
        .registry
        .change(&state.topics, |r| {
            r.delete_version(&subject, version, permanent)
        })
        .await?;
    Ok(ok(json!(number)))
}

fn parse_id(id: &str) -> Result<i32, RegistryError> {
    id.parse().map_err(|_| RegistryError::schema_not_found())
}

async fn schema_by_id(State(state): Shared, Path(id): Path<String>, Query(p): Params) -> Answer {
    let id = parse_id(&id)?;
    let schema = read(&state, |r| r.schema(id).cloned())?;
    let schema = in_format(&state, schema, &p)?;
    let mut out = serde_json::Map::new();
    schema_fields(&mut out, &schema);
    Ok(ok(Value::Object(out)))
}

async fn raw_schema_by_id(
    State(state): Shared,
    Path(id): Path<String>,
    Query(p): Params,
) -> Answer {
    let id = parse_id(&id)?;
    let schema = read(&state, |r| r.schema(id).cloned())?;
    Ok(ok_text(in_format(&state, schema, &p)?.text))
}

async fn subjects_by_id(State(state): Shared, Path(id): Path<String>, Query(p): Params) -> Answer {
    let id = parse_id(&id)?;
    let deleted = flag(&p, "deleted");
    let uses = read(&state, |r| {
        r.schema(id)?;
        Ok::<_, RegistryError>(r.uses(id, deleted))
    })?;
    let mut subjects: Vec<String> = uses.into_iter().map(|(s, _)| s).collect();
    subjects.dedup();
    Ok(ok(json!(subjects)))
}

async fn versions_by_id(State(state): Shared, Path(id): Path<String>, Query(p): Params) -> Answer {
    let id = parse_id(&id)?;
    let deleted = flag(&p, "deleted");
    let uses = read(&state, |r| {
        r.schema(id)?;
        Ok::<_, RegistryError>(r.uses(id, deleted))
    })?;
    let list: Vec<Value> = uses
        .into_iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    Ok(ok(json!(list)))
}

async fn types() -> Answer {
    Ok(ok(json!(["JSON", "PROTOBUF", "AVRO"])))
}

async fn check_compatibility(
    State(state): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
    body: Bytes,
) -> Answer {
    let version = VersionRef::parse(&version)?;
    let SchemaRequest { body, kind, text } = schema_request(&state, &body, &p)?;
    let verbose = flag(&p, "verbose");
    let problems = read(&state, |r| {
        let against = r.version(&subject, version, false)?;
        let candidate = r.parse(kind, &text, &body.references)?;
        r.incompatibilities(&subject, &candidate, Some(against.version))
    })?;
    let mut out = json!({ "is_compatible": problems.is_empty() });
    if verbose {
        out["messages"] = json!(problems);
    }
    Ok(ok(out))
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: String,
}

fn parse_level(text: &str) -> Result<Level, RegistryError> {
    serde_json::from_value(json!(text.to_ascii_uppercase()))
        .map_err(|_| RegistryError::invalid_level(text))
}

/// How a level or mode is written in JSON (`FULL_TRANSITIVE`, `READWRITE`).
fn json_name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn level_name(level: Level) -> String {
    json_name(level)
}

async fn get_global_config(State(state): Shared) -> Answer {
    let level = read(&state, |r| r.level(None));
    Ok(ok(json!({ "compatibilityLevel": level_name(level) })))
}

async fn get_config(State(state): Shared, Path(subject): Path<String>, Query(p): Params) -> Answer {
    let to_global = flag(&p, "defaultToGlobal");
    let level = read(&state, |r| {
        if to_global {
            Some(r.level(Some(&subject)))
        } else {
            r.own_level(Some(&subject))
        }
    })
    .ok_or_else(|| RegistryError {
        code: 40408,
        message: format!(
            "Subject '{subject}' does not have subject-level compatibility configured"
        ),
    })?;
    Ok(ok(json!({ "compatibilityLevel": level_name(level) })))
}

async fn set_config(state: &BrokerState, subject: Option<String>, body: &Bytes) -> Answer {
    let body: ConfigBody = parse_body(body)?;
    let level = parse_level(&body.compatibility)?;
    state
        .registry
        .change(&state.topics, |_| {
            Ok((
                (),
                vec![crate::registry::store::Record::Config(subject, Some(level))],
            ))
        })
        .await?;
    Ok(ok(json!({ "compatibility": level_name(level) })))
}

async fn put_global_config(State(state): Shared, body: Bytes) -> Answer {
    set_config(&state, None, &body).await
}

async fn put_config(State(state): Shared, Path(subject): Path<String>, body: Bytes) -> Answer {
    set_config(&state, Some(subject), &body).await
}

async fn remove_config(state: &BrokerState, subject: Option<String>) -> Answer {
    let previous = state
        .registry
        .change(&state.topics, |r| {
            let previous = r.level(subject.as_deref());
            if let Some(s) = &subject {
                if r.own_level(Some(s)).is_none() {
                    return Err(RegistryError::subject_not_found(s));
                }
            }
            Ok((
                previous,
                vec![crate::registry::store::Record::Config(subject, None)],
            ))
        })
        .await?;
    Ok(ok(json!({ "compatibilityLevel": level_name(previous) })))
}

async fn delete_global_config(State(state): Shared) -> Answer {
    remove_config(&state, None).await
}

async fn delete_config(State(state): Shared, Path(subject): Path<String>) -> Answer {
    remove_config(&state, Some(subject)).await
}

#[derive(Deserialize)]
struct ModeBody {
    mode: String,
}

fn mode_name(mode: Mode) -> String {
    json_name(mode)
}

async fn get_global_mode(State(state): Shared) -> Answer {
    Ok(ok(
        json!({ "mode": mode_name(read(&state, |r| r.mode(None))) }),
    ))
}

async fn get_mode(State(state): Shared, Path(subject): Path<String>) -> Answer {
    Ok(ok(
        json!({ "mode": mode_name(read(&state, |r| r.mode(Some(&subject)))) }),
    ))
}

async fn set_mode(
    state: &BrokerState,
    subject: Option<String>,
    body: &Bytes,
    force: bool,
) -> Answer {
    let body: ModeBody = parse_body(body)?;
    let mode: Mode = serde_json::from_value(json!(body.mode.to_ascii_uppercase()))
        .map_err(|_| RegistryError::invalid_mode(&body.mode))?;
    state
        .registry
        .change(&state.topics, |r| {
            // Importing into a registry that has schemas could clash with their ids.
            let occupied = match &subject {
                None => r.has_subjects(),
                Some(s) => r.versions(s, false).is_ok(),
            };
            if mode == Mode::Import && occupied && !force {
                return Err(RegistryError {
                    code: 42205,
                    message: "Cannot import since found existing subjects (set force=true to import anyway)".into(),
                });
            }
            Ok((
                (),
                vec![crate::registry::store::Record::Mode(subject, Some(mode))],
            ))
        })
        .await?;
    Ok(ok(json!({ "mode": mode_name(mode) })))
}

async fn put_global_mode(State(state): Shared, Query(p): Params, body: Bytes) -> Answer {
    set_mode(&state, None, &body, flag(&p, "force")).await
}

async fn put_mode(
    State(state): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> Answer {
    set_mode(&state, Some(subject), &body, flag(&p, "force")).await
}
