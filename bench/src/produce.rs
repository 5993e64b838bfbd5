//! `produce`: producer threads, each with its own librdkafka producer, optionally paced,
//! with a warm-up; per-record delivery latency (send → delivery report) into a histogram.
//!
//! The send loop is shared with `e2e` (`drive`), which also stamps the send time into
//! each payload for its consumer.
//!
//! With `--transaction-records N` each producer has its own transactional id and sends in
//! transactions of N records (`--abort-percent` of them aborted, spread evenly); the commit
//! latency (the `commit_transaction` call, which includes flushing the transaction's records)
//! is recorded per transaction.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::cli::{Client, ProduceOpts, Stop};
use crate::error::BenchError;
use crate::kafka;
use crate::latency::{mono_ns, LatencyHistogram};
use crate::pace::Pacer;
use crate::procfs::Probe;
use crate::report::{rates, ProduceReport};

/// How long the end of a run waits for outstanding deliveries.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the end of a transaction checks whether its records were delivered.
const FLUSH_STEP: Duration = Duration::from_micros(50);
/// Pause before retrying a send that found librdkafka's queue full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_micros(100);

/// Delivery reports of one producer. The opaque of each record is its send time
/// ([`mono_ns`]); records sent before `measure_from_ns` are warm-up and only count as errors.
struct Deliveries {
    measure_from_ns: u64,
    histogram: Mutex<LatencyHistogram>,
    delivered: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    last_ns: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Transactional runs: commit latency of each measured transaction, and their count.
    commits: Mutex<LatencyHistogram>,
    transactions: AtomicU64,
}

impl Deliveries {
    fn new(measure_from_ns: u64) -> Self {
        Self {
            measure_from_ns,
            histogram: Mutex::new(LatencyHistogram::new()),
            delivered: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
            first_error: Mutex::new(None),
            commits: Mutex::new(LatencyHistogram::new()),
            transactions: AtomicU64::new(0),
        }
    }

    /// A transaction that ended at `now` after its commit took `took_ns`.
    fn committed(&self, started_ns: u64, now: u64) {
        if started_ns >= self.measure_from_ns {
            self.commits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record_ns(now.saturating_sub(started_ns));
            self.transactions.fetch_add(1, Ordering::Relaxed);
            self.last_ns.fetch_max(now, Ordering::Relaxed);
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        let now = mono_ns();
        let sent = sent as u64;
        match result {
            Ok(message) => {
                if sent >= self.measure_from_ns {
                    self.histogram
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record_ns(now.saturating_sub(sent));
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                    let len = message.payload_len() as u64;
                    self.bytes.fetch_add(len, Ordering::Relaxed);
                    self.last_ns.fetch_max(now, Ordering::Relaxed);
                }
            }
            Err((error, _)) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self
                    .first_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if first.is_none() {
                    *first = Some(error.to_string());
                }
            }
        }
    }
}

/// What [`drive`] measured.
pub(crate) struct Driven {
    pub(crate) measure_from_ns: u64,
    /// Delivery time of the last measured record ([`mono_ns`]); 0 when none.
    pub(crate) last_ns: u64,
    pub(crate) delivered: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) latency: LatencyHistogram,
    /// Transactional runs: transactions ended in the measured phase and their commit latency.
    pub(crate) transactions: u64,
    pub(crate) commit_latency: LatencyHistogram,
    /// Broker sampled at the start of the measured phase.
    pub(crate) probe: Option<Probe>,
}

impl Driven {
    /// Nothing delivered yet; the measured phase starts at `measure_from_ns`.
    pub(crate) fn new(measure_from_ns: u64, probe: Option<Probe>) -> Self {
        Self {
            measure_from_ns,
            last_ns: 0,
            delivered: 0,
            bytes: 0,
            errors: 0,
            first_error: None,
            latency: LatencyHistogram::new(),
            transactions: 0,
            commit_latency: LatencyHistogram::new(),
            probe,
        }
    }

    /// From the start of the measured phase to the last measured delivery.
    pub(crate) fn seconds(&self) -> f64 {
        self.last_ns.saturating_sub(self.measure_from_ns) as f64 / 1e9
    }

    pub(crate) fn check_delivered(&self) -> Result<(), BenchError> {
        if self.delivered > 0 {
            return Ok(());
        }
        Err(BenchError::Failed(format!(
            "no record was acknowledged in the measured phase ({} delivery errors{})",
            self.errors,
            self.first_error
                .as_deref()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        )))
    }
}

/// Producer configuration of a workload.
fn producer_config(bootstrap: &str, opts: &ProduceOpts) -> rdkafka::ClientConfig {
    let mut config = kafka::base_config(bootstrap);
    config
        .set("acks", opts.acks.as_config())
        .set("linger.ms", opts.linger_ms.to_string())
        .set("batch.size", opts.batch_size.to_string())
        .set("compression.type", opts.compression.as_config())
        .set("enable.idempotence", opts.idempotence.to_string())
        .set("message.timeout.ms", "60000")
        // The byte bound decides; the record bound is out of the way even for tiny records.
        .set("queue.buffering.max.messages", "10000000")
        .set("queue.buffering.max.kbytes", opts.queue_kbytes.to_string())
        // Room for one record or one batch per request, whichever is bigger.
        .set("message.max.bytes", message_max_bytes(opts).to_string());
    if opts.transaction_records.is_some() {
        // A transaction ends with a flush, which sends at once what linger.ms holds back; the
        // crate's flush does so only for an instant per call, so lingering would add
        // linger.ms to every commit instead.
        config
            .set("enable.idempotence", "true")
            .set("linger.ms", "0");
    }
    config
}

/// A transactional id unique to this run and producer.
pub(crate) fn transactional_id(n: usize) -> String {
    format!("brook-bench-{}-{}-{n}", std::process::id(), mono_ns())
}

/// librdkafka's `message.max.bytes` (its largest request): at least its default, one
/// record with framing or one batch with framing.
fn message_max_bytes(opts: &ProduceOpts) -> usize {
    let batch = usize::try_from(opts.batch_size).unwrap_or(usize::MAX);
    (opts.record_size + 65_536)
        .max(batch.saturating_add(65_536))
        .clamp(1_000_000, 1_000_000_000)
}

/// Incompressible payload bytes (xorshift), different per producer.
pub(crate) fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// When the send loops stop.
#[derive(Debug, Clone, Copy)]
enum StopAt {
    /// `mono_ns` deadline.
    Deadline(u64),
    /// Total measured records over all threads.
    Count(u64),
}

/// Transactions of a producer thread: how many records each, and which to abort.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transactions {
    pub(crate) records: u64,
    pub(crate) abort_percent: u8,
}

impl Transactions {
    /// Whether the `n`-th transaction (from 0) is aborted: `abort_percent` of every 100,
    /// spread evenly.
    pub(crate) fn aborts(&self, n: u64) -> bool {
        let p = u64::from(self.abort_percent);
        (n + 1) * p / 100 > n * p / 100
    }
}

/// Ends the open transaction `n` of `producer` (begun at `started_ns`).
fn end_transaction(
    producer: &ThreadedProducer<Deliveries>,
    txns: Transactions,
    n: u64,
    started_ns: u64,
) -> Result<(), BenchError> {
    // Wait for the transaction's deliveries first (served by this producer's polling
    // thread; linger.ms is 0 in transactional runs): the client's commit would flush with a
    // long poll of its own, which races the polling thread for the delivery reports and can
    // sleep until the next one (observed: 100 ms per transaction).
    let deadline = Instant::now() + FLUSH_TIMEOUT;
    while producer.in_flight_count() > 0 {
        if Instant::now() > deadline {
            return Err(BenchError::Failed(
                "a transaction's records were not delivered in time".into(),
            ));
        }
        std::thread::sleep(FLUSH_STEP);
    }
    let ended = if txns.aborts(n) {
        producer.abort_transaction(FLUSH_TIMEOUT)
    } else {
        producer.commit_transaction(FLUSH_TIMEOUT)
    };
    ended.map_err(|e| BenchError::kafka("ending a transaction", e))?;
    producer.context().committed(started_ns, mono_ns());
    Ok(())
}

/// `--keys`: how many keys this producer walks, and where they start. With
/// `--conditional` the range is this producer's alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys {
    pub(crate) count: u64,
    pub(crate) offset: u64,
    pub(crate) conditional: bool,
    /// `--random-keys`: keys drawn at random (from this seed on) instead of in turn.
    pub(crate) random: Option<u64>,
}

impl Keys {
    /// Producer `n`'s keys of `opts` (with `--conditional`, a range of its own).
    pub(crate) fn for_producer(opts: &ProduceOpts, n: usize) -> Option<Self> {
        let share = opts.keys.unwrap_or(0) / u64::from(opts.producers.max(1));
        opts.keys.map(|count| Keys {
            count: if opts.conditional {
                share.max(1)
            } else {
                count
            },
            offset: (n as u64).wrapping_mul(share),
            conditional: opts.conditional,
            random: opts
                .random_keys
                .then_some(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1)),
        })
    }

    /// The slot (0..count) of the `i`-th record: in turn, or drawn from `random`.
    pub(crate) fn slot(&self, i: u64, random: &mut Option<u64>) -> u64 {
        match random.as_mut() {
            Some(state) => next_random(state) % self.count.max(1),
            None => i % self.count.max(1),
        }
    }

    /// The key number of `slot` (producers start at different keys; with --conditional
    /// each owns its range).
    pub(crate) fn number(&self, slot: u64) -> u64 {
        if self.conditional {
            self.offset + slot
        } else {
            (slot + self.offset) % self.count
        }
    }
}

/// xorshift64*: enough to draw keys evenly, and the same sequence every run.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// One producer thread: sends until the stop condition, then waits for every delivery.
#[allow(clippy::too_many_arguments)]
fn send_loop(
    producer: &ThreadedProducer<Deliveries>,
    topic: &str,
    mut buf: Vec<u8>,
    stamp: bool,
    pacer: Option<Pacer>,
    start: Instant,
    stop: StopAt,
    claimed: &AtomicU64,
    txns: Option<Transactions>,
    keys: Option<Keys>,
) -> Result<(), BenchError> {
    let measure_from_ns = producer.context().measure_from_ns;
    let mut key = String::new();
    // --conditional: each key's last revision (-1: no stream yet; the topic is new).
    let mut revisions: Vec<i64> = match keys {
        Some(k) if k.conditional => vec![-1; usize::try_from(k.count).unwrap_or(0)],
        _ => Vec::new(),
    };
    let mut random = keys.and_then(|k| k.random);
    let mut expected = String::new();
    let mut i = 0u64;
    // The open transaction: its number and when it began.
    let mut open: Option<(u64, u64)> = None;
    loop {
        if let Some(p) = pacer {
            p.pace(start, i);
        }
        let sent = mono_ns();
        let keep_going = match stop {
            StopAt::Deadline(deadline) => sent < deadline,
            StopAt::Count(n) => {
                sent < measure_from_ns || claimed.fetch_add(1, Ordering::Relaxed) < n
            }
        };
        if !keep_going {
            break;
        }
        if let (Some(t), None) = (txns, open) {
            producer
                .begin_transaction()
                .map_err(|e| BenchError::kafka("beginning a transaction", e))?;
            open = Some((i / t.records, mono_ns()));
        }
        if stamp {
            buf[..8].copy_from_slice(&sent.to_le_bytes());
        }
        // The send time stays that of the first attempt: time spent waiting for room in
        // a full queue is part of the latency.
        // Which of this producer's keys the record gets: the next in turn, or any.
        let slot = keys.map_or(0, |k| k.slot(i, &mut random));
        // --conditional: the key's revision now, as the header says it; then one more.
        // Written into a reused buffer: the tool shares the machine with the broker, so
        // its own work per record lowers what it measures.
        let conditional = keys.is_some_and(|k| k.conditional);
        if let Some(last) = revisions.get_mut(slot as usize).filter(|_| conditional) {
            expected.clear();
            if *last < 0 {
                expected.push_str("no-stream");
            } else {
                let _ = write!(expected, "{last}");
            }
            *last += 1;
        }
        loop {
            let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, sent as usize)
                .payload(&buf[..]);
            if let Some(keys) = keys {
                key.clear();
                // Producers start at different keys (with --conditional, own different ones).
                let _ = write!(key, "key-{}", keys.number(slot));
                record = record.key(key.as_bytes());
                if conditional {
                    record = record.headers(OwnedHeaders::new_with_capacity(1).insert(Header {
                        key: "brook.expected.revision",
                        value: Some(expected.as_bytes()),
                    }));
                }
            }
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(QUEUE_FULL_PAUSE);
                }
                Err((e, _)) => return Err(BenchError::kafka(format!("sending to {topic}"), e)),
            }
        }
        i += 1;
        if let (Some(t), Some((n, began))) = (txns, open) {
            if i.is_multiple_of(t.records) {
                end_transaction(producer, t, n, began)?;
                open = None;
            }
        }
    }
    if let (Some(t), Some((n, began))) = (txns, open) {
        end_transaction(producer, t, n, began)?;
    }
    producer
        .flush(FLUSH_TIMEOUT)
        .map_err(|e| BenchError::kafka("waiting for outstanding deliveries", e))
}

/// Runs the producers of `opts` against `topic`. The measured phase starts at
/// `measure_from_ns` ([`mono_ns`]); `stamp` writes each record's send time into its first
/// 8 payload bytes (little-endian).
pub(crate) fn drive(
    bootstrap: &str,
    topic: &str,
    opts: &ProduceOpts,
    stamp: bool,
    measure_from_ns: u64,
    broker_pid: Option<u32>,
) -> Result<Driven, BenchError> {
    let config = producer_config(bootstrap, opts);
    let producers = (0..opts.producers as usize)
        .map(|n| {
            let mut config = config.clone();
            if opts.transaction_records.is_some() {
                config.set("transactional.id", transactional_id(n));
            }
            let producer: ThreadedProducer<Deliveries> = config
                .create_with_context(Deliveries::new(measure_from_ns))
                .map_err(|e| BenchError::kafka("creating producer", e))?;
            if opts.transaction_records.is_some() {
                producer
                    .init_transactions(kafka::REQUEST_TIMEOUT)
                    .map_err(|e| {
                        BenchError::kafka(format!("initialising transactions at {bootstrap}"), e)
                    })?;
            }
            Ok(producer)
        })
        .collect::<Result<Vec<ThreadedProducer<Deliveries>>, BenchError>>()?;
    let txns = opts.transaction_records.map(|records| Transactions {
        records: u64::from(records),
        abort_percent: opts.abort_percent,
    });
    if let Some(first) = producers.first() {
        // Fail fast on a wrong address instead of after message.timeout.ms.
        first
            .client()
            .fetch_metadata(None, kafka::CONNECT_TIMEOUT)
            .map_err(|e| BenchError::kafka(format!("reaching {bootstrap}"), e))?;
    }
    let stop = match opts.stop() {
        Stop::Count(n) => StopAt::Count(n),
        Stop::After(d) => {
            let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            StopAt::Deadline(measure_from_ns.saturating_add(nanos))
        }
    };
    let pacer = opts.rate.map(|r| Pacer::share(r, opts.producers));
    let claimed = AtomicU64::new(0);
    let start = Instant::now();

    let (results, probe) = std::thread::scope(|scope| {
        let handles: Vec<_> = producers
            .iter()
            .enumerate()
            .map(|(n, producer)| {
                let mut buf = payload(opts.record_size, n as u64 + 1);
                if let Some(id) = opts.value_schema_id {
                    buf[0] = 0;
                    buf[1..5].copy_from_slice(&id.to_be_bytes());
                }
                let claimed = &claimed;
                let keys = Keys::for_producer(opts, n);
                scope.spawn(move || {
                    send_loop(
                        producer, topic, buf, stamp, pacer, start, stop, claimed, txns, keys,
                    )
                })
            })
            .collect();
        let wait = measure_from_ns.saturating_sub(mono_ns());
        std::thread::sleep(Duration::from_nanos(wait));
        let probe = Probe::start(broker_pid);
        let results: Vec<Result<(), BenchError>> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(BenchError::Failed("a producer thread panicked".into()))
                })
            })
            .collect();
        (results, probe)
    });
    for r in results {
        r?;
    }
    let probe = probe?;

    let mut driven = Driven::new(measure_from_ns, probe);
    for producer in &producers {
        let d = producer.context();
        driven.delivered += d.delivered.load(Ordering::Relaxed);
        driven.bytes += d.bytes.load(Ordering::Relaxed);
        driven.errors += d.errors.load(Ordering::Relaxed);
        driven.last_ns = driven.last_ns.max(d.last_ns.load(Ordering::Relaxed));
        driven
            .latency
            .merge(&d.histogram.lock().unwrap_or_else(PoisonError::into_inner));
        driven.transactions += d.transactions.load(Ordering::Relaxed);
        driven
            .commit_latency
            .merge(&d.commits.lock().unwrap_or_else(PoisonError::into_inner));
        if driven.first_error.is_none() {
            driven.first_error = d
                .first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
        }
    }
    Ok(driven)
}

/// Produces to `topic` as `opts` says and reports throughput and delivery latency.
pub fn run(
    bootstrap: &str,
    topic: &str,
    opts: &ProduceOpts,
    broker_pid: Option<u32>,
) -> Result<ProduceReport, BenchError> {
    if opts.create_topic {
        match opts.client {
            Client::Librdkafka => {
                kafka::ensure_topic(bootstrap, topic, opts.partitions, &opts.topic_configs)?;
            }
            Client::Brook => {
                crate::native::ensure_topic(
                    bootstrap,
                    topic,
                    opts.partitions,
                    &opts.topic_configs,
                )?;
            }
        }
    }
    let warmup = u64::try_from(opts.warmup.as_nanos()).unwrap_or(u64::MAX);
    let measure_from_ns = mono_ns().saturating_add(warmup);
    let driven = match opts.client {
        Client::Librdkafka => drive(bootstrap, topic, opts, false, measure_from_ns, broker_pid)?,
        Client::Brook => crate::native::drive(bootstrap, topic, opts, measure_from_ns, broker_pid)?,
    };
    driven.check_delivered()?;
    let broker = driven.probe.map(|p| p.finish(driven.bytes)).transpose()?;
    let seconds = driven.seconds();
    let (records_per_sec, mb_per_sec) = rates(driven.delivered, driven.bytes, seconds);
    Ok(ProduceReport {
        bootstrap: bootstrap.into(),
        topic: topic.into(),
        client: opts.client,
        acks: opts.acks,
        producers: opts.producers,
        record_size: opts.record_size,
        compression: opts.compression,
        linger_ms: opts.linger_ms,
        batch_size: opts.batch_size,
        idempotence: opts.idempotence,
        rate_limit: opts.rate,
        records: driven.delivered,
        bytes: driven.bytes,
        errors: driven.errors,
        seconds,
        records_per_sec,
        mb_per_sec,
        latency: driven.latency.percentiles(),
        transaction_records: opts.transaction_records,
        abort_percent: opts.abort_percent,
        transactions: driven.transactions,
        transactions_per_sec: if seconds > 0.0 {
            driven.transactions as f64 / seconds
        } else {
            0.0
        },
        commit_latency: opts
            .transaction_records
            .map(|_| driven.commit_latency.percentiles()),
        broker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborted_transactions_are_spread_evenly() {
        let count = |p: u8| {
            let t = Transactions {
                records: 1,
                abort_percent: p,
            };
            (0..1000).filter(|n| t.aborts(*n)).count()
        };
        assert_eq!(count(0), 0);
        assert_eq!(count(10), 100);
        assert_eq!(count(100), 1000);
        let t = Transactions {
            records: 1,
            abort_percent: 10,
        };
        assert_eq!((0..10).filter(|n| t.aborts(*n)).count(), 1);
    }

    #[test]
    fn payload_has_the_size_and_differs_per_seed() {
        for size in [1, 7, 8, 9, 1024] {
            assert_eq!(payload(size, 1).len(), size);
        }
        assert_ne!(payload(64, 1), payload(64, 2));
        assert_eq!(payload(64, 3), payload(64, 3));
    }

    #[test]
    fn seconds_from_measure_start_to_last_delivery() {
        let d = Driven {
            measure_from_ns: 1_000_000_000,
            last_ns: 3_500_000_000,
            delivered: 10,
            bytes: 10,
            errors: 0,
            first_error: None,
            latency: LatencyHistogram::new(),
            transactions: 0,
            commit_latency: LatencyHistogram::new(),
            probe: None,
        };
        assert_eq!(d.seconds(), 2.5);
        assert!(d.check_delivered().is_ok());
        let none = Driven {
            delivered: 0,
            last_ns: 0,
            errors: 3,
            first_error: Some("Broker: timed out".into()),
            ..d
        };
        assert_eq!(none.seconds(), 0.0);
        let msg = none.check_delivered().unwrap_err().to_string();
        assert!(
            msg.contains("3 delivery errors, first: Broker: timed out"),
            "{msg}"
        );
    }
}
