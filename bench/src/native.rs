//! `--client brook`: the produce and consume workloads on Brook's own Rust client
//! (`brook-client`) instead of librdkafka, measured the same way, so the two clients can be
//! compared against one broker in one run.
//!
//! The producer side mirrors [`crate::produce::drive`]: each producer sends as fast as its
//! buffer lets it, a collector awaits the deliveries in order and records send-to-delivery
//! latency; records sent before the measured phase only count as errors if they fail.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use brook_client::{
    Acks, Admin, ClientConfig, Compression, Consumer, ConsumerConfig, IsolationLevel, Producer,
    ProducerConfig, ProducerRecord, SaslConfig, SaslMechanism, StartAt, TlsConfig,
};
use bytes::Bytes;

use crate::cli::{self, ConsumeOpts, Isolation, ProduceOpts, Stop};
use crate::consume::{consume_report, IdleWatch, Read, Until};
use crate::error::BenchError;
use crate::latency::{mono_ns, LatencyHistogram};
use crate::procfs::Probe;
use crate::produce::{payload, transactional_id, Driven, Keys, Transactions};
use crate::report::ConsumeReport;

fn failed(context: &str, e: brook_client::ClientError) -> BenchError {
    BenchError::Failed(format!("{context}: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("starting the runtime", e))
}

/// brook-client's settings: the `-X` properties that have a meaning for it (librdkafka's
/// names: `security.protocol`, `ssl.ca.location`, `ssl.certificate.location`,
/// `ssl.key.location`, `sasl.mechanism`/`sasl.mechanisms`, `sasl.username`, `sasl.password`)
/// become its security settings; any other is an error rather than silently ignored.
fn client_config(bootstrap: &str) -> Result<ClientConfig, BenchError> {
    security_config(bootstrap, crate::kafka::client_properties())
}

fn security_config(
    bootstrap: &str,
    properties: &[(String, String)],
) -> Result<ClientConfig, BenchError> {
    let mut config = ClientConfig {
        client_id: "brook-bench".into(),
        ..ClientConfig::new(bootstrap)
    };
    let get = |name: &str| {
        properties
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    const KNOWN: &[&str] = &[
        "security.protocol",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "sasl.mechanism",
        "sasl.mechanisms",
        "sasl.username",
        "sasl.password",
    ];
    if let Some((key, _)) = properties
        .iter()
        .find(|(k, _)| !KNOWN.contains(&k.as_str()))
    {
        return Err(BenchError::Failed(format!(
            "-X {key}: not a setting brook-client takes (it takes {})",
            KNOWN.join(", ")
        )));
    }
    let protocol = get("security.protocol")
        .unwrap_or("PLAINTEXT")
        .to_ascii_uppercase();
    let (tls, sasl) = match protocol.as_str() {
        "PLAINTEXT" => (false, false),
        "SSL" => (true, false),
        "SASL_PLAINTEXT" => (false, true),
        "SASL_SSL" => (true, true),
        other => {
            return Err(BenchError::Failed(format!(
                "-X security.protocol={other}: not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )))
        }
    };
    if tls {
        config.security.tls = Some(TlsConfig {
            ca_file: get("ssl.ca.location").map(Into::into),
            cert_file: get("ssl.certificate.location").map(Into::into),
            key_file: get("ssl.key.location").map(Into::into),
        });
    }
    if sasl {
        let mechanism = match get("sasl.mechanism")
            .or(get("sasl.mechanisms"))
            .unwrap_or("PLAIN")
        {
            "PLAIN" => SaslMechanism::Plain,
            "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
            "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
            other => {
                return Err(BenchError::Failed(format!(
                    "-X sasl.mechanism={other}: brook-client speaks PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512"
                )))
            }
        };
        config.security.sasl = Some(SaslConfig {
            mechanism,
            username: get("sasl.username").unwrap_or_default().into(),
            password: get("sasl.password").unwrap_or_default().into(),
        });
    }
    Ok(config)
}

/// What one producer's collector counted.
#[derive(Default)]
struct Tally {
    delivered: u64,
    bytes: u64,
    errors: u64,
    last_ns: u64,
    first_error: Option<String>,
    latency: LatencyHistogram,
}

/// Runs `opts.producers` brook-client producers against `topic` (see the module docs).
pub(crate) fn drive(
    bootstrap: &str,
    topic: &str,
    opts: &ProduceOpts,
    measure_from_ns: u64,
    broker_pid: Option<u32>,
) -> Result<Driven, BenchError> {
    let config = ProducerConfig {
        acks: match opts.acks {
            cli::Acks::Zero => Acks::None,
            cli::Acks::One => Acks::Leader,
            cli::Acks::All => Acks::All,
        },
        linger: Duration::from_secs_f64(opts.linger_ms / 1000.0),
        batch_size: opts.batch_size as usize,
        compression: match opts.compression {
            cli::Compression::None => Compression::None,
            cli::Compression::Gzip => Compression::Gzip,
            cli::Compression::Snappy => Compression::Snappy,
            cli::Compression::Lz4 => Compression::Lz4,
            cli::Compression::Zstd => Compression::Zstd,
        },
        idempotence: opts.idempotence,
        buffer_memory: opts.queue_kbytes as usize * 1024,
        max_request_size: (opts.batch_size as usize).max(1_048_576),
        delivery_timeout: Duration::from_secs(60),
        ..ProducerConfig::new(client_config(bootstrap)?)
    };
    let deadline = match opts.stop() {
        Stop::Count(_) => None,
        Stop::After(d) => {
            Some(measure_from_ns.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
        }
    };
    let count = match opts.stop() {
        Stop::Count(n) => Some(n),
        Stop::After(_) => None,
    };
    let claimed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    runtime()?.block_on(async {
        let mut producers = Vec::new();
        for n in 0..opts.producers as usize {
            let mut config = config.clone();
            if opts.transaction_records.is_some() {
                config.transactional_id = Some(transactional_id(n));
                config.idempotence = true;
            }
            producers.push(
                Producer::new(config)
                    .await
                    .map_err(|e| failed(&format!("reaching {bootstrap}"), e))?,
            );
        }
        let mut tasks = Vec::new();
        for (n, producer) in producers.into_iter().enumerate() {
            let value = Bytes::from(payload(opts.record_size, n as u64 + 1));
            let topic = topic.to_string();
            let claimed = std::sync::Arc::clone(&claimed);
            let keys = Keys::for_producer(opts, n);
            let txns = opts.transaction_records.map(|records| Transactions {
                records: u64::from(records),
                abort_percent: opts.abort_percent,
            });
            tasks.push(tokio::spawn(async move {
                // The open transaction: its number and when it began.
                let mut open: Option<(u64, u64)> = None;
                let mut commits = LatencyHistogram::new();
                let mut ended = 0u64;
                let mut random = keys.and_then(|k| k.random);
                // --conditional: each key's last revision (-1: no stream yet; the topic is new).
                let mut revisions: Vec<i64> = match keys {
                    Some(k) if k.conditional => vec![-1; usize::try_from(k.count).unwrap_or(0)],
                    _ => Vec::new(),
                };
                let mut i = 0u64;
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let collector = tokio::spawn(async move {
                    let mut tally = Tally::default();
                    while let Some((sent, len, delivery)) = rx.recv().await {
                        let delivery: brook_client::Delivery = delivery;
                        match delivery.await {
                            Ok(_) if sent >= measure_from_ns => {
                                let now = mono_ns();
                                tally.latency.record_ns(now.saturating_sub(sent));
                                tally.delivered += 1;
                                tally.bytes += len;
                                tally.last_ns = tally.last_ns.max(now);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tally.errors += 1;
                                tally.first_error.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                    tally
                });
                loop {
                    let sent = mono_ns();
                    let go_on = match (deadline, count) {
                        (Some(d), _) => sent < d,
                        (None, Some(n)) => {
                            sent < measure_from_ns
                                || claimed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n
                        }
                        (None, None) => false,
                    };
                    if !go_on {
                        break;
                    }
                    if let (Some(t), None) = (txns, open) {
                        producer
                            .begin_transaction()
                            .await
                            .map_err(|e| failed("beginning a transaction", e))?;
                        open = Some((i / t.records, mono_ns()));
                    }
                    let mut record = ProducerRecord::new(topic.clone(), value.clone());
                    if let Some(k) = keys {
                        let slot = k.slot(i, &mut random);
                        record.key = Some(Bytes::from(format!("key-{}", k.number(slot))));
                        if let Some(last) = revisions.get_mut(slot as usize) {
                            let expected = if *last < 0 {
                                "no-stream".to_string()
                            } else {
                                last.to_string()
                            };
                            *last += 1;
                            record = record.header("brook.expected.revision", expected);
                        }
                    }
                    i += 1;
                    match producer.send(record).await {
                        Ok(d) => {
                            if tx.send((sent, value.len() as u64, d)).is_err() {
                                break;
                            }
                        }
                        Err(e) => return Err(failed(&format!("sending to {topic}"), e)),
                    }
                    if let (Some(t), Some((number, began))) = (txns, open) {
                        if i.is_multiple_of(t.records) {
                            end_transaction(&producer, t, number).await?;
                            if began >= measure_from_ns {
                                commits.record_ns(mono_ns().saturating_sub(began));
                                ended += 1;
                            }
                            open = None;
                        }
                    }
                }
                if let (Some(t), Some((number, _))) = (txns, open) {
                    end_transaction(&producer, t, number).await?;
                }
                drop(tx);
                producer.flush().await;
                producer.close().await.map_err(|e| failed("closing", e))?;
                let tally = collector
                    .await
                    .map_err(|_| BenchError::Failed("a collector panicked".into()))?;
                Ok((tally, commits, ended))
            }));
        }
        let wait = measure_from_ns.saturating_sub(mono_ns());
        tokio::time::sleep(Duration::from_nanos(wait)).await;
        let probe = Probe::start(broker_pid)?;
        let mut driven = Driven::new(measure_from_ns, probe);
        for task in tasks {
            let (tally, commits, ended) = task
                .await
                .map_err(|_| BenchError::Failed("a producer task panicked".into()))??;
            driven.transactions += ended;
            driven.commit_latency.merge(&commits);
            driven.delivered += tally.delivered;
            driven.bytes += tally.bytes;
            driven.errors += tally.errors;
            driven.last_ns = driven.last_ns.max(tally.last_ns);
            driven.latency.merge(&tally.latency);
            if driven.first_error.is_none() {
                driven.first_error = tally.first_error;
            }
        }
        Ok(driven)
    })
}

/// Ends transaction `number` of `producer`: aborted or committed as `txns` says.
async fn end_transaction(
    producer: &Producer,
    txns: Transactions,
    number: u64,
) -> Result<(), BenchError> {
    let ended = if txns.aborts(number) {
        producer.abort_transaction().await
    } else {
        producer.commit_transaction().await
    };
    ended.map_err(|e| failed("ending a transaction", e))
}

/// Creates `topic` with brook-client (so `--client brook` needs no librdkafka, nor its TLS
/// build); an existing topic is kept.
pub(crate) fn ensure_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> Result<(), BenchError> {
    runtime()?.block_on(async {
        let admin = Admin::new(client_config(bootstrap)?)
            .await
            .map_err(|e| failed(&format!("reaching {bootstrap}"), e))?;
        match admin.create_topic(topic, partitions, configs).await {
            // TOPIC_ALREADY_EXISTS
            Err(e) if e.code() == Some(36) => Ok(()),
            other => other.map_err(|e| failed(&format!("creating topic {topic}"), e)),
        }
    })
}

/// Reads every partition of `topic` from the start with brook-client, to the end offsets
/// taken at the start (or `--count` records).
pub(crate) fn consume(
    bootstrap: &str,
    topic: &str,
    opts: &ConsumeOpts,
    broker_pid: Option<u32>,
) -> Result<ConsumeReport, BenchError> {
    let committed = opts.isolation == Isolation::ReadCommitted;
    runtime()?.block_on(async {
        let admin = Admin::new(client_config(bootstrap)?)
            .await
            .map_err(|e| failed(&format!("reaching {bootstrap}"), e))?;
        let lows = admin
            .list_offsets(topic, -2)
            .await
            .map_err(|e| failed("listing offsets", e))?;
        let highs: BTreeMap<i32, i64> = admin
            .end_offsets(topic)
            .await
            .map_err(|e| failed("listing offsets", e))?;
        let marks: Vec<(i32, i64, i64)> = highs
            .iter()
            .map(|(p, high)| (*p, lows.get(p).copied().unwrap_or(0), *high))
            .collect();
        let mut until = Until::new(opts.count, &marks);
        if until.is_done_already() {
            return Err(BenchError::Failed(format!(
                "topic {topic} is empty (fill it first, e.g. with --fill)"
            )));
        }
        let mut consumer = Consumer::new(ConsumerConfig {
            isolation: if committed {
                IsolationLevel::ReadCommitted
            } else {
                IsolationLevel::ReadUncommitted
            },
            ..ConsumerConfig::new(client_config(bootstrap)?)
        })
        .await
        .map_err(|e| failed(&format!("reaching {bootstrap}"), e))?;
        let probe = Probe::start(broker_pid)?;
        let start = Instant::now();
        consumer
            .assign(topic, None, StartAt::Beginning)
            .await
            .map_err(|e| failed(&format!("assigning {topic}"), e))?;
        let mut records = 0u64;
        let mut bytes = 0u64;
        let mut idle = IdleWatch::new(start);
        'reading: loop {
            let batch = consumer
                .poll()
                .await
                .map_err(|e| failed(&format!("reading {topic}"), e))?;
            if batch.is_empty() && idle.stalled(records, Instant::now(), opts.idle_timeout) {
                return Err(BenchError::Timeout(format!(
                    "no record from {topic} for {:?} after {records} records",
                    opts.idle_timeout
                )));
            }
            for r in &batch {
                records += 1;
                bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                if until.record(records, r.partition, r.offset) {
                    break 'reading;
                }
            }
            // read_committed partitions end in markers no record stands for.
            if committed && opts.count.is_none() && consumer.at_end() {
                break;
            }
        }
        let read = Read {
            partitions: marks.len(),
            records,
            bytes,
            seconds: start.elapsed().as_secs_f64(),
        };
        consume_report(bootstrap, topic, cli::Client::Brook, opts, read, probe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn librdkafka_security_properties_become_brook_client_settings() {
        let plain = security_config("b:9092", &[]).unwrap();
        assert!(plain.security.tls.is_none() && plain.security.sasl.is_none());
        let config = security_config(
            "b:9093",
            &props(&[
                ("security.protocol", "sasl_ssl"),
                ("ssl.ca.location", "ca.pem"),
                ("sasl.mechanisms", "SCRAM-SHA-512"),
                ("sasl.username", "bench"),
                ("sasl.password", "secret"),
            ]),
        )
        .unwrap();
        let tls = config.security.tls.unwrap();
        assert_eq!(tls.ca_file, Some("ca.pem".into()));
        let sasl = config.security.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(
            (sasl.username.as_str(), sasl.password.as_str()),
            ("bench", "secret")
        );
        let mtls = security_config(
            "b:9093",
            &props(&[
                ("security.protocol", "SSL"),
                ("ssl.certificate.location", "client.pem"),
            ]),
        )
        .unwrap();
        assert!(mtls.security.sasl.is_none());
        assert_eq!(
            mtls.security.tls.unwrap().cert_file,
            Some("client.pem".into())
        );
        for bad in [
            props(&[("linger.ms", "5")]),
            props(&[("security.protocol", "TLS")]),
            props(&[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "GSSAPI"),
            ]),
        ] {
            assert!(security_config("b:9092", &bad).is_err(), "{bad:?}");
        }
    }
}
