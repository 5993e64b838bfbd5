//! The schema registry through its REST API: ids, subjects and configs kept in `_schemas`
//! across a restart (ids never reused), and Confluent's error codes and bodies.

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_tests::http;

const V1: &str =
    r#"{\"type\":\"record\",\"name\":\"Loan\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}"#;
const V2: &str =
    r#"{\"type\":\"record\",\"name\":\"Audit\",\"fields\":[{\"name\":\"at\",\"type\":\"long\"}]}"#;
const V3: &str = r#"{\"type\":\"enum\",\"name\":\"State\",\"symbols\":[\"OPEN\"]}"#;

fn register(addr: &str, subject: &str, schema: &str) -> (u16, String) {
    http(
        addr,
        "POST",
        &format!("/subjects/{subject}/versions"),
        Some(&format!(r#"{{"schema":"{schema}"}}"#)),
    )
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn schemas_ids_and_configs_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || BrokerConfig::with_data_dir(dir.path());
    let broker = EmbeddedBroker::start(config()).unwrap();
    let addr = broker.http_addr().unwrap().to_string();
    assert_eq!(
        register(&addr, "loans-value", V1),
        (200, r#"{"id":1}"#.into())
    );
    assert_eq!(
        register(&addr, "audit-value", V2),
        (200, r#"{"id":2}"#.into())
    );
    let (status, _) = http(
        &addr,
        "PUT",
        "/config/loans-value",
        Some(r#"{"compatibility":"FULL"}"#),
    );
    assert_eq!(status, 200);
    broker.shutdown();

    let broker = EmbeddedBroker::start(config()).unwrap();
    let addr = broker.http_addr().unwrap().to_string();
    let (status, body) = http(&addr, "GET", "/schemas/ids/1", None);
    assert_eq!(status, 200);
    assert!(json(&body)["schema"].as_str().unwrap().contains("Loan"));
    assert_eq!(
        json(&http(&addr, "GET", "/subjects", None).1),
        serde_json::json!(["audit-value", "loans-value"])
    );
    assert_eq!(
        json(&http(&addr, "GET", "/config/loans-value", None).1)["compatibilityLevel"],
        "FULL"
    );
    let latest = json(&http(&addr, "GET", "/subjects/loans-value/versions/latest", None).1);
    assert_eq!(
        (latest["version"].as_i64(), latest["id"].as_i64()),
        (Some(1), Some(1))
    );
    // Ids go on where they stopped.
    assert_eq!(
        register(&addr, "states-value", V3),
        (200, r#"{"id":3}"#.into())
    );
    broker.shutdown();
}

#[test]
fn errors_carry_confluents_codes_and_media_type() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let addr = broker.http_addr().unwrap().to_string();
    register(&addr, "loans-value", V1);
    let cases: [(&str, &str, Option<&str>, u16, u64); 6] = [
        ("GET", "/subjects/missing/versions", None, 404, 40401),
        ("GET", "/subjects/loans-value/versions/7", None, 404, 40402),
        ("GET", "/schemas/ids/99", None, 404, 40403),
        (
            "GET",
            "/subjects/loans-value/versions/abc",
            None,
            422,
            42202,
        ),
        (
            "POST",
            "/subjects/loans-value/versions",
            Some(r#"{"schema":"{\"type\":\"record\"}"}"#),
            422,
            42201,
        ),
        (
            "PUT",
            "/config",
            Some(r#"{"compatibility":"SOMETIMES"}"#),
            422,
            42203,
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, text) = http(&addr, method, path, body);
        assert_eq!(got, status, "{method} {path}: {text}");
        let body = json(&text);
        assert_eq!(body["error_code"].as_u64(), Some(code), "{method} {path}");
        assert!(body["message"].is_string(), "{method} {path}");
    }
    // An incompatible schema: 409 with the reason.
    let (status, text) = register(
        &addr,
        "loans-value",
        r#"{\"type\":\"record\",\"name\":\"Loan\",\"fields\":[{\"name\":\"id\",\"type\":\"int\"}]}"#,
    );
    assert_eq!(status, 409, "{text}");
    assert_eq!(json(&text)["error_code"], 409);
    // Soft-deleted subjects are listed only when asked.
    http(&addr, "DELETE", "/subjects/loans-value", None);
    assert_eq!(
        json(&http(&addr, "GET", "/subjects", None).1),
        serde_json::json!([])
    );
    assert_eq!(
        json(&http(&addr, "GET", "/subjects?deleted=true", None).1),
        serde_json::json!(["loans-value"])
    );
    broker.shutdown();
}

#[test]
fn an_avro_schema_may_reference_another_subjects_schema() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let addr = broker.http_addr().unwrap().to_string();
    let address = r#"{\"type\":\"record\",\"name\":\"Address\",\"namespace\":\"bank\",\"fields\":[{\"name\":\"city\",\"type\":\"string\"}]}"#;
    assert_eq!(
        register(&addr, "address", address),
        (200, r#"{"id":1}"#.into())
    );
    let customer = r#"{\"type\":\"record\",\"name\":\"Customer\",\"namespace\":\"bank\",\"fields\":[{\"name\":\"home\",\"type\":\"bank.Address\"}]}"#;
    let with_refs = |subject: &str, version: i32| {
        format!(
            r#"{{"schema":"{customer}","references":[{{"name":"bank.Address","subject":"{subject}","version":{version}}}]}}"#
        )
    };
    let (status, body) = http(
        &addr,
        "POST",
        "/subjects/customers-value/versions",
        Some(&with_refs("address", 1)),
    );
    assert_eq!((status, body.as_str()), (200, r#"{"id":2}"#));
    let schema = json(&http(&addr, "GET", "/schemas/ids/2", None).1);
    assert_eq!(schema["references"][0]["subject"], "address");
    assert_eq!(schema["references"][0]["version"], 1);
    // Without the reference the named type is unknown; a missing reference is refused too.
    let (status, text) = register(&addr, "plain-value", customer);
    assert_eq!(
        (status, json(&text)["error_code"].as_u64()),
        (422, Some(42201))
    );
    let (status, text) = http(
        &addr,
        "POST",
        "/subjects/customers-value/versions",
        Some(&with_refs("nowhere", 1)),
    );
    assert_eq!(
        (status, json(&text)["error_code"].as_u64()),
        (422, Some(42201))
    );
    broker.shutdown();
}

#[test]
fn import_mode_keeps_the_ids_and_versions_of_the_registry_moved_from() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let addr = broker.http_addr().unwrap().to_string();
    let mode = |addr: &str, path: &str, mode: &str| {
        http(addr, "PUT", path, Some(&format!(r#"{{"mode":"{mode}"}}"#)))
    };
    assert_eq!(mode(&addr, "/mode", "IMPORT").0, 200);
    let imported = format!(r#"{{"schema":"{V1}","id":100,"version":5}}"#);
    assert_eq!(
        http(
            &addr,
            "POST",
            "/subjects/loans-value/versions",
            Some(&imported)
        ),
        (200, r#"{"id":100}"#.into())
    );
    let v = json(&http(&addr, "GET", "/subjects/loans-value/versions/5", None).1);
    assert_eq!(
        (v["id"].as_i64(), v["version"].as_i64()),
        (Some(100), Some(5))
    );
    assert_eq!(mode(&addr, "/mode", "READWRITE").0, 200);
    // An id is refused outside IMPORT mode; new ids go on after the imported ones.
    let (status, text) = http(
        &addr,
        "POST",
        "/subjects/other-value/versions",
        Some(&imported),
    );
    assert_eq!(
        (status, json(&text)["error_code"].as_u64()),
        (422, Some(42205))
    );
    assert_eq!(
        register(&addr, "audit-value", V2),
        (200, r#"{"id":101}"#.into())
    );
    // Switching a registry that has subjects to IMPORT needs force=true.
    let (status, text) = mode(&addr, "/mode", "IMPORT");
    assert_eq!(
        (status, json(&text)["error_code"].as_u64()),
        (422, Some(42205))
    );
    assert_eq!(mode(&addr, "/mode?force=true", "IMPORT").0, 200);
    broker.shutdown();
}

#[test]
fn normalize_makes_two_spellings_of_a_schema_one() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let addr = broker.http_addr().unwrap().to_string();
    let short = r#"{\"type\":\"record\",\"name\":\"Loan\",\"namespace\":\"bank\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}"#;
    let long = r#"{\"type\":\"record\",\"name\":\"bank.Loan\",\"fields\":[{\"name\":\"id\",\"type\":{\"type\":\"string\"}}]}"#;
    let body = |schema: &str| format!(r#"{{"schema":"{schema}"}}"#);
    let post = |path: &str, schema: &str| http(&addr, "POST", path, Some(&body(schema)));
    assert_eq!(
        post("/subjects/loans-value/versions?normalize=true", short),
        (200, r#"{"id":1}"#.into())
    );
    assert_eq!(
        post("/subjects/loans-value/versions?normalize=true", long),
        (200, r#"{"id":1}"#.into()),
        "the same schema, normalized"
    );
    let found = json(&post("/subjects/loans-value?normalize=true", long).1);
    assert_eq!(found["id"], 1);
    // Without normalize the other spelling is another schema.
    assert_eq!(post("/subjects/loans-value", long).0, 404);
    broker.shutdown();
}
