//! Latency recording: an HdrHistogram in nanoseconds and the percentiles reported from it.
//!
//! Also owns the process-wide monotonic clock that producers stamp into payloads and
//! consumers read back, so both sides of an in-process measurement share one time base.

use std::sync::OnceLock;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency kept apart from the rest (larger values are recorded as this).
const MAX_NS: u64 = 60_000_000_000;
/// Significant decimal digits of every recorded value.
const SIGFIG: u8 = 3;

/// Nanoseconds since the first call in this process, from a monotonic clock.
pub fn mono_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Latencies in nanoseconds, 1 ns to 60 s at 3 significant digits.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        // The bounds are constants that satisfy the constructor's requirements
        // (low >= 1, high >= 2 * low, sigfig <= 5), so it cannot fail.
        match Histogram::new_with_bounds(1, MAX_NS, SIGFIG) {
            Ok(h) => Self(h),
            Err(e) => unreachable!("constant histogram bounds rejected: {e}"),
        }
    }

    /// Records one latency; values above 60 s count as 60 s, 0 as 1 ns.
    pub fn record_ns(&mut self, ns: u64) {
        self.0.saturating_record(ns.clamp(1, MAX_NS));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides, so adding cannot go out of range.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn percentiles(&self) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1000.0;
        if self.0.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: self.0.len(),
            mean_us: self.0.mean() / 1000.0,
            p50_us: us(self.0.value_at_quantile(0.5)),
            p99_us: us(self.0.value_at_quantile(0.99)),
            p999_us: us(self.0.value_at_quantile(0.999)),
            max_us: us(self.0.max()),
        }
    }
}

/// The reported summary of a [`LatencyHistogram`], in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    /// p50 <= p99 <= p99.9 <= max, all positive (when anything was recorded).
    pub fn is_ordered(&self) -> bool {
        self.count > 0
            && self.p50_us > 0.0
            && self.p50_us <= self.p99_us
            && self.p99_us <= self.p999_us
            && self.p999_us <= self.max_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error allowed by 3 significant digits.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.001 + 0.001
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000u64 {
            h.record_ns(us * 1000);
        }
        let p = h.percentiles();
        assert_eq!(p.count, 10_000);
        assert!(close(p.p50_us, 5000.0), "{p:?}");
        assert!(close(p.p99_us, 9900.0), "{p:?}");
        assert!(close(p.p999_us, 9990.0), "{p:?}");
        assert!(close(p.max_us, 10_000.0), "{p:?}");
        assert!(close(p.mean_us, 5000.5), "{p:?}");
        assert!(p.is_ordered());
    }

    #[test]
    fn tail_shows_in_p999_and_max() {
        let mut h = LatencyHistogram::new();
        for _ in 0..9990 {
            h.record_ns(100_000);
        }
        for _ in 0..10 {
            h.record_ns(50_000_000);
        }
        let p = h.percentiles();
        assert!(close(p.p50_us, 100.0));
        assert!(close(p.p99_us, 100.0));
        assert!(close(p.p999_us, 100.0), "{p:?}");
        assert!(close(p.max_us, 50_000.0), "{p:?}");
        h.record_ns(50_000_000);
        assert!(close(h.percentiles().p999_us, 50_000.0));
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let mut h = LatencyHistogram::new();
        h.record_ns(0);
        h.record_ns(u64::MAX);
        let p = h.percentiles();
        assert_eq!(p.count, 2);
        assert!(close(p.max_us, 60_000_000.0), "{p:?}");
        assert!(p.p50_us > 0.0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record_ns(1_000);
        b.record_ns(2_000);
        b.record_ns(3_000);
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert!(close(a.percentiles().max_us, 3.0));
    }

    #[test]
    fn empty_histogram_reports_zeroes() {
        let h = LatencyHistogram::default();
        assert!(h.is_empty());
        assert_eq!(h.percentiles(), Percentiles::default());
        assert!(!h.percentiles().is_ordered());
    }

    #[test]
    fn clock_is_monotonic() {
        let a = mono_ns();
        let b = mono_ns();
        assert!(b >= a);
    }
}
