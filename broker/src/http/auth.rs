//! Who may use the HTTP listener: HTTP basic authentication with the broker's SCRAM users
//! (`brook.http.authentication = "basic"`, what schema registry clients send with
//! `basic.auth.user.info`), and, with the authorizer on, the same ACLs as the Kafka
//! listeners.
//!
//! [`access`] maps a request to what it needs, as a pure function:
//! - health probes are open (orchestrators probe without credentials);
//! - a schema registry subject is authorized as the topic it belongs to (TopicNameStrategy:
//!   `orders-value` and `orders-key` are topic `orders`; any other subject is a topic of its
//!   own name): reading needs READ on it, registering, deleting and changing its config or
//!   mode need WRITE;
//! - global registry config and mode changes need ALTER_CONFIGS on the cluster; schema ids
//!   and types, subject lists and global reads need an authenticated user only;
//! - stream reads and topic browsing need READ on the topic, appends WRITE;
//! - `/metrics` needs DESCRIBE on the cluster.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::auth::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::state::BrokerState;

/// The client's address, as the HTTP listener (plain or TLS) saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, super::TlsListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, super::TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// Nothing: anyone may.
    Open,
    /// An authenticated user (when authentication is on), no ACL.
    Authenticated,
    /// An authenticated user allowed this operation on this resource.
    Resource(Operation, ResourceType, String),
}

/// The topic a registry subject belongs to (TopicNameStrategy).
fn subject_topic(subject: &str) -> &str {
    subject
        .strip_suffix("-value")
        .or_else(|| subject.strip_suffix("-key"))
        .filter(|t| !t.is_empty())
        .unwrap_or(subject)
}

/// What `method` on `path` needs (see the module docs).
pub(crate) fn access(method: &Method, path: &str) -> Access {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reads = method == Method::GET || method == Method::HEAD;
    let topic = |op: Operation, name: &str| {
        Access::Resource(op, ResourceType::Topic, subject_topic(name).to_string())
    };
    let read_or_write = |name: &str| {
        if reads {
            topic(Operation::Read, name)
        } else {
            topic(Operation::Write, name)
        }
    };
    let cluster = |op| Access::Resource(op, ResourceType::Cluster, CLUSTER_NAME.to_string());
    match parts.as_slice() {
        ["health", ..] => Access::Open,
        ["metrics"] => cluster(Operation::Describe),
        ["subjects"] | ["schemas", ..] => Access::Authenticated,
        // POST /subjects/{s} looks a schema up: a read.
        ["subjects", subject] if method == Method::POST => topic(Operation::Read, subject),
        ["subjects", subject, ..] => read_or_write(subject),
        // Compatibility checks read.
        ["compatibility", "subjects", subject, ..] => topic(Operation::Read, subject),
        ["config" | "mode"] if reads => Access::Authenticated,
        ["config" | "mode"] => cluster(Operation::AlterConfigs),
        ["config" | "mode", subject] => read_or_write(subject),
        // Topic names in stream paths are whole topic names, not subjects.
        ["v1", "streams" | "topics", name, ..] => Access::Resource(
            if reads {
                Operation::Read
            } else {
                Operation::Write
            },
            ResourceType::Topic,
            (*name).to_string(),
        ),
        _ => Access::Authenticated,
    }
}

/// `brook.http.authentication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Authentication {
    None,
    Basic,
}

impl Authentication {
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Self::None),
            "basic" => Ok(Self::Basic),
            other => Err(format!("{other:?} is not none or basic")),
        }
    }
}

/// Verified basic-auth credentials, so that each request does not pay PBKDF2 again. Keyed by
/// a hash of the user, the password and the user's stored key: a changed password misses.
#[derive(Default)]
pub(crate) struct VerifiedCache {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

/// How long a verified password is remembered.
const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// The most remembered credentials (the cache starts over when full).
const VERIFIED_MAX: usize = 1024;

impl VerifiedCache {
    fn key(user: &str, password: &str, stored_key: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [user.as_bytes(), password.as_bytes(), stored_key] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    fn check(&self, state: &BrokerState, user: &str, password: &str) -> bool {
        let stored = state
            .credentials
            .get(user, crate::auth::scram::Mechanism::Sha256)
            .or_else(|| {
                state
                    .credentials
                    .get(user, crate::auth::scram::Mechanism::Sha512)
            })
            .map(|c| c.stored_key)
            .unwrap_or_default();
        let key = Self::key(user, password, &stored);
        let now = Instant::now();
        if self
            .entries
            .lock()
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < VERIFIED_FOR)
        {
            return true;
        }
        if !state.credentials.check_password(user, password) {
            return false;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= VERIFIED_MAX {
            entries.clear();
        }
        entries.insert(key, now);
        true
    }
}

/// The user and password of an `Authorization: Basic ...` header.
fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn refuse(status: StatusCode, message: &str) -> Response {
    // Confluent's error body shape, which registry clients parse.
    let code = if status == StatusCode::UNAUTHORIZED {
        40101
    } else {
        40301
    };
    let body = axum::Json(serde_json::json!({ "error_code": code, "message": message }));
    let mut response = (status, body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        if let Ok(value) = header::HeaderValue::from_str("Basic realm=\"brook\"") {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// The middleware: authenticates (when on) and authorizes every request.
pub(crate) async fn guard(
    State(state): State<Arc<BrokerState>>,
    request: Request,
    next: Next,
) -> Response {
    let needs = access(request.method(), request.uri().path());
    if needs == Access::Open {
        return next.run(request).await;
    }
    let principal = match state.http_authentication {
        Authentication::None => crate::auth::principal::Principal::anonymous(),
        Authentication::Basic => {
            let Some((user, password)) = basic_credentials(&request) else {
                return refuse(StatusCode::UNAUTHORIZED, "Unauthorized");
            };
            let checked = {
                let state = state.clone();
                let user = user.clone();
                tokio::task::spawn_blocking(move || {
                    state.http_verified.check(&state, &user, &password)
                })
                .await
                .unwrap_or(false)
            };
            if !checked {
                return refuse(StatusCode::UNAUTHORIZED, "Unauthorized");
            }
            crate::auth::principal::Principal::user(&user)
        }
    };
    if let Access::Resource(operation, resource, name) = &needs {
        let host = request
            .extensions()
            .get::<ConnectInfo<PeerAddr>>()
            .map(|c| c.0 .0.ip().to_string())
            .unwrap_or_default();
        let allowed = state.security.authorizer.authorize(
            &principal.to_string(),
            &host,
            *operation,
            *resource,
            name,
        );
        if !allowed {
            return refuse(
                StatusCode::FORBIDDEN,
                &format!(
                    "{principal} may not {} {} {name}",
                    operation.name(),
                    resource.name()
                ),
            );
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(op: Operation, name: &str) -> Access {
        Access::Resource(op, ResourceType::Topic, name.into())
    }

    #[test]
    fn requests_map_to_what_they_need() {
        let cases = [
            (Method::GET, "/health/ready", Access::Open),
            (
                Method::GET,
                "/metrics",
                Access::Resource(
                    Operation::Describe,
                    ResourceType::Cluster,
                    CLUSTER_NAME.into(),
                ),
            ),
            (Method::GET, "/subjects", Access::Authenticated),
            (Method::GET, "/schemas/ids/3", Access::Authenticated),
            (
                Method::GET,
                "/subjects/orders-value/versions",
                topic(Operation::Read, "orders"),
            ),
            (
                Method::POST,
                "/subjects/orders-value/versions",
                topic(Operation::Write, "orders"),
            ),
            (
                Method::POST,
                "/subjects/orders-key",
                topic(Operation::Read, "orders"),
            ),
            (
                Method::DELETE,
                "/subjects/orders-key",
                topic(Operation::Write, "orders"),
            ),
            (
                Method::POST,
                "/compatibility/subjects/pay-value/versions/latest",
                topic(Operation::Read, "pay"),
            ),
            (
                Method::GET,
                "/subjects/com.example.Order/versions/1",
                topic(Operation::Read, "com.example.Order"),
            ),
            (Method::GET, "/config", Access::Authenticated),
            (
                Method::PUT,
                "/config",
                Access::Resource(
                    Operation::AlterConfigs,
                    ResourceType::Cluster,
                    CLUSTER_NAME.into(),
                ),
            ),
            (
                Method::PUT,
                "/config/orders-value",
                topic(Operation::Write, "orders"),
            ),
            (
                Method::GET,
                "/v1/streams/loans-value/loan-1",
                topic(Operation::Read, "loans-value"),
            ),
            (
                Method::POST,
                "/v1/streams/loans/loan-1",
                topic(Operation::Write, "loans"),
            ),
            (
                Method::GET,
                "/v1/topics/loans/partitions/0/records",
                topic(Operation::Read, "loans"),
            ),
            (Method::GET, "/nowhere", Access::Authenticated),
        ];
        for (method, path, expected) in cases {
            assert_eq!(access(&method, path), expected, "{method} {path}");
        }
        assert_eq!(subject_topic("-value"), "-value");
    }

    #[test]
    fn basic_credentials_are_read_from_the_header() {
        let request = |value: &str| {
            Request::builder()
                .header(header::AUTHORIZATION, value)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let encoded = BASE64.encode("alice:pa:ss");
        assert_eq!(
            basic_credentials(&request(&format!("Basic {encoded}"))),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials(&request("Bearer x")), None);
        assert_eq!(basic_credentials(&request("Basic !!!")), None);
    }
}
