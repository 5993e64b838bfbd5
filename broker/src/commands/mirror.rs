//! `brook mirror --from A --to B`: copies topics, records and group offsets from one
//! Kafka-compatible cluster to another with `brook-client`'s mirror, reporting progress and
//! lag; resumable, and with `--follow` kept running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use brook_client::{mirror, ClientConfig, MirrorConfig};

use std::path::PathBuf;

use super::connect::{runtime, SecurityOptions};

#[derive(Debug, clap::Args)]
pub(crate) struct MirrorArgs {
    /// Source cluster, HOST:PORT[,HOST:PORT...]
    #[arg(long, value_name = "BROKERS")]
    from: String,
    /// Target cluster, HOST:PORT[,HOST:PORT...]
    #[arg(long, value_name = "BROKERS")]
    to: String,
    /// Topics to copy: names or patterns with * and ? (repeatable; default every topic
    /// whose name does not start with _)
    #[arg(long = "topic", short = 't', value_name = "PATTERN")]
    topics: Vec<String>,
    /// Groups whose offsets are translated: names or patterns (repeatable; default all)
    #[arg(long = "group", short = 'g', value_name = "PATTERN")]
    groups: Vec<String>,
    /// The mirror's name: its progress is kept on the target as this group's offsets
    #[arg(long, default_value = "brook-mirror")]
    name: String,
    /// Keep copying new records (and group offsets every 10 s) until interrupted
    #[arg(long)]
    follow: bool,
    /// Source schema registry URL (http://HOST:PORT); with --registry-to, copies subjects
    #[arg(long, value_name = "URL", requires = "registry_to")]
    registry_from: Option<String>,
    /// Target schema registry URL (http://HOST:PORT)
    #[arg(long, value_name = "URL", requires = "registry_from")]
    registry_to: Option<String>,
    /// CA certificate (PEM) of https registries (both sides)
    #[arg(long, value_name = "FILE")]
    registry_ca: Option<PathBuf>,
    /// `table` (progress on stderr, a summary) or `json` (the summary as JSON)
    #[arg(long, default_value = "table")]
    format: String,
    /// CA certificate (PEM) of the source: turns TLS on towards it
    #[arg(long, value_name = "FILE")]
    from_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS with the source
    #[arg(long, value_name = "FILE", requires = "from_tls_ca")]
    from_tls_cert: Option<PathBuf>,
    /// Client key (PEM) for the source, if not in --from-tls-cert
    #[arg(long, value_name = "FILE", requires = "from_tls_cert")]
    from_tls_key: Option<PathBuf>,
    /// SASL mechanism towards the source: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    #[arg(long, value_name = "MECHANISM", requires = "from_sasl_user")]
    from_sasl_mechanism: Option<String>,
    /// SASL user on the source
    #[arg(long, value_name = "NAME", requires = "from_sasl_password")]
    from_sasl_user: Option<String>,
    /// SASL password on the source
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "BROOK_FROM_SASL_PASSWORD",
        hide_env_values = true
    )]
    from_sasl_password: Option<String>,
    /// CA certificate (PEM) of the target: turns TLS on towards it
    #[arg(long, value_name = "FILE")]
    to_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS with the target
    #[arg(long, value_name = "FILE", requires = "to_tls_ca")]
    to_tls_cert: Option<PathBuf>,
    /// Client key (PEM) for the target, if not in --to-tls-cert
    #[arg(long, value_name = "FILE", requires = "to_tls_cert")]
    to_tls_key: Option<PathBuf>,
    /// SASL mechanism towards the target: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    #[arg(long, value_name = "MECHANISM", requires = "to_sasl_user")]
    to_sasl_mechanism: Option<String>,
    /// SASL user on the target
    #[arg(long, value_name = "NAME", requires = "to_sasl_password")]
    to_sasl_user: Option<String>,
    /// SASL password on the target
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "BROOK_TO_SASL_PASSWORD",
        hide_env_values = true
    )]
    to_sasl_password: Option<String>,
}

pub(crate) fn run(args: MirrorArgs) -> Result<(), Box<dyn std::error::Error>> {
    if !matches!(args.format.as_str(), "table" | "json") {
        return Err(format!("--format {:?}: table or json", args.format).into());
    }
    let from_security = SecurityOptions {
        tls_ca: args.from_tls_ca.as_ref(),
        tls_cert: args.from_tls_cert.as_ref(),
        tls_key: args.from_tls_key.as_ref(),
        sasl_mechanism: args.from_sasl_mechanism.as_deref(),
        sasl_user: args.from_sasl_user.as_deref(),
        sasl_password: args.from_sasl_password.as_deref(),
    }
    .security()?;
    let to_security = SecurityOptions {
        tls_ca: args.to_tls_ca.as_ref(),
        tls_cert: args.to_tls_cert.as_ref(),
        tls_key: args.to_tls_key.as_ref(),
        sasl_mechanism: args.to_sasl_mechanism.as_deref(),
        sasl_user: args.to_sasl_user.as_deref(),
        sasl_password: args.to_sasl_password.as_deref(),
    }
    .security()?;
    let side = |brokers: &str, id: &str, security: brook_client::Security| ClientConfig {
        client_id: id.to_string(),
        timeout: std::time::Duration::from_secs(10),
        security,
        ..ClientConfig::new(brokers)
    };
    let config = MirrorConfig {
        topics: args.topics.clone(),
        groups: args.groups.clone(),
        name: args.name.clone(),
        follow: args.follow,
        ..MirrorConfig::new(
            side(&args.from, "brook-mirror-source", from_security),
            side(&args.to, "brook-mirror-target", to_security),
        )
    };
    let stop = Arc::new(AtomicBool::new(false));
    let schemas = match (&args.registry_from, &args.registry_to) {
        (Some(from), Some(to)) => {
            let registry = |url: &String| super::schemas::Registry {
                url: url.clone(),
                ca: args.registry_ca.clone(),
            };
            Some(super::schemas::copy_subjects(
                &registry(from),
                &registry(to),
            )?)
        }
        _ => None,
    };
    let bar = indicatif::ProgressBar::new_spinner();
    let show = args.format == "table" && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = runtime()?.block_on(async {
        let flag = Arc::clone(&stop);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::Release);
            }
        });
        let started = std::time::Instant::now();
        let mut last_line = std::time::Instant::now();
        mirror(&config, Arc::clone(&stop), |p| {
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let line = format!(
                "{} records, {:.1} MB ({:.1} MB/s), lag {} records",
                p.records,
                p.bytes as f64 / 1e6,
                p.bytes as f64 / 1e6 / secs,
                p.lag
            );
            if show {
                bar.set_message(line);
                bar.tick();
            } else if args.follow && last_line.elapsed().as_secs() >= 10 {
                // Not a terminal: a line every 10 s so a log shows the mirror is alive.
                last_line = std::time::Instant::now();
                eprintln!("brook mirror: {line}");
            }
        })
        .await
    })?;
    bar.finish_and_clear();
    let mb_per_sec = if report.seconds > 0.0 {
        report.bytes as f64 / 1e6 / report.seconds
    } else {
        0.0
    };
    if args.format == "json" {
        let summary = serde_json::json!({
            "topics": report.topics.iter().map(|(t, created)| serde_json::json!({
                "topic": t, "created": created,
            })).collect::<Vec<_>>(),
            "records": report.records,
            "bytes": report.bytes,
            "seconds": report.seconds,
            "mb_per_sec": mb_per_sec,
            "groups": report.groups.iter().map(|(g, n)| serde_json::json!({
                "group": g, "partitions": n,
            })).collect::<Vec<_>>(),
            "group_errors": report.group_errors.iter().map(|(g, e)| serde_json::json!({
                "group": g, "error": e,
            })).collect::<Vec<_>>(),
            "schemas": schemas,
        });
        println!("{summary}");
    } else {
        let created = report.topics.iter().filter(|(_, c)| *c).count();
        println!(
            "mirrored {} topic(s) ({created} created), {} records ({:.1} MB) in {:.1} s ({mb_per_sec:.1} MB/s)",
            report.topics.len(),
            report.records,
            report.bytes as f64 / 1e6,
            report.seconds,
        );
        for (g, n) in &report.groups {
            println!("group {g}: offsets of {n} partition(s) translated");
        }
        for (g, e) in &report.group_errors {
            println!("group {g}: not translated: {e}");
        }
        if let Some(n) = schemas {
            println!("{n} schema version(s) copied");
        }
    }
    Ok(())
}
