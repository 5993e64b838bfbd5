//! `brook produce TOPIC`: records from stdin (or `--file`), one per line, through
//! `brook-client`'s producer.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use brook_client::{compression_by_name, Acks, Producer, ProducerConfig, ProducerRecord};

use super::connect::{runtime, BrokerArgs};

#[derive(Debug, clap::Args)]
pub(crate) struct ProduceArgs {
    topic: String,
    /// Split each line at the first C into key and value (no key without it)
    #[arg(long, short = 'k', value_name = "C")]
    key_delimiter: Option<char>,
    /// A header for every record, `-H name=value` (repeatable)
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Send every record to this partition (default: by key, as Java's client)
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// none, gzip, snappy, lz4 or zstd
    #[arg(long, short = 'z', default_value = "none")]
    compression: String,
    /// 0, 1 or all (all is idempotent: no duplicates on retries)
    #[arg(long, default_value = "all")]
    acks: String,
    /// Read the records from FILE (with a progress bar) instead of stdin
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// `table` (a summary line) or `json` (an object per partition)
    #[arg(long, default_value = "table")]
    format: String,
    #[command(flatten)]
    broker: BrokerArgs,
}

pub(crate) fn run(args: ProduceArgs) -> Result<(), Box<dyn std::error::Error>> {
    let compression = compression_by_name(&args.compression).ok_or_else(|| {
        format!(
            "--compression {:?}: none, gzip, snappy, lz4 or zstd",
            args.compression
        )
    })?;
    let acks = Acks::from_name(&args.acks)
        .ok_or_else(|| format!("--acks {:?}: 0, 1 or all", args.acks))?;
    if !matches!(args.format.as_str(), "table" | "json") {
        return Err(format!("--format {:?}: table or json", args.format).into());
    }
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("-H {h:?} is not NAME=VALUE"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = ProducerConfig {
        acks,
        compression,
        idempotence: acks == Acks::All,
        ..ProducerConfig::new(args.broker.client_config("brook-cli")?)
    };
    let (input, progress): (Box<dyn BufRead>, Option<indicatif::ProgressBar>) = match &args.file {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = indicatif::ProgressBar::new(size).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .map_err(|e| e.to_string())?,
            );
            (
                Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
                Some(bar),
            )
        }
        None => (Box::new(std::io::stdin().lock()), None),
    };
    let written = runtime()?.block_on(async {
        let producer = Producer::new(config).await?;
        // Offsets per partition: (count, first, last).
        let mut written: BTreeMap<i32, (u64, i64, i64)> = BTreeMap::new();
        let mut deliveries = std::collections::VecDeque::new();
        for line in input.lines() {
            let line = line?;
            if let Some(bar) = &progress {
                bar.inc(line.len() as u64 + 1);
            }
            let (key, value) = match args.key_delimiter.and_then(|d| line.split_once(d)) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line),
            };
            let mut record = ProducerRecord::new(args.topic.clone(), value);
            record.key = key.map(bytes::Bytes::from);
            record.partition = args.partition;
            for (k, v) in &headers {
                record = record.header(k.clone(), v.clone());
            }
            deliveries.push_back(producer.send(record).await?);
            // Keep the number of unacknowledged records bounded (and report failures
            // early) without waiting for each one.
            while deliveries.len() > 100_000 {
                if let Some(d) = deliveries.pop_front() {
                    note(&mut written, d.await?);
                }
            }
        }
        producer.flush().await;
        for d in deliveries {
            note(&mut written, d.await?);
        }
        producer.close().await?;
        Ok::<_, Box<dyn std::error::Error>>(written)
    })?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let total: u64 = written.values().map(|(n, _, _)| n).sum();
    match args.format.as_str() {
        "json" => {
            let partitions: Vec<serde_json::Value> = written
                .iter()
                .map(|(p, (n, first, last))| {
                    serde_json::json!({
                        "topic": args.topic,
                        "partition": p,
                        "records": n,
                        "first_offset": first,
                        "last_offset": last,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(partitions));
        }
        _ => {
            let ranges: Vec<String> = written
                .iter()
                .map(|(p, (_, first, last))| format!("partition {p} offsets {first}-{last}"))
                .collect();
            println!(
                "produced {total} record{} to {}{}{}",
                if total == 1 { "" } else { "s" },
                args.topic,
                if ranges.is_empty() { "" } else { ": " },
                ranges.join(", ")
            );
        }
    }
    Ok(())
}

fn note(written: &mut BTreeMap<i32, (u64, i64, i64)>, meta: brook_client::RecordMetadata) {
    let entry = written
        .entry(meta.partition)
        .or_insert((0, meta.offset, meta.offset));
    entry.0 += 1;
    entry.1 = entry.1.min(meta.offset);
    entry.2 = entry.2.max(meta.offset);
}
