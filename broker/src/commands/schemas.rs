//! Copying a schema registry's subjects to another registry (Confluent's REST API), for
//! `brook mirror --registry-from --registry-to`: every version of every subject, in version
//! order, so a new target subject gets the same version numbers. Registering a schema the
//! target already has is answered with its id, so a copy can be run again.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// One request to `base` (an `http://host:port` URL): the status and the JSON body.
async fn call(
    base: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, serde_json::Value), String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: only http:// registry URLs are supported"))?
        .trim_end_matches('/');
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect to {base}: {e}"))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("{base}: {e}"))?;
    tokio::spawn(connection);
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .header(
            "accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        )
        .body(Full::new(Bytes::from(payload)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{base}{path}: {e}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{base}{path}: {e}"))?
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

fn ok(what: &str, (status, body): (u16, serde_json::Value)) -> Result<serde_json::Value, String> {
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(format!("{what}: HTTP {status}: {body}"))
    }
}

/// Copies every subject of the registry at `from` to the one at `to`: the number of
/// schema versions registered.
pub(crate) fn copy_subjects(from: &str, to: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let runtime = super::connect::runtime()?;
    let copied = runtime.block_on(async {
        let subjects = ok(
            "listing subjects",
            call(from, "GET", "/subjects", None).await?,
        )?;
        let mut copied = 0;
        for subject in subjects.as_array().into_iter().flatten() {
            let Some(subject) = subject.as_str() else {
                continue;
            };
            let path = format!("/subjects/{}/versions", encode(subject));
            let versions = ok(subject, call(from, "GET", &path, None).await?)?;
            for version in versions.as_array().into_iter().flatten() {
                let Some(version) = version.as_i64() else {
                    continue;
                };
                let one = ok(
                    subject,
                    call(from, "GET", &format!("{path}/{version}"), None).await?,
                )?;
                let mut body = serde_json::json!({ "schema": one["schema"] });
                if let Some(t) = one.get("schemaType").filter(|t| !t.is_null()) {
                    body["schemaType"] = t.clone();
                }
                if let Some(r) = one.get("references").filter(|r| !r.is_null()) {
                    body["references"] = r.clone();
                }
                ok(
                    &format!("registering {subject} version {version}"),
                    call(to, "POST", &path, Some(body)).await?,
                )?;
                copied += 1;
            }
        }
        Ok::<_, String>(copied)
    })?;
    Ok(copied)
}

/// `s` percent-encoded for a path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
