//! Retention policy: which of the oldest segments may be deleted.
//!
//! Owns the decision only, as a pure function over [`SegmentSummary`]s, so it can be tested
//! without files. Deleting the files and moving the log start offset is the mechanism in
//! [`crate::PartitionLog::apply_retention`].
//!
//! The rules are Kafka's. Each rule selects a prefix of the oldest segments; the union of the
//! three prefixes is deleted, never the active (last) segment:
//!
//! * **Time** (`retention.ms`, -1 = unlimited): segments from the oldest on, while the
//!   segment's largest timestamp is more than `retention.ms` before now. The largest
//!   timestamp is the greatest record timestamp in the segment, or, for a segment without
//!   timestamps, its file's modification time.
//! * **Size** (`retention.bytes`, -1 = unlimited): segments from the oldest on, while the
//!   log's total size minus the segments selected so far (this one included) stays at or
//!   above `retention.bytes`.
//! * **Log start offset**: segments that lie entirely below it (after DeleteRecords).

/// What the retention policy needs to know about one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    /// First offset the segment may hold (its file name).
    pub base_offset: i64,
    /// Offset after its last batch (the base offset when empty).
    pub next_offset: i64,
    /// Bytes of batches stored.
    pub size_bytes: u64,
    /// Greatest record timestamp in the segment, or its `.log` file's modification time (ms
    /// since the epoch) if no batch has a timestamp.
    pub largest_timestamp_ms: i64,
}

/// How many of the oldest segments retention deletes. `segments` are in offset order and
/// the last one is the active segment, which is never counted.
///
/// Kafka's rules, each selecting a prefix of the oldest segments, the union deleted: by time
/// while `now_ms - largest_timestamp_ms > retention_ms`; by size while the total size minus
/// the selected segments (this one included) stays `>= retention_bytes`; and every segment
/// whose `next_offset <= log_start_offset`. `-1` disables a limit.
pub fn plan_retention(
    segments: &[SegmentSummary],
    now_ms: i64,
    retention_ms: i64,
    retention_bytes: i64,
    log_start_offset: i64,
) -> usize {
    let Some((_active, deletable)) = segments.split_last() else {
        return 0;
    };
    let by_time = if retention_ms < 0 {
        0
    } else {
        deletable
            .iter()
            .take_while(|s| now_ms.saturating_sub(s.largest_timestamp_ms) > retention_ms)
            .count()
    };
    let by_size = match u64::try_from(retention_bytes) {
        Err(_) => 0,
        Ok(limit) => {
            let total: u64 = segments.iter().map(|s| s.size_bytes).sum();
            let mut excess = total.saturating_sub(limit);
            if total < limit {
                0
            } else {
                deletable
                    .iter()
                    .take_while(|s| match excess.checked_sub(s.size_bytes) {
                        Some(rest) => {
                            excess = rest;
                            true
                        }
                        None => false,
                    })
                    .count()
            }
        }
    };
    let by_start = deletable
        .iter()
        .take_while(|s| s.next_offset <= log_start_offset)
        .count();
    by_time.max(by_size).max(by_start)
}

/// What one [`crate::PartitionLog::apply_retention`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes of batches in them.
    pub deleted_bytes: u64,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments of 100 bytes and 10 offsets each, timestamps 1000, 2000, ...; the last is
    /// the active one.
    fn segments(n: usize) -> Vec<SegmentSummary> {
        (0..n as i64)
            .map(|i| SegmentSummary {
                base_offset: i * 10,
                next_offset: i * 10 + 10,
                size_bytes: 100,
                largest_timestamp_ms: (i + 1) * 1000,
            })
            .collect()
    }

    #[test]
    fn nothing_without_limits_or_segments() {
        assert_eq!(plan_retention(&[], 0, 0, 0, 0), 0);
        assert_eq!(plan_retention(&segments(5), 1 << 40, -1, -1, 0), 0);
    }

    #[test]
    fn by_time_deletes_the_expired_prefix_but_never_the_active_segment() {
        let s = segments(5);
        // now 4500, retention 1000: segments with largest timestamp < 3500 (1000, 2000, 3000).
        assert_eq!(plan_retention(&s, 4500, 1000, -1, 0), 3);
        // Exactly retention.ms old is not yet expired.
        assert_eq!(plan_retention(&s, 4000, 1000, -1, 0), 2);
        // Everything expired: all but the active segment.
        assert_eq!(plan_retention(&s, 1 << 40, 0, -1, 0), 4);
        // A newer segment first stops the prefix even if later ones are old.
        let mut s = segments(4);
        s[0].largest_timestamp_ms = 9000;
        assert_eq!(plan_retention(&s, 5000, 100, -1, 0), 0);
    }

    #[test]
    fn by_size_keeps_at_least_retention_bytes() {
        let s = segments(5); // 500 bytes
        assert_eq!(plan_retention(&s, 0, -1, 500, 0), 0);
        assert_eq!(plan_retention(&s, 0, -1, 499, 0), 0, "500 - 100 < 499");
        assert_eq!(plan_retention(&s, 0, -1, 400, 0), 1);
        assert_eq!(plan_retention(&s, 0, -1, 250, 0), 2);
        assert_eq!(plan_retention(&s, 0, -1, 200, 0), 3);
        assert_eq!(
            plan_retention(&s, 0, -1, 0, 0),
            4,
            "never the active segment"
        );
        assert_eq!(plan_retention(&s, 0, -1, 10_000, 0), 0);
    }

    #[test]
    fn by_log_start_offset_deletes_segments_entirely_below_it() {
        let s = segments(5);
        assert_eq!(plan_retention(&s, 0, -1, -1, 0), 0);
        assert_eq!(
            plan_retention(&s, 0, -1, -1, 9),
            0,
            "inside the first segment"
        );
        assert_eq!(plan_retention(&s, 0, -1, -1, 10), 1);
        assert_eq!(plan_retention(&s, 0, -1, -1, 35), 3);
        assert_eq!(
            plan_retention(&s, 0, -1, -1, 50),
            4,
            "never the active segment"
        );
    }

    #[test]
    fn the_rules_combine_as_a_union() {
        let s = segments(6);
        // Time selects 1, size 3, start 2: three go.
        assert_eq!(plan_retention(&s, 2500, 1000, 300, 20), 3);
        assert_eq!(plan_retention(&s, 5500, 1000, 300, 20), 4);
        assert_eq!(plan_retention(&s, 0, 1000, -1, 45), 4);
    }
}
