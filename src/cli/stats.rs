//! Latency percentiles and progress lines shared by the benchmarks.

use std::io::Write;
use std::time::{Duration, Instant};

/// Collects latencies and reports percentiles in milliseconds.
#[derive(Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Latencies(Vec::with_capacity(n))
    }

    pub fn record(&mut self, latency: Duration) {
        self.0.push(latency);
    }

    /// The `q` quantile (0..=1) in milliseconds; 0 when nothing was recorded.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let rank = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1].as_secs_f64() * 1000.0
    }
}

/// Prints "label: done/total" to stderr at most once a second.
pub struct Progress {
    label: &'static str,
    total: u64,
    last: Instant,
}

impl Progress {
    pub fn new(label: &'static str, total: u64) -> Self {
        Progress {
            label,
            total,
            last: Instant::now(),
        }
    }

    pub fn update(&mut self, done: u64) {
        // Reading the clock for every record shows up in profiles.
        if done % 4096 == 0 && self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            let _ = writeln!(
                std::io::stderr(),
                "{}: {done}/{} records",
                self.label,
                self.total
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_right_rank() {
        let mut l = Latencies::default();
        assert_eq!(l.quantile_ms(0.5), 0.0);
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.quantile_ms(0.5), 50.0);
        assert_eq!(l.quantile_ms(0.99), 99.0);
        assert_eq!(l.quantile_ms(1.0), 100.0);
    }
}
