//! Latency-aware subnet search: which subnet of the supernet gives the most parameters (or
//! FLOPs) while running within a latency budget on *this* device.
//!
//! The latency model is built from per-kernel timings measured here ([`LatencyTable`]): one
//! profiled forward per embedding width gives the time of every encoder layer's attention
//! half for each head count and its FFN half for each width, and everything outside the
//! layers. A subnet's predicted latency is the sum of its parts, calibrated against
//! end-to-end runs. Because both the latency and the objective are sums over layers, the best
//! subnet under a budget is a knapsack over the layers, solved exactly for every embedding
//! width and depth ([`best_under`]): the whole space (10^9 and more subnets) is searched, not a
//! sample of it. [`search`] then runs the winner end to end and tightens the budget until the
//! measured latency meets it.

mod latency;
mod optimize;

pub use latency::{measure_ms, probe_audio, Calibration, CalibrationPoint, EmbedCosts, LatencyTable, TableKey};
pub use optimize::{best_under, pareto_front, Candidate, Objective};

use thiserror::Error;

use crate::{LightHubert, Result};

#[derive(Debug, Error)]
pub enum SearchError {
    #[error("latency budget `{0}` ms: it must be a positive, finite number of milliseconds")]
    BadBudget(f64),
    #[error("audio length `{0}` s: it must be a finite number of seconds that gives at least one frame (0.025 s)")]
    BadSeconds(f64),
    #[error("no subnet fits {budget_ms:.1} ms on this device: the fastest, embed {fastest_embed} with {fastest_layers} layers, is predicted at {fastest_ms:.1} ms")]
    BudgetTooSmall { budget_ms: f64, fastest_ms: f64, fastest_embed: usize, fastest_layers: usize },
    #[error("no subnet met {budget_ms:.1} ms when run: the last try, predicted at {predicted_ms:.1} ms, measured {measured_ms:.1} ms (the device may be busy; retry, or raise the budget)")]
    NotMetWhenRun { budget_ms: f64, predicted_ms: f64, measured_ms: f64 },
    #[error("latency table {path}: {reason}")]
    Table { path: String, reason: String },
}

/// The subnet [`search`] returns, with what was predicted and measured for it, and every
/// subnet it ran on the way (the budget tightens after a miss).
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub best: Candidate,
    pub measured_ms: f64,
    pub tries: Vec<(Candidate, f64)>,
}

/// The best subnet for `objective` whose latency on `model`'s device, measured end to end
/// (median of `runs`) for the table's audio length, is within `budget_ms`. The prediction
/// picks the subnet; the run decides, and must come in `margin` (a fraction) under the budget
/// so that the next run on a noisy machine still meets it. After a miss the budget given to
/// the model shrinks by the miss, up to five tries.
pub fn search(model: &LightHubert, table: &LatencyTable, objective: Objective, budget_ms: f64, margin: f64, runs: usize) -> Result<SearchResult> {
    check_budget(budget_ms)?;
    let limit_ms = budget_ms * (1.0 - margin.clamp(0.0, 0.5));
    let wave = probe_audio(table.audio_seconds);
    let mut target = limit_ms;
    let mut tries: Vec<(Candidate, f64)> = Vec::new();
    for _ in 0..5 {
        let candidate = match best_under(table, model.supernet(), objective, target) {
            Ok(c) => c,
            // Tightened below the fastest subnet: the original budget was not met by running.
            Err(SearchError::BudgetTooSmall { .. }) if !tries.is_empty() => break,
            Err(e) => return Err(e.into()),
        };
        let measured = measure_ms(model, &candidate.subnet, &wave, runs)?;
        tries.push((candidate.clone(), measured));
        if measured <= limit_ms {
            return Ok(SearchResult { best: candidate, measured_ms: measured, tries });
        }
        target *= limit_ms / measured * 0.98;
    }
    let (last, measured) = tries.last().cloned().expect("at least one try ran");
    Err(SearchError::NotMetWhenRun { budget_ms, predicted_ms: last.predicted_ms, measured_ms: measured }.into())
}

pub(crate) fn check_budget(budget_ms: f64) -> Result<(), SearchError> {
    if budget_ms.is_finite() && budget_ms > 0.0 {
        Ok(())
    } else {
        Err(SearchError::BadBudget(budget_ms))
    }
}
