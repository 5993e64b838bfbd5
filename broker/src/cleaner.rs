//! The log cleaner (Kafka's `LogCleaner`): `log.cleaner.threads` threads compact the
//! partitions of compacted topics (user topics with `cleanup.policy=compact`, and the
//! internal `__consumer_offsets` and `__transaction_state`), the dirtiest first
//! (`brook_storage::cleaner::policy`), no two threads the same partition.
//!
//! A pass holds its partition's lock only to take the segments and to swap each cleaned one
//! in (`brook_storage::PartitionLog::plan_clean`), so produce and fetch go on while it runs;
//! the threads run at a lower CPU priority ([`CLEANER_NICE`]) and share one
//! `log.cleaner.io.max.bytes.per.second` budget. Each producer's last batch is kept, so a
//! restart still knows its sequence.
//!
//! Where each log's dirty part starts is kept in `cleaner-offset-checkpoint` in the data
//! directory (Kafka's file name and text format: a version line `0`, a count line, then
//! `topic partition offset` lines), so a restart does not clean every log again. The file
//! only saves work: a lost or stale one makes the next pass clean more, never wrongly.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brook_storage::cleaner::policy::{self, LogState};
use brook_storage::cleaner::throttle::Throttle;
use brook_storage::{CleanOptions, Installed, StorageError};
use parking_lot::Mutex;

use crate::handlers::now_ms;
use crate::state::BrokerState;
use crate::topics::{is_internal, Partition, Topic};

/// The checkpoint file, as Kafka names it.
pub(crate) const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// How often a sleeping thread looks at the shutdown flag and the thread count.
const SHUTDOWN_CHECK: Duration = Duration::from_millis(50);
/// The nice value of a cleaner thread: background work yields the CPU to produce and fetch
/// when cores are short (on 2 cores an unyielding cleaner took a third of produce
/// throughput; docs/performance.md), and takes what is left otherwise.
const CLEANER_NICE: i32 = 10;

/// The cleaner threads; stopped (and joined) by [`Cleaner::stop`].
pub(crate) struct Cleaner {
    shared: Arc<Shared>,
    /// Thread `i` runs while `i < log.cleaner.threads`.
    threads: Vec<Option<JoinHandle<()>>>,
}

/// What the threads share.
struct Shared {
    state: Arc<BrokerState>,
    throttle: Arc<Throttle>,
    /// Partitions a thread is cleaning now.
    busy: Mutex<HashSet<(String, i32)>>,
    /// Serialises checkpoint writes.
    checkpoint: Mutex<()>,
    stop: AtomicBool,
}

impl Cleaner {
    /// Reads the checkpoint into the partitions, then starts the threads.
    pub(crate) fn start(state: Arc<BrokerState>) -> Self {
        load_checkpoint(&state);
        let shared = Arc::new(Shared {
            throttle: Arc::new(Throttle::new(
                state.current().log_cleaner_io_max_bytes_per_second,
            )),
            state,
            busy: Mutex::new(HashSet::new()),
            checkpoint: Mutex::new(()),
            stop: AtomicBool::new(false),
        });
        let mut cleaner = Self {
            shared,
            threads: Vec::new(),
        };
        cleaner.resize();
        cleaner
    }

    /// Starts the threads `log.cleaner.threads` asks for now that are not running (a
    /// dynamic change); threads beyond it end by themselves after their pass.
    pub(crate) fn resize(&mut self) {
        let wanted = self.shared.state.current().log_cleaner_threads;
        if self.threads.len() < wanted {
            self.threads.resize_with(wanted, || None);
        }
        for (i, slot) in self.threads.iter_mut().enumerate().take(wanted) {
            if slot.as_ref().is_some_and(|t| !t.is_finished()) {
                continue;
            }
            let shared = self.shared.clone();
            *slot = std::thread::Builder::new()
                .name(format!("log-cleaner-{i}"))
                .spawn(move || shared.run(i))
                .inspect_err(|e| tracing::error!(error = %e, "starting a cleaner thread failed"))
                .ok();
        }
    }

    /// Asks the threads to stop and waits for them (a pass under way finishes first).
    pub(crate) fn stop(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.into_iter().flatten() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn run(&self, index: usize) {
        // On Linux a nice value belongs to a thread, and "this process" (None) means the
        // calling thread: only the cleaner is lowered.
        if let Err(e) = rustix::process::setpriority_process(None, CLEANER_NICE) {
            tracing::debug!(error = %e, "lowering the cleaner thread's priority failed");
        }
        loop {
            let config = self.state.current();
            if self.stop.load(Ordering::Relaxed) || index >= config.log_cleaner_threads {
                return;
            }
            if self.clean_one() {
                continue;
            }
            let backoff = Duration::from_millis(config.log_cleaner_backoff_ms);
            let until = Instant::now() + backoff;
            while !self.stop.load(Ordering::Relaxed)
                && Instant::now() < until
                && index < self.state.current().log_cleaner_threads
            {
                std::thread::sleep(SHUTDOWN_CHECK.min(backoff));
            }
        }
    }

    /// Cleans the dirtiest partition no other thread is cleaning; whether it made progress.
    fn clean_one(&self) -> bool {
        let now = now_ms();
        let logs = compacted_partitions(&self.state);
        for (topic, partition) in &logs {
            if let Err(e) = partition.with_log(|log| log.roll_if_aged(now)) {
                tracing::warn!(topic = %topic.name, partition = partition.index, error = %e, "rolling an aged segment failed");
            }
        }
        let (logs, states): (Vec<_>, Vec<_>) = {
            let busy = self.busy.lock();
            logs.into_iter()
                .filter(|(t, p)| !busy.contains(&(t.name.clone(), p.index)))
                .map(|(t, p)| {
                    let s = cleaner_state(&self.state, &t, &p);
                    ((t, p), s)
                })
                .unzip()
        };
        let Some((i, cleanable)) = policy::choose(&states, now) else {
            return false;
        };
        let (topic, partition) = &logs[i];
        let key = (topic.name.clone(), partition.index);
        if !self.busy.lock().insert(key.clone()) {
            return true; // another thread took it meanwhile: look again
        }
        let result = self.clean(topic, partition, cleanable.upto, now);
        self.busy.lock().remove(&key);
        match result {
            Ok(upto) => upto > cleanable.from,
            Err(e) => {
                tracing::warn!(topic = %topic.name, partition = partition.index, error = %e, "compaction failed");
                false
            }
        }
    }

    /// One pass over `partition` below `upto`; returns where its dirty part now starts.
    fn clean(
        &self,
        topic: &Topic,
        partition: &Partition,
        upto: i64,
        now: i64,
    ) -> Result<i64, StorageError> {
        let broker = self.state.current();
        let (.., delete_retention_ms) = topic.config().compaction(&broker);
        self.throttle
            .set_rate(broker.log_cleaner_io_max_bytes_per_second);
        let (keep_batches, job) = partition.with_log_and_producers(|log, producers| {
            Ok::<_, StorageError>((producers.last_batch_offsets(), log.plan_clean(upto)?))
        })?;
        let options = CleanOptions {
            map_bytes: broker.log_cleaner_dedupe_buffer_size,
            tombstone_horizon_ms: now.saturating_sub(delete_retention_ms),
            keep_batches,
            throttle: Some(self.throttle.clone()),
        };
        let cleaned = job.run(&options)?;
        let (mut rewritten, mut removed) = (0, 0);
        for segment in cleaned.segments {
            match partition.with_log(|log| log.install_cleaned(segment))? {
                Installed::Rewritten => rewritten += 1,
                Installed::Removed => removed += 1,
                Installed::Skipped | Installed::Stopped => {}
            }
        }
        partition
            .first_dirty
            .store(cleaned.cleaned_upto, Ordering::Relaxed);
        self.save_checkpoint();
        self.state
            .metrics
            .cleaned(cleaned.bytes_before, cleaned.bytes_after);
        tracing::info!(
            topic = %topic.name,
            partition = partition.index,
            cleaned_upto = cleaned.cleaned_upto,
            bytes_before = cleaned.bytes_before,
            bytes_after = cleaned.bytes_after,
            segments_rewritten = rewritten,
            segments_removed = removed,
            "compacted"
        );
        Ok(cleaned.cleaned_upto)
    }

    fn save_checkpoint(&self) {
        let _guard = self.checkpoint.lock();
        let mut entries = Vec::new();
        for (topic, partition) in compacted_partitions(&self.state) {
            let offset = partition.first_dirty.load(Ordering::Relaxed);
            if offset >= 0 {
                entries.push((topic.name.clone(), partition.index, offset));
            }
        }
        let (dir, files) = self.state.topics.files();
        let path = dir.join(CHECKPOINT_FILE);
        if let Err(e) = files.write_atomically(&path, encode_checkpoint(&entries).as_bytes()) {
            tracing::warn!(error = %e, "writing the cleaner checkpoint failed");
        }
    }
}

/// Every partition of a compacted topic, internal ones included.
fn compacted_partitions(state: &BrokerState) -> Vec<(Arc<Topic>, Arc<Partition>)> {
    state
        .topics
        .list()
        .into_iter()
        .filter(|t| is_internal(&t.name) || t.produce_policy().compacted)
        .flat_map(|t| t.partitions().into_iter().map(move |p| (t.clone(), p)))
        .collect()
}

/// A compacted partition as the cleaning policy sees it now.
fn cleaner_state(state: &BrokerState, topic: &Topic, partition: &Partition) -> LogState {
    let (ratio, min_lag, max_lag, _) = topic.config().compaction(&state.current());
    let first_dirty = partition.first_dirty.load(Ordering::Relaxed);
    partition.with_log_and_producers(|log, producers| LogState {
        segments: log.cleaner_segments(),
        log_start_offset: log.log_start_offset(),
        first_dirty_offset: (first_dirty >= 0).then_some(first_dirty),
        last_stable_offset: producers.last_stable_offset(log.log_end_offset()),
        min_cleanable_dirty_ratio: ratio,
        min_compaction_lag_ms: min_lag,
        max_compaction_lag_ms: max_lag,
    })
}

/// Sets each partition's first dirty offset from the checkpoint file, if there is one.
fn load_checkpoint(state: &BrokerState) {
    let (dir, files) = state.topics.files();
    let text = match read_text(files, &dir.join(CHECKPOINT_FILE)) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "reading the cleaner checkpoint failed; logs count as dirty");
            return;
        }
    };
    let Some(entries) = decode_checkpoint(&text) else {
        tracing::warn!("the cleaner checkpoint is malformed; logs count as dirty");
        return;
    };
    for ((topic, index), offset) in entries {
        if let Some(partition) = state.topics.get(&topic).and_then(|t| t.partition(index)) {
            // An entry of a deleted topic's namesake must not reach past this log's end.
            let end = partition.with_log(|log| log.log_end_offset());
            partition
                .first_dirty
                .store(offset.min(end), Ordering::Relaxed);
        }
    }
}

fn read_text(files: &crate::files::Files, path: &Path) -> std::io::Result<Option<String>> {
    Ok(files
        .read(path)?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Kafka's checkpoint text for `(topic, partition, offset)` entries.
fn encode_checkpoint(entries: &[(String, i32, i64)]) -> String {
    let mut out = format!("0\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        out.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    out
}

/// The entries of a checkpoint text; `None` if it is not version 0 or does not parse.
fn decode_checkpoint(text: &str) -> Option<HashMap<(String, i32), i64>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut out = HashMap::new();
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let topic = fields.next()?.to_string();
        let partition = fields.next()?.parse().ok()?;
        let offset = fields.next()?.parse().ok()?;
        out.insert((topic, partition), offset);
    }
    (out.len() == count).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_text_is_kafkas_and_reads_back() {
        let entries = vec![
            ("member-state".to_string(), 0, 120),
            ("__consumer_offsets".to_string(), 0, 7),
        ];
        let text = encode_checkpoint(&entries);
        assert_eq!(text, "0\n2\nmember-state 0 120\n__consumer_offsets 0 7\n");
        let read = decode_checkpoint(&text).unwrap();
        assert_eq!(read[&("member-state".to_string(), 0)], 120);
        assert_eq!(read[&("__consumer_offsets".to_string(), 0)], 7);
        assert!(decode_checkpoint("1\n0\n").is_none(), "unknown version");
        assert!(decode_checkpoint("0\n2\nt 0 1\n").is_none(), "short");
        assert!(decode_checkpoint("0\n1\nt x 1\n").is_none(), "not a number");
    }
}
