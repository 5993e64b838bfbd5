//! Which log to clean next, and which of its offsets may be cleaned (pure; Kafka's
//! `LogCleanerManager.grabFilthiestCompactedLog` and `cleanableOffsets`).
//!
//! A log's cleanable range runs from its first dirty offset (where the last pass ended, or
//! the log start) to the first offset that may not be cleaned yet: the active segment's base,
//! the last stable offset (a transaction still open), and the first segment holding a record
//! younger than `min.compaction.lag.ms`. Its dirty ratio is dirty bytes over all bytes from
//! the log start to that end. A log is cleanable when its ratio reaches
//! `min.cleanable.dirty.ratio`, or at once (whatever the ratio) when its oldest dirty record
//! is older than `max.compaction.lag.ms`; of the cleanable logs the dirtiest goes first.

/// One sealed or active segment, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size_bytes: u64,
    /// Smallest and largest record timestamp in the segment (-1 if none).
    pub first_timestamp_ms: i64,
    pub largest_timestamp_ms: i64,
}

/// A compacted log's state.
#[derive(Debug, Clone, PartialEq)]
pub struct LogState {
    /// Segments, oldest first; the last one is the active segment.
    pub segments: Vec<SegmentInfo>,
    pub log_start_offset: i64,
    /// Where the last cleaning pass ended (`None`: never cleaned).
    pub first_dirty_offset: Option<i64>,
    /// The last stable offset: records of open transactions are not cleaned.
    pub last_stable_offset: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
}

/// What a log could have cleaned now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// Clean the offsets `from..upto`.
    pub from: i64,
    pub upto: i64,
    pub dirty_ratio: f64,
    /// `max.compaction.lag.ms` passed for its oldest dirty record.
    pub overdue: bool,
}

impl LogState {
    /// The offsets this log may clean now, and how dirty it is; `None` if nothing is.
    pub fn cleanable(&self, now_ms: i64) -> Option<Cleanable> {
        let (active, sealed) = self.segments.split_last()?;
        let from = self
            .first_dirty_offset
            .unwrap_or(self.log_start_offset)
            .max(self.log_start_offset);
        let lag_limit = now_ms.saturating_sub(self.min_compaction_lag_ms);
        // The first segment that may not be cleaned yet: too young, or not stable.
        let mut upto = active.base_offset.min(self.last_stable_offset);
        for s in sealed {
            if s.next_offset > from && s.largest_timestamp_ms > lag_limit {
                upto = upto.min(s.base_offset);
                break;
            }
        }
        if upto <= from {
            return None;
        }
        let mut dirty = 0u64;
        let mut total = 0u64;
        let mut oldest_dirty: Option<i64> = None;
        for s in sealed
            .iter()
            .filter(|s| s.next_offset > self.log_start_offset && s.base_offset < upto)
        {
            total += s.size_bytes;
            if s.next_offset > from {
                dirty += s.size_bytes;
                if s.first_timestamp_ms >= 0 {
                    oldest_dirty = Some(
                        oldest_dirty.map_or(s.first_timestamp_ms, |o| o.min(s.first_timestamp_ms)),
                    );
                }
            }
        }
        if dirty == 0 {
            return None;
        }
        let dirty_ratio = dirty as f64 / total as f64;
        let overdue =
            oldest_dirty.is_some_and(|t| now_ms.saturating_sub(t) > self.max_compaction_lag_ms);
        Some(Cleanable {
            from,
            upto,
            dirty_ratio,
            overdue,
        })
    }
}

/// The log to clean next among `logs`, by index, with its range: overdue or dirty enough,
/// the dirtiest first.
pub fn choose(logs: &[LogState], now_ms: i64) -> Option<(usize, Cleanable)> {
    logs.iter()
        .enumerate()
        .filter_map(|(i, log)| {
            let c = log.cleanable(now_ms)?;
            (c.overdue || c.dirty_ratio >= log.min_cleanable_dirty_ratio).then_some((i, c))
        })
        .max_by(|a, b| a.1.dirty_ratio.total_cmp(&b.1.dirty_ratio))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    /// Segments of 100 offsets and 1000 bytes each, the last active; timestamps `ts[i]`.
    fn log(ts: &[i64]) -> LogState {
        LogState {
            segments: ts
                .iter()
                .enumerate()
                .map(|(i, t)| SegmentInfo {
                    base_offset: i as i64 * 100,
                    next_offset: i as i64 * 100 + 100,
                    size_bytes: 1000,
                    first_timestamp_ms: *t - 10,
                    largest_timestamp_ms: *t,
                })
                .collect(),
            log_start_offset: 0,
            first_dirty_offset: None,
            last_stable_offset: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }

    #[test]
    fn never_the_active_segment_and_only_past_the_last_pass() {
        let l = log(&[10, 20, 30, 40]);
        let c = l.cleanable(NOW).unwrap();
        assert_eq!((c.from, c.upto, c.dirty_ratio), (0, 300, 1.0));
        let cleaned = LogState {
            first_dirty_offset: Some(200),
            ..l.clone()
        };
        let c = cleaned.cleanable(NOW).unwrap();
        assert_eq!((c.from, c.upto), (200, 300));
        assert!((c.dirty_ratio - 1.0 / 3.0).abs() < 1e-9);
        let all_clean = LogState {
            first_dirty_offset: Some(300),
            ..l.clone()
        };
        assert_eq!(all_clean.cleanable(NOW), None);
        assert_eq!(log(&[10]).cleanable(NOW), None, "only the active segment");
    }

    #[test]
    fn open_transactions_and_the_compaction_lag_hold_cleaning_back() {
        let l = LogState {
            last_stable_offset: 150,
            ..log(&[10, 20, 30, 40])
        };
        assert_eq!(l.cleanable(NOW).unwrap().upto, 150);
        // Segment 2 (offsets 200..300) holds a record younger than the lag.
        let young = LogState {
            min_compaction_lag_ms: 100,
            ..log(&[10, 20, NOW - 50, 40])
        };
        assert_eq!(young.cleanable(NOW).unwrap().upto, 200);
        let too_young = LogState {
            min_compaction_lag_ms: 100,
            ..log(&[NOW - 1, 20, 30, 40])
        };
        assert_eq!(too_young.cleanable(NOW), None);
    }

    #[test]
    fn the_dirtiest_cleanable_log_goes_first_and_overdue_ones_whatever_their_ratio() {
        let a = LogState {
            first_dirty_offset: Some(200),
            ..log(&[10, 20, 30, 40])
        }; // ratio 1/3: below 0.5
        let b = LogState {
            first_dirty_offset: Some(100),
            ..log(&[10, 20, 30, 40])
        }; // 2/3
        let c = log(&[10, 20, 30, 40]); // 1.0
        assert_eq!(choose(&[a.clone(), b.clone(), c], NOW).unwrap().0, 2);
        assert_eq!(choose(&[a.clone(), b], NOW).unwrap().0, 1);
        assert_eq!(choose(std::slice::from_ref(&a), NOW), None);
        let overdue = LogState {
            max_compaction_lag_ms: 1000,
            ..a
        };
        let (i, c) = choose(&[overdue], NOW).unwrap();
        assert!(i == 0 && c.overdue);
    }
}
