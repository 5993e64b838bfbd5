//! The fsync contract of one partition: group commit for `acks=all`, and the background
//! flush that bounds how long acknowledged `acks=1` data stays only in the page cache.
//!
//! Each partition has at most one fsync in flight. A sync round takes a [`SyncPoint`] (the
//! active segment's file and the log end offset at that moment) under the partition lock,
//! then runs fdatasync on the blocking pool *without* the lock, so appends continue meanwhile.
//! When it succeeds, everything below the point's end offset is durable and every producer
//! waiting for an offset below it is released. Appends that arrive during a round are covered
//! by the next round, which starts as soon as the current one ends: one fsync acknowledges
//! every batch written before it started, however many producers wrote them.
//!
//! A partition with a page-cache window (`log.cache.window.bytes`) is also synced once half
//! a window is unflushed, whatever `flush.ms` says: the storage releases cached pages only
//! once they are durable, so without this a fast `acks=1` writer would take fresh pages for
//! a whole `flush.ms` of data before any could be reused.
//!
//! A failed fsync puts the log into its failed state: it refuses further appends, and waiting
//! producers get an error, because the data they wrote may not be on disk.
//!
//! [`SyncPoint`]: brook_storage::SyncPoint

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::topics::Partition;

/// What is known about a partition's durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurableState {
    /// Every offset below this one is on disk.
    pub(crate) end_offset: i64,
    /// An fsync failed: nothing more will become durable until restart.
    pub(crate) failed: bool,
}

/// Why a producer's wait for durability ended without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitError {
    /// The partition's log failed to fsync.
    Failed,
    /// The produce request's timeout passed first.
    TimedOut,
}

#[derive(Debug, Default)]
struct Pending {
    /// In the registry's [`Unflushed`] list.
    listed: bool,
    /// A sync round is running on the blocking pool.
    in_flight: bool,
    /// Appends arrived (or a sync was requested) while a round was running.
    again: bool,
    /// When the oldest append not yet covered by a sync round happened.
    oldest_unflushed: Option<Instant>,
    /// Records appended since the last sync round started.
    unflushed_records: i64,
    /// Bytes appended since the last sync round started.
    unflushed_bytes: u64,
}

/// How many unflushed bytes make a sync due (module docs): half the page-cache window, or
/// never without one.
pub(crate) fn flush_bytes(config: &crate::config::BrokerConfig) -> u64 {
    u64::try_from(config.log_cache_window_bytes).map_or(u64::MAX, |window| (window / 2).max(1))
}

/// Durability bookkeeping of one partition; lives next to its log.
#[derive(Debug)]
pub(crate) struct Durability {
    state: watch::Sender<DurableState>,
    pending: Mutex<Pending>,
    /// The broker-wide fsync latency histogram (`brook_fsync_duration_seconds`).
    fsync_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Durability {
    /// `durable_end`: the offset below which the log is known to be on disk when opened.
    pub(crate) fn new(
        durable_end: i64,
        fsync_seconds: prometheus_client::metrics::histogram::Histogram,
    ) -> Self {
        Self {
            state: watch::channel(DurableState {
                end_offset: durable_end,
                failed: false,
            })
            .0,
            pending: Mutex::new(Pending::default()),
            fsync_seconds,
        }
    }

    /// Records an append of `records` records in `bytes` bytes; returns how many records
    /// and bytes are now unflushed, and whether the partition must join the [`Unflushed`]
    /// list (it was not in it).
    fn note_append(&self, records: i64, bytes: u64) -> (i64, u64, bool) {
        let mut p = self.pending.lock();
        p.oldest_unflushed.get_or_insert_with(Instant::now);
        p.unflushed_records += records;
        p.unflushed_bytes += bytes;
        let join = !std::mem::replace(&mut p.listed, true);
        (p.unflushed_records, p.unflushed_bytes, join)
    }

    /// Leaves the [`Unflushed`] list if nothing is unflushed and no round runs; whether it
    /// left.
    fn leave_if_flushed(&self) -> bool {
        let mut p = self.pending.lock();
        let clean = p.oldest_unflushed.is_none() && !p.in_flight;
        if clean {
            p.listed = false;
        }
        clean
    }

    /// True when unflushed data is older than `flush_ms` or more than `flush_messages`
    /// records are unflushed, and no round is already running.
    pub(crate) fn flush_due(&self, flush_ms: i64, flush_messages: i64) -> bool {
        let p = self.pending.lock();
        if p.in_flight {
            return false;
        }
        let old = p.oldest_unflushed.is_some_and(|t| {
            t.elapsed() >= Duration::from_millis(u64::try_from(flush_ms).unwrap_or(0))
        });
        old || p.unflushed_records >= flush_messages
    }

    /// Waits until every offset below `end_offset` is durable.
    pub(crate) async fn wait_durable(
        &self,
        end_offset: i64,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let mut rx = self.state.subscribe();
        let reached = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| s.failed || s.end_offset >= end_offset),
        )
        .await
        // Read the state inside, so the borrow of `rx` ends here.
        .map(|r| r.is_ok_and(|state| state.end_offset >= end_offset));
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err(WaitError::Failed),
            Err(_) => Err(WaitError::TimedOut),
        }
    }
}

/// The partitions with unflushed data, so that the periodic flush looks at those rather than
/// at every partition of the broker (ten thousand idle ones cost nothing).
#[derive(Default)]
pub(crate) struct Unflushed {
    list: Mutex<Vec<Arc<Partition>>>,
}

impl Unflushed {
    /// Forgets every listed partition (at shutdown, so the registry can take sole ownership
    /// of each to close it).
    pub(crate) fn clear(&self) {
        self.list.lock().clear();
    }

    /// Forgets `partition` (its topic was deleted): nothing of it is to be flushed, and the
    /// list must not keep its files mapped.
    pub(crate) fn forget(&self, partition: &Arc<Partition>) {
        self.list.lock().retain(|p| !Arc::ptr_eq(p, partition));
    }

    /// Starts a sync round for every listed partition whose unflushed data is due; drops the
    /// partitions that are flushed.
    pub(crate) fn flush_due(&self) {
        self.list.lock().retain(|partition| {
            if partition
                .durability
                .flush_due(partition.flush_ms(), partition.flush_messages())
            {
                request_sync(partition);
            }
            !partition.durability.leave_if_flushed()
        });
    }
}

/// Records an append to `partition` (see [`Durability::note_append`]) and lists it for the
/// periodic flush; returns the unflushed records and bytes.
pub(crate) fn note_append(partition: &Arc<Partition>, records: i64, bytes: u64) -> (i64, u64) {
    let (records, bytes, join) = partition.durability.note_append(records, bytes);
    if join {
        partition.unflushed.list.lock().push(partition.clone());
    }
    (records, bytes)
}

/// Starts a sync round for `partition` unless one is running; then the running round is
/// followed by another, so that everything appended before this call is covered.
pub(crate) fn request_sync(partition: &Arc<Partition>) {
    {
        let mut p = partition.durability.pending.lock();
        if p.in_flight {
            p.again = true;
            return;
        }
        p.in_flight = true;
    }
    let partition = partition.clone();
    tokio::task::spawn_blocking(move || run_sync_rounds(&partition));
}

/// Runs sync rounds until no more were requested. Called on the blocking pool.
fn run_sync_rounds(partition: &Partition) {
    let durability = &partition.durability;
    loop {
        {
            let mut p = durability.pending.lock();
            p.oldest_unflushed = None;
            p.unflushed_records = 0;
            p.unflushed_bytes = 0;
            p.again = false;
        }
        let result = partition
            .with_log(|log| log.sync_point())
            .and_then(|point| {
                let started = std::time::Instant::now();
                let synced = point.sync();
                durability
                    .fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
                synced.map(|()| point.end_offset())
            });
        match result {
            Ok(end) => {
                partition.with_log(|log| log.mark_durable(end));
                durability.state.send_if_modified(|s| {
                    let advanced = end > s.end_offset;
                    s.end_offset = s.end_offset.max(end);
                    advanced
                });
            }
            Err(e) => {
                tracing::error!(partition = partition.index, error = %e, "fsync failed: the partition stops accepting writes until restart");
                partition.with_log(|log| log.fail(format!("fsync failed: {e}")));
                durability.state.send_modify(|s| s.failed = true);
                durability.pending.lock().in_flight = false;
                return;
            }
        }
        let mut p = durability.pending.lock();
        if !p.again {
            p.in_flight = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_is_due_by_age_or_count_but_not_while_a_round_runs() {
        let d = Durability::new(0, crate::http::metrics::fsync_histogram());
        assert!(!d.flush_due(0, 10), "nothing unflushed");
        assert_eq!(d.note_append(3, 300), (3, 300, true));
        assert!(d.flush_due(0, i64::MAX), "older than 0 ms");
        assert!(!d.flush_due(60_000, 10));
        assert_eq!(d.note_append(7, 700), (10, 1000, false), "listed once");
        assert!(!d.leave_if_flushed(), "unflushed data stays listed");
        assert!(d.flush_due(60_000, 10), "10 records reach flush.messages");
        d.pending.lock().in_flight = true;
        assert!(!d.flush_due(0, 1));
    }

    #[test]
    fn half_the_cache_window_unflushed_makes_a_sync_due() {
        let mut config = crate::config::BrokerConfig {
            log_cache_window_bytes: 64 << 20,
            ..Default::default()
        };
        assert_eq!(flush_bytes(&config), 32 << 20);
        config.log_cache_window_bytes = -1;
        assert_eq!(flush_bytes(&config), u64::MAX);
        config.log_cache_window_bytes = 0;
        assert_eq!(flush_bytes(&config), 1);
    }

    #[tokio::test]
    async fn waiters_are_released_by_progress_or_failure() {
        let d = Arc::new(Durability::new(5, crate::http::metrics::fsync_histogram()));
        assert_eq!(d.wait_durable(5, Duration::from_millis(1)).await, Ok(()));
        assert_eq!(
            d.wait_durable(6, Duration::from_millis(20)).await,
            Err(WaitError::TimedOut)
        );
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.wait_durable(9, Duration::from_secs(10)).await })
        };
        d.state.send_modify(|s| s.end_offset = 9);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.wait_durable(20, Duration::from_secs(10)).await })
        };
        d.state.send_modify(|s| s.failed = true);
        assert_eq!(waiter.await.unwrap(), Err(WaitError::Failed));
    }
}
