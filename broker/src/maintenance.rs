//! Background upkeep of the logs: the periodic flush that bounds how long acknowledged data
//! stays unflushed (`flush.ms`, `flush.messages`), recovery-point checkpoints and retention
//! (`retention.ms`, `retention.bytes`), in one task until shutdown; it also starts and stops
//! the log cleaner's threads ([`crate::cleaner`]). It also reloads the TLS key, certificate
//! and trust store when their files change.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{interval, MissedTickBehavior};

use crate::handlers::now_ms;
use crate::state::BrokerState;

/// How often partitions are checked for data past their `flush.ms`. A flush therefore happens
/// at most this much later than `flush.ms` asks.
const FLUSH_CHECK: Duration = Duration::from_millis(50);

/// How often the cleaner's thread count is matched to `log.cleaner.threads`, and the TLS
/// files are checked for changes.
const RECONFIGURE_CHECK: Duration = Duration::from_secs(1);

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
    // Dynamic broker configs may change the number of cleaner threads.
    let mut reconfigure_tick = interval(RECONFIGURE_CHECK);
    for tick in [
        &mut flush_tick,
        &mut checkpoint_tick,
        &mut retention_tick,
        &mut reconfigure_tick,
    ] {
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    }
    // The first tick of an interval completes at once; retention and checkpoints can wait.
    checkpoint_tick.tick().await;
    retention_tick.tick().await;
    let mut cleaner = config
        .log_cleaner_enable
        .then(|| crate::cleaner::Cleaner::start(state.clone()));
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if let Some(cleaner) = cleaner.take() {
                    let _ = tokio::task::spawn_blocking(move || cleaner.stop()).await;
                }
                return;
            }
            _ = flush_tick.tick(), if !config.unsafe_disable_fsync => state.topics.flush_due(),
            _ = reconfigure_tick.tick() => {
                if let Some(cleaner) = cleaner.as_mut() {
                    cleaner.resize();
                }
                for tls in state.security.all_tls() {
                    tls.reload_if_changed();
                }
            }
            _ = checkpoint_tick.tick() => {
                let state = state.clone();
                let _ = tokio::task::spawn_blocking(move || state.topics.write_checkpoints()).await;
            }
            _ = retention_tick.tick() => {
                let state = state.clone();
                let _ = tokio::task::spawn_blocking(move || apply_retention(&state)).await;
            }
        }
    }
}

/// Deletes expired segments of every partition (never the active one).
pub(crate) fn apply_retention(state: &BrokerState) {
    let now = now_ms();
    for topic in state.topics.list() {
        let config = topic.config();
        let broker = state.current();
        let retention_ms = config.retention_ms(&broker);
        let retention_bytes = config.retention_bytes(&broker);
        for partition in topic.partitions() {
            match partition.with_log(|log| log.apply_retention(now, retention_ms, retention_bytes))
            {
                Ok(outcome) if outcome.deleted_segments > 0 => {
                    state
                        .metrics
                        .retention_deleted(outcome.deleted_segments as u64);
                    tracing::info!(
                        topic = %topic.name,
                        partition = partition.index,
                        deleted_segments = outcome.deleted_segments,
                        log_start_offset = outcome.log_start_offset,
                        "retention deleted segments"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(topic = %topic.name, partition = partition.index, error = %e, "retention failed")
                }
            }
        }
    }
}
