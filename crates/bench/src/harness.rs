//! Repetitions within a time budget, on a clock that tests can replace.

use std::time::{Duration, Instant};

use crate::stats::Summary;

/// A monotonic clock: time since some fixed origin.
pub trait Clock {
    fn now(&self) -> Duration;
}

/// The real monotonic clock (`clock_gettime(CLOCK_MONOTONIC)` through the vDSO).
pub struct RealClock(Instant);

impl Default for RealClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// How much to repeat.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Repetitions run first and thrown away (caches, page tables, frequency ramp-up).
    pub warmup: usize,
    pub min_reps: usize,
    pub max_reps: usize,
    /// Keep repeating while less than this has passed (after `min_reps`).
    pub time: Duration,
}

impl Budget {
    pub const NORMAL: Self = Self {
        warmup: 1,
        min_reps: 5,
        max_reps: 50,
        time: Duration::from_millis(800),
    };
    pub const QUICK: Self = Self {
        warmup: 1,
        min_reps: 3,
        max_reps: 10,
        time: Duration::from_millis(150),
    };
}

/// Runs `rep` (which returns one sample) `warmup` times unrecorded, then at least `min_reps`
/// and at most `max_reps` times, stopping once `budget.time` has passed.
pub fn repeat(clock: &dyn Clock, budget: &Budget, mut rep: impl FnMut() -> f64) -> Option<Summary> {
    for _ in 0..budget.warmup {
        rep();
    }
    let start = clock.now();
    let mut samples = Vec::new();
    while samples.len() < budget.min_reps
        || (samples.len() < budget.max_reps && clock.now().saturating_sub(start) < budget.time)
    {
        samples.push(rep());
    }
    Summary::of(&samples)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Advances by a fixed step each time it is read.
    struct Mock {
        t: Cell<Duration>,
        step: Duration,
    }

    impl Clock for Mock {
        fn now(&self) -> Duration {
            let t = self.t.get() + self.step;
            self.t.set(t);
            t
        }
    }

    #[test]
    fn stops_on_time_and_discards_warmup() {
        let clock = Mock {
            t: Cell::new(Duration::ZERO),
            step: Duration::from_millis(100),
        };
        let budget = Budget {
            warmup: 2,
            min_reps: 3,
            max_reps: 100,
            time: Duration::from_millis(650),
        };
        let mut n = 0.0;
        let s = repeat(&clock, &budget, || {
            n += 1.0;
            n
        })
        .unwrap();
        // Samples 1 and 2 were warm-up. The clock is read at the start (100 ms) and once per
        // check after the first three samples (200, 300, … ms): checks until 700 ms pass, so
        // six more samples follow the three minimum ones.
        assert_eq!(s.samples, 9);
        assert_eq!((s.min, s.max), (3.0, 11.0));
        assert!((s.median - 7.0).abs() < 1e-12);
    }

    #[test]
    fn respects_min_and_max_reps() {
        let slow = Mock {
            t: Cell::new(Duration::ZERO),
            step: Duration::from_secs(10),
        };
        let budget = Budget {
            warmup: 0,
            min_reps: 4,
            max_reps: 9,
            time: Duration::from_millis(1),
        };
        assert_eq!(repeat(&slow, &budget, || 1.0).unwrap().samples, 4);
        let fast = Mock {
            t: Cell::new(Duration::ZERO),
            step: Duration::from_nanos(1),
        };
        assert_eq!(repeat(&fast, &budget, || 1.0).unwrap().samples, 9);
    }
}
