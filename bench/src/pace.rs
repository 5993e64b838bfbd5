//! Rate pacing: when the i-th record of a paced sender is due.
//!
//! The schedule is absolute (`start + i / rate`), so a sender that oversleeps or is
//! descheduled catches up instead of drifting below the rate.

use std::time::{Duration, Instant};

/// A fixed-rate schedule for one sender.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    per_sec: f64,
}

impl Pacer {
    /// `per_sec` must be positive and finite (the command line checks it).
    pub fn new(per_sec: f64) -> Self {
        Self { per_sec }
    }

    /// The pacer of one of `senders` sharing a total rate.
    pub fn share(total_per_sec: f64, senders: u32) -> Self {
        Self::new(total_per_sec / f64::from(senders.max(1)))
    }

    pub fn per_sec(&self) -> f64 {
        self.per_sec
    }

    /// Offset from the start at which record `i` (0-based) is due.
    pub fn due(&self, i: u64) -> Duration {
        Duration::try_from_secs_f64(i as f64 / self.per_sec).unwrap_or(Duration::MAX)
    }

    /// How long to wait at `elapsed` since the start before sending record `i`
    /// (zero when it is due or late).
    pub fn wait(&self, i: u64, elapsed: Duration) -> Duration {
        self.due(i).saturating_sub(elapsed)
    }

    /// Sleeps until record `i` is due.
    pub fn pace(&self, start: Instant, i: u64) {
        let wait = self.wait(i, start.elapsed());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// Records due in the first `window` (how many a sender should have sent by then).
    pub fn due_by(&self, window: Duration) -> u64 {
        (window.as_secs_f64() * self.per_sec).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule() {
        let p = Pacer::new(1000.0);
        assert_eq!(p.due(0), Duration::ZERO);
        assert_eq!(p.due(1), Duration::from_millis(1));
        assert_eq!(p.due(1000), Duration::from_secs(1));
        assert_eq!(p.due(2500), Duration::from_millis(2500));
    }

    #[test]
    fn fractional_rates() {
        let p = Pacer::new(3.0);
        let d = p.due(1).as_nanos();
        assert!((333_333_332..=333_333_334).contains(&d), "{d}");
        assert_eq!(Pacer::new(0.5).due(1), Duration::from_secs(2));
    }

    #[test]
    fn shared_rate() {
        assert_eq!(Pacer::share(10_000.0, 4).per_sec(), 2500.0);
        assert_eq!(Pacer::share(10_000.0, 0).per_sec(), 10_000.0);
    }

    #[test]
    fn wait_before_due_and_none_when_late() {
        let p = Pacer::new(100.0);
        assert_eq!(p.wait(1, Duration::ZERO), Duration::from_millis(10));
        assert_eq!(
            p.wait(1, Duration::from_millis(4)),
            Duration::from_millis(6)
        );
        assert_eq!(p.wait(1, Duration::from_millis(10)), Duration::ZERO);
        assert_eq!(p.wait(1, Duration::from_secs(5)), Duration::ZERO);
    }

    #[test]
    fn due_by_window() {
        let p = Pacer::new(1000.0);
        assert_eq!(p.due_by(Duration::from_secs(2)), 2000);
        assert_eq!(p.due_by(Duration::from_micros(1500)), 2);
        assert_eq!(p.due_by(Duration::ZERO), 0);
    }

    #[test]
    fn pacing_holds_the_rate() {
        let p = Pacer::new(2000.0);
        let start = Instant::now();
        for i in 0..=100 {
            p.pace(start, i);
        }
        // 100 intervals of 0.5 ms: at least 50 ms, and not wildly more.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
