//! Timing statistics: median and spread of N runs after warm-up.

use std::time::Instant;

use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Stats {
    /// Sorted run times in milliseconds.
    pub ms: Vec<f64>,
}

impl Stats {
    pub fn new(mut ms: Vec<f64>) -> Stats {
        ms.sort_by(f64::total_cmp);
        Stats { ms }
    }

    /// Nearest-rank quantile (the same rule as tools/bench_pytorch.py).
    pub fn q(&self, p: f64) -> f64 {
        let n = self.ms.len();
        self.ms[((p * (n - 1) as f64) + 0.5).floor().min((n - 1) as f64) as usize]
    }
    pub fn median(&self) -> f64 {
        self.q(0.5)
    }

    pub fn json(&self) -> Value {
        json!({
            "runs": self.ms.len(),
            "median_ms": self.median(),
            "min_ms": self.ms[0],
            "max_ms": self.ms[self.ms.len() - 1],
            "p10_ms": self.q(0.1),
            "p90_ms": self.q(0.9),
        })
    }
}

/// Runs `f` `warmup` times untimed, then `runs` times timed.
pub fn time<E>(warmup: usize, runs: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<Stats, E> {
    for _ in 0..warmup {
        f()?;
    }
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Stats::new(ms))
}

/// Times several cases side by side: after `warmup` untimed rounds, `runs` rounds that each run
/// every case once, starting from a different case each round. On a machine whose speed drifts
/// (shared hosts, thermal limits) a slow spell then lands on every case alike, so their ratios
/// hold even when absolute times wander.
pub fn time_interleaved<E>(warmup: usize, runs: usize, cases: &mut [&mut dyn FnMut() -> Result<(), E>]) -> Result<Vec<Stats>, E> {
    let n = cases.len();
    for _ in 0..warmup {
        for f in cases.iter_mut() {
            f()?;
        }
    }
    let mut ms = vec![Vec::with_capacity(runs); n];
    for round in 0..runs.max(1) {
        for i in 0..n {
            let c = (round + i) % n;
            let t = Instant::now();
            cases[c]()?;
            ms[c].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(ms.into_iter().map(Stats::new).collect())
}
