//! Power cuts, on the storage crate's power-loss model (`PowerLossFileSystem`: whatever was
//! not fsynced, file data or directory entry, is gone after a cut). An acks=all producer and
//! a committer write while cuts hit at random moments, the first start on a fresh data
//! directory included; after each cut and restart every acknowledged record is at its
//! offset, the cluster id and the topic id are unchanged, and the committed offset is at
//! least the last one acknowledged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::batch::testing::{build_batch, TestRecord};
use brook_protocol::batch::Batches;
use brook_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use brook_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use brook_protocol::kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::records::Records;
use brook_storage::testing::PowerLossFileSystem;
use brook_tests::RawClient;
use uuid::Uuid;

use crate::wire::{create, fetch, name, produce_request};

const TOPIC: &str = "cuts";
const PARTITIONS: i32 = 3;
const GROUP: &str = "cut-group";

/// A tiny deterministic generator, so a failing run can be repeated from its printed seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the broker acknowledged, and the commits it was asked for.
#[derive(Default)]
struct Acked {
    /// partition -> offset -> value
    records: BTreeMap<i32, BTreeMap<i64, Vec<u8>>>,
    last_commit: Option<i64>,
    last_commit_attempt: Option<i64>,
}

fn topic_id(c: &mut RawClient) -> Option<Uuid> {
    let meta = c
        .call(12, &MetadataRequest::default().with_topics(None))
        .ok()?;
    meta.topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(TOPIC))
        .map(|t| t.topic_id)
}

/// offset -> value of every record in partition `p`.
fn stored(c: &mut RawClient, p: i32) -> BTreeMap<i64, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let (code, hw, records) = fetch(c, TOPIC, p, offset, 0);
        assert_eq!(code, 0, "fetch partition {p} at {offset}");
        let records = records.unwrap_or_default();
        if records.is_empty() {
            assert_eq!(
                offset, hw,
                "partition {p}: nothing returned below the high watermark"
            );
            return out;
        }
        for view in Batches::new(&records) {
            for r in Records::new(view.records_data(), view.records_count()) {
                let r = r.unwrap();
                let at = view.base_offset() + i64::from(r.offset_delta);
                out.insert(at, r.value.unwrap_or_default().to_vec());
                offset = at + 1;
            }
        }
    }
}

fn committed(c: &mut RawClient) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name(TOPIC))
            .with_partition_indexes(vec![0])]));
    let resp = c.call(1, &req).unwrap();
    resp.topics[0].partitions[0].committed_offset
}

/// Produces (acks=all) and commits until `stop`, recording what is acknowledged.
fn write(bootstrap: String, cycle: usize, acked: Arc<Mutex<Acked>>, stop: Arc<AtomicBool>) {
    let Ok(mut c) = RawClient::connect(&bootstrap) else {
        return;
    };
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str(GROUP));
    if c.call(1, &find).is_err() {
        return;
    }
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let p = (n % PARTITIONS as u64) as i32;
        let values: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("c{cycle}-n{n}-{i}").into_bytes())
            .collect();
        let records: Vec<TestRecord> = values
            .iter()
            .map(|v| TestRecord {
                value: Some(v.clone()),
                ..Default::default()
            })
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let Ok(resp) = c.call(
            9,
            &produce_request(TOPIC, p, build_batch(now, &records), -1),
        ) else {
            return;
        };
        let r = &resp.responses[0].partition_responses[0];
        if r.error_code == 0 {
            let mut a = acked.lock().unwrap();
            let part = a.records.entry(p).or_default();
            for (i, v) in values.into_iter().enumerate() {
                part.insert(r.base_offset + i as i64, v);
            }
        }
        if n.is_multiple_of(4) {
            let offset = n as i64 + 1_000_000 * cycle as i64;
            acked.lock().unwrap().last_commit_attempt = Some(offset);
            let commit = OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(name(TOPIC))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)])]);
            let Ok(resp) = c.call(2, &commit) else {
                return;
            };
            if resp.topics[0].partitions[0].error_code == 0 {
                acked.lock().unwrap().last_commit = Some(offset);
            }
        }
    }
}

#[test]
fn acknowledged_writes_survive_power_cuts() {
    let cycles: usize = std::env::var("BROOK_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}, {cycles} cuts");
    let mut rng = Rng(seed);
    let root = tempfile::tempdir().unwrap();
    // Not there yet: the first start creates it, and a cut may come right after.
    let data = root.path().join("brook").join("data");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut cluster_id: Option<String> = None;
    let mut known_topic: Option<Uuid> = None;
    for cycle in 0..=cycles {
        let model = Arc::new(PowerLossFileSystem::new(root.path()).unwrap());
        let broker = EmbeddedBroker::start(BrokerConfig {
            file_system: Some(model.clone()),
            auto_create_topics_enable: false,
            // Checkpoints (staged, one syncfs, renamed) often enough for cuts to hit them.
            log_flush_offset_checkpoint_interval_ms: 10 + rng.below(90),
            ..BrokerConfig::with_data_dir(&data)
        })
        .unwrap();
        // The start returned: the cluster id is on disk, and stays.
        match &cluster_id {
            Some(id) => assert_eq!(broker.cluster_id(), id, "cycle {cycle}: cluster id"),
            None => cluster_id = Some(broker.cluster_id().to_string()),
        }
        let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
        println!("cycle {cycle}: started");
        match (known_topic, topic_id(&mut c)) {
            (Some(id), found) => assert_eq!(found, Some(id), "cycle {cycle}: topic id"),
            (None, Some(id)) => known_topic = Some(id),
            (None, None) => {
                // Never acknowledged before: create it now (a cut may still undo it).
                if create(&mut c, TOPIC, PARTITIONS, &[]) == 0 {
                    known_topic = topic_id(&mut c);
                }
            }
        }
        // Everything acknowledged before is there, at its offset.
        {
            let a = acked.lock().unwrap();
            for (p, want) in &a.records {
                let have = stored(&mut c, *p);
                for (offset, value) in want {
                    assert_eq!(
                        have.get(offset),
                        Some(value),
                        "cycle {cycle}, seed {seed}: partition {p} offset {offset}"
                    );
                }
            }
            if let Some(last) = a.last_commit {
                let got = committed(&mut c);
                let attempted = a.last_commit_attempt.unwrap_or(last);
                assert!(
                    got >= last && got <= attempted,
                    "cycle {cycle}, seed {seed}: committed {got}, acknowledged {last}, attempted {attempted}"
                );
            }
        }
        if cycle == cycles {
            broker.shutdown();
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (bootstrap, acked, stop) = (broker.bootstrap(), acked.clone(), stop.clone());
            std::thread::spawn(move || write(bootstrap, cycle, acked, stop))
        };
        // The cut: at once, or after a few hundred milliseconds of writes.
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        model.cut();
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        broker.shutdown();
        model.restore().unwrap();
    }
    let a = acked.lock().unwrap();
    let total: usize = a.records.values().map(BTreeMap::len).sum();
    println!("{total} acknowledged records checked after {cycles} cuts");
}
