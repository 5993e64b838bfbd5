//! `log.cleaner.io.max.bytes.per.second`: the bytes every cleaner thread reads and writes,
//! together, held to one rate (Kafka's cleaner `Throttler`).
//!
//! Work is counted in windows: once a window's bytes are [`MIN_SLEEP`] or more ahead of the
//! rate, or it lasted [`WINDOW`], the thread that closes it sleeps until its bytes fit the
//! rate (so sleeps are few and never tiny).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The longest a window lasts.
const WINDOW: Duration = Duration::from_millis(100);
/// The shortest sleep worth taking.
const MIN_SLEEP: Duration = Duration::from_millis(10);

pub struct Throttle {
    /// The rate's `f64` bits (changed at runtime by dynamic broker configs).
    bytes_per_second: AtomicU64,
    window: Mutex<Window>,
}

struct Window {
    start: Instant,
    bytes: u64,
}

impl Throttle {
    /// A throttle at `bytes_per_second` (infinite or non-positive: no limit).
    pub fn new(bytes_per_second: f64) -> Self {
        Self {
            bytes_per_second: AtomicU64::new(bytes_per_second.to_bits()),
            window: Mutex::new(Window {
                start: Instant::now(),
                bytes: 0,
            }),
        }
    }

    /// Changes the rate from now on.
    pub fn set_rate(&self, bytes_per_second: f64) {
        self.bytes_per_second
            .store(bytes_per_second.to_bits(), Ordering::Relaxed);
    }

    fn rate(&self) -> f64 {
        f64::from_bits(self.bytes_per_second.load(Ordering::Relaxed))
    }

    pub fn is_unlimited(&self) -> bool {
        let rate = self.rate();
        !rate.is_finite() || rate <= 0.0 || rate == f64::MAX
    }

    /// Counts `bytes` of cleaner I/O, sleeping if the current window went too fast.
    pub fn take(&self, bytes: u64) {
        if self.is_unlimited() {
            return;
        }
        let sleep = {
            let mut window = self.window.lock();
            window.bytes += bytes;
            let elapsed = window.start.elapsed();
            let sleep = delay(self.rate(), window.bytes, elapsed);
            if elapsed < WINDOW && sleep < MIN_SLEEP {
                return;
            }
            window.start = Instant::now() + sleep;
            window.bytes = 0;
            sleep
        };
        if !sleep.is_zero() {
            std::thread::sleep(sleep);
        }
    }
}

/// How long to wait after `bytes` done in `elapsed` so that they took `1/rate` each.
fn delay(bytes_per_second: f64, bytes: u64, elapsed: Duration) -> Duration {
    let needed = Duration::from_secs_f64(bytes as f64 / bytes_per_second);
    needed.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_faster_than_the_rate_waits_for_the_difference() {
        // 1 MB at 10 MB/s takes 100 ms: done in 40 ms, wait 60 ms.
        assert_eq!(
            delay(10e6, 1_000_000, Duration::from_millis(40)),
            Duration::from_millis(60)
        );
        // Slower than the rate: no wait.
        assert_eq!(
            delay(10e6, 1_000_000, Duration::from_millis(150)),
            Duration::ZERO
        );
    }

    #[test]
    fn the_rate_is_held_across_windows() {
        let throttle = Throttle::new(2e6);
        let start = Instant::now();
        // 600 KB at 2 MB/s: at least 300 ms minus the last, unchecked window.
        for _ in 0..60 {
            throttle.take(10_000);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
        assert!(Throttle::new(f64::INFINITY).is_unlimited());
        assert!(Throttle::new(f64::MAX).is_unlimited(), "Kafka's default");
        assert!(Throttle::new(0.0).is_unlimited());
        throttle.set_rate(f64::MAX);
        assert!(throttle.is_unlimited());
    }
}
