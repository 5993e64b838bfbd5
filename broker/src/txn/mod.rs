//! The transaction coordinator: every transactional id of this broker, the internal
//! `__transaction_state` topic that makes them durable, and the markers that end
//! transactions in their partitions.
//!
//! Brook is a single broker, so it coordinates every transactional id. The state machine of
//! one id is in [`state`]; its records in [`store`]. This module runs the transitions:
//! each one is decided under the lock, written to `__transaction_state` and installed once
//! durable (the id is *pending* meanwhile; other requests for it wait up to a second, then
//! get CONCURRENT_TRANSACTIONS). Two kinds are installed as soon as they are appended:
//! AddPartitionsToTxn's `Ongoing` (the `Prepare*` that follows makes it durable; a restart
//! restores what a crash lost of it, see [`TransactionCoordinator::reconcile`]) and
//! `Complete*` (its fsync starts at once, and the id's next records wait for it: see
//! [`TransactionCoordinator::wait_completion_durable`]).
//!
//! Ending a transaction (EndTxn, a timeout, or a new incarnation fencing an old one):
//! 1. `PrepareCommit` / `PrepareAbort` is written and made durable: from here the outcome is
//!    decided and survives a crash;
//! 2. a marker is appended to every partition the transaction wrote to (and to
//!    `__consumer_offsets`, through the group coordinator, if it committed offsets), and
//!    they are made durable;
//! 3. `CompleteCommit` / `CompleteAbort` is written; it is durable before any record of the
//!    id's next transaction is appended (a crash before leaves `Prepare*`, and the
//!    transaction is completed again after the restart).
//!
//! EndTxn answers once the markers are appended (step 2 without its fsync: the outcome is
//! durable in `Prepare*` already, and a crash before the markers are durable finds
//! `Prepare*` and writes them again); a task waits for their fsync and writes step 3. A
//! request for the id meanwhile (the producer's next AddPartitionsToTxn, typically) waits for
//! that completion instead of being answered CONCURRENT_TRANSACTIONS at once, so the
//! producer's next transaction starts as soon as the previous one is complete, without a
//! client-side retry backoff. `Complete*` is thus only ever written after the markers are
//! durable. After a restart, ids found in a `Prepare*` state are completed
//! again (a partition whose marker was written already has no transaction of that producer
//! any more, and gets none twice). Timeouts abort with a bumped epoch, so the zombie producer
//! is fenced on every partition by the markers themselves.

pub(crate) mod state;
pub(crate) mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::control::{self, ControlType};
use brook_protocol::ErrorCode;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::durability;
use crate::groups::OFFSETS_TOPIC;
use crate::handlers::now_ms;
use crate::internal_log::{InternalLog, Replayed};
use crate::state::BrokerState;
use crate::topics::{TopicError, TopicRegistry};
use state::{EndStep, InitStep, OpenInLog, Txn, TxnPartition, TxnState, NO_PRODUCER_ID};

/// Kafka's name for the internal topic of transaction state.
pub(crate) const TRANSACTION_TOPIC: &str = "__transaction_state";
/// How long a marker's fsync may take before the completion is retried later.
const MARKER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request waits for its id's previous transaction to complete before it is
/// answered CONCURRENT_TRANSACTIONS (and the client retries, as Kafka's clients do).
const COMPLETION_WAIT: Duration = Duration::from_secs(1);

struct Entry {
    txn: Txn,
    /// A transition is being written; `txn` is the state before it.
    pending: bool,
    /// Where the id's last `Complete*` record ends in `__transaction_state`: records of the
    /// id's next transaction are appended only once it is durable
    /// ([`TransactionCoordinator::wait_completion_durable`]).
    completed_to: i64,
}

/// What a transition decided.
enum Step {
    /// Write this state, then install it.
    Write(Txn),
    /// Change nothing; answer with this state (a retry of something already done).
    Keep(Txn),
    /// InitProducerId found an ongoing transaction: complete this abort first.
    AbortFirst(Txn),
}

/// A transaction as DescribeTransactions reports it.
pub(crate) struct TxnDescription {
    pub(crate) state: TxnState,
    pub(crate) timeout_ms: i32,
    pub(crate) start_ms: i64,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) partitions: Vec<TxnPartition>,
}

pub(crate) struct TransactionCoordinator {
    txns: Mutex<HashMap<String, Entry>>,
    /// Notified whenever an id's state or pending flag changes.
    changed: tokio::sync::Notify,
    /// Ids whose `Prepare*` is being completed (markers written, `Complete*` not yet): the
    /// timer leaves them alone, or it could write `Complete*` before their markers are
    /// durable (it would find them appended and nothing left to wait for).
    completing: Mutex<std::collections::HashSet<String>>,
    log: InternalLog,
    max_timeout_ms: i32,
    expiration_ms: i64,
}

impl TransactionCoordinator {
    /// Opens the coordinator and replays `__transaction_state` if it exists.
    pub(crate) fn open(topics: &TopicRegistry, config: &BrokerConfig) -> Result<Self, TopicError> {
        let coordinator = Self {
            txns: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
            completing: Mutex::new(std::collections::HashSet::new()),
            log: InternalLog::open(topics, TRANSACTION_TOPIC, !config.unsafe_disable_fsync)?,
            max_timeout_ms: config.transaction_max_timeout_ms,
            expiration_ms: config.transactional_id_expiration_ms,
        };
        coordinator.replay();
        Ok(coordinator)
    }

    /// Creates the transaction state topic unless it exists (FindCoordinator calls this).
    pub(crate) fn ensure_topic(&self, topics: &TopicRegistry) -> Result<(), TopicError> {
        self.log.ensure(topics)
    }

    fn replay(&self) {
        let mut txns = self.txns.lock();
        let mut records = 0u64;
        let mut skipped = 0u64;
        let bad = self.log.replay(|replayed| {
            let Replayed::Records { records: batch, .. } = replayed else {
                return;
            };
            for (key, value) in batch {
                match store::decode(key, value) {
                    Ok((id, Some(txn))) => {
                        records += 1;
                        txns.insert(
                            id,
                            Entry {
                                txn,
                                pending: false,
                                completed_to: 0,
                            },
                        );
                    }
                    Ok((id, None)) => {
                        records += 1;
                        txns.remove(&id);
                    }
                    Err(_) => skipped += 1,
                }
            }
        });
        if records > 0 || bad + skipped > 0 {
            tracing::info!(
                transactional_ids = txns.len(),
                records,
                skipped = bad + skipped,
                "restored transactions from __transaction_state"
            );
        }
    }

    /// Decides a transition of `id` under the lock and, if it changes anything, writes it and
    /// installs it once durable. Returns the state to answer with. For requests: while the
    /// id is busy (a transition being written, or a transaction completing), it waits up to
    /// [`COMPLETION_WAIT`] and decides again, then answers CONCURRENT_TRANSACTIONS.
    async fn transition(
        &self,
        id: &str,
        decide: impl Fn(Option<&Txn>) -> Result<Step, ErrorCode>,
    ) -> Result<Step, ErrorCode> {
        self.transition_waiting(id, decide, true).await
    }

    /// [`TransactionCoordinator::transition`]; with `durable` false the new state is
    /// installed once its record is appended (see [`TransactionCoordinator::transition_with`]).
    async fn transition_waiting(
        &self,
        id: &str,
        decide: impl Fn(Option<&Txn>) -> Result<Step, ErrorCode>,
        durable: bool,
    ) -> Result<Step, ErrorCode> {
        let deadline = tokio::time::Instant::now() + COMPLETION_WAIT;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.transition_with(id, &decide, durable).await {
                Err(ErrorCode::ConcurrentTransactions)
                    if tokio::time::Instant::now() < deadline =>
                {
                    let _ = tokio::time::timeout_at(deadline, changed).await;
                }
                other => return other,
            }
        }
    }

    /// [`TransactionCoordinator::transition`]; with `durable` false the new state is
    /// installed as soon as its record is appended, without waiting for its fsync (for
    /// `Complete*`, whose loss a restart repairs: it finds `Prepare*` and completes again).
    async fn transition_with(
        &self,
        id: &str,
        decide: impl FnOnce(Option<&Txn>) -> Result<Step, ErrorCode>,
        durable: bool,
    ) -> Result<Step, ErrorCode> {
        let (target, end, fresh) = {
            let mut txns = self.txns.lock();
            let current = txns.get(id);
            if current.is_some_and(|e| e.pending) {
                tracing::debug!(
                    transactional_id = id,
                    "transition refused: another is being written"
                );
                return Err(ErrorCode::ConcurrentTransactions);
            }
            let target = match decide(current.map(|e| &e.txn))? {
                Step::Write(target) => target,
                other => return Ok(other),
            };
            let end = self
                .log
                .append(vec![(store::key(id), Some(store::value(&target)))], None)?;
            let fresh = !txns.contains_key(id);
            // A new id is pending (answered nothing) until its record is durable.
            let entry = txns.entry(id.to_string()).or_insert_with(|| Entry {
                txn: target.clone(),
                pending: true,
                completed_to: 0,
            });
            entry.pending = true;
            if target.state.is_complete() {
                entry.completed_to = end;
                // Started now, so that it is done or nearly when the next records come.
                self.log.start_sync();
            }
            (target, end, fresh)
        };
        let synced = if durable {
            self.log.wait_durable(end).await
        } else {
            Ok(())
        };
        let installed = {
            let mut txns = self.txns.lock();
            match synced {
                Ok(()) => {
                    let entry = txns.entry(id.to_string()).or_insert_with(|| Entry {
                        txn: target.clone(),
                        pending: false,
                        completed_to: 0,
                    });
                    entry.txn = target.clone();
                    entry.pending = false;
                    Ok(Step::Write(target))
                }
                Err(code) => {
                    if fresh {
                        txns.remove(id);
                    } else if let Some(entry) = txns.get_mut(id) {
                        entry.pending = false;
                    }
                    Err(code)
                }
            }
        };
        self.changed.notify_waiters();
        installed
    }

    // ------------------------------------------------------------ requests

    /// InitProducerId with a transactional id: the producer id and epoch to use.
    pub(crate) async fn init_producer_id(
        &self,
        state: &BrokerState,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ErrorCode> {
        if id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        self.ensure_topic(&state.topics)
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        // At most: abort the previous incarnation's transaction, then initialise.
        for _ in 0..3 {
            let now = now_ms();
            let step = self
                .transition(id, |current| {
                    let base = current
                        .cloned()
                        .unwrap_or_else(|| Txn::new(id, NO_PRODUCER_ID, timeout_ms, now));
                    let allocate = || {
                        state
                            .topics
                            .allocate_producer_id()
                            .map_err(|_| ErrorCode::CoordinatorNotAvailable)
                    };
                    Ok(match base.init(expected, timeout_ms, now, allocate)? {
                        InitStep::Ready(t) if current == Some(&t) => Step::Keep(t),
                        InitStep::Ready(t) => Step::Write(t),
                        InitStep::AbortFirst(t) => Step::AbortFirst(t),
                    })
                })
                .await?;
            match step {
                Step::Write(t) | Step::Keep(t) => return Ok((t.producer_id, t.producer_epoch)),
                Step::AbortFirst(abort) => {
                    tracing::info!(
                        transactional_id = id,
                        producer_id = abort.producer_id,
                        "fencing the previous producer: aborting its open transaction"
                    );
                    self.fence_and_abort(state, id, abort.producer_id).await?;
                }
            }
        }
        Err(ErrorCode::ConcurrentTransactions)
    }

    /// After a restart, before anything is served: transactions open in the partitions' logs
    /// that `__transaction_state` does not account for (AddPartitionsToTxn records lost in a
    /// crash) are adopted again by their id's ongoing transaction, or aborted
    /// ([`state::reconcile`]).
    pub(crate) async fn reconcile(&self, state: &BrokerState) {
        let mut open = Vec::new();
        for topic in state.topics.list() {
            if topic.name == TRANSACTION_TOPIC {
                continue;
            }
            for partition in topic.partitions() {
                let found = partition.with_log_and_producers(|_, p| p.open_transactions());
                open.extend(found.into_iter().map(|(producer_id, epoch)| OpenInLog {
                    partition: (topic.name.clone(), partition.index),
                    producer_id,
                    epoch,
                }));
            }
        }
        if open.is_empty() {
            return;
        }
        let now = now_ms();
        let plan = {
            let txns = self.txns.lock();
            let known: Vec<&Txn> = txns.values().map(|e| &e.txn).collect();
            state::reconcile(&known, &open, now)
        };
        for txn in plan.adopt {
            let id = txn.transactional_id.clone();
            tracing::info!(transactional_id = %id, partitions = ?txn.partitions, "restored partitions of an ongoing transaction whose records outlived its AddPartitionsToTxn");
            if let Err(code) = self
                .transition_with(&id, |_| Ok(Step::Write(txn)), true)
                .await
            {
                tracing::warn!(transactional_id = %id, error = ?code, "restoring a transaction's partitions failed");
            }
        }
        for orphan in plan.abort {
            tracing::info!(partition = ?orphan.partition, producer_id = orphan.producer_id, "aborting a transaction no transactional id accounts for");
            // The markers are written for a transaction: this one stands for the orphan.
            let mut abort = Txn::new("", orphan.producer_id, 0, now);
            abort.producer_epoch = orphan.epoch;
            abort.state = TxnState::PrepareAbort;
            abort.partitions.insert(orphan.partition);
            let done = match append_markers(state, &abort) {
                Ok(appended) => appended.wait_durable(state).await,
                Err(code) => Err(code),
            };
            if let Err(code) = done {
                tracing::warn!(producer_id = orphan.producer_id, error = ?code, "aborting an unaccounted transaction failed");
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the offsets topic's partition). The new
    /// state is installed once its record is appended, not fsynced: the transaction's
    /// `Prepare*` record, which its commit waits for, makes it durable, and after a crash
    /// [`TransactionCoordinator::reconcile`] restores what was lost of it.
    pub(crate) async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
    ) -> Result<(), ErrorCode> {
        let now = now_ms();
        self.transition_waiting(
            id,
            |current| {
                let current = current.ok_or(ErrorCode::InvalidProducerIdMapping)?;
                Ok(
                    match current.add_partitions(producer_id, epoch, partitions, now)? {
                        Some(t) => Step::Write(t),
                        None => Step::Keep(current.clone()),
                    },
                )
            },
            false,
        )
        .await
        .map(|_| ())
    }

    /// EndTxn: commits or aborts the ongoing transaction (module docs).
    pub(crate) async fn end_txn(
        &self,
        state: &Arc<BrokerState>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), ErrorCode> {
        let now = now_ms();
        let step = self
            .transition(id, |current| {
                let current = current.ok_or(ErrorCode::InvalidProducerIdMapping)?;
                Ok(match current.end(producer_id, epoch, commit, now)? {
                    EndStep::Prepare(t) => Step::Write(t),
                    EndStep::AlreadyDone => Step::Keep(current.clone()),
                })
            })
            .await?;
        match step {
            Step::Write(prepared) => {
                self.complete_after_answer(state, id, prepared);
                Ok(())
            }
            Step::Keep(_) | Step::AbortFirst(_) => Ok(()),
        }
    }

    /// Steps 2 and 3 for EndTxn's durable `Prepare*` (module docs): the markers are appended
    /// now, so the answer follows them; their fsync and `Complete*` are left to a task.
    fn complete_after_answer(&self, state: &Arc<BrokerState>, id: &str, prepared: Txn) {
        let appended = match self.start_complete(state, id, &prepared) {
            Ok(Some(appended)) => appended,
            Ok(None) => return,
            Err(code) => {
                tracing::warn!(transactional_id = id, error = ?code, "writing transaction markers failed; retrying later");
                return;
            }
        };
        let state = Arc::clone(state);
        let id = id.to_string();
        tokio::spawn(async move {
            let done = state
                .txns
                .finish_complete(&state, &id, &prepared, appended)
                .await;
            if let Err(code) = done {
                tracing::warn!(transactional_id = %id, error = ?code, "completing a transaction failed; retrying later");
            }
        });
    }

    /// Fences producer `producer_id` of `id` and aborts its ongoing transaction: writes the
    /// `PrepareAbort` with the bumped epoch, then its markers and completion.
    async fn fence_and_abort(
        &self,
        state: &BrokerState,
        id: &str,
        producer_id: i64,
    ) -> Result<(), ErrorCode> {
        let now = now_ms();
        // Not `transition`: a busy id here means another path is ending this transaction.
        let step = self
            .transition_with(
                id,
                |current| match current {
                    // Still the transaction the decision was made on.
                    Some(c) if c.producer_id == producer_id && c.state == TxnState::Ongoing => {
                        Ok(Step::Write(c.fence_and_abort(now)?))
                    }
                    _ => Err(ErrorCode::ConcurrentTransactions),
                },
                true,
            )
            .await?;
        match step {
            Step::Write(prepared) => {
                self.complete(state, id, &prepared).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Steps 2 and 3 for a durable `Prepare*` state (module docs). The outcome is decided
    /// once `Prepare*` is durable, so a failure here is not the client's: it is logged, the
    /// call succeeds, and the coordinator's timer completes the transaction later (meanwhile
    /// the id answers CONCURRENT_TRANSACTIONS, and read_committed consumers wait).
    async fn complete(&self, state: &BrokerState, id: &str, prepared: &Txn) {
        if let Err(code) = self.try_complete(state, id, prepared).await {
            tracing::warn!(transactional_id = id, error = ?code, "completing a transaction failed; retrying later");
        }
    }

    async fn try_complete(
        &self,
        state: &BrokerState,
        id: &str,
        prepared: &Txn,
    ) -> Result<(), ErrorCode> {
        match self.start_complete(state, id, prepared)? {
            Some(appended) => self.finish_complete(state, id, prepared, appended).await,
            // Another path completes it; the timer looks again later if that fails.
            None => Ok(()),
        }
    }

    /// Step 2's appends for the durable `Prepare*` of `id`, which is marked completing
    /// (`None`: another path is completing it already);
    /// [`TransactionCoordinator::finish_complete`] does the rest.
    fn start_complete(
        &self,
        state: &BrokerState,
        id: &str,
        prepared: &Txn,
    ) -> Result<Option<AppendedMarkers>, ErrorCode> {
        if !self.completing.lock().insert(id.to_string()) {
            return Ok(None);
        }
        append_markers(state, prepared).map(Some).inspect_err(|_| {
            self.completing.lock().remove(id);
        })
    }

    /// The rest of steps 2 and 3: waits for the markers' fsync, writes `Complete*`, and
    /// leaves the id to others again.
    async fn finish_complete(
        &self,
        state: &BrokerState,
        id: &str,
        prepared: &Txn,
        appended: AppendedMarkers,
    ) -> Result<(), ErrorCode> {
        let done = async {
            appended.wait_durable(state).await?;
            self.write_complete(id, prepared).await
        }
        .await;
        self.completing.lock().remove(id);
        done
    }

    /// Step 3, once the markers of `prepared` are durable. Installed once appended, so the
    /// id's next transaction may begin at once; but its records are appended only once this
    /// record is durable ([`TransactionCoordinator::wait_completion_durable`]).
    async fn write_complete(&self, id: &str, prepared: &Txn) -> Result<(), ErrorCode> {
        let now = now_ms();
        self.transition_with(
            id,
            |current| match current {
                Some(c) if c == prepared => Ok(Step::Write(c.complete(now))),
                Some(c) => Ok(Step::Keep(c.clone())),
                None => Err(ErrorCode::InvalidProducerIdMapping),
            },
            false,
        )
        .await
        .map(|_| ())
    }

    /// Waits until the last `Complete*` record of `id` is durable; called before records of
    /// the id's transaction are appended (Produce, TxnOffsetCommit). Were it lost while
    /// the next transaction's records survived (they are made durable by their own
    /// partitions' fsync), a restart would find the previous transaction in `Prepare*` and
    /// complete it again, and its markers would close the next transaction's records in the
    /// same partitions too, committing what the producer never committed. The fsync started
    /// when the record was appended, so this rarely waits long.
    pub(crate) async fn wait_completion_durable(&self, id: &str) -> Result<(), ErrorCode> {
        let completed_to = self.txns.lock().get(id).map_or(0, |e| e.completed_to);
        if completed_to == 0 {
            return Ok(());
        }
        self.log.wait_durable(completed_to).await
    }

    /// Checks that `producer` of transactional id `id` may write to `partition` in its
    /// ongoing transaction (KIP-890 part 1: the partition was added first). Kafka's
    /// coordinator answers: no id or another producer id -> INVALID_PRODUCER_ID_MAPPING,
    /// another epoch -> PRODUCER_FENCED, completing -> CONCURRENT_TRANSACTIONS, partition not
    /// in the transaction -> TRANSACTION_ABORTABLE.
    pub(crate) fn verify_partition(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &TxnPartition,
    ) -> Result<(), ErrorCode> {
        let txns = self.txns.lock();
        let txn = &txns.get(id).ok_or(ErrorCode::InvalidProducerIdMapping)?.txn;
        txn.check_producer(producer_id, epoch)?;
        if txn.state.is_preparing() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        if txn.state != TxnState::Ongoing || !txn.partitions.contains(partition) {
            return Err(ErrorCode::TransactionAbortable);
        }
        Ok(())
    }

    /// DescribeTransactions for one id (TRANSACTIONAL_ID_NOT_FOUND if unknown).
    pub(crate) fn describe(&self, id: &str) -> Result<TxnDescription, ErrorCode> {
        let txns = self.txns.lock();
        let entry = txns.get(id).ok_or(ErrorCode::TransactionalIdNotFound)?;
        if entry.txn.state == TxnState::Dead {
            return Err(ErrorCode::TransactionalIdNotFound);
        }
        let t = &entry.txn;
        Ok(TxnDescription {
            state: t.state,
            timeout_ms: t.timeout_ms,
            start_ms: t.start_ms,
            producer_id: t.producer_id,
            producer_epoch: t.producer_epoch,
            partitions: t.partitions.iter().cloned().collect(),
        })
    }

    /// ListTransactions: (id, producer id, state) of every live id passing the filters
    /// (empty filters pass everything; `min_duration_ms` >= 0 keeps transactions running
    /// longer than that).
    pub(crate) fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Vec<(String, i64, TxnState)> {
        let now = now_ms();
        let txns = self.txns.lock();
        let mut out: Vec<_> = txns
            .iter()
            .filter(|(_, e)| e.txn.state != TxnState::Dead)
            .filter(|(_, e)| states.is_empty() || states.contains(&e.txn.state))
            .filter(|(_, e)| producer_ids.is_empty() || producer_ids.contains(&e.txn.producer_id))
            .filter(|(_, e)| min_duration_ms < 0 || now - e.txn.start_ms > min_duration_ms)
            .map(|(id, e)| (id.clone(), e.txn.producer_id, e.txn.state))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    // ------------------------------------------------------------ timers

    /// Aborts timed-out transactions (fencing their producers), completes transactions left
    /// in a `Prepare*` state (after a restart, or a failed marker write) and removes expired
    /// ids.
    async fn tick(&self, state: &BrokerState, expire: bool) {
        let now = now_ms();
        let (timed_out, unfinished, expired) = {
            let txns = self.txns.lock();
            let mut timed_out = Vec::new();
            let mut unfinished = Vec::new();
            let mut expired = Vec::new();
            for (id, e) in txns.iter().filter(|(_, e)| !e.pending) {
                if e.txn.timed_out(now) {
                    if let Ok(abort) = e.txn.fence_and_abort(now) {
                        timed_out.push((id.clone(), abort));
                    }
                } else if e.txn.state.is_preparing() {
                    unfinished.push((id.clone(), e.txn.clone()));
                } else if expire && e.txn.expired(now, self.expiration_ms) {
                    expired.push((id.clone(), e.txn.clone()));
                }
            }
            (timed_out, unfinished, expired)
        };
        for (id, abort) in timed_out {
            tracing::info!(transactional_id = %id, producer_id = abort.producer_id, "aborting a transaction open longer than its timeout");
            if let Err(e) = self.fence_and_abort(state, &id, abort.producer_id).await {
                tracing::debug!(transactional_id = %id, error = ?e, "timeout abort deferred");
            }
        }
        for (id, prepared) in unfinished {
            self.complete(state, &id, &prepared).await;
        }
        for (id, txn) in expired {
            self.expire(&id, &txn).await;
        }
    }

    /// Removes an idle transactional id with a tombstone.
    async fn expire(&self, id: &str, seen: &Txn) {
        let end = {
            let mut txns = self.txns.lock();
            match txns.get_mut(id) {
                Some(e) if !e.pending && &e.txn == seen => e.pending = true,
                _ => return,
            }
            match self.log.append(vec![(store::key(id), None)], None) {
                Ok(end) => end,
                Err(_) => {
                    if let Some(e) = txns.get_mut(id) {
                        e.pending = false;
                    }
                    return;
                }
            }
        };
        let durable = self.log.wait_durable(end).await;
        {
            let mut txns = self.txns.lock();
            if durable.is_ok() {
                txns.remove(id);
                tracing::info!(transactional_id = id, "transactional id expired");
            } else if let Some(e) = txns.get_mut(id) {
                e.pending = false;
            }
        }
        self.changed.notify_waiters();
    }
}

/// Markers appended to a transaction's partitions, not yet known to be durable.
struct AppendedMarkers {
    /// Each partition written to and its end offset after the marker.
    partitions: Vec<(Arc<crate::topics::Partition>, i64)>,
    /// The end of `__consumer_offsets` after its marker, if the transaction had offsets.
    offsets_end: Option<i64>,
}

impl AppendedMarkers {
    /// Waits until every marker is durable.
    async fn wait_durable(&self, state: &BrokerState) -> Result<(), ErrorCode> {
        if !state.config.unsafe_disable_fsync {
            for (partition, end) in &self.partitions {
                partition
                    .durability
                    .wait_durable(*end, MARKER_TIMEOUT)
                    .await
                    .map_err(|_| ErrorCode::KafkaStorageError)?;
            }
        }
        if let Some(end) = self.offsets_end {
            state.groups.wait_durable(end).await?;
        }
        Ok(())
    }
}

/// Appends the markers of a durable `Prepare*` transaction to its partitions and starts
/// their fsync. Partitions of deleted topics are skipped, as are partitions where the
/// producer has no transaction open (nothing was written there, or the marker is there
/// already).
fn append_markers(state: &BrokerState, txn: &Txn) -> Result<AppendedMarkers, ErrorCode> {
    let control = if txn.state == TxnState::PrepareCommit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    let (pid, epoch) = (txn.producer_id, txn.producer_epoch);
    let now = now_ms();
    let mut written = Vec::new();
    let mut offsets_end = None;
    for (topic, index) in &txn.partitions {
        if topic == OFFSETS_TOPIC {
            offsets_end = state.groups.complete_txn(pid, epoch, control)?;
            continue;
        }
        let Some(partition) = state.topics.get(topic).and_then(|t| t.partition(*index)) else {
            continue;
        };
        let appended = partition.with_log_and_producers(|log, producers| {
            if !producers.in_transaction(pid) {
                return Ok(None);
            }
            producers
                .check_marker(pid, epoch)
                .map_err(|e| e.code)?;
            let mut marker = control::encode_marker(pid, epoch, control, 0, now);
            let info = log.append(&mut marker, now).map_err(|e| {
                tracing::error!(topic = %topic, partition = index, error = %e, "writing a transaction marker failed");
                ErrorCode::KafkaStorageError
            })?;
            if let Some(aborted) = producers.record_marker(pid, epoch, control, info.base_offset) {
                log.append_aborted_txn(&aborted).map_err(|e| {
                    tracing::error!(topic = %topic, partition = index, error = %e, "recording an aborted transaction failed");
                    ErrorCode::KafkaStorageError
                })?;
            }
            Ok(Some((info.last_offset + 1, marker.len())))
        })?;
        if let Some((end, bytes)) = appended {
            if !state.config.unsafe_disable_fsync {
                durability::note_append(&partition, 1, bytes as u64);
            }
            written.push((partition, end));
        }
    }
    state.notify_appended();
    if !state.config.unsafe_disable_fsync {
        for (partition, _) in &written {
            durability::request_sync(partition);
        }
    }
    Ok(AppendedMarkers {
        partitions: written,
        offsets_end,
    })
}

/// Runs the coordinator's timers until `shutdown` changes: timeouts and unfinished
/// transactions every `abort_interval`, expiry every `expire_interval`.
pub(crate) async fn run_timers(
    state: Arc<BrokerState>,
    abort_interval: Duration,
    expire_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut abort_tick = tokio::time::interval(abort_interval);
    let mut expire_tick = tokio::time::interval(expire_interval);
    // The first ticks fire at once: finish what a restart left in Prepare* right away.
    expire_tick.tick().await;
    loop {
        tokio::select! {
            _ = abort_tick.tick() => state.txns.tick(&state, false).await,
            _ = expire_tick.tick() => state.txns.tick(&state, true).await,
            _ = shutdown.changed() => return,
        }
    }
}
