//! `e2e`: one paced producer and one consumer in this process. Each payload starts with its
//! send time ([`mono_ns`], u64 little-endian); the consumer records `now - sent` for every
//! record sent in the measured phase.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::cli::{E2eOpts, ProduceOpts};
use crate::error::BenchError;
use crate::latency::{mono_ns, LatencyHistogram};
use crate::report::{rates, E2eReport};
use crate::{kafka, produce};

/// The consumer's poll timeout: how often it looks at whether the producer is done.
const READ_POLL: Duration = Duration::from_millis(20);

/// The send time stamped into the first 8 bytes of a payload.
pub fn sent_time(payload: &[u8]) -> Option<u64> {
    let head: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(head))
}

/// What the consumer side saw.
struct Read {
    received: u64,
    latency: LatencyHistogram,
    errors: u64,
}

/// Reads until the producer is `done` and `expected` measured records arrived, or `drain`
/// after the producer finished.
fn read_loop(
    consumer: &BaseConsumer,
    measure_from_ns: u64,
    done: &AtomicBool,
    expected: &AtomicU64,
    drain: Duration,
) -> Read {
    let mut read = Read {
        received: 0,
        latency: LatencyHistogram::new(),
        errors: 0,
    };
    let mut deadline: Option<Instant> = None;
    loop {
        match consumer.poll(READ_POLL) {
            Some(Ok(m)) => {
                let now = mono_ns();
                if let Some(sent) = m.payload().and_then(sent_time) {
                    if sent >= measure_from_ns {
                        read.latency.record_ns(now.saturating_sub(sent));
                        read.received += 1;
                    }
                }
            }
            Some(Err(e)) => {
                if read.errors == 0 {
                    eprintln!("brook-bench: e2e consumer: {e}");
                }
                read.errors += 1;
            }
            None => {}
        }
        if done.load(Ordering::Acquire) {
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + drain);
            if read.received >= expected.load(Ordering::Acquire) || Instant::now() > deadline {
                return read;
            }
        }
    }
}

/// The producer side of an e2e run.
fn producer_opts(opts: &E2eOpts) -> ProduceOpts {
    ProduceOpts {
        create_topic: false,
        partitions: opts.partitions,
        record_size: opts.record_size,
        count: None,
        duration: Some(opts.duration),
        acks: opts.acks,
        producers: 1,
        linger_ms: opts.linger_ms,
        batch_size: 1_000_000,
        compression: opts.compression,
        idempotence: false,
        rate: Some(opts.rate),
        queue_kbytes: 32_768,
        warmup: opts.warmup,
        transaction_records: None,
        abort_percent: 0,
        keys: None,
        conditional: false,
        random_keys: false,
        topic_configs: Vec::new(),
        value_schema_id: None,
        client: crate::cli::Client::Librdkafka,
    }
}

/// Runs the e2e workload on `topic` (created with `--partitions` if missing).
pub fn run(
    bootstrap: &str,
    topic: &str,
    opts: &E2eOpts,
    broker_pid: Option<u32>,
) -> Result<E2eReport, BenchError> {
    kafka::ensure_topic(bootstrap, topic, opts.partitions, &[])?;
    let consumer = kafka::latency_consumer(bootstrap)?;
    // Start after what is there already; positions are explicit so nothing produced from
    // now on can be skipped.
    let mut assignment = TopicPartitionList::new();
    for (p, _, high) in kafka::watermarks(&consumer, topic)? {
        assignment
            .add_partition_offset(topic, p, Offset::Offset(high))
            .map_err(|e| BenchError::kafka("building the assignment", e))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| BenchError::kafka(format!("assigning {topic}"), e))?;

    let produce = producer_opts(opts);
    let warmup = u64::try_from(opts.warmup.as_nanos()).unwrap_or(u64::MAX);
    let measure_from_ns = mono_ns().saturating_add(warmup);
    let done = AtomicBool::new(false);
    let expected = AtomicU64::new(u64::MAX);
    let (driven, read) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            read_loop(
                &consumer,
                measure_from_ns,
                &done,
                &expected,
                opts.drain_timeout,
            )
        });
        let driven = produce::drive(
            bootstrap,
            topic,
            &produce,
            true,
            measure_from_ns,
            broker_pid,
        );
        expected.store(
            driven.as_ref().map_or(0, |d| d.delivered),
            Ordering::Release,
        );
        done.store(true, Ordering::Release);
        let read = reader
            .join()
            .map_err(|_| BenchError::Failed("the e2e consumer thread panicked".into()));
        (driven, read)
    });
    let driven = driven?;
    let read = read?;
    if read.received == 0 {
        return Err(BenchError::Failed(format!(
            "no record came back ({} acknowledged, {} delivery errors, {} consumer errors)",
            driven.delivered, driven.errors, read.errors
        )));
    }
    let broker = driven.probe.map(|p| p.finish(driven.bytes)).transpose()?;
    let seconds = driven.seconds();
    let bytes = read.received * opts.record_size as u64;
    let (records_per_sec, mb_per_sec) = rates(read.received, bytes, seconds);
    Ok(E2eReport {
        bootstrap: bootstrap.into(),
        topic: topic.into(),
        rate: opts.rate,
        record_size: opts.record_size,
        acks: opts.acks,
        sent: driven.delivered,
        received: read.received,
        errors: driven.errors,
        seconds,
        records_per_sec,
        mb_per_sec,
        latency: read.latency.percentiles(),
        delivery_latency: driven.latency.percentiles(),
        broker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_time_round_trip() {
        let mut payload = produce::payload(32, 1);
        payload[..8].copy_from_slice(&123_456_789u64.to_le_bytes());
        assert_eq!(sent_time(&payload), Some(123_456_789));
        assert_eq!(sent_time(&payload[..8]), Some(123_456_789));
        assert_eq!(sent_time(&payload[..7]), None);
    }

    #[test]
    fn producer_side_is_paced_and_timed() {
        let cli = crate::cli::Cli::parse_checked([
            "brook-bench",
            "e2e",
            "--rate",
            "250",
            "--duration",
            "2",
            "--acks",
            "all",
        ])
        .unwrap();
        let crate::cli::Command::E2e(e) = cli.command else {
            panic!("not e2e")
        };
        let p = producer_opts(&e.workload);
        assert_eq!(p.rate, Some(250.0));
        assert_eq!(p.producers, 1);
        assert_eq!(p.stop(), crate::cli::Stop::After(Duration::from_secs(2)));
        assert_eq!(p.acks, crate::cli::Acks::All);
        assert_eq!(p.linger_ms, 0.0);
    }
}
