//! `brook schema`: a schema registry (Brook's or Confluent's REST API) from the command
//! line, and the copy of every subject to another registry that `brook mirror
//! --registry-from --registry-to` makes: every version of every subject, in version order,
//! so a new target subject gets the same version numbers. Registering a schema the target
//! already has is answered with its id, so a copy can be run again.

use std::path::PathBuf;

use brook_broker::http_client;
use bytes::Bytes;
use http_body_util::Full;

/// Where a registry is: its URL (`http://` or `https://`, optionally with `user:password@`
/// for HTTP basic authentication) and, for https, the CA (PEM) its certificate chains to.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    pub(crate) url: String,
    pub(crate) ca: Option<PathBuf>,
}

/// One request to `registry`: the status and the JSON body.
async fn call(
    registry: &Registry,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, serde_json::Value), String> {
    use base64::Engine as _;
    let base = registry.url.as_str();
    let (tls, authority, _) = http_client::split_url(base.trim_end_matches('/'))
        .map_err(|_| format!("{base}: a registry URL starts with http:// or https://"))?;
    let (credentials, authority) = match authority.rsplit_once('@') {
        Some((c, a)) => (Some(c), a),
        None => (None, authority),
    };
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority);
    if let Some(c) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(c);
        request = request.header("authorization", format!("Basic {token}"));
    }
    let request = request
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .header(
            "accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        )
        .body(Full::new(Bytes::from(payload)))
        .map_err(|e| e.to_string())?;
    // A missing CA is reported before any connection is tried.
    let tls_config = if tls {
        let ca = registry.ca.as_ref().ok_or_else(|| {
            format!(
                "{}: an https registry needs --registry-ca FILE (the CA its certificate chains to)",
                registry.url
            )
        })?;
        Some(http_client::tls_config(Some(ca))?)
    } else {
        None
    };
    let (status, bytes) = http_client::send(base, authority, tls_config, request).await?;
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
pub(crate) fn copy_subjects(
    from: &Registry,
    to: &Registry,
) -> Result<usize, Box<dyn std::error::Error>> {
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

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SchemaCommand {
    /// List subjects with their versions
    List {
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Show a subject's schema (latest version unless --version)
    Get {
        subject: String,
        #[arg(long, default_value = "latest")]
        version: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Register the schema in FILE under SUBJECT (prints its id)
    Register {
        subject: String,
        #[command(flatten)]
        schema: SchemaFile,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Check the schema in FILE against SUBJECT's compatibility rule (exit code 1 if not)
    Check {
        subject: String,
        #[command(flatten)]
        schema: SchemaFile,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Delete a subject (or one --version); --permanent after a soft delete
    Delete {
        subject: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        permanent: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// Where the registry is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RegistryArgs {
    /// The registry's URL (http[s]://[USER:PASSWORD@]HOST:PORT)
    #[arg(long, default_value = "http://127.0.0.1:8081", env = "BROOK_REGISTRY")]
    registry: String,
    /// CA certificate (PEM) of an https registry
    #[arg(long, value_name = "FILE")]
    registry_ca: Option<PathBuf>,
    /// `table` or `json`
    #[arg(long, default_value = "table")]
    format: String,
}

/// A schema to register or check: its file and type.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SchemaFile {
    #[arg(long, short = 'f')]
    file: std::path::PathBuf,
    /// AVRO, JSON or PROTOBUF
    #[arg(long = "type", default_value = "AVRO")]
    schema_type: String,
}

impl SchemaFile {
    /// The request body the registry takes: the schema text, and its type unless Avro.
    fn body(&self) -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(&self.file)
            .map_err(|e| format!("cannot read {}: {e}", self.file.display()))?;
        let mut body = serde_json::json!({ "schema": text });
        if !self.schema_type.eq_ignore_ascii_case("AVRO") {
            body["schemaType"] = serde_json::Value::String(self.schema_type.to_ascii_uppercase());
        }
        Ok(body)
    }
}

/// Runs a schema command; `Ok(false)` when a check found the schema incompatible.
pub(crate) fn run(command: SchemaCommand) -> Result<bool, Box<dyn std::error::Error>> {
    let registry = match &command {
        SchemaCommand::List { registry }
        | SchemaCommand::Get { registry, .. }
        | SchemaCommand::Register { registry, .. }
        | SchemaCommand::Check { registry, .. }
        | SchemaCommand::Delete { registry, .. } => registry.clone(),
    };
    if !matches!(registry.format.as_str(), "table" | "json") {
        return Err(format!("--format {:?}: table or json", registry.format).into());
    }
    let json = registry.format == "json";
    let base = &Registry {
        url: registry.registry.clone(),
        ca: registry.registry_ca.clone(),
    };
    let runtime = super::connect::runtime()?;
    let outcome = runtime.block_on(async {
        match &command {
            SchemaCommand::List { .. } => {
                let subjects = ok(
                    "listing subjects",
                    call(base, "GET", "/subjects", None).await?,
                )?;
                let mut listed = Vec::new();
                for subject in subjects.as_array().into_iter().flatten() {
                    let Some(subject) = subject.as_str() else {
                        continue;
                    };
                    let path = format!("/subjects/{}/versions", encode(subject));
                    let versions = ok(subject, call(base, "GET", &path, None).await?)?;
                    listed.push(serde_json::json!({ "subject": subject, "versions": versions }));
                }
                if json {
                    println!("{}", serde_json::Value::Array(listed));
                } else {
                    println!("{:<50} VERSIONS", "SUBJECT");
                    for s in &listed {
                        println!(
                            "{:<50} {}",
                            s["subject"].as_str().unwrap_or(""),
                            s["versions"]
                        );
                    }
                }
                Ok(true)
            }
            SchemaCommand::Get {
                subject, version, ..
            } => {
                let path = format!("/subjects/{}/versions/{}", encode(subject), encode(version));
                let one = ok(subject, call(base, "GET", &path, None).await?)?;
                if json {
                    println!("{one}");
                } else {
                    println!(
                        "subject {}  version {}  id {}  type {}",
                        one["subject"].as_str().unwrap_or(subject),
                        one["version"],
                        one["id"],
                        one["schemaType"].as_str().unwrap_or("AVRO")
                    );
                    println!("{}", one["schema"].as_str().unwrap_or(""));
                }
                Ok(true)
            }
            SchemaCommand::Register {
                subject, schema, ..
            } => {
                let body = schema.body()?;
                let path = format!("/subjects/{}/versions", encode(subject));
                let answer = ok(subject, call(base, "POST", &path, Some(body)).await?)?;
                if json {
                    println!("{answer}");
                } else {
                    println!("registered under {subject}: id {}", answer["id"]);
                }
                Ok(true)
            }
            SchemaCommand::Check {
                subject, schema, ..
            } => {
                let body = schema.body()?;
                let path = format!(
                    "/compatibility/subjects/{}/versions/latest?verbose=true",
                    encode(subject)
                );
                let answer = ok(subject, call(base, "POST", &path, Some(body)).await?)?;
                let compatible = answer["is_compatible"].as_bool().unwrap_or(false);
                if json {
                    println!("{answer}");
                } else if compatible {
                    println!("compatible with {subject}");
                } else {
                    println!("NOT compatible with {subject}");
                    for m in answer["messages"].as_array().into_iter().flatten() {
                        println!("  {}", m.as_str().unwrap_or(""));
                    }
                }
                Ok(compatible)
            }
            SchemaCommand::Delete {
                subject,
                version,
                permanent,
                ..
            } => {
                let mut path = format!("/subjects/{}", encode(subject));
                if let Some(v) = version {
                    path.push_str(&format!("/versions/{}", encode(v)));
                }
                if *permanent {
                    path.push_str("?permanent=true");
                }
                let answer = ok(subject, call(base, "DELETE", &path, None).await?)?;
                if json {
                    println!("{answer}");
                } else {
                    println!("deleted {subject}: {answer}");
                }
                Ok(true)
            }
        }
    });
    outcome.map_err(|e: String| e.into())
}
