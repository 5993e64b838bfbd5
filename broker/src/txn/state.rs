//! One transactional id's state machine (Kafka's `TransactionMetadata` and the coordinator's
//! decisions about it).
//!
//! Pure logic: each request is checked against the current [`Txn`] and, if it changes
//! anything, yields the *target* [`Txn`]. The coordinator persists the target to
//! `__transaction_state` and installs it only once that write is durable (while it is in
//! flight the id is *pending*, and other requests get CONCURRENT_TRANSACTIONS).
//!
//! States and transitions, as in Kafka:
//! - `Empty` (initialised, no transaction) -> `Ongoing` on AddPartitions/AddOffsets;
//! - `Ongoing` -> `PrepareCommit` / `PrepareAbort` on EndTxn (or `PrepareAbort` with a bumped
//!   epoch on a timeout, or when a new incarnation calls InitProducerId: the fence);
//! - `PrepareCommit` -> `CompleteCommit`, `PrepareAbort` -> `CompleteAbort` once every
//!   partition has its marker;
//! - `Complete*` -> `Ongoing` on the next AddPartitions, or `Empty` on InitProducerId;
//! - any idle state -> `Dead` when the id expires (`transactional.id.expiration.ms`).
//!
//! `PrepareEpochFence` is Kafka's name for an abort started by a fence; Brook writes it as
//! `PrepareAbort` with the bumped epoch (the record Kafka writes too) and never persists it,
//! but reads it back if found.

use std::collections::{BTreeMap, BTreeSet};

use brook_protocol::ErrorCode;

/// No producer id / epoch (Kafka's NO_PRODUCER_ID, NO_PRODUCER_EPOCH).
pub(crate) const NO_PRODUCER_ID: i64 = -1;
pub(crate) const NO_PRODUCER_EPOCH: i16 = -1;

/// An epoch at which a new producer id is handed out instead of a bump (Kafka bumps up to
/// `Short.MAX_VALUE - 1`, keeping one epoch for the fence of the last one).
const LAST_EPOCH: i16 = i16::MAX - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The byte `__transaction_state` stores.
    pub(crate) fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub(crate) fn from_id(id: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The name DescribeTransactions and ListTransactions report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// A transaction is being completed: its markers are being written.
    pub(crate) fn is_preparing(self) -> bool {
        matches!(
            self,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
    }

    pub(crate) fn is_complete(self) -> bool {
        matches!(self, TxnState::CompleteCommit | TxnState::CompleteAbort)
    }
}

/// A topic-partition of a transaction.
pub(crate) type TxnPartition = (String, i32);

/// One transactional id's metadata, as `__transaction_state` stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Txn {
    pub(crate) transactional_id: String,
    pub(crate) producer_id: i64,
    /// The producer id before the last one handed out (epoch exhaustion), for KIP-360 retries.
    pub(crate) prev_producer_id: i64,
    pub(crate) producer_epoch: i16,
    /// The epoch before the last bump, for retried InitProducerId calls.
    pub(crate) last_producer_epoch: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) state: TxnState,
    pub(crate) partitions: BTreeSet<TxnPartition>,
    /// When the ongoing transaction started (its first AddPartitions), -1 if none.
    pub(crate) start_ms: i64,
    pub(crate) last_update_ms: i64,
}

/// What InitProducerId does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InitStep {
    /// Persist this (state Empty) and answer with its producer id and epoch.
    Ready(Txn),
    /// A transaction of the previous incarnation is ongoing: persist this abort (epoch bumped,
    /// which fences that incarnation), complete it, then run InitProducerId again.
    AbortFirst(Txn),
}

/// What EndTxn does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EndStep {
    /// Persist this `Prepare*` state, write the markers, then complete.
    Prepare(Txn),
    /// A retry of an EndTxn that already completed: answer NONE.
    AlreadyDone,
}

impl Txn {
    /// A transactional id seen for the first time, before its first InitProducerId persists.
    pub(crate) fn new(
        transactional_id: &str,
        producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
    ) -> Self {
        Self {
            transactional_id: transactional_id.to_string(),
            producer_id,
            prev_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// InitProducerId for this id. `expected`: the producer id and epoch the client says it
    /// has (v3+, KIP-360), if any. `new_producer_id` hands out a fresh id for a new or
    /// exhausted one.
    pub(crate) fn init(
        &self,
        expected: Option<(i64, i16)>,
        timeout_ms: i32,
        now_ms: i64,
        new_producer_id: impl FnOnce() -> Result<i64, ErrorCode>,
    ) -> Result<InitStep, ErrorCode> {
        if let Some((pid, epoch)) = expected {
            let valid = self.producer_epoch == NO_PRODUCER_EPOCH
                || pid == self.producer_id
                || (pid == self.prev_producer_id && epoch >= LAST_EPOCH);
            if !valid {
                return Err(ErrorCode::ProducerFenced);
            }
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ErrorCode::ConcurrentTransactions)
            }
            TxnState::Ongoing => return Ok(InitStep::AbortFirst(self.fence_and_abort(now_ms)?)),
            TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort
            | TxnState::Dead => {}
        }
        let exhausted = self.producer_epoch >= LAST_EPOCH || self.producer_id < 0;
        // The epoch a retry of this call (KIP-360: one that names its producer) may show.
        let retry_epoch = match expected {
            Some(_) => self.producer_epoch,
            None => NO_PRODUCER_EPOCH,
        };
        let mut next = self.clone();
        match expected {
            // A retry of an InitProducerId that rotated the id: its answer was lost.
            Some((pid, _)) if pid == self.prev_producer_id && pid != self.producer_id => {
                return Ok(InitStep::Ready(self.clone()))
            }
            Some((_, epoch))
                if !exhausted
                    && self.producer_epoch != NO_PRODUCER_EPOCH
                    && epoch != self.producer_epoch =>
            {
                // A retry of a bump that happened (its answer was lost), or a zombie.
                return if epoch == self.last_producer_epoch {
                    Ok(InitStep::Ready(self.clone()))
                } else {
                    Err(ErrorCode::ProducerFenced)
                };
            }
            _ if exhausted => {
                next.prev_producer_id = self.producer_id;
                next.producer_id = new_producer_id()?;
                next.producer_epoch = 0;
                next.last_producer_epoch = retry_epoch;
            }
            _ => {
                next.producer_epoch = self.producer_epoch + 1;
                next.last_producer_epoch = retry_epoch;
            }
        }
        next.timeout_ms = timeout_ms;
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now_ms;
        Ok(InitStep::Ready(next))
    }

    /// Checks that a request comes from the current incarnation of this id.
    pub(crate) fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), ErrorCode> {
        if producer_id != self.producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the target with `partitions` added (`None` if
    /// they are all in the ongoing transaction already).
    pub(crate) fn add_partitions(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
        now_ms: i64,
    ) -> Result<Option<Txn>, ErrorCode> {
        self.check_producer(producer_id, epoch)?;
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ErrorCode::ConcurrentTransactions)
            }
            TxnState::Dead => return Err(ErrorCode::InvalidTxnState),
            TxnState::Ongoing if partitions.iter().all(|p| self.partitions.contains(p)) => {
                return Ok(None)
            }
            TxnState::Empty
            | TxnState::Ongoing
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort => {}
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// EndTxn from the client.
    pub(crate) fn end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<EndStep, ErrorCode> {
        self.check_producer(producer_id, epoch)?;
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = self.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.last_update_ms = now_ms;
                Ok(EndStep::Prepare(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndStep::AlreadyDone)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ErrorCode::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => Err(ErrorCode::ConcurrentTransactions),
            _ => Err(ErrorCode::InvalidTxnState),
        }
    }

    /// The abort the coordinator starts itself (timeout, or a new incarnation): the epoch is
    /// bumped so the current incarnation is fenced everywhere, its markers included.
    pub(crate) fn fence_and_abort(&self, now_ms: i64) -> Result<Txn, ErrorCode> {
        if self.state != TxnState::Ongoing {
            return Err(ErrorCode::InvalidTxnState);
        }
        let mut next = self.clone();
        if self.producer_epoch < i16::MAX {
            next.last_producer_epoch = self.producer_epoch;
            next.producer_epoch = self.producer_epoch + 1;
        }
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = now_ms;
        Ok(next)
    }

    /// Once every partition has its marker: `Prepare*` -> `Complete*`, partitions cleared.
    pub(crate) fn complete(&self, now_ms: i64) -> Txn {
        let mut next = self.clone();
        next.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now_ms;
        next
    }

    /// An ongoing transaction older than its timeout.
    pub(crate) fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }

    /// An idle id whose last change is older than `expiration_ms`.
    pub(crate) fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) && now_ms.saturating_sub(self.last_update_ms) > expiration_ms
    }
}

/// A transaction found open in a partition's log after a restart: its producer id and
/// epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenInLog {
    pub(crate) partition: TxnPartition,
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
}

/// What a restart does with the transactions open in the logs (see [`reconcile`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reconciled {
    /// Ids whose ongoing transaction gets these partitions (again): the new states.
    pub(crate) adopt: Vec<Txn>,
    /// Transactions that no id accounts for, to end with an ABORT marker of this epoch.
    pub(crate) abort: Vec<OpenInLog>,
}

/// Matches the transactions open in the partitions' logs with the coordinator's durable
/// states after a restart. AddPartitionsToTxn is answered before its record is durable (the
/// `Prepare*` record, which the commit waits for, makes every earlier one durable), so a
/// crash can lose partitions of an ongoing transaction, or its whole start, while records the
/// producer was told are written sit open in those partitions. Such a transaction is still
/// the producer's current one when its epoch is the id's epoch and the id is not completing
/// another: its partitions are added back (`Empty` / `Complete*` become `Ongoing`, started
/// now), so the producer commits or aborts it as it meant to, or the timeout aborts it.
/// Anything else (an unknown producer id, an older epoch, an id in `Prepare*` that does not
/// name the partition) cannot belong to a transaction that may still commit: it is aborted.
pub(crate) fn reconcile(txns: &[&Txn], open: &[OpenInLog], now_ms: i64) -> Reconciled {
    let mut adopted: BTreeMap<&str, Txn> = BTreeMap::new();
    let mut abort = Vec::new();
    for o in open {
        let Some(txn) = txns.iter().find(|t| t.producer_id == o.producer_id) else {
            abort.push(o.clone());
            continue;
        };
        let known = txn.partitions.contains(&o.partition)
            && (txn.state == TxnState::Ongoing || txn.state.is_preparing());
        if known {
            continue;
        }
        let adoptable = txn.producer_epoch == o.epoch
            && matches!(
                txn.state,
                TxnState::Empty
                    | TxnState::Ongoing
                    | TxnState::CompleteCommit
                    | TxnState::CompleteAbort
            );
        if !adoptable {
            abort.push(OpenInLog {
                epoch: o.epoch.max(txn.producer_epoch),
                ..o.clone()
            });
            continue;
        }
        let next = adopted
            .entry(txn.transactional_id.as_str())
            .or_insert_with(|| {
                let mut next = (*txn).clone();
                if next.state != TxnState::Ongoing {
                    next.state = TxnState::Ongoing;
                    next.partitions.clear();
                    next.start_ms = now_ms;
                }
                next.last_update_ms = now_ms;
                next
            });
        next.partitions.insert(o.partition.clone());
    }
    Reconciled {
        adopt: adopted.into_values().collect(),
        abort,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn ready(step: Result<InitStep, ErrorCode>) -> Txn {
        match step {
            Ok(InitStep::Ready(t)) => t,
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    /// An id after its first InitProducerId: producer 7, epoch 0, Empty.
    fn initialised() -> Txn {
        ready(Txn::new("t", -1, 60_000, NOW).init(None, 60_000, NOW, || Ok(7)))
    }

    fn tp(topic: &str, p: i32) -> TxnPartition {
        (topic.to_string(), p)
    }

    fn ongoing() -> Txn {
        initialised()
            .add_partitions(7, 0, &[tp("a", 0)], NOW)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn the_first_init_hands_out_a_producer_id_and_each_later_one_bumps_the_epoch() {
        let t = initialised();
        assert_eq!(
            (t.producer_id, t.producer_epoch, t.state),
            (7, 0, TxnState::Empty)
        );
        let t = ready(t.init(None, 60_000, NOW, || panic!("no new id needed")));
        assert_eq!(
            (t.producer_id, t.producer_epoch, t.last_producer_epoch),
            (7, 1, -1)
        );
        // After a completed transaction too.
        let done = ongoing().end(7, 0, true, NOW).unwrap();
        let EndStep::Prepare(prepared) = done else {
            panic!()
        };
        let t = ready(prepared.complete(NOW).init(None, 1000, NOW, || panic!()));
        assert_eq!(
            (t.producer_epoch, t.timeout_ms, t.state),
            (1, 1000, TxnState::Empty)
        );
    }

    #[test]
    fn an_exhausted_epoch_gets_a_new_producer_id() {
        let mut t = initialised();
        t.producer_epoch = LAST_EPOCH;
        let rotated = ready(t.init(Some((7, LAST_EPOCH)), 60_000, NOW, || Ok(99)));
        assert_eq!(
            (
                rotated.producer_id,
                rotated.producer_epoch,
                rotated.prev_producer_id
            ),
            (99, 0, 7)
        );
        // Retried with the old id and its last epoch: the same answer.
        assert_eq!(
            ready(rotated.init(Some((7, LAST_EPOCH)), 60_000, NOW, || panic!())),
            rotated
        );
        let t = ready(t.init(None, 60_000, NOW, || Ok(100)));
        assert_eq!((t.producer_id, t.producer_epoch), (100, 0));
    }

    #[test]
    fn kip_360_init_checks_the_expected_producer_and_accepts_retries() {
        let t = initialised();
        let bumped = ready(t.init(Some((7, 0)), 60_000, NOW, || panic!()));
        assert_eq!(bumped.producer_epoch, 1);
        // The same request again (its response was lost): the same answer, no second bump.
        assert_eq!(
            ready(bumped.init(Some((7, 0)), 60_000, NOW, || panic!())),
            bumped
        );
        // Anything else is a fenced producer.
        assert_eq!(
            bumped
                .init(Some((7, 5)), 60_000, NOW, || panic!())
                .unwrap_err(),
            ErrorCode::ProducerFenced
        );
        assert_eq!(
            bumped
                .init(Some((8, 1)), 60_000, NOW, || panic!())
                .unwrap_err(),
            ErrorCode::ProducerFenced
        );
    }

    #[test]
    fn init_during_an_ongoing_transaction_fences_and_aborts_it_first() {
        let t = ongoing();
        let Ok(InitStep::AbortFirst(abort)) = t.init(None, 60_000, NOW + 5, || panic!()) else {
            panic!()
        };
        assert_eq!(
            (abort.state, abort.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert_eq!(
            abort.partitions, t.partitions,
            "markers go to every partition"
        );
        // The old incarnation is fenced from now on.
        assert_eq!(
            abort.end(7, 0, true, NOW).unwrap_err(),
            ErrorCode::ProducerFenced
        );
        assert_eq!(
            abort.init(None, 60_000, NOW, || panic!()).unwrap_err(),
            ErrorCode::ConcurrentTransactions
        );
        let t = ready(abort.complete(NOW).init(None, 60_000, NOW, || panic!()));
        assert_eq!((t.producer_epoch, t.state), (2, TxnState::Empty));
    }

    #[test]
    fn partitions_are_added_to_an_ongoing_transaction_only_by_the_current_producer() {
        let t = initialised();
        assert_eq!(
            t.add_partitions(8, 0, &[tp("a", 0)], NOW).unwrap_err(),
            ErrorCode::InvalidProducerIdMapping
        );
        assert_eq!(
            t.add_partitions(7, 1, &[tp("a", 0)], NOW).unwrap_err(),
            ErrorCode::ProducerFenced
        );
        let t = t
            .add_partitions(7, 0, &[tp("a", 0)], NOW + 1)
            .unwrap()
            .unwrap();
        assert_eq!((t.state, t.start_ms), (TxnState::Ongoing, NOW + 1));
        assert_eq!(t.add_partitions(7, 0, &[tp("a", 0)], NOW + 2), Ok(None));
        let t = t
            .add_partitions(7, 0, &[tp("b", 3)], NOW + 3)
            .unwrap()
            .unwrap();
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(
            t.start_ms,
            NOW + 1,
            "the transaction started with its first partition"
        );
    }

    #[test]
    fn end_txn_answers_every_state_as_kafka_does() {
        use TxnState::*;
        let base = initialised();
        let with = |state: TxnState| Txn {
            state,
            ..base.clone()
        };
        let cases = [
            (Empty, true, Err(ErrorCode::InvalidTxnState)),
            (Empty, false, Err(ErrorCode::InvalidTxnState)),
            (CompleteCommit, true, Ok(EndStep::AlreadyDone)),
            (CompleteCommit, false, Err(ErrorCode::InvalidTxnState)),
            (CompleteAbort, false, Ok(EndStep::AlreadyDone)),
            (CompleteAbort, true, Err(ErrorCode::InvalidTxnState)),
            (PrepareCommit, true, Err(ErrorCode::ConcurrentTransactions)),
            (PrepareCommit, false, Err(ErrorCode::InvalidTxnState)),
            (PrepareAbort, false, Err(ErrorCode::ConcurrentTransactions)),
            (PrepareAbort, true, Err(ErrorCode::InvalidTxnState)),
            (Dead, true, Err(ErrorCode::InvalidTxnState)),
        ];
        for (state, commit, want) in cases {
            assert_eq!(
                with(state).end(7, 0, commit, NOW),
                want,
                "{state:?} commit={commit}"
            );
        }
        let EndStep::Prepare(p) = with(Ongoing).end(7, 0, false, NOW).unwrap() else {
            panic!()
        };
        assert_eq!(p.state, PrepareAbort);
        assert_eq!(p.complete(NOW).state, CompleteAbort);
        assert_eq!(
            with(Ongoing).end(6, 0, true, NOW),
            Err(ErrorCode::InvalidProducerIdMapping)
        );
        assert_eq!(
            with(Ongoing).end(7, 3, true, NOW),
            Err(ErrorCode::ProducerFenced)
        );
    }

    #[test]
    fn completing_clears_the_partitions_and_timeouts_and_expiry_follow_the_clock() {
        let t = ongoing();
        assert!(!t.timed_out(NOW + 60_000));
        assert!(t.timed_out(NOW + 60_001));
        let EndStep::Prepare(p) = t.end(7, 0, true, NOW).unwrap() else {
            panic!()
        };
        let done = p.complete(NOW + 10);
        assert!(done.partitions.is_empty());
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(!done.timed_out(NOW + 1_000_000));
        assert!(!done.expired(NOW + 10 + 500, 500));
        assert!(done.expired(NOW + 10 + 501, 500));
        assert!(
            !ongoing().expired(NOW + 10_000_000, 500),
            "an open transaction never expires"
        );
    }

    #[test]
    fn states_round_trip_through_their_stored_ids_and_names() {
        for id in 0..8 {
            let s = TxnState::from_id(id).unwrap();
            assert_eq!(s.id(), id);
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::from_id(8), None);
    }

    fn open_in(topic: &str, p: i32, producer_id: i64, epoch: i16) -> OpenInLog {
        OpenInLog {
            partition: tp(topic, p),
            producer_id,
            epoch,
        }
    }

    #[test]
    fn a_restart_adopts_what_the_current_transaction_lost_and_aborts_the_rest() {
        let later = NOW + 5_000;
        // Accounted for: the ongoing transaction names it, or its Prepare* does.
        let going = ongoing();
        let preparing = match going.end(7, 0, true, NOW).unwrap() {
            EndStep::Prepare(t) => t,
            other => panic!("{other:?}"),
        };
        for txn in [&going, &preparing] {
            assert_eq!(
                reconcile(&[txn], &[open_in("a", 0, 7, 0)], later),
                Reconciled::default()
            );
        }
        // The ongoing transaction lost a partition's AddPartitionsToTxn: added back, the
        // transaction keeps its start; two lost partitions make one new state.
        let plan = reconcile(
            &[&going],
            &[open_in("b", 1, 7, 0), open_in("c", 0, 7, 0)],
            later,
        );
        assert!(plan.abort.is_empty());
        assert_eq!(plan.adopt.len(), 1);
        let adopted = &plan.adopt[0];
        assert_eq!(adopted.state, TxnState::Ongoing);
        assert_eq!(
            adopted.partitions,
            BTreeSet::from([tp("a", 0), tp("b", 1), tp("c", 0)])
        );
        assert_eq!((adopted.start_ms, adopted.last_update_ms), (NOW, later));
        // Its whole start was lost (the id is Empty, or Complete* from the transaction
        // before): the transaction is ongoing again, from now, with that partition only.
        let completed = preparing.complete(NOW);
        for txn in [&initialised(), &completed] {
            let plan = reconcile(&[txn], &[open_in("b", 1, 7, 0)], later);
            assert!(plan.abort.is_empty());
            let adopted = &plan.adopt[0];
            assert_eq!(adopted.state, TxnState::Ongoing);
            assert_eq!(adopted.partitions, BTreeSet::from([tp("b", 1)]));
            assert_eq!((adopted.producer_id, adopted.producer_epoch), (7, 0));
            assert_eq!(adopted.start_ms, later);
        }
        // Not the current transaction: an older epoch (aborted with the id's epoch, which
        // fences it), an unknown producer, or an id preparing without that partition.
        let mut bumped = completed.clone();
        bumped.producer_epoch = 3;
        let cases = [
            (&bumped, open_in("b", 1, 7, 0), 3),
            (&completed, open_in("b", 1, 9, 2), 2),
            (&preparing, open_in("b", 1, 7, 0), 0),
        ];
        for (txn, orphan, epoch) in cases {
            let plan = reconcile(&[txn], std::slice::from_ref(&orphan), later);
            assert!(plan.adopt.is_empty(), "{orphan:?}");
            assert_eq!(plan.abort, vec![OpenInLog { epoch, ..orphan }]);
        }
    }
}
