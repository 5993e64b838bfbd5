//! `consume`: read every partition of a topic from the beginning (assigned, no group
//! membership, no commits) until `--count` records or the end offsets taken at the start.
//!
//! `--isolation read_committed` reads committed transactions only: records of aborted ones
//! are dropped by the client, and the end of a partition is where the consumer reports
//! reaching it (its last offsets are transaction markers, which it never returns).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::cli::{Client, ConsumeOpts, Isolation, ProduceOpts};
use crate::error::BenchError;
use crate::procfs::Probe;
use crate::report::{rates, ConsumeReport};
use crate::{kafka, produce};

/// Where a consume run stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Until {
    /// After this many records.
    Count(u64),
    /// When every partition reached its end offset (partition → end); empty partitions are
    /// left out.
    Ends(HashMap<i32, i64>),
    /// When the consumer reported the end of each of these partitions (read_committed).
    Eof(HashSet<i32>),
}

impl Until {
    /// From `--count` or the `(partition, low, high)` watermarks.
    pub(crate) fn new(count: Option<u64>, marks: &[(i32, i64, i64)]) -> Self {
        match count {
            Some(n) => Until::Count(n),
            None => Until::Ends(
                marks
                    .iter()
                    .filter(|(_, low, high)| high > low)
                    .map(|&(p, _, high)| (p, high))
                    .collect(),
            ),
        }
    }

    /// Whether nothing is to be read.
    pub(crate) fn is_done_already(&self) -> bool {
        match self {
            Until::Ends(ends) => ends.is_empty(),
            Until::Eof(partitions) => partitions.is_empty(),
            Until::Count(_) => false,
        }
    }

    /// Reading to the end as the consumer reports it, instead of to end offsets: for
    /// read_committed, whose partitions end in markers the consumer never returns.
    pub(crate) fn by_eof(self) -> Self {
        match self {
            Until::Ends(ends) => Until::Eof(ends.into_keys().collect()),
            other => other,
        }
    }

    /// The consumer reached the end of `partition` (a partition ending in transaction
    /// markers never returns its last offsets); true when the run is complete.
    pub(crate) fn end_of(&mut self, partition: i32) -> bool {
        match self {
            Until::Eof(partitions) => {
                partitions.remove(&partition);
                partitions.is_empty()
            }
            Until::Ends(ends) => ends.remove(&partition).is_some() && ends.is_empty(),
            Until::Count(_) => false,
        }
    }

    /// Accounts one record (the `records`-th, at `offset` of `partition`); true when the run
    /// is complete.
    pub(crate) fn record(&mut self, records: u64, partition: i32, offset: i64) -> bool {
        match self {
            Until::Count(n) => records >= *n,
            Until::Eof(_) => false,
            Until::Ends(ends) => {
                if ends.get(&partition).is_some_and(|&end| offset + 1 >= end) {
                    ends.remove(&partition);
                    ends.is_empty()
                } else {
                    false
                }
            }
        }
    }
}

/// Notices a run that stopped making progress, looking at the clock only when a poll
/// came back empty.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleWatch {
    records: u64,
    since: Instant,
}

impl IdleWatch {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            records: 0,
            since: now,
        }
    }

    /// True when `records` has not moved for longer than `limit` up to `now`.
    pub(crate) fn stalled(
        &mut self,
        records: u64,
        now: Instant,
        limit: std::time::Duration,
    ) -> bool {
        if records != self.records {
            self.records = records;
            self.since = now;
            return false;
        }
        now.duration_since(self.since) > limit
    }
}

/// Reads `topic` (after `--fill` if asked) and reports throughput.
pub fn run(
    bootstrap: &str,
    topic: &str,
    opts: &ConsumeOpts,
    broker_pid: Option<u32>,
) -> Result<ConsumeReport, BenchError> {
    if let Some(n) = opts.fill {
        fill(bootstrap, topic, n, opts)?;
    }
    if opts.client == Client::Brook {
        return crate::native::consume(bootstrap, topic, opts, broker_pid);
    }
    let committed = opts.isolation == Isolation::ReadCommitted;
    let consumer = kafka::throughput_consumer_with(bootstrap, opts.isolation)?;
    let marks = kafka::watermarks(&consumer, topic)?;
    let mut until = Until::new(opts.count, &marks);
    if committed {
        until = until.by_eof();
    }
    if until.is_done_already() {
        return Err(BenchError::Failed(format!(
            "topic {topic} is empty (fill it first, e.g. with --fill)"
        )));
    }
    let mut assignment = TopicPartitionList::new();
    for &(p, _, _) in &marks {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| BenchError::kafka("building the assignment", e))?;
    }

    let probe = Probe::start(broker_pid)?;
    let start = Instant::now();
    consumer
        .assign(&assignment)
        .map_err(|e| BenchError::kafka(format!("assigning {topic}"), e))?;
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut idle = IdleWatch::new(start);
    loop {
        match consumer.poll(kafka::POLL_INTERVAL) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload_len() as u64;
                if until.record(records, m.partition(), m.offset()) {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if until.end_of(p) {
                    break;
                }
            }
            Some(Err(e)) => {
                // Fetch errors are often transient (a reconnect); the idle timeout ends a
                // run that makes no progress.
                eprintln!("brook-bench: consumer: {e}");
            }
            None => {
                if idle.stalled(records, Instant::now(), opts.idle_timeout) {
                    return Err(BenchError::Timeout(format!(
                        "no record from {topic} for {:?} after {records} records",
                        opts.idle_timeout
                    )));
                }
            }
        }
    }
    let read = Read {
        partitions: marks.len(),
        records,
        bytes,
        seconds: start.elapsed().as_secs_f64(),
    };
    consume_report(bootstrap, topic, Client::Librdkafka, opts, read, probe)
}

/// What a consume run read.
pub(crate) struct Read {
    pub(crate) partitions: usize,
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
}

/// The report of a consume run by `client`, with the broker's usage since `probe` started.
pub(crate) fn consume_report(
    bootstrap: &str,
    topic: &str,
    client: Client,
    opts: &ConsumeOpts,
    read: Read,
    probe: Option<Probe>,
) -> Result<ConsumeReport, BenchError> {
    let broker = probe.map(|p| p.finish(read.bytes)).transpose()?;
    let (records_per_sec, mb_per_sec) = rates(read.records, read.bytes, read.seconds);
    Ok(ConsumeReport {
        bootstrap: bootstrap.into(),
        topic: topic.into(),
        client,
        partitions: read.partitions,
        filled: opts.fill,
        isolation: opts.isolation,
        records: read.records,
        bytes: read.bytes,
        seconds: read.seconds,
        records_per_sec,
        mb_per_sec,
        broker,
    })
}

/// Produces `count` records to `topic` as fast as the client goes, creating it if missing.
pub fn fill(
    bootstrap: &str,
    topic: &str,
    count: u64,
    opts: &ConsumeOpts,
) -> Result<(), BenchError> {
    let mut fill = ProduceOpts::fill(count, opts.record_size, opts.partitions);
    if let Some(n) = opts.fill_transaction_records {
        fill.acks = crate::cli::Acks::All;
        fill.transaction_records = Some(n);
        fill.abort_percent = opts.fill_abort_percent;
    }
    let report = produce::run(bootstrap, topic, &fill, None)?;
    if report.records < count {
        return Err(BenchError::Failed(format!(
            "fill: only {} of {count} records acknowledged ({} errors)",
            report.records, report.errors
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_count() {
        let mut u = Until::new(Some(3), &[(0, 0, 100)]);
        assert!(!u.is_done_already());
        assert!(!u.record(1, 0, 0));
        assert!(!u.record(2, 0, 1));
        assert!(u.record(3, 0, 2));
    }

    #[test]
    fn until_end_offsets_of_every_partition() {
        // Partition 2 is empty, partition 1 starts after retention removed 0..5.
        let mut u = Until::new(None, &[(0, 0, 2), (1, 5, 6), (2, 3, 3)]);
        assert_eq!(u, Until::Ends(HashMap::from([(0, 2), (1, 6)])));
        assert!(!u.record(1, 0, 0));
        assert!(!u.record(2, 1, 5));
        // A record of a partition already complete changes nothing.
        assert!(!u.record(3, 1, 6));
        assert!(u.record(4, 0, 1));
    }

    #[test]
    fn idle_watch() {
        use std::time::Duration;
        let t0 = Instant::now();
        let limit = Duration::from_secs(5);
        let mut w = IdleWatch::new(t0);
        assert!(!w.stalled(0, t0 + Duration::from_secs(4), limit));
        assert!(!w.stalled(10, t0 + Duration::from_secs(6), limit));
        assert!(!w.stalled(10, t0 + Duration::from_secs(10), limit));
        assert!(w.stalled(10, t0 + Duration::from_secs(12), limit));
    }

    #[test]
    fn empty_topic_is_done_already() {
        assert!(Until::new(None, &[(0, 4, 4)]).is_done_already());
        assert!(!Until::new(Some(1), &[(0, 4, 4)]).is_done_already());
    }
}
