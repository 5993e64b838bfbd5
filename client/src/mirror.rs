//! Mirroring one Kafka-compatible cluster into another: topics with their partition counts
//! and configs, then the records partition by partition (keys, values, headers, timestamps,
//! in order), then the consumer groups' committed offsets translated to the target's
//! offsets. What `brook mirror` runs.
//!
//! **Progress** is kept on the target, as the committed offsets of a group named after the
//! mirror (`brook-mirror` by default): per partition the next source offset to copy, and in
//! the commit's metadata the target's end offset at that moment. A mirror that stopped
//! between writing records and committing finds more records in the target partition than
//! its progress says; it skips that many source records when it resumes, so nothing is
//! written twice. This needs the mirror to be the only writer of the target topics.
//!
//! **Group offsets** translate exactly: the target holds the source's records one for one
//! (committed transactions' records only, control records left out), so a group committed
//! at source offset `c` is at the target's end minus the number of copied source records at
//! or after `c`, which the mirror counts by reading the source from `c`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{
    Admin, ClientConfig, ClientError, Consumer, ConsumerConfig, IsolationLevel, Producer,
    ProducerConfig, ProducerRecord, StartAt,
};

/// What to mirror, from where, to where.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub source: ClientConfig,
    pub target: ClientConfig,
    /// Topic name patterns (`*` and `?` wildcards); empty: every topic but internal ones
    /// (names starting with `_`).
    pub topics: Vec<String>,
    /// Group id patterns whose offsets are translated; empty: every group.
    pub groups: Vec<String>,
    /// The name of the mirror: its progress group on the target.
    pub name: String,
    /// Keep copying new records until stopped, instead of stopping at the end.
    pub follow: bool,
}

impl MirrorConfig {
    pub fn new(source: ClientConfig, target: ClientConfig) -> Self {
        Self {
            source,
            target,
            topics: Vec::new(),
            groups: Vec::new(),
            name: "brook-mirror".into(),
            follow: false,
        }
    }
}

/// Where a mirror run stands (reported after each round of records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorProgress {
    /// Records written to the target in this run.
    pub records: u64,
    /// Their key and value bytes.
    pub bytes: u64,
    /// Source records not copied yet (to the ends last seen).
    pub lag: i64,
}

/// What a mirror run did.
#[derive(Debug, Clone, Default)]
pub struct MirrorReport {
    /// The topics mirrored, and whether this run created them on the target.
    pub topics: Vec<(String, bool)>,
    pub records: u64,
    pub bytes: u64,
    /// Groups whose offsets were translated, with the number of partitions each.
    pub groups: Vec<(String, usize)>,
    /// Groups that could not be translated (e.g. active on the target), and why.
    pub group_errors: Vec<(String, String)>,
    pub seconds: f64,
}

/// Whether `name` matches `pattern` (`*` any run of characters, `?` one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    go(&p, &n)
}

fn selected(patterns: &[String], name: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob_match(p, name))
}

/// One mirrored partition's bookkeeping.
#[derive(Debug, Clone)]
struct Lane {
    /// Source records still to skip (already in the target from a run that stopped before
    /// committing).
    skip: i64,
    /// The target partition's end offset (the mirror is its only writer).
    target_end: i64,
    /// The source end offset when the run started.
    initial_end: i64,
}

/// One poll's records on their way to the target, and the source positions after them.
struct Round {
    positions: Vec<((String, i32), i64)>,
    deliveries: Vec<crate::Delivery>,
}

/// Rounds whose records may be unacknowledged while the mirror reads on.
const ROUNDS_IN_FLIGHT: usize = 4;

/// How often a following mirror translates group offsets.
const GROUP_SYNC_EVERY: Duration = Duration::from_secs(10);

/// Runs a mirror (see the module docs) until the source's ends are copied, or with
/// `follow` until `stop` is set. `progress` is called after each round.
pub async fn mirror(
    config: &MirrorConfig,
    stop: Arc<AtomicBool>,
    mut progress: impl FnMut(&MirrorProgress),
) -> Result<MirrorReport, ClientError> {
    let started = Instant::now();
    let source = Admin::new(config.source.clone()).await?;
    let target = Admin::new(config.target.clone()).await?;
    let mut report = MirrorReport::default();

    // Topics, partition counts and configs.
    let mut topics = Vec::new();
    for t in source.list_topics().await? {
        if t.internal || t.name.starts_with('_') || !selected(&config.topics, &t.name) {
            continue;
        }
        let partitions = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
        let created = match target.describe_topic(&t.name).await {
            Ok(existing) => {
                let have = i32::try_from(existing.partitions.len()).unwrap_or(i32::MAX);
                if have < partitions {
                    target.add_partitions(&t.name, partitions).await?;
                }
                false
            }
            Err(e) if e.code() == Some(3) => {
                let configs = source.topic_configs(&t.name).await?;
                target.create_topic(&t.name, partitions, &configs).await?;
                true
            }
            Err(e) => return Err(e),
        };
        report.topics.push((t.name.clone(), created));
        topics.push((t.name, partitions));
    }

    // Where each partition resumes.
    let progress_offsets = target.group_offsets_with_metadata(&config.name).await?;
    let mut lanes: BTreeMap<(String, i32), Lane> = BTreeMap::new();
    let mut consumer = Consumer::new(ConsumerConfig {
        isolation: IsolationLevel::ReadCommitted,
        reset: StartAt::Beginning,
        partition_max_bytes: 4 * 1024 * 1024,
        ..ConsumerConfig::new(config.source.clone())
    })
    .await?;
    for (topic, partitions) in &topics {
        let source_starts = source.list_offsets(topic, -2).await?;
        let source_ends = source.end_offsets(topic).await?;
        let target_starts = target.list_offsets(topic, -2).await?;
        let target_ends = target.end_offsets(topic).await?;
        for p in 0..*partitions {
            let key = (topic.clone(), p);
            let source_start = source_starts.get(&p).copied().unwrap_or(0);
            let target_end = target_ends.get(&p).copied().unwrap_or(0);
            let (next, recorded_end) = match progress_offsets.get(&key) {
                Some((offset, metadata)) => {
                    ((*offset).max(source_start), metadata.parse::<i64>().ok())
                }
                None => (source_start, None),
            };
            let baseline =
                recorded_end.unwrap_or_else(|| target_starts.get(&p).copied().unwrap_or(0));
            let skip = target_end - baseline;
            if skip < 0 {
                return Err(ClientError::Config(format!(
                    "{topic} partition {p} on the target has fewer records than the mirror wrote \
                     (ends at {target_end}, the mirror recorded {baseline}): were records deleted?"
                )));
            }
            let initial_end = source_ends.get(&p).copied().unwrap_or(0);
            // The records to skip were copied from the ones right after `next`: the source
            // must still have that many (records only go away from the start).
            if skip > (initial_end - next).max(0) {
                return Err(ClientError::Config(format!(
                    "{topic} partition {p} on the target has {skip} records beyond the mirror's \
                     progress, but the source has only {} left to copy: does another client \
                     write to the target topic, or does the target not keep offset commit \
                     metadata?",
                    (initial_end - next).max(0)
                )));
            }
            consumer.seek(topic, p, StartAt::Offset(next)).await?;
            lanes.insert(
                key,
                Lane {
                    skip,
                    target_end,
                    initial_end,
                },
            );
        }
    }

    let producer = Producer::new(ProducerConfig {
        linger: Duration::from_millis(2),
        ..ProducerConfig::new(config.target.clone())
    })
    .await?;
    let mut last_group_sync = Instant::now();
    let mut state = MirrorProgress::default();
    // Rounds whose records are on their way: the next poll goes out meanwhile.
    let mut in_flight: VecDeque<Round> = VecDeque::new();
    loop {
        let records = consumer.poll().await?;
        let mut deliveries = Vec::with_capacity(records.len());
        for r in records {
            let key = (r.topic.clone(), r.partition);
            let Some(lane) = lanes.get_mut(&key) else {
                continue;
            };
            if lane.skip > 0 {
                lane.skip -= 1;
                continue;
            }
            state.bytes += (r.key.as_ref().map_or(0, |k| k.len())
                + r.value.as_ref().map_or(0, |v| v.len())) as u64;
            let record = ProducerRecord {
                topic: r.topic,
                partition: Some(r.partition),
                key: r.key,
                value: r.value,
                headers: r.headers,
                timestamp: Some(r.timestamp),
            };
            deliveries.push(producer.send(record).await?);
        }
        let mut lag = 0;
        let mut done = true;
        let mut positions = Vec::with_capacity(lanes.len());
        for ((topic, p), lane) in &lanes {
            let Some(position) = consumer.position(topic, *p) else {
                continue;
            };
            positions.push(((topic.clone(), *p), position));
            let end = consumer.fetched_end(topic, *p).unwrap_or(lane.initial_end);
            lag += (end - position).max(0);
            let reached = position >= lane.initial_end || position >= end;
            if !reached || lane.skip > 0 {
                done = false;
            }
        }
        in_flight.push_back(Round {
            positions,
            deliveries,
        });
        let stopping = stop.load(Ordering::Acquire) || (!config.follow && done);
        let sync_groups =
            stopping || (config.follow && last_group_sync.elapsed() >= GROUP_SYNC_EVERY);
        if stopping || sync_groups {
            producer.flush().await;
        }
        // Progress: each round's source positions with the target end after its records,
        // committed once they are written.
        while in_flight.len() > ROUNDS_IN_FLIGHT
            || ((stopping || sync_groups) && !in_flight.is_empty())
        {
            let Some(round) = in_flight.pop_front() else {
                break;
            };
            for d in round.deliveries {
                let written = d.await?;
                if let Some(lane) = lanes.get_mut(&(written.topic.clone(), written.partition)) {
                    lane.target_end = lane.target_end.max(written.offset + 1);
                }
                state.records += 1;
            }
            let commit: BTreeMap<(String, i32), (i64, String)> = round
                .positions
                .into_iter()
                .map(|(key, position)| {
                    let end = lanes.get(&key).map_or(0, |l| l.target_end);
                    (key, (position, end.to_string()))
                })
                .collect();
            target
                .commit_group_offsets_with_metadata(&config.name, &commit)
                .await?;
        }
        state.lag = lag;
        progress(&state);
        if sync_groups {
            last_group_sync = Instant::now();
            translate_groups(config, &source, &target, &consumer, &lanes, &mut report).await?;
        }
        if stopping {
            break;
        }
    }
    producer.close().await?;
    report.records = state.records;
    report.bytes = state.bytes;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Commits on the target, for every selected source group, its offsets on mirrored
/// partitions translated to target offsets.
async fn translate_groups(
    config: &MirrorConfig,
    source: &Admin,
    target: &Admin,
    consumer: &Consumer,
    lanes: &BTreeMap<(String, i32), Lane>,
    report: &mut MirrorReport,
) -> Result<(), ClientError> {
    report.groups.clear();
    report.group_errors.clear();
    // One reader for every count of this pass, made when the first count needs it.
    let mut counter: Option<Consumer> = None;
    for group in source.list_groups().await? {
        let id = group.group_id;
        if id == config.name || !selected(&config.groups, &id) {
            continue;
        }
        let committed = source.group_offsets(&id).await?;
        let mut translated = BTreeMap::new();
        for ((topic, p), offset) in committed {
            let Some(lane) = lanes.get(&(topic.clone(), p)) else {
                continue;
            };
            let Some(position) = consumer.position(&topic, p) else {
                continue;
            };
            let copied_after = if offset >= position {
                0
            } else {
                let reader = match &mut counter {
                    Some(reader) => reader,
                    None => counter.insert(
                        Consumer::new(ConsumerConfig {
                            isolation: IsolationLevel::ReadCommitted,
                            reset: StartAt::Beginning,
                            max_wait: Duration::from_millis(100),
                            ..ConsumerConfig::new(config.source.clone())
                        })
                        .await?,
                    ),
                };
                count_records(reader, &topic, p, offset, position).await?
            };
            translated.insert((topic, p), (lane.target_end - copied_after).max(0));
        }
        if translated.is_empty() {
            continue;
        }
        match target.commit_group_offsets(&id, &translated).await {
            Ok(()) => report.groups.push((id, translated.len())),
            // A group already consuming from the target keeps its own offsets.
            Err(e) => report.group_errors.push((id, e.to_string())),
        }
    }
    Ok(())
}

/// How many records (committed, not control) `topic`/`partition` of the source holds at
/// offsets in `from..until`, read with `consumer` (read_committed; left assigned to that
/// partition alone).
async fn count_records(
    consumer: &mut Consumer,
    topic: &str,
    partition: i32,
    from: i64,
    until: i64,
) -> Result<i64, ClientError> {
    consumer.unassign_all();
    consumer
        .seek(topic, partition, StartAt::Offset(from))
        .await?;
    let mut count = 0;
    let mut idle_rounds = 0;
    while consumer
        .position(topic, partition)
        .is_some_and(|p| p < until)
    {
        let records = consumer.poll().await?;
        if records.is_empty() {
            idle_rounds += 1;
            // The position passed `until`'s records already if only markers are left.
            if idle_rounds > 50 {
                break;
            }
        }
        count += records.iter().filter(|r| r.offset < until).count() as i64;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shells() {
        assert!(glob_match("orders", "orders"));
        assert!(glob_match("orders.*", "orders.v1"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("loan-?", "loan-7"));
        assert!(!glob_match("loan-?", "loan-17"));
        assert!(!glob_match("orders", "orders2"));
        assert!(glob_match("*-events", "loan-events"));
        assert!(selected(&[], "x"));
        assert!(!selected(&["a*".into()], "b"));
    }
}
