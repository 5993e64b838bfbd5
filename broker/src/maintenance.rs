//! Background upkeep of the logs: the periodic flush that bounds how long acknowledged data
//! stays unflushed (`flush.ms`, `flush.messages`), recovery-point checkpoints, retention
//! (`retention.ms`, `retention.bytes`) and compaction of `cleanup.policy=compact` topics.
//! One task runs them all until shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use brook_storage::cleaner::policy::LogState;

use tokio::sync::watch;
use tokio::time::{interval, MissedTickBehavior};

use crate::handlers::now_ms;
use crate::state::BrokerState;
use crate::topics::{Partition, Topic};

/// How often partitions are checked for data past their `flush.ms`. A flush therefore happens
/// at most this much later than `flush.ms` asks.
const FLUSH_CHECK: Duration = Duration::from_millis(50);

/// Runs until `shutdown` changes.
pub(crate) async fn run(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let config = &state.config;
    let mut flush_tick = interval(FLUSH_CHECK);
    let mut checkpoint_tick = interval(Duration::from_millis(
        config.log_flush_offset_checkpoint_interval_ms,
    ));
    let mut retention_tick = interval(Duration::from_millis(
        config.log_retention_check_interval_ms,
    ));
    let mut cleaner_tick = interval(Duration::from_millis(config.log_cleaner_backoff_ms));
    for tick in [
        &mut flush_tick,
        &mut checkpoint_tick,
        &mut retention_tick,
        &mut cleaner_tick,
    ] {
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    }
    // The first tick of an interval completes at once; retention and checkpoints can wait.
    checkpoint_tick.tick().await;
    retention_tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = flush_tick.tick(), if !config.unsafe_disable_fsync => state.topics.flush_due(),
            _ = checkpoint_tick.tick() => {
                let state = state.clone();
                let _ = tokio::task::spawn_blocking(move || state.topics.write_checkpoints()).await;
            }
            _ = retention_tick.tick() => {
                let state = state.clone();
                let _ = tokio::task::spawn_blocking(move || apply_retention(&state)).await;
            }
            _ = cleaner_tick.tick(), if config.log_cleaner_enable => {
                let state = state.clone();
                let _ = tokio::task::spawn_blocking(move || clean_compacted(&state)).await;
            }
        }
    }
}

/// Most cleaning passes one round runs (the dirtiest log first each time).
const PASSES_PER_ROUND: usize = 16;

/// One round of the cleaner: quiet compacted partitions whose active segment passed
/// `segment.ms` are rolled, then the dirtiest cleanable logs are compacted
/// (`brook_storage::cleaner::policy`), each pass under its partition's lock. User topics
/// only: the internal topics keep their coordinators' own rewrite for now.
pub(crate) fn clean_compacted(state: &BrokerState) {
    use brook_storage::cleaner::policy;
    let now = now_ms();
    let logs: Vec<_> = state
        .topics
        .list()
        .into_iter()
        .filter(|t| !crate::topics::is_internal(&t.name) && t.produce_policy().compacted)
        .flat_map(|t| t.partitions().into_iter().map(move |p| (t.clone(), p)))
        .collect();
    for (topic, partition) in &logs {
        if let Err(e) = partition.with_log(|log| log.roll_if_aged(now)) {
            tracing::warn!(topic = %topic.name, partition = partition.index, error = %e, "rolling an aged segment failed");
        }
    }
    for _ in 0..PASSES_PER_ROUND {
        let states: Vec<_> = logs
            .iter()
            .map(|(topic, partition)| cleaner_state(state, topic, partition))
            .collect();
        let Some((i, cleanable)) = policy::choose(&states, now) else {
            return;
        };
        let (topic, partition) = &logs[i];
        let (.., delete_retention_ms) = topic.config().compaction(&state.config);
        let horizon = now.saturating_sub(delete_retention_ms);
        let dedupe = state.config.log_cleaner_dedupe_buffer_size;
        match partition.with_log(|log| log.clean(cleanable.upto, dedupe, horizon)) {
            Ok(outcome) => {
                partition
                    .first_dirty
                    .store(outcome.cleaned_upto, Ordering::Relaxed);
                tracing::info!(
                    topic = %topic.name,
                    partition = partition.index,
                    cleaned_upto = outcome.cleaned_upto,
                    bytes_before = outcome.bytes_before,
                    bytes_after = outcome.bytes_after,
                    "compacted"
                );
                if outcome.cleaned_upto <= cleanable.from {
                    return; // no progress possible now
                }
            }
            Err(e) => {
                tracing::warn!(topic = %topic.name, partition = partition.index, error = %e, "compaction failed");
                return;
            }
        }
    }
}

/// A compacted partition as the cleaning policy sees it now.
fn cleaner_state(state: &BrokerState, topic: &Topic, partition: &Partition) -> LogState {
    let (ratio, min_lag, max_lag, _) = topic.config().compaction(&state.config);
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

/// Deletes expired segments of every partition (never the active one).
pub(crate) fn apply_retention(state: &BrokerState) {
    let now = now_ms();
    for topic in state.topics.list() {
        let config = topic.config();
        let retention_ms = config.retention_ms(&state.config);
        let retention_bytes = config.retention_bytes(&state.config);
        for partition in topic.partitions() {
            match partition.with_log(|log| log.apply_retention(now, retention_ms, retention_bytes))
            {
                Ok(outcome) if outcome.deleted_segments > 0 => tracing::info!(
                    topic = %topic.name,
                    partition = partition.index,
                    deleted_segments = outcome.deleted_segments,
                    log_start_offset = outcome.log_start_offset,
                    "retention deleted segments"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(topic = %topic.name, partition = partition.index, error = %e, "retention failed")
                }
            }
        }
    }
}
