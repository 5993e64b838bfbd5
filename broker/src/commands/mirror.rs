//! `brook mirror --from A --to B`: copies topics, records and group offsets from one
//! Kafka-compatible cluster to another with `brook-client`'s mirror, reporting progress and
//! lag; resumable, and with `--follow` kept running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use brook_client::{mirror, ClientConfig, MirrorConfig};

use super::connect::runtime;

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
    /// `table` (progress on stderr, a summary) or `json` (the summary as JSON)
    #[arg(long, default_value = "table")]
    format: String,
}

pub(crate) fn run(args: MirrorArgs) -> Result<(), Box<dyn std::error::Error>> {
    if !matches!(args.format.as_str(), "table" | "json") {
        return Err(format!("--format {:?}: table or json", args.format).into());
    }
    let side = |brokers: &str, id: &str| ClientConfig {
        client_id: id.to_string(),
        timeout: std::time::Duration::from_secs(10),
        ..ClientConfig::new(brokers)
    };
    let config = MirrorConfig {
        topics: args.topics.clone(),
        groups: args.groups.clone(),
        name: args.name.clone(),
        follow: args.follow,
        ..MirrorConfig::new(
            side(&args.from, "brook-mirror-source"),
            side(&args.to, "brook-mirror-target"),
        )
    };
    let stop = Arc::new(AtomicBool::new(false));
    let schemas = match (&args.registry_from, &args.registry_to) {
        (Some(from), Some(to)) => Some(super::schemas::copy_subjects(from, to)?),
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
