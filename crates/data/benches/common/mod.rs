//! What the data benchmarks share: the median of rounds, the load average, the table cell of
//! a rate, and the busy threads of `OSML_BENCH_CONTEND`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `median M (min–max M)` of tokens/s rounds.
pub fn rate_cell(v: &[f64], med: f64) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{:.1} M ({:.1}–{:.1} M)", med / 1e6, lo / 1e6, hi / 1e6)
}

/// `OSML_BENCH_CONTEND` busy threads beside the benchmark, as on a shared host; stopped and
/// joined on drop.
pub struct Contend {
    pub threads: usize,
    stop: Arc<AtomicBool>,
    busy: Vec<JoinHandle<()>>,
}

impl Contend {
    pub fn from_env() -> Self {
        let threads: usize = std::env::var("OSML_BENCH_CONTEND")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let busy = (0..threads)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005));
                    }
                })
            })
            .collect();
        Self {
            threads,
            stop,
            busy,
        }
    }
}

impl Drop for Contend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for b in self.busy.drain(..) {
            let _ = b.join();
        }
    }
}
