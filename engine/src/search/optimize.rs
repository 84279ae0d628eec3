//! The exact search: for each embedding width and depth, a knapsack over the layers.

use serde::{Deserialize, Serialize};

use super::{check_budget, LatencyTable, SearchError};
use crate::parse::UnknownChoice;
use crate::supernet::{ffn_width, forward_flops, layer_flops, layer_parameters, Subnet, Supernet};

/// What a search maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Parameters, counted as the authors count them.
    Params,
    /// FLOPs of a forward pass over the table's audio length.
    Flops,
}

impl std::str::FromStr for Objective {
    type Err = UnknownChoice;
    fn from_str(s: &str) -> Result<Self, UnknownChoice> {
        match s {
            "params" => Ok(Objective::Params),
            "flops" => Ok(Objective::Flops),
            _ => Err(UnknownChoice::new("objective", s, "params or flops")),
        }
    }
}

/// A subnet with its predicted latency and its size both ways.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub subnet: Subnet,
    pub predicted_ms: f64,
    pub params: u64,
    pub flops: f64,
}

impl Candidate {
    fn new(table: &LatencyTable, sn: &Supernet, subnet: Subnet) -> Option<Self> {
        let predicted_ms = table.predict_ms(&subnet)?;
        let samples = super::latency::samples_for(table.audio_seconds);
        Some(Candidate {
            params: sn.parameter_count(&subnet),
            flops: forward_flops(&sn.dims, &subnet, samples),
            subnet,
            predicted_ms,
        })
    }

    pub fn value(&self, objective: Objective) -> f64 {
        match objective {
            Objective::Params => self.params as f64,
            Objective::Flops => self.flops,
        }
    }
}

/// Latency units the budget left for the layers is cut into. Layer costs round up, so a found
/// subnet never exceeds the budget; the rounding loses at most 1/RESOLUTION of the budget per
/// layer.
const RESOLUTION: usize = 4000;

/// The subnet with the largest `objective` whose predicted latency is within `budget_ms`.
///
/// Latency and objective are both a part fixed by the embedding width plus one term per layer,
/// and every layer has the same choices, so for each width and depth this is a knapsack over
/// the layers, solved exactly by dynamic programming on the rounded-up layer costs. Since a
/// larger budget rounds every cost to the same or fewer units, every subnet that fits a budget
/// fits any larger one: a larger budget never gives a smaller result.
pub fn best_under(table: &LatencyTable, sn: &Supernet, objective: Objective, budget_ms: f64) -> Result<Candidate, SearchError> {
    check_budget(budget_ms)?;
    let space = &sn.space;
    let frames = table.key.frames;
    let cal = table.calibration;
    let max_depth = *space.layer_num.iter().max().unwrap_or(&0);
    let mut best: Option<Candidate> = None;
    for &e in &space.embed_dim {
        let Some(fixed) = table.fixed_ms(e) else { continue };
        let layer_budget = (budget_ms - cal.offset_ms) / cal.scale - fixed;
        if layer_budget <= 0.0 {
            continue;
        }
        // (heads, ffn, cost units, value) per layer choice.
        let unit = layer_budget / RESOLUTION as f64;
        let options: Vec<(usize, usize, usize, f64)> = space
            .heads_num
            .iter()
            .flat_map(|&h| space.ffn_ratio.iter().map(move |&r| (h, ffn_width(r, e))))
            .filter_map(|(h, f)| {
                let ms = table.layer_ms(e, h, f)?;
                let value = match objective {
                    Objective::Params => layer_parameters(e, h, f) as f64,
                    Objective::Flops => layer_flops(e, h, f, frames),
                };
                Some((h, f, (ms / unit).ceil() as usize, value))
            })
            .collect();
        // value[k][u]: the best sum of values of k layers costing exactly u units.
        let width = RESOLUTION + 1;
        let mut value = vec![f64::NEG_INFINITY; (max_depth + 1) * width];
        let mut choice = vec![usize::MAX; (max_depth + 1) * width];
        value[0] = 0.0;
        for k in 1..=max_depth {
            for u in 0..width {
                let prev = value[(k - 1) * width + u];
                if prev == f64::NEG_INFINITY {
                    continue;
                }
                for (i, &(_, _, cost, v)) in options.iter().enumerate() {
                    let to = u + cost;
                    if to < width && prev + v > value[k * width + to] {
                        value[k * width + to] = prev + v;
                        choice[k * width + to] = i;
                    }
                }
            }
        }
        for &depth in &space.layer_num {
            // The cheapest of the best: the largest value, then the fewest units.
            let Some(u_best) = (0..width)
                .filter(|&u| value[depth * width + u] > f64::NEG_INFINITY)
                .max_by(|&a, &b| value[depth * width + a].total_cmp(&value[depth * width + b]).then(b.cmp(&a)))
            else {
                continue;
            };
            let mut picks = Vec::with_capacity(depth);
            let (mut k, mut u) = (depth, u_best);
            while k > 0 {
                let i = choice[k * width + u];
                picks.push(options[i]);
                u -= options[i].2;
                k -= 1;
            }
            // Larger layers first: the order does not change latency or size.
            picks.sort_by_key(|p| std::cmp::Reverse((p.0, p.1)));
            let mut subnet = Subnet::uniform(e, picks[0].0, picks[0].1, depth);
            for (i, &(h, f, _, _)) in picks.iter().enumerate() {
                subnet.heads_num[i] = h;
                subnet.atten_dim[i] = 64 * h;
                subnet.ffn_embed[i] = f;
            }
            let Some(c) = Candidate::new(table, sn, subnet) else { continue };
            let better = match &best {
                None => true,
                Some(b) => c.value(objective) > b.value(objective) || (c.value(objective) == b.value(objective) && c.predicted_ms < b.predicted_ms),
            };
            if better {
                best = Some(c);
            }
        }
    }
    best.ok_or_else(|| {
        let fastest = fastest(table, sn);
        SearchError::BudgetTooSmall {
            budget_ms,
            fastest_ms: fastest.as_ref().map_or(f64::NAN, |c| c.predicted_ms),
            fastest_embed: fastest.as_ref().map_or(0, |c| c.subnet.embed_dim),
            fastest_layers: fastest.as_ref().map_or(0, |c| c.subnet.layer_num),
        }
    })
}

/// The subnet the table predicts fastest: for each width, the shallowest depth with its
/// cheapest layer choice everywhere.
pub(crate) fn fastest(table: &LatencyTable, sn: &Supernet) -> Option<Candidate> {
    uniform_extremes(table, sn, |a, b| a < b)
}

fn slowest(table: &LatencyTable, sn: &Supernet) -> Option<Candidate> {
    uniform_extremes(table, sn, |a, b| a > b)
}

fn uniform_extremes(table: &LatencyTable, sn: &Supernet, better: impl Fn(f64, f64) -> bool) -> Option<Candidate> {
    let space = &sn.space;
    let mut out: Option<Candidate> = None;
    for &e in &space.embed_dim {
        for &depth in &space.layer_num {
            for &h in &space.heads_num {
                for &r in &space.ffn_ratio {
                    let Some(c) = Candidate::new(table, sn, Subnet::uniform(e, h, ffn_width(r, e), depth)) else { continue };
                    if out.as_ref().is_none_or(|o| better(c.predicted_ms, o.predicted_ms)) {
                        out = Some(c);
                    }
                }
            }
        }
    }
    out
}

/// The best subnet for `points` budgets spread geometrically from the fastest subnet's
/// latency to the slowest's, with every subnet another one beats on both latency and
/// `objective` removed: the Pareto front, fastest first.
pub fn pareto_front(table: &LatencyTable, sn: &Supernet, objective: Objective, points: usize) -> Vec<Candidate> {
    let (Some(lo), Some(hi)) = (fastest(table, sn), slowest(table, sn)) else { return Vec::new() };
    let (lo, hi) = (lo.predicted_ms.max(1e-6), hi.predicted_ms * 1.001);
    let n = points.max(2);
    let mut found: Vec<Candidate> = Vec::new();
    for i in 0..n {
        let budget = lo * (hi / lo).powf(i as f64 / (n - 1) as f64);
        if let Ok(c) = best_under(table, sn, objective, budget)
            && !found.iter().any(|f| f.subnet == c.subnet)
        {
            found.push(c);
        }
    }
    found.sort_by(|a, b| a.predicted_ms.total_cmp(&b.predicted_ms));
    let mut front: Vec<Candidate> = Vec::new();
    for c in found {
        if front.last().is_none_or(|l| c.value(objective) > l.value(objective)) {
            front.push(c);
        }
    }
    front
}
