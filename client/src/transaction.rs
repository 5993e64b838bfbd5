//! Transactions of a [`Producer`] with a `transactional.id` (KIP-98): the records of a
//! transaction, and the consumer offsets sent with it, become visible to `read_committed`
//! consumers together at [`Producer::commit_transaction`], or never.
//!
//! The transaction coordinator (FindCoordinator key type 1) hands out the producer id and
//! epoch for the transactional id (InitProducerId, which fences any earlier producer with
//! the same id); each partition joins the open transaction with AddPartitionsToTxn before
//! its first batch of it is sealed; offsets join with AddOffsetsToTxn and go to the group
//! coordinator with TxnOffsetCommit; EndTxn commits or aborts once every record is written.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use brook_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use brook_protocol::kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use brook_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;

use crate::cluster::{Cluster, GROUP};
use crate::error::check;
use crate::{ClientError, Pipeline, Producer};

/// FindCoordinator's key type of a transactional id.
const TRANSACTION: i8 = 1;

/// A transactional producer's side of its transactions.
#[derive(Debug)]
pub(crate) struct Transactions {
    pub(crate) id: String,
    state: tokio::sync::Mutex<Open>,
    /// The first record of the open transaction that could not be written: such a
    /// transaction can only be aborted.
    failed: std::sync::Mutex<Option<ClientError>>,
}

/// The open transaction, if any, and the partitions it holds.
#[derive(Debug, Default)]
struct Open {
    open: bool,
    partitions: HashSet<(String, i32)>,
    /// Whether the coordinator knows of the transaction (a partition or offsets added).
    started: bool,
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

/// Retries `step` while the coordinator answers that it is busy (a previous transaction
/// of this id still completing, or the coordinator loading or moving), as Kafka's
/// clients do; at most `attempts` times. `step` talks to the coordinator of `key` (of
/// `key_type`), which is looked up again when an error says it moved.
async fn coordinator_retries<T, F, Fut>(
    cluster: &Cluster,
    (key, key_type): (&str, i8),
    attempts: u32,
    mut step: F,
) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut tried = 0;
    loop {
        tried += 1;
        match step().await {
            Err(e) => {
                cluster.coordinator_failed(key, key_type, &e);
                if tried < attempts && matches!(e.code(), Some(14 | 15 | 16 | 51)) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                } else {
                    return Err(e);
                }
            }
            ok => return ok,
        }
    }
}

impl Transactions {
    /// Gets the producer id and epoch of `id` from its coordinator (fencing older producers
    /// of the same id).
    pub(crate) async fn init(
        cluster: &Cluster,
        id: &str,
        timeout: Duration,
    ) -> Result<(Self, (i64, i16)), ClientError> {
        let ids = coordinator_retries(cluster, (id, TRANSACTION), 50, || async {
            let coordinator = cluster.coordinator(id, TRANSACTION).await?;
            let request = InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id(id)))
                .with_transaction_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
                .with_producer_id((-1).into())
                .with_producer_epoch(-1);
            let answer = coordinator.send(&request).await?;
            check(
                answer.error_code,
                None,
                &format!("initialising transactional id {id}"),
            )?;
            Ok((answer.producer_id.0, answer.producer_epoch))
        })
        .await?;
        Ok((
            Self {
                id: id.to_string(),
                state: tokio::sync::Mutex::new(Open::default()),
                failed: std::sync::Mutex::new(None),
            },
            ids,
        ))
    }

    /// Notes that a record of the open transaction failed (the first failure is kept).
    pub(crate) fn note_failure(&self, error: &ClientError) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.get_or_insert_with(|| error.clone());
    }

    fn take_failure(&self) -> Option<ClientError> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    async fn coordinator(&self, cluster: &Cluster) -> Result<Pipeline, ClientError> {
        cluster.coordinator(&self.id, TRANSACTION).await
    }

    /// Adds `topic`/`partition` to the open transaction unless it is in already; an error
    /// when no transaction is open.
    pub(crate) async fn add_partition(
        &self,
        cluster: &Cluster,
        producer: (i64, i16),
        topic: &str,
        partition: i32,
    ) -> Result<(), ClientError> {
        let mut state = self.state.lock().await;
        if !state.open {
            return Err(ClientError::Config(
                "a transactional producer sends inside a transaction: call begin_transaction first"
                    .into(),
            ));
        }
        let key = (topic.to_string(), partition);
        if state.partitions.contains(&key) {
            return Ok(());
        }
        coordinator_retries(cluster, (&self.id, TRANSACTION), 50, || async {
            let coordinator = self.coordinator(cluster).await?;
            // v4+ is the brokers' own batched form; clients send v3.
            let version = coordinator
                .version_for::<AddPartitionsToTxnRequest>()?
                .min(3);
            let request = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id(&self.id))
                .with_v3_and_below_producer_id(producer.0.into())
                .with_v3_and_below_producer_epoch(producer.1)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![partition])]);
            let answer = coordinator.send_at(version, &request).await?;
            check(
                answer.error_code,
                None,
                "adding a partition to the transaction",
            )?;
            for t in &answer.results_by_topic_v3_and_below {
                for p in &t.results_by_partition {
                    check(
                        p.partition_error_code,
                        None,
                        &format!("adding {topic} partition {partition} to the transaction"),
                    )?;
                }
            }
            Ok(())
        })
        .await?;
        state.partitions.insert(key);
        state.started = true;
        Ok(())
    }
}

impl Producer {
    fn transactions(&self) -> Result<&Transactions, ClientError> {
        self.shared.txn.as_ref().ok_or_else(|| {
            ClientError::Config("transactions need a transactional_id in ProducerConfig".into())
        })
    }

    /// Opens a transaction: the records sent until [`Producer::commit_transaction`] or
    /// [`Producer::abort_transaction`] belong to it.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), brook_client::ClientError> {
    /// use brook_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};
    /// let producer = Producer::new(ProducerConfig {
    ///     transactional_id: Some("loan-service-outbox".into()),
    ///     ..ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"))
    /// })
    /// .await?;
    /// producer.begin_transaction().await?;
    /// producer.send(ProducerRecord::new("loans", "LoanApproved").key("loan-42")).await?;
    /// producer.send(ProducerRecord::new("notifications", "approved").key("loan-42")).await?;
    /// producer.commit_transaction().await?; // both visible to read_committed, or neither
    /// # Ok(()) }
    /// ```
    pub async fn begin_transaction(&self) -> Result<(), ClientError> {
        let txn = self.transactions()?;
        let mut state = txn.state.lock().await;
        if state.open {
            return Err(ClientError::Config("a transaction is already open".into()));
        }
        state.open = true;
        state.started = false;
        state.partitions.clear();
        txn.take_failure();
        Ok(())
    }

    /// Commits `offsets` ((topic, partition) -> next offset to read) for consumer group
    /// `group` as part of the open transaction: the consume-transform-produce step of
    /// exactly-once processing.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &BTreeMap<(String, i32), i64>,
        group: &str,
    ) -> Result<(), ClientError> {
        let txn = self.transactions()?;
        let mut state = txn.state.lock().await;
        if !state.open {
            return Err(ClientError::Config("no transaction is open".into()));
        }
        let cluster = &self.shared.cluster;
        let (pid, epoch) = self.shared.producer;
        coordinator_retries(cluster, (&txn.id, TRANSACTION), 50, || async {
            let coordinator = txn.coordinator(cluster).await?;
            let request = AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id(&txn.id))
                .with_producer_id(pid.into())
                .with_producer_epoch(epoch)
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())));
            let answer = coordinator.send(&request).await?;
            check(answer.error_code, None, "adding offsets to the transaction")
        })
        .await?;
        state.started = true;
        drop(state);
        let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            topics.entry(topic).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str(""))),
            );
        }
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(txn_id(&txn.id))
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_producer_id(pid.into())
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_group_instance_id(None)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let answer = coordinator_retries(cluster, (group, GROUP), 50, || async {
            cluster
                .coordinator(group, GROUP)
                .await?
                .send(&request)
                .await
        })
        .await?;
        for t in &answer.topics {
            for p in &t.partitions {
                check(
                    p.error_code,
                    None,
                    &format!(
                        "committing {} partition {} for group {group} in the transaction",
                        t.name.as_str(),
                        p.partition_index
                    ),
                )?;
            }
        }
        Ok(())
    }

    /// Writes every record of the open transaction, then commits it.
    pub async fn commit_transaction(&self) -> Result<(), ClientError> {
        self.end_transaction(true).await
    }

    /// Writes what is queued, then aborts the open transaction: none of its records or
    /// offsets become visible to read_committed consumers.
    pub async fn abort_transaction(&self) -> Result<(), ClientError> {
        self.end_transaction(false).await
    }

    async fn end_transaction(&self, commit: bool) -> Result<(), ClientError> {
        let txn = self.transactions()?;
        self.flush().await;
        let mut state = txn.state.lock().await;
        if !state.open {
            return Err(ClientError::Config("no transaction is open".into()));
        }
        if commit {
            if let Some(e) = txn.take_failure() {
                // Kept for the abort that must follow.
                txn.note_failure(&e);
                return Err(ClientError::Config(format!(
                    "a record of the transaction was not written ({e}): abort the transaction"
                )));
            }
        }
        let cluster = &self.shared.cluster;
        let (pid, epoch) = self.shared.producer;
        // A transaction that touched nothing is unknown to the coordinator: nothing to end.
        if state.started {
            coordinator_retries(cluster, (&txn.id, TRANSACTION), 50, || async {
                let coordinator = txn.coordinator(cluster).await?;
                let request = EndTxnRequest::default()
                    .with_transactional_id(txn_id(&txn.id))
                    .with_producer_id(pid.into())
                    .with_producer_epoch(epoch)
                    .with_committed(commit);
                let answer = coordinator.send(&request).await?;
                let what = if commit { "committing" } else { "aborting" };
                check(answer.error_code, None, &format!("{what} the transaction"))
            })
            .await?;
        }
        state.open = false;
        state.started = false;
        state.partitions.clear();
        txn.take_failure();
        Ok(())
    }
}
