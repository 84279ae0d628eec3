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

pub use latency::{measure_interleaved_ms, measure_ms, probe_audio, Calibration, CalibrationPoint, EmbedCosts, LatencyTable, TableKey, TableMismatch};
pub use optimize::{best_under, pareto_front, Candidate, Objective};

use thiserror::Error;

use crate::LightHubert;

/// Why a search could not finish. A search runs the model, so its errors include the engine's
/// (the engine's own error knows nothing of search: dependencies point one way).
#[derive(Debug, Error)]
pub enum SearchError {
    #[error(transparent)]
    Engine(#[from] crate::Error),
    #[error("latency budget `{0}` ms: it must be a positive, finite number of milliseconds")]
    BadBudget(f64),
    #[error("audio length `{0}` s: it must be a finite number of seconds that gives at least one frame (0.025 s)")]
    BadSeconds(f64),
    #[error("no subnet fits {budget_ms:.1} ms on this device: the fastest, embed {fastest_embed} with {fastest_layers} layers, is predicted at {fastest_ms:.1} ms")]
    BudgetTooSmall { budget_ms: f64, fastest_ms: f64, fastest_embed: usize, fastest_layers: usize },
    #[error("no subnet met {budget_ms:.1} ms when run: the last try, predicted at {predicted_ms:.1} ms, measured {measured_ms:.1} ms (the device may be busy; retry, or raise the budget)")]
    NotMetWhenRun { budget_ms: f64, predicted_ms: f64, measured_ms: f64 },
    #[error("this file holds one exported subnet, which took {measured_ms:.1} ms against the budget of {budget_ms:.1} ms; search the checkpoint it was cut from for a smaller one")]
    ExportedTooSlow { budget_ms: f64, measured_ms: f64 },
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
/// so that the next run on a noisy machine still meets it.
///
/// The budget given to the model is the search variable: after a miss it shrinks by the miss
/// (3 to 15% a step); once one subnet has passed, it bisects between the largest passing and
/// the smallest failing budget, so a single slow run does not leave the result far below what
/// the device can do. At most [`MAX_RUNS`] subnets run.
pub fn search(model: &LightHubert, table: &LatencyTable, objective: Objective, budget_ms: f64, margin: f64, runs: usize) -> Result<SearchResult, SearchError> {
    check_budget(budget_ms)?;
    // Verifying on a device the table does not describe would steer by the wrong numbers.
    table
        .check_key(&TableKey::for_model(model, table.audio_seconds))
        .map_err(|reason| SearchError::Table { path: "(given table)".into(), reason: reason.to_string() })?;
    let limit_ms = budget_ms * (1.0 - margin.clamp(0.0, 0.5));
    let wave = probe_audio(table.audio_seconds);
    let sn = model.supernet();
    let mut tries: Vec<(Candidate, f64)> = Vec::new();
    let mut passed: Option<(Candidate, f64, f64)> = None; // candidate, measured, target
    let mut failed_target: Option<f64> = None;
    let mut target = limit_ms;
    for _ in 0..24 {
        let candidate = match best_under(table, sn, objective, target) {
            Ok(c) => c,
            // Tightened below what the model thinks fastest: the fastest is the last resort.
            Err(SearchError::BudgetTooSmall { .. }) if !tries.is_empty() => match optimize::fastest(table, sn) {
                Some(c) if !tries.iter().any(|(t, _)| t.subnet == c.subnet) => c,
                _ => break,
            },
            // Nothing fits even the first budget: say so with the budget the caller gave.
            Err(SearchError::BudgetTooSmall { fastest_ms, fastest_embed, fastest_layers, .. }) if tries.is_empty() => {
                return Err(SearchError::BudgetTooSmall { budget_ms, fastest_ms, fastest_embed, fastest_layers })
            }
            Err(e) => return Err(e),
        };
        // A subnet already run keeps its measurement: bisection moves on without rerunning.
        let measured = match tries.iter().find(|(t, _)| t.subnet == candidate.subnet) {
            Some(&(_, ms)) => ms,
            None if tries.len() >= MAX_RUNS => break,
            None => {
                let ms = measure_ms(model, &candidate.subnet, &wave, runs)?;
                tries.push((candidate.clone(), ms));
                ms
            }
        };
        if measured <= limit_ms {
            if passed.as_ref().is_none_or(|(p, _, _)| candidate.value(objective) > p.value(objective)) {
                passed = Some((candidate, measured, target));
            }
            match failed_target {
                Some(hi) if hi - target > 0.01 * limit_ms => target = 0.5 * (target + hi),
                _ => break,
            }
        } else {
            failed_target = Some(failed_target.map_or(target, |f| f.min(target)));
            target = match &passed {
                Some((_, _, lo)) => 0.5 * (lo + target),
                None => target.min(candidate.predicted_ms) * (limit_ms / measured).clamp(0.85, 0.97),
            };
            if passed.as_ref().is_some_and(|(_, _, lo)| failed_target.unwrap_or(target) - lo <= 0.01 * limit_ms) {
                break;
            }
        }
    }
    if let Some((best, measured_ms, _)) = passed {
        return Ok(SearchResult { best, measured_ms, tries });
    }
    let (last, measured) = tries.last().cloned().expect("at least one try ran");
    Err(SearchError::NotMetWhenRun { budget_ms, predicted_ms: last.predicted_ms, measured_ms: measured })
}

/// Subnets [`search`] runs at most.
pub const MAX_RUNS: usize = 8;

pub(crate) fn check_budget(budget_ms: f64) -> Result<(), SearchError> {
    if budget_ms.is_finite() && budget_ms > 0.0 {
        Ok(())
    } else {
        Err(SearchError::BadBudget(budget_ms))
    }
}
