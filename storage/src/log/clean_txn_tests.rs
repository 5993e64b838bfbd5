//! Compaction against a reference model: random plain records, tombstones, idempotent
//! producers and transactions that commit or abort, with cleaning passes in between; and a
//! pass whose log changes between its steps.

use std::collections::{BTreeMap, HashMap, HashSet};

use brook_protocol::batch::testing::{build_batch, set_producer, TestRecord};
use brook_protocol::batch::Batches;
use brook_protocol::control::{self, ControlType};
use brook_protocol::records::Records;

use super::clean::{CleanOptions, Installed};
use super::tests::config;
use super::*;

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        ..config()
    }
}

/// How a record stands in the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Visible,
    Pending,
    Aborted,
}

#[derive(Debug, Clone)]
struct Written {
    offset: i64,
    key: String,
    value: Option<String>,
    /// Producer of a transactional record.
    txn: Option<i64>,
    fate: Fate,
}

/// What the log read from its start holds.
#[derive(Debug, Default)]
struct Read {
    /// (offset, key, value) of every data record.
    records: Vec<(i64, String, Option<String>)>,
    /// (offset, producer) of every marker.
    markers: Vec<(i64, i64)>,
    /// Base offsets of every data batch, with its producer (-1: none).
    batches: Vec<(i64, i64)>,
}

fn read_all(log: &PartitionLog) -> Read {
    let mut out = Read::default();
    for chunk in log.read(log.log_start_offset(), usize::MAX).unwrap() {
        for view in Batches::new(&chunk) {
            if view.is_control() {
                out.markers.push((view.base_offset(), view.producer_id()));
                continue;
            }
            out.batches.push((view.base_offset(), view.producer_id()));
            for r in Records::new(view.records_data(), view.records_count()) {
                let r = r.unwrap();
                out.records.push((
                    view.base_offset() + i64::from(r.offset_delta),
                    String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                    r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                ));
            }
        }
    }
    out
}

struct Model {
    log: PartitionLog,
    written: Vec<Written>,
    /// Producer -> (epoch, next sequence, open transaction's first offset).
    producers: HashMap<i64, (i16, i32, Option<i64>)>,
    /// Producer -> base offset of its last data batch.
    last_batch: HashMap<i64, i64>,
    /// (offset, producer) of every marker written.
    markers: Vec<(i64, i64)>,
    ts: i64,
    aborted_markers: usize,
}

impl Model {
    fn append(&mut self, key: &str, value: Option<&str>, producer: Option<(i64, bool)>) {
        self.ts += 1;
        let mut batch = build_batch(
            self.ts,
            &[TestRecord {
                key: Some(key.as_bytes().to_vec()),
                value: value.map(|v| v.as_bytes().to_vec()),
                ..TestRecord::default()
            }],
        );
        let mut txn = None;
        if let Some((pid, transactional)) = producer {
            let state = self.producers.entry(pid).or_insert((0, 0, None));
            set_producer(&mut batch, pid, state.0, state.1, transactional);
            state.1 += 1;
            if transactional {
                txn = Some(pid);
            }
        }
        let offset = self.log.append(&mut batch, self.ts).unwrap().base_offset;
        if let Some(pid) = txn {
            self.producers
                .get_mut(&pid)
                .unwrap()
                .2
                .get_or_insert(offset);
        }
        if let Some((pid, _)) = producer {
            self.last_batch.insert(pid, offset);
        }
        self.written.push(Written {
            offset,
            key: key.into(),
            value: value.map(String::from),
            txn,
            fate: if txn.is_some() {
                Fate::Pending
            } else {
                Fate::Visible
            },
        });
    }

    fn end_txn(&mut self, pid: i64, control: ControlType) {
        let (epoch, _, first) = self.producers[&pid];
        let Some(first) = first else { return };
        self.ts += 1;
        let mut marker = control::encode_marker(pid, epoch, control, 0, self.ts);
        let offset = self.log.append(&mut marker, self.ts).unwrap().base_offset;
        self.markers.push((offset, pid));
        let fate = match control {
            ControlType::Commit => Fate::Visible,
            ControlType::Abort => Fate::Aborted,
        };
        for w in self.written.iter_mut().filter(|w| w.txn == Some(pid)) {
            if w.fate == Fate::Pending {
                w.fate = fate;
            }
        }
        self.producers.get_mut(&pid).unwrap().2 = None;
        if control == ControlType::Abort {
            let lso = self.last_stable_offset();
            self.log
                .append_aborted_txn(&AbortedTxn {
                    producer_id: pid,
                    first_offset: first,
                    last_offset: offset,
                    last_stable_offset: lso,
                })
                .unwrap();
            self.aborted_markers += 1;
        }
    }

    fn last_stable_offset(&self) -> i64 {
        self.producers
            .values()
            .filter_map(|p| p.2)
            .min()
            .unwrap_or(self.log.log_end_offset())
    }

    fn clean(&mut self, horizon: i64) -> i64 {
        let upto = self.log.active.base_offset().min(self.last_stable_offset());
        let options = CleanOptions {
            map_bytes: 1 << 16,
            tombstone_horizon_ms: horizon,
            keep_batches: self.last_batch.values().copied().collect(),
            throttle: None,
        };
        let o = self.log.clean(upto, &options).unwrap();

        o.cleaned_upto
    }

    /// Checks the log against the reference after a pass that cleaned below `upto`.
    fn check(&self, upto: i64, tombstones_dropped: bool, step: usize) {
        let read = read_all(&self.log);
        assert!(
            read.records.windows(2).all(|w| w[0].0 < w[1].0),
            "step {step}: offsets increase"
        );
        let by_offset: BTreeMap<i64, &Written> =
            self.written.iter().map(|w| (w.offset, w)).collect();
        let mut latest: HashMap<&str, i64> = HashMap::new();
        for w in self
            .written
            .iter()
            .filter(|w| w.offset < upto && w.fate == Fate::Visible)
        {
            latest.insert(&w.key, w.offset);
        }
        let present: HashSet<i64> = read.records.iter().map(|r| r.0).collect();
        for (offset, key, value) in &read.records {
            let w = by_offset[offset];
            assert_eq!((&w.key, &w.value), (key, value), "step {step}: @{offset}");
            if *offset < upto {
                assert_eq!(w.fate, Fate::Visible, "step {step}: aborted @{offset} kept");
                assert_eq!(
                    latest[key.as_str()],
                    *offset,
                    "step {step}: superseded @{offset}"
                );
                if tombstones_dropped {
                    assert!(value.is_some(), "step {step}: tombstone @{offset} kept");
                }
            }
        }
        for w in &self.written {
            let must_stay = if w.offset < upto {
                w.fate == Fate::Visible && latest[w.key.as_str()] == w.offset && w.value.is_some()
            } else {
                true
            };
            if must_stay {
                assert!(present.contains(&w.offset), "step {step}: {w:?} lost");
            }
        }
        // Every producer's last batch is still there (maybe without records).
        let batches: HashSet<i64> = read.batches.iter().map(|b| b.0).collect();
        for (pid, offset) in &self.last_batch {
            assert!(
                batches.contains(offset),
                "step {step}: producer {pid}'s last batch @{offset} gone"
            );
        }
        // A marker stays while any batch of its transaction does.
        let markers: HashSet<i64> = read.markers.iter().map(|m| m.0).collect();
        for (batch, pid) in read.batches.iter().filter(|b| b.1 >= 0) {
            if by_offset[batch].txn.is_none() {
                continue;
            }
            if let Some(marker) = self.marker_after(*pid, *batch) {
                assert!(
                    markers.contains(&marker),
                    "step {step}: marker @{marker} of the batch @{batch} removed"
                );
            }
        }
    }

    /// Offset of the marker that ended `pid`'s transaction holding `offset`.
    fn marker_after(&self, pid: i64, offset: i64) -> Option<i64> {
        self.markers
            .iter()
            .find(|(o, p)| *p == pid && *o > offset)
            .map(|m| m.0)
    }
}

#[test]
fn cleaning_keeps_the_latest_committed_value_per_key_and_drops_aborted_records() {
    let mut removed_markers = 0;
    for seed in 1..=12u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Model {
            log: PartitionLog::open(dir.path(), small_segments()).unwrap(),
            written: Vec::new(),
            producers: HashMap::new(),
            last_batch: HashMap::new(),
            markers: Vec::new(),
            ts: 1_000,
            aborted_markers: 0,
        };
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for step in 0..400 {
            let key = format!("k{}", next(10));
            let value = (next(8) != 0).then(|| format!("v{step}"));
            match next(20) {
                0..=7 => m.append(&key, value.as_deref(), None),
                8..=9 => m.append(&key, value.as_deref(), Some((50, false))),
                10..=14 => {
                    let pid = 1 + next(3) as i64;
                    m.append(&key, value.as_deref(), Some((pid, true)));
                }
                15..=16 => {
                    let pid = 1 + next(3) as i64;
                    let control = if next(2) == 0 {
                        ControlType::Commit
                    } else {
                        ControlType::Abort
                    };
                    if m.producers.contains_key(&pid) {
                        m.end_txn(pid, control);
                    }
                }
                _ => {
                    let drop = next(2) == 0;
                    let before = read_all(&m.log).markers.len();
                    let upto = m.clean(if drop { i64::MAX } else { 0 });
                    m.check(upto, drop, step);
                    if drop {
                        removed_markers += before - read_all(&m.log).markers.len();
                    }
                }
            }
        }
        // Everything ends; two passes past the horizon remove data, then markers.
        for pid in 1..=3 {
            if m.producers.contains_key(&pid) {
                m.end_txn(pid, ControlType::Commit);
            }
        }
        m.log.roll(0).unwrap();
        m.clean(i64::MAX);
        let upto = m.clean(i64::MAX);
        m.check(upto, true, usize::MAX);
        let read = read_all(&m.log);
        assert!(m.aborted_markers > 0, "seed {seed}: no abort drawn");
        for (marker, pid) in &read.markers {
            let previous = m
                .markers
                .iter()
                .filter(|(o, p)| p == pid && o < marker)
                .map(|mk| mk.0)
                .max()
                .unwrap_or(-1);
            assert!(
                read.batches
                    .iter()
                    .any(|(b, p)| p == pid && *b > previous && b < marker),
                "seed {seed}: marker @{marker} outlived its transaction's data"
            );
        }
        // A restart reads the same log.
        let before = read_all(&m.log).records;
        m.log.close().unwrap();
        let log = PartitionLog::open(dir.path(), small_segments()).unwrap();
        assert_eq!(
            read_all(&log).records,
            before,
            "seed {seed}: after a restart"
        );
    }
    assert!(removed_markers > 0, "no marker was ever removed");
}

#[test]
fn a_pass_tolerates_appends_and_retention_between_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_segments()).unwrap();
    for i in 0..60 {
        let mut b = build_batch(
            1_000 + i,
            &[TestRecord {
                key: Some(format!("k{}", i % 4).into_bytes()),
                value: Some(format!("v{i}").into_bytes()),
                ..TestRecord::default()
            }],
        );
        log.append(&mut b, 1_000 + i).unwrap();
    }
    let upto = log.active.base_offset();
    let job = log.plan_clean(upto).unwrap();
    // Meanwhile: more appends, and the first segments go by DeleteRecords.
    for i in 60..80 {
        let mut b = build_batch(
            1_000 + i,
            &[TestRecord {
                key: Some(b"k0".to_vec()),
                value: Some(format!("v{i}").into_bytes()),
                ..TestRecord::default()
            }],
        );
        log.append(&mut b, 1_000 + i).unwrap();
    }
    let second = *log.sealed.keys().nth(1).unwrap();
    log.delete_records_before(second).unwrap();
    let cleaned = job
        .run(&CleanOptions {
            map_bytes: 1 << 16,
            ..CleanOptions::default()
        })
        .unwrap();
    let mut outcomes = Vec::new();
    for segment in cleaned.segments {
        outcomes.push(log.install_cleaned(segment).unwrap());
    }
    assert_eq!(outcomes[0], Installed::Skipped, "{outcomes:?}");
    assert!(outcomes.contains(&Installed::Removed) || outcomes.contains(&Installed::Rewritten));
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The latest value of each key is still there, and the appends after the plan too.
    let read = read_all(&log);
    for k in ["k1", "k2", "k3"] {
        assert!(read.records.iter().any(|r| r.1 == k), "{k}");
    }
    assert_eq!(read.records.last().unwrap().2.as_deref(), Some("v79"));
    assert!(read.records.iter().all(|r| r.0 >= second));
}
