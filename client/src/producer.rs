//! The producer: records gathered into one batch per partition, sent to each partition's
//! leader when the batch is full or has waited `linger`, with compression, acks, retries
//! and idempotence.
//!
//! [`Producer::send`] only appends to the partition's open batch (encoding the record once)
//! and returns a [`Delivery`] that resolves when the broker has acknowledged it. A
//! background task seals batches (compression, producer id, epoch and sequence), groups
//! them per leader into Produce requests (one batch per partition per request, as brokers
//! require), and keeps up to `max_in_flight` requests outstanding per broker.
//!
//! With a `transactional_id` the batches are transactional and the transaction API is in
//! [`crate::transaction`].
//!
//! With idempotence (the default, as in Kafka 3+) the producer gets a producer id from
//! InitProducerId and numbers each partition's batches; a batch that failed on the way
//! (a dropped connection, a leader change) is sent again with the same numbers, so the
//! broker writes it once.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use brook_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use brook_protocol::kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, TopicName};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use bytes::Bytes;
use tokio::sync::{oneshot, Notify, Semaphore};

use crate::cluster::Cluster;
use crate::error::check;
use crate::partitioner::partition_for_key;
use crate::record::{BatchBuilder, Compression, ProducerRecord};
use crate::transaction::Transactions;
use crate::{ClientConfig, ClientError};

/// How many acknowledgements a send waits for (Kafka's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker does not answer; offsets are unknown (-1).
    None,
    /// `acks=1`: the leader has written the batch.
    Leader,
    /// `acks=all`: every in-sync replica has (on Brook, the same as the leader).
    All,
}

impl Acks {
    fn code(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    /// `0`, `1`, `all` or `-1`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "0" => Some(Acks::None),
            "1" => Some(Acks::Leader),
            "all" | "-1" => Some(Acks::All),
            _ => None,
        }
    }
}

/// Producer settings, named after Kafka's producer configs.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub client: ClientConfig,
    pub acks: Acks,
    /// `linger.ms`: how long a batch that is not full waits for more records.
    pub linger: Duration,
    /// `batch.size`: bytes of records per partition batch (before compression).
    pub batch_size: usize,
    /// `compression.type`.
    pub compression: Compression,
    /// `enable.idempotence`: needs `acks=all`.
    pub idempotence: bool,
    /// `max.in.flight.requests.per.connection` (at most 5 with idempotence).
    pub max_in_flight: usize,
    /// `delivery.timeout.ms`: how long a record may take, retries included.
    pub delivery_timeout: Duration,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// `max.request.size`: bytes of one Produce request (a single larger batch still goes).
    pub max_request_size: usize,
    /// `buffer.memory`: bytes of records waiting to be sent before `send` waits.
    pub buffer_memory: usize,
    /// `transactional.id`: with one, records are sent in transactions
    /// ([`Producer::begin_transaction`]); needs idempotence.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open longer.
    pub transaction_timeout: Duration,
}

impl ProducerConfig {
    /// Kafka's producer defaults (idempotent, acks=all, linger 5 ms) with a 1 MB batch, as
    /// librdkafka's `batch.size`.
    pub fn new(client: ClientConfig) -> Self {
        Self {
            client,
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 1_000_000,
            compression: Compression::None,
            idempotence: true,
            max_in_flight: 5,
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(100),
            max_request_size: 1_048_576,
            buffer_memory: 32 * 1024 * 1024,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// Where an acknowledged record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// -1 with `acks=0`.
    pub offset: i64,
    /// The record's timestamp (the broker's with `LogAppendTime`).
    pub timestamp: i64,
}

/// The outcome of one [`Producer::send`]: await it for the record's offset. Dropping it
/// does not cancel the send.
#[derive(Debug)]
pub struct Delivery {
    rx: oneshot::Receiver<Result<RecordMetadata, ClientError>>,
}

impl Future for Delivery {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

/// One record's waiter in a batch: its timestamp, for the metadata.
type Waiter = (oneshot::Sender<Result<RecordMetadata, ClientError>>, i64);

/// A partition's batch being filled.
struct OpenBatch {
    builder: BatchBuilder,
    waiters: Vec<Waiter>,
    bytes: usize,
    created: Instant,
}

/// A sealed batch on its way (kept for a retry with the same sequence).
struct Sealed {
    topic: Arc<str>,
    partition: i32,
    bytes: Bytes,
    waiters: Vec<Waiter>,
    /// Buffer bytes to give back when done.
    buffered: usize,
    deadline: Instant,
    /// When a retry may go (now for new batches).
    not_before: Instant,
    sequence: i32,
    /// Whether this batch failed once (it is a resend).
    retry: bool,
    /// Whether it is counted in `Accumulator::retrying` (failed, not yet taken to go again).
    counted: bool,
}

#[derive(Default)]
struct Accumulator {
    /// Each topic's partition count and when metadata said so (asked again after
    /// `metadata.max.age.ms`, so new partitions get records).
    partitions: HashMap<Arc<str>, (i32, Instant)>,
    /// Open batches by topic, then partition.
    open: HashMap<Arc<str>, Vec<Option<OpenBatch>>>,
    /// Sealed batches waiting to be sent, in order (retries first).
    queue: VecDeque<Sealed>,
    /// The partition unkeyed records go to, per topic (sticky until its batch fills).
    sticky: HashMap<Arc<str>, i32>,
    /// The next sequence number per (topic, partition).
    sequences: HashMap<(Arc<str>, i32), i32>,
    /// Batches per (topic, partition) that failed and wait to go again: with idempotence
    /// no later batch of the partition may go before them (the broker would take it and
    /// then refuse the retried ones as out of order).
    retrying: HashMap<(Arc<str>, i32), usize>,
    /// Send every open batch now, whatever its age (a flush or close is waiting).
    flushing: bool,
    closed: bool,
}

pub(crate) struct Shared {
    pub(crate) cluster: Arc<Cluster>,
    config: ProducerConfig,
    /// Producer id and epoch (-1, -1 without idempotence).
    pub(crate) producer: (i64, i16),
    /// The transactions of a producer with a `transactional.id`.
    pub(crate) txn: Option<Transactions>,
    acc: Mutex<Accumulator>,
    /// Wakes the sender: a batch is full, a flush started, a retry is due.
    wake: Notify,
    /// Records sent but not yet acknowledged or failed.
    outstanding: AtomicUsize,
    /// Notified when `outstanding` drops to zero.
    idle: Notify,
    /// Bytes of records that may wait in the producer (`buffer.memory`).
    buffer: Semaphore,
    /// Requests in flight per broker.
    in_flight: Mutex<HashMap<i32, Arc<Semaphore>>>,
}

/// The producer (see the module docs). Cheap to share: clone it or put it in an `Arc`.
#[derive(Clone)]
pub struct Producer {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("producer_id", &self.shared.producer.0)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Connects to the cluster and, with idempotence, gets a producer id.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), brook_client::ClientError> {
    /// use brook_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};
    /// let producer = Producer::new(ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"))).await?;
    /// let delivery = producer
    ///     .send(ProducerRecord::new("loans", "LoanRequested").key("loan-42"))
    ///     .await?;
    /// let written = delivery.await?;
    /// println!("partition {} offset {}", written.partition, written.offset);
    /// producer.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn new(config: ProducerConfig) -> Result<Self, ClientError> {
        if config.idempotence && config.acks != Acks::All {
            return Err(ClientError::Config(
                "enable.idempotence needs acks=all (set idempotence off for acks 0 or 1)".into(),
            ));
        }
        if config.idempotence && !(1..=5).contains(&config.max_in_flight) {
            return Err(ClientError::Config(
                "enable.idempotence needs max.in.flight.requests.per.connection between 1 and 5"
                    .into(),
            ));
        }
        if config.transactional_id.is_some() && !config.idempotence {
            return Err(ClientError::Config(
                "transactional.id needs enable.idempotence (and acks=all)".into(),
            ));
        }
        let cluster = Cluster::connect(config.client.clone()).await?;
        let mut txn = None;
        let producer = if let Some(id) = &config.transactional_id {
            let (transactions, ids) =
                Transactions::init(&cluster, id, config.transaction_timeout).await?;
            txn = Some(transactions);
            ids
        } else if config.idempotence {
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1);
            let answer = cluster.any().await?.send(&request).await?;
            check(answer.error_code, None, "getting a producer id")?;
            (answer.producer_id.0, answer.producer_epoch)
        } else {
            (-1, -1)
        };
        let buffer = Semaphore::new(config.buffer_memory.min(Semaphore::MAX_PERMITS));
        let shared = Arc::new(Shared {
            cluster,
            config,
            producer,
            txn,
            acc: Mutex::new(Accumulator::default()),
            wake: Notify::new(),
            outstanding: AtomicUsize::new(0),
            idle: Notify::new(),
            buffer,
            in_flight: Mutex::new(HashMap::new()),
        });
        tokio::spawn(run_sender(Arc::clone(&shared)));
        Ok(Self { shared })
    }

    /// The producer id and epoch (-1, -1 without idempotence).
    pub fn producer_id(&self) -> (i64, i16) {
        self.shared.producer
    }

    /// Queues `record` for its partition's next batch; waits only when `buffer_memory` is
    /// full (or, the first time a topic is seen, for its metadata).
    pub async fn send(&self, mut record: ProducerRecord) -> Result<Delivery, ClientError> {
        let shared = &self.shared;
        let partitions = self.partition_count(&record.topic).await?;
        // Unkeyed records without a partition follow the topic's sticky partition.
        let sticky = record.partition.is_none() && record.key.is_none();
        if let Some(txn) = &shared.txn {
            // The partition joins the transaction before any batch of it can be sealed.
            let partition = match (record.partition, &record.key) {
                (Some(p), _) => p,
                (None, Some(key)) => partition_for_key(key, partitions),
                (None, None) => *lock(&shared.acc)
                    .sticky
                    .entry(Arc::from(record.topic.as_str()))
                    .or_insert_with(|| sticky_start(partitions)),
            };
            txn.add_partition(&shared.cluster, shared.producer, &record.topic, partition)
                .await?;
            record.partition = Some(partition);
        }
        let size = record.size_estimate().max(1);
        let permits = u32::try_from(size.min(shared.config.buffer_memory)).unwrap_or(u32::MAX);
        shared
            .buffer
            .acquire_many(permits)
            .await
            .map_err(|_| ClientError::Closed)?
            .forget();
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let (tx, rx) = oneshot::channel();
        let wake = {
            let mut acc = lock(&shared.acc);
            if acc.closed {
                drop(acc);
                shared.buffer.add_permits(permits as usize);
                return Err(ClientError::Closed);
            }
            let topic: Arc<str> = match acc.open.get_key_value(record.topic.as_str()) {
                Some((t, _)) => Arc::clone(t),
                None => Arc::from(record.topic.as_str()),
            };
            let partition = match (record.partition, &record.key) {
                (Some(p), _) => p,
                (None, Some(key)) => partition_for_key(key, partitions),
                (None, None) => *acc
                    .sticky
                    .entry(Arc::clone(&topic))
                    .or_insert_with(|| sticky_start(partitions)),
            };
            let index = usize::try_from(partition)
                .ok()
                .filter(|p| *p < usize::try_from(partitions).unwrap_or(0));
            let Some(index) = index else {
                drop(acc);
                shared.buffer.add_permits(permits as usize);
                return Err(ClientError::Config(format!(
                    "{} has no partition {partition} (it has {partitions})",
                    record.topic
                )));
            };
            let batch_size = shared.config.batch_size;
            let slots = acc.open.entry(Arc::clone(&topic)).or_default();
            if slots.len() <= index {
                slots.resize_with(index + 1, || None);
            }
            // A batch that cannot take this record leaves now; the record starts a new one.
            let mut sealed_one = false;
            if let Some(open) = &slots[index] {
                if open.builder.count() > 0 && open.builder.size() + size > batch_size {
                    sealed_one = true;
                }
            }
            if sealed_one {
                let open = slots[index].take();
                if let Some(open) = open {
                    seal_into(shared, &mut acc, &topic, partition, open);
                }
            }
            let slots = acc.open.entry(Arc::clone(&topic)).or_default();
            // A new batch gives the sender a new linger deadline to wait for.
            let opened = slots[index].is_none();
            let open = slots[index].get_or_insert_with(|| OpenBatch {
                builder: BatchBuilder::new(batch_size.min(1 << 20)),
                waiters: Vec::new(),
                bytes: 0,
                created: Instant::now(),
            });
            open.builder.push(&record, timestamp);
            open.waiters.push((tx, timestamp));
            open.bytes += permits as usize;
            let full = open.builder.size() >= batch_size;
            if full {
                if let Some(open) = slots[index].take() {
                    seal_into(shared, &mut acc, &topic, partition, open);
                }
            }
            if (full || sealed_one) && sticky {
                // Unkeyed records move on to the next partition once a batch is complete.
                if let Some(p) = acc.sticky.get_mut(&topic) {
                    *p = (*p + 1) % partitions.max(1);
                }
            }
            full || sealed_one || opened
        };
        shared.outstanding.fetch_add(1, Ordering::AcqRel);
        if wake {
            shared.wake.notify_one();
        }
        Ok(Delivery { rx })
    }

    /// Sends every queued record now and waits until each is acknowledged or has failed.
    pub async fn flush(&self) {
        let shared = &self.shared;
        loop {
            let idle = shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if shared.outstanding.load(Ordering::Acquire) == 0 {
                lock(&shared.acc).flushing = false;
                return;
            }
            lock(&shared.acc).flushing = true;
            shared.wake.notify_one();
            idle.await;
        }
    }

    /// Flushes, then stops the producer: later sends fail with [`ClientError::Closed`].
    pub async fn close(&self) -> Result<(), ClientError> {
        self.flush().await;
        lock(&self.shared.acc).closed = true;
        self.shared.wake.notify_one();
        Ok(())
    }

    async fn partition_count(&self, topic: &str) -> Result<i32, ClientError> {
        let max_age = self.shared.config.client.metadata_max_age;
        if let Some((n, _)) = lock(&self.shared.acc)
            .partitions
            .get(topic)
            .filter(|(_, at)| at.elapsed() < max_age)
        {
            return Ok(*n);
        }
        let meta = self.shared.cluster.topic(topic, true).await?;
        let n = i32::try_from(meta.leaders.len()).unwrap_or(i32::MAX);
        if n == 0 {
            return Err(ClientError::Broker {
                code: 5,
                message: format!("topic {topic} has no partitions yet"),
            });
        }
        let mut acc = lock(&self.shared.acc);
        let name: Arc<str> = Arc::from(topic);
        acc.partitions.insert(Arc::clone(&name), (n, meta.fetched));
        let slots = acc.open.entry(name).or_default();
        if slots.len() < n as usize {
            slots.resize_with(n as usize, || None);
        }
        Ok(n)
    }
}

/// Seals `open` (numbering it for idempotence) onto the send queue.
fn seal_into(
    shared: &Shared,
    acc: &mut Accumulator,
    topic: &Arc<str>,
    partition: i32,
    open: OpenBatch,
) {
    let sealing = Sealing {
        config: &shared.config,
        producer: shared.producer,
        transactional: shared.txn.is_some(),
    };
    match seal_batch(&sealing, acc, topic, partition, open) {
        Ok(batch) => acc.queue.push_back(batch),
        Err(failed) => {
            let (batch, e) = *failed;
            finish(shared, batch, Err(e));
        }
    }
}

/// What sealing a batch needs to know of its producer.
struct Sealing<'a> {
    config: &'a ProducerConfig,
    producer: (i64, i16),
    transactional: bool,
}

/// Encodes `open` as a batch, numbered for idempotence; the batch and why on failure.
fn seal_batch(
    sealing: &Sealing<'_>,
    acc: &mut Accumulator,
    topic: &Arc<str>,
    partition: i32,
    open: OpenBatch,
) -> Result<Sealed, Box<(Sealed, ClientError)>> {
    let count = open.builder.count();
    let sequence = if sealing.producer.0 >= 0 {
        let next = acc
            .sequences
            .entry((Arc::clone(topic), partition))
            .or_insert(0);
        let sequence = *next;
        *next = next.wrapping_add(count) & i32::MAX;
        sequence
    } else {
        -1
    };
    let sealed = open.builder.seal(
        sealing.config.compression,
        sealing.producer,
        sequence,
        sealing.transactional,
    );
    let mut batch = Sealed {
        topic: Arc::clone(topic),
        partition,
        bytes: Bytes::new(),
        waiters: open.waiters,
        buffered: open.bytes,
        deadline: open.created + sealing.config.delivery_timeout,
        // Free to go at once. Not `Instant::now()`: the sender compares with the instant its
        // pass began, and a batch sealed during that pass would wait for a timer tick (1 ms).
        not_before: open.created,
        sequence,
        retry: false,
        counted: false,
    };
    match sealed {
        Ok(bytes) => {
            batch.bytes = bytes;
            Ok(batch)
        }
        Err(e) => Err(Box::new((batch, e))),
    }
}

/// Completes a batch's records: their metadata from the partition's base offset, or the
/// error; gives the buffer space back.
fn finish(shared: &Shared, batch: Sealed, result: Result<(i64, i64), ClientError>) {
    if let (Some(txn), Err(e)) = (&shared.txn, &result) {
        txn.note_failure(e);
    }
    let n = batch.waiters.len();
    for (i, (tx, timestamp)) in batch.waiters.into_iter().enumerate() {
        let outcome = match &result {
            Ok((base, log_append_time)) => Ok(RecordMetadata {
                topic: batch.topic.to_string(),
                partition: batch.partition,
                offset: if *base < 0 { -1 } else { base + i as i64 },
                timestamp: if *log_append_time >= 0 {
                    *log_append_time
                } else {
                    timestamp
                },
            }),
            Err(e) => Err(e.clone()),
        };
        let _ = tx.send(outcome);
    }
    shared.buffer.add_permits(batch.buffered);
    if shared.outstanding.fetch_sub(n, Ordering::AcqRel) == n {
        shared.idle.notify_waiters();
    }
}

/// The sender task: seals batches that are due, sends the queue, sleeps until the next
/// batch is due or it is woken.
async fn run_sender(shared: Arc<Shared>) {
    loop {
        let (ready, next_due, done) = take_ready(&shared);
        if !ready.is_empty() {
            dispatch(&shared, ready).await;
        }
        if done {
            return;
        }
        let wake = shared.wake.notified();
        match next_due {
            Some(due) => {
                let _ = tokio::time::timeout_at(due.into(), wake).await;
            }
            None => wake.await,
        }
    }
}

/// Seals the open batches whose linger passed (all of them when flushing) and takes the
/// queued batches that may go now; when the next one is due; whether the producer closed
/// with nothing left.
fn take_ready(shared: &Shared) -> (Vec<Sealed>, Option<Instant>, bool) {
    let now = Instant::now();
    let linger = shared.config.linger;
    let mut acc = lock(&shared.acc);
    let flushing = acc.flushing || acc.closed;
    let mut due = Vec::new();
    let mut next: Option<Instant> = None;
    for (topic, slots) in &mut acc.open {
        for (p, slot) in slots.iter_mut().enumerate() {
            let Some(open) = slot else { continue };
            let at = open.created + linger;
            if flushing || at <= now {
                if let Some(open) = slot.take() {
                    due.push((Arc::clone(topic), p as i32, open));
                }
            } else {
                next = Some(next.map_or(at, |n: Instant| n.min(at)));
            }
        }
    }
    for (topic, partition, open) in due {
        seal_into(shared, &mut acc, &topic, partition, open);
    }
    let (ready, due_next) = pick_ready(&mut acc, now);
    if let Some(at) = due_next {
        next = Some(next.map_or(at, |n: Instant| n.min(at)));
    }
    let done = acc.closed && acc.queue.is_empty() && ready.is_empty();
    (ready, next, done)
}

/// Takes the queued batches that may go at `now` (a partition whose first waiting batch is
/// backing off keeps its later batches too) and says when the first held one is due.
fn pick_ready(acc: &mut Accumulator, now: Instant) -> (Vec<Sealed>, Option<Instant>) {
    let mut next: Option<Instant> = None;
    let mut ready = Vec::new();
    let mut later = VecDeque::new();
    // A partition whose first waiting batch is backing off waits behind it.
    let mut held: Vec<(Arc<str>, i32)> = Vec::new();
    while let Some(mut batch) = acc.queue.pop_front() {
        let key = (Arc::clone(&batch.topic), batch.partition);
        if batch.not_before <= now && !held.contains(&key) {
            if batch.counted {
                batch.counted = false;
                if let Some(n) = acc.retrying.get_mut(&key) {
                    *n = n.saturating_sub(1);
                }
            }
            ready.push(batch);
        } else {
            // Only the backing-off batch itself says when to look again; the ones behind it
            // (due already) would otherwise wake the sender at once, over and over.
            if !held.contains(&key) {
                next = Some(next.map_or(batch.not_before, |n| n.min(batch.not_before)));
                held.push(key);
            }
            later.push_back(batch);
        }
    }
    acc.queue = later;
    (ready, next)
}

/// Groups `batches` per leader into Produce requests and sends them, each under an
/// in-flight permit of its broker; the answers are handled by spawned tasks.
async fn dispatch(shared: &Arc<Shared>, batches: Vec<Sealed>) {
    // (leader, requests to it in order: each a list of batches, one per partition).
    let mut per_leader: Vec<(i32, Vec<Vec<Sealed>>)> = Vec::new();
    for batch in batches {
        let leader = match shared.cluster.leader(&batch.topic, batch.partition).await {
            Ok(l) => l,
            Err(e) => {
                retry_or_fail(shared, batch, e);
                continue;
            }
        };
        let index = match per_leader.iter().position(|(l, _)| *l == leader) {
            Some(i) => i,
            None => {
                per_leader.push((leader, Vec::new()));
                per_leader.len() - 1
            }
        };
        let requests = &mut per_leader[index].1;
        // The first request after the last that holds this partition, with room left.
        let after = requests
            .iter()
            .rposition(|r| {
                r.iter()
                    .any(|b| b.partition == batch.partition && b.topic == batch.topic)
            })
            .map_or(0, |i| i + 1);
        let max = shared.config.max_request_size;
        let slot = (after..requests.len()).find(|&i| {
            let size: usize = requests[i].iter().map(|b| b.bytes.len()).sum();
            size + batch.bytes.len() <= max
        });
        match slot {
            Some(i) => requests[i].push(batch),
            None => requests.push(vec![batch]),
        }
    }
    for (leader, requests) in per_leader {
        let permits = {
            let mut map = lock(&shared.in_flight);
            Arc::clone(
                map.entry(leader)
                    .or_insert_with(|| Arc::new(Semaphore::new(shared.config.max_in_flight))),
            )
        };
        for request in requests {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let connection = match shared.cluster.broker(leader).await {
                Ok(c) => c,
                Err(e) => {
                    for batch in request {
                        retry_or_fail(shared, batch, e.clone());
                    }
                    continue;
                }
            };
            // A partition that had a batch fail meanwhile sends nothing newer until that
            // batch went again.
            let request = hold_behind_retries(shared, request);
            if request.is_empty() {
                continue;
            }
            let produce = produce_request(shared, &request);
            let version = match connection.version_for::<ProduceRequest>() {
                Ok(v) => v,
                Err(e) => {
                    for batch in request {
                        finish(shared, batch, Err(e.clone()));
                    }
                    continue;
                }
            };
            if shared.config.acks == Acks::None {
                let sent = connection.send_unanswered(version, &produce).await;
                drop(permit);
                for batch in request {
                    finish(
                        shared,
                        batch,
                        sent.as_ref().map(|()| (-1, -1)).map_err(Clone::clone),
                    );
                }
                continue;
            }
            // The request is written in turn (so requests to a broker keep their order);
            // its answer is awaited apart, so the next request can go meanwhile.
            let answer = match connection.submit(version, &produce).await {
                Ok(answer) => answer,
                Err(e) => {
                    drop(permit);
                    for batch in request {
                        retry_or_fail(shared, batch, e.clone());
                    }
                    shared.wake.notify_one();
                    continue;
                }
            };
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                let answer = answer.wait().await;
                // Failed batches are queued again before the permit frees a slot for
                // newer ones.
                handle_answer(&shared, request, answer);
                drop(permit);
            });
        }
    }
}

/// The batches of `request` that may go now; the others (new batches of partitions with a
/// failed batch waiting to go again) back onto the queue, in order.
fn hold_behind_retries(shared: &Shared, request: Vec<Sealed>) -> Vec<Sealed> {
    if shared.producer.0 < 0 {
        return request;
    }
    let mut acc = lock(&shared.acc);
    let mut go = Vec::with_capacity(request.len());
    for batch in request {
        let key = (Arc::clone(&batch.topic), batch.partition);
        if !batch.retry && acc.retrying.get(&key).is_some_and(|n| *n > 0) {
            enqueue_in_order(&mut acc, batch);
        } else {
            go.push(batch);
        }
    }
    go
}

/// Puts `batch` back on the queue before the later batches of its partition.
fn enqueue_in_order(acc: &mut Accumulator, batch: Sealed) {
    let at = acc
        .queue
        .iter()
        .position(|b| {
            b.topic == batch.topic && b.partition == batch.partition && b.sequence > batch.sequence
        })
        .unwrap_or(acc.queue.len());
    acc.queue.insert(at, batch);
}

fn produce_request(shared: &Shared, batches: &[Sealed]) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for b in batches {
        let data = PartitionProduceData::default()
            .with_index(b.partition)
            .with_records(Some(b.bytes.clone()));
        match topics.iter_mut().find(|t| t.name.0.as_str() == &*b.topic) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(b.topic.to_string())))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    let timeout = i32::try_from(shared.config.client.timeout.as_millis()).unwrap_or(i32::MAX);
    ProduceRequest::default()
        .with_transactional_id(shared.txn.as_ref().map(|t| {
            brook_protocol::kafka_protocol::messages::TransactionalId(StrBytes::from_string(
                t.id.clone(),
            ))
        }))
        .with_acks(shared.config.acks.code())
        .with_timeout_ms(timeout)
        .with_topic_data(topics)
}

fn handle_answer(
    shared: &Shared,
    request: Vec<Sealed>,
    answer: Result<brook_protocol::kafka_protocol::messages::ProduceResponse, ClientError>,
) {
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            for batch in request {
                retry_or_fail(shared, batch, e.clone());
            }
            shared.wake.notify_one();
            return;
        }
    };
    let mut retried = false;
    for batch in request {
        let result = response
            .responses
            .iter()
            .filter(|t| t.name.0.as_str() == &*batch.topic)
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == batch.partition);
        let Some(result) = result else {
            let e = ClientError::Codec {
                what: "a Produce response",
                message: format!(
                    "no answer for {} partition {}",
                    batch.topic, batch.partition
                ),
            };
            finish(shared, batch, Err(e));
            continue;
        };
        let mut message = result.error_message.as_ref().map(|m| m.to_string());
        if let Some(first) = result.record_errors.first() {
            let whole = message.unwrap_or_default();
            // The record's own message, unless the partition's already says it.
            let detail = first
                .batch_index_error_message
                .as_ref()
                .filter(|m| m.as_str() != whole)
                .map_or(String::new(), |m| format!(": {m}"));
            message = Some(format!("{whole} (record {}{detail})", first.batch_index));
        }
        let what = format!("producing to {} partition {}", batch.topic, batch.partition);
        match check(result.error_code, message.as_deref(), &what) {
            Ok(()) => finish(
                shared,
                batch,
                Ok((result.base_offset, result.log_append_time_ms)),
            ),
            Err(e) => {
                retried = true;
                retry_or_fail(shared, batch, e);
            }
        }
    }
    if retried {
        shared.wake.notify_one();
    }
}

/// Queues `batch` again (same bytes, same sequence) when `error` is retriable and its
/// delivery timeout allows; otherwise fails its records.
fn retry_or_fail(shared: &Shared, mut batch: Sealed, error: ClientError) {
    let code = error.code();
    // A leader change or unknown partition: ask for metadata again before the retry.
    if matches!(code, Some(3 | 5 | 6)) || !matches!(error, ClientError::Broker { .. }) {
        shared.cluster.forget(&batch.topic);
    }
    // With idempotence an earlier batch's failure makes the later ones out of order until
    // it is retried: they are retried too.
    let out_of_order = shared.producer.0 >= 0 && code == Some(45);
    let now = Instant::now();
    if (error.is_retriable() || out_of_order) && now + shared.config.retry_backoff < batch.deadline
    {
        batch.not_before = now + shared.config.retry_backoff;
        let mut acc = lock(&shared.acc);
        batch.retry = true;
        if !batch.counted {
            batch.counted = true;
            *acc.retrying
                .entry((Arc::clone(&batch.topic), batch.partition))
                .or_insert(0) += 1;
        }
        enqueue_in_order(&mut acc, batch);
    } else {
        finish(shared, batch, Err(error));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; go on with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where a topic's unkeyed records start (spread over producers by the clock).
fn sticky_start(partitions: i32) -> i32 {
    i32::try_from(now_ms().rem_euclid(i64::from(partitions.max(1)))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientConfig;

    fn idempotent(config: &ProducerConfig) -> Sealing<'_> {
        Sealing {
            config,
            producer: (7, 0),
            transactional: false,
        }
    }

    fn open_batch(created: Instant) -> OpenBatch {
        let mut builder = BatchBuilder::new(1024);
        builder.push(&ProducerRecord::new("t", "v"), 1);
        OpenBatch {
            builder,
            waiters: Vec::new(),
            bytes: 1,
            created,
        }
    }

    #[test]
    fn a_batch_sealed_during_a_pass_goes_in_that_pass() {
        let config = ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"));
        let sealing = idempotent(&config);
        let mut acc = Accumulator::default();
        let topic: Arc<str> = Arc::from("t");
        // The sender's pass starts, then seals a batch opened before it (a flush).
        let pass = Instant::now();
        let opened = pass - Duration::from_millis(1);
        std::thread::sleep(Duration::from_millis(2));
        let Ok(batch) = seal_batch(&sealing, &mut acc, &topic, 0, open_batch(opened)) else {
            panic!("sealing failed");
        };
        acc.queue.push_back(batch);
        let (ready, next) = pick_ready(&mut acc, pass);
        assert_eq!(ready.len(), 1, "the sealed batch must not wait for a timer");
        assert_eq!(next, None);
        assert_eq!(ready[0].sequence, 0);
    }

    #[test]
    fn a_partition_backing_off_holds_its_later_batches() {
        let config = ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"));
        let sealing = idempotent(&config);
        let mut acc = Accumulator::default();
        let (t, u): (Arc<str>, Arc<str>) = (Arc::from("t"), Arc::from("u"));
        let now = Instant::now();
        let seal = |acc: &mut Accumulator, topic: &Arc<str>| {
            seal_batch(&sealing, acc, topic, 0, open_batch(now))
                .ok()
                .expect("sealing")
        };
        let mut retried = seal(&mut acc, &t);
        retried.not_before = now + Duration::from_millis(100);
        let behind = seal(&mut acc, &t);
        let other = seal(&mut acc, &u);
        acc.queue.extend([retried, behind, other]);
        let (ready, next) = pick_ready(&mut acc, now);
        assert_eq!(ready.len(), 1);
        assert_eq!(&*ready[0].topic, "u");
        assert_eq!(next, Some(now + Duration::from_millis(100)));
        let held: Vec<i32> = acc.queue.iter().map(|b| b.sequence).collect();
        assert_eq!(held, vec![0, 1], "t's batches keep their order");
    }
}
