//! The device's latency table: per-kernel timings of every layer shape the search space
//! allows, measured once per device, checkpoint space and audio length, and saved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::SearchError;
use crate::supernet::frames_for;
use crate::supernet::{ffn_width, Subnet, Supernet};
use crate::LightHubert;

/// What a table was measured for; a table answers only for the same key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableKey {
    /// The adapter, backend and driver ([`crate::gpu::GpuContext::describe`]).
    pub adapter: String,
    /// The kernel family and weight/arithmetic precision the model runs.
    pub kernels: String,
    pub precision: String,
    /// The supernet's widths and search space: a different checkpoint layout times differently.
    pub supernet: String,
    /// Frames of audio the latencies are for (attention grows with their square).
    pub frames: usize,
}

impl TableKey {
    pub fn for_model(model: &LightHubert, audio_seconds: f64) -> Self {
        let ctx = model.context();
        let sn = model.supernet();
        TableKey {
            adapter: ctx.describe(),
            kernels: format!("{:?}", ctx.kernel_family).to_lowercase(),
            precision: format!("{:?}", model.precision()),
            supernet: format!("{:?} {:?}", sn.dims, sn.space),
            frames: frames_for(&sn.dims, samples_for(audio_seconds)),
        }
    }

    /// A file name for this key: readable, and different for different keys.
    pub fn file_name(&self) -> String {
        let slug: String = self
            .adapter
            .split(' ')
            .next()
            .unwrap_or("device")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .collect();
        let hash = fnv1a(&serde_json::to_string(self).unwrap_or_default());
        format!("{slug}-{}-{}f-{hash:016x}.json", self.kernels, self.frames)
    }
}

/// Measured costs of one embedding width, in profiled milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedCosts {
    pub embed: usize,
    /// Everything outside the encoder layers and the conv extractor: the projection, the
    /// positional conv, the norms.
    pub fixed_ms: f64,
    /// One layer's attention half (q, k, v, attention, out_proj, LayerNorm) per head count.
    pub attention_ms: BTreeMap<usize, f64>,
    /// One layer's FFN half (fc1, fc2, LayerNorm) per FFN width.
    pub ffn_ms: BTreeMap<usize, f64>,
}

/// End-to-end latency as `scale * profiled + offset_ms` (scale > 0, offset >= 0): the profiler
/// times each dispatch in its own pass, which a forward pass (one pass, one submit, a readback)
/// does not pay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub scale: f64,
    pub offset_ms: f64,
}

/// One subnet timed both ways while calibrating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationPoint {
    pub subnet: Subnet,
    pub profiled_ms: f64,
    pub measured_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyTable {
    pub key: TableKey,
    pub audio_seconds: f64,
    /// The conv feature extractor, the same for every subnet (profiled ms, the fastest of
    /// every profiled run).
    pub extractor_ms: f64,
    pub embeds: Vec<EmbedCosts>,
    pub calibration: Calibration,
    pub points: Vec<CalibrationPoint>,
    /// Seconds the measurement took.
    pub measure_seconds: f64,
}

impl LatencyTable {
    /// Measures the table on `model`'s device for `audio_seconds` of audio. Per embedding
    /// width, `runs` profiled forwards of a deepest-depth subnet whose layers cycle through
    /// every head count and FFN width give each layer half several samples, of which the
    /// fastest counts; three subnets per width, run end to end (median of `runs`), calibrate
    /// the sum.
    pub fn measure(model: &LightHubert, audio_seconds: f64, runs: usize) -> Result<Self, SearchError> {
        check_seconds(model, audio_seconds)?;
        let start = Instant::now();
        let key = TableKey::for_model(model, audio_seconds);
        let sn = model.supernet();
        let space = &sn.space;
        let wave = probe_audio(audio_seconds);
        let runs = runs.max(1);
        let mut embeds = Vec::new();
        let mut profiled_points = Vec::new();
        let mut extractor = Vec::new();
        for &e in &space.embed_dim {
            let designs = design_subnets(sn, e);
            let mut fixed = Vec::new();
            let mut attention: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            let mut ffn: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for design in &designs {
                measure_ms(model, design, &wave, 1)?; // warm-up: pool, caches
                for _ in 0..runs {
                    let profile = model.profile(design, &wave, false)?;
                    let mut per_stage: BTreeMap<String, f64> = BTreeMap::new();
                    for t in &profile.timings {
                        *per_stage.entry(t.label.clone()).or_default() += t.duration_ns / 1e6;
                    }
                    let (mut outside, mut conv) = (0.0, 0.0);
                    for (label, ms) in per_stage {
                        match parse_layer_stage(&label) {
                            Some((n, true)) => attention.entry(design.heads_num[n]).or_default().push(ms),
                            Some((n, false)) => ffn.entry(design.ffn_embed[n]).or_default().push(ms),
                            None if label.starts_with("conv") => conv += ms,
                            None => outside += ms,
                        }
                    }
                    fixed.push(outside);
                    extractor.push(conv);
                }
            }
            // The fastest sample of each part: interference from other work on the machine
            // only ever adds time, and it would add it to one part and not the next.
            let costs = EmbedCosts {
                embed: e,
                fixed_ms: fastest(&fixed),
                attention_ms: attention.into_iter().map(|(h, v)| (h, fastest(&v))).collect(),
                ffn_ms: ffn.into_iter().map(|(f, v)| (f, fastest(&v))).collect(),
            };
            embeds.push(costs);
            profiled_points.extend(calibration_subnets(sn, e, designs.into_iter().next()));
        }
        let mut table = LatencyTable {
            key,
            audio_seconds,
            extractor_ms: fastest(&extractor),
            embeds,
            calibration: Calibration { scale: 1.0, offset_ms: 0.0 },
            points: Vec::new(),
            measure_seconds: 0.0,
        };
        for subnet in profiled_points {
            let profiled_ms = table.profiled_ms(&subnet).expect("the table covers its own space");
            let measured_ms = measure_ms(model, &subnet, &wave, runs)?;
            table.points.push(CalibrationPoint { subnet, profiled_ms, measured_ms });
        }
        table.calibration = fit(&table.points);
        table.measure_seconds = start.elapsed().as_secs_f64();
        Ok(table)
    }

    fn embed(&self, e: usize) -> Option<&EmbedCosts> {
        self.embeds.iter().find(|c| c.embed == e)
    }

    /// Profiled milliseconds of one layer of width `e` with `heads` and `ffn`.
    pub fn layer_ms(&self, e: usize, heads: usize, ffn: usize) -> Option<f64> {
        let c = self.embed(e)?;
        Some(c.attention_ms.get(&heads)? + c.ffn_ms.get(&ffn)?)
    }

    /// Profiled milliseconds outside the layers at width `e`, conv extractor included.
    pub fn fixed_ms(&self, e: usize) -> Option<f64> {
        self.embed(e).map(|c| self.extractor_ms + c.fixed_ms)
    }

    /// The uncalibrated sum of `subnet`'s parts.
    pub fn profiled_ms(&self, subnet: &Subnet) -> Option<f64> {
        let e = subnet.embed_dim;
        let mut total = self.fixed_ms(e)?;
        for l in subnet.layers() {
            total += self.layer_ms(e, l.heads, l.ffn)?;
        }
        Some(total)
    }

    /// Predicted end-to-end milliseconds of `subnet`, or `None` outside the measured space.
    pub fn predict_ms(&self, subnet: &Subnet) -> Option<f64> {
        self.profiled_ms(subnet).map(|p| self.calibration.scale * p + self.calibration.offset_ms)
    }

    /// Writes the table as JSON, through a temporary file so a reader never sees half of it.
    pub fn save(&self, path: &Path) -> Result<(), SearchError> {
        let err = |reason: String| SearchError::Table { path: path.display().to_string(), reason };
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        crate::cache::write_atomically(path, text.as_bytes()).map_err(|e| err(format!("cannot write: {e}")))
    }

    /// Reads a saved table; a damaged file is an error that names it.
    pub fn load(path: &Path) -> Result<Self, SearchError> {
        let err = |reason: String| SearchError::Table { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let table: LatencyTable = serde_json::from_str(&text).map_err(|e| err(format!("not a latency table: {e}")))?;
        let finite = |v: f64| v.is_finite() && v >= 0.0;
        let sane = finite(table.extractor_ms) && table.embeds.iter().all(|c| {
            finite(c.fixed_ms) && c.attention_ms.values().all(|&v| finite(v)) && c.ffn_ms.values().all(|&v| finite(v))
        }) && table.calibration.scale.is_finite()
            && table.calibration.scale > 0.0
            && table.calibration.offset_ms.is_finite()
            && table.calibration.offset_ms >= 0.0;
        if !sane {
            return Err(err("holds a negative or non-finite time".into()));
        }
        Ok(table)
    }

    /// Whether this table answers for `key`, and if not, why.
    pub fn check_key(&self, key: &TableKey) -> Result<(), TableMismatch> {
        let k = &self.key;
        if k.adapter != key.adapter {
            Err(TableMismatch::Adapter { table: k.adapter.clone(), this: key.adapter.clone() })
        } else if k.kernels != key.kernels || k.precision != key.precision {
            Err(TableMismatch::Setting { table: (k.kernels.clone(), k.precision.clone()), this: (key.kernels.clone(), key.precision.clone()) })
        } else if k.supernet != key.supernet {
            Err(TableMismatch::Supernet)
        } else if k.frames != key.frames {
            Err(TableMismatch::Frames { table: k.frames, this: key.frames })
        } else {
            Ok(())
        }
    }

    /// Where tables are kept by default: `$XDG_CACHE_HOME/lighthubert/latency`, else
    /// `~/.cache/lighthubert/latency`.
    pub fn default_dir() -> Option<PathBuf> {
        crate::cache::dir().map(|d| d.join("latency"))
    }
}

/// Subnets of width `e` at the deepest depth whose layers between them take every head count
/// and every FFN width (attention and FFN are timed apart, so each choice needs a layer, not
/// each pair): usually one subnet.
fn design_subnets(sn: &Supernet, e: usize) -> Vec<Subnet> {
    let space = &sn.space;
    let depth = (*space.layer_num.iter().max().unwrap_or(&sn.dims.layers)).max(1);
    let widths: Vec<usize> = space.ffn_ratio.iter().map(|&r| ffn_width(r, e)).collect();
    let needed = space.heads_num.len().max(widths.len()).div_ceil(depth).max(1);
    (0..needed)
        .map(|k| {
            let mut s = Subnet::uniform(e, space.heads_num[0], widths[0], depth);
            for i in 0..depth {
                let at = k * depth + i;
                let h = space.heads_num[at % space.heads_num.len()];
                s.heads_num[i] = h;
                s.atten_dim[i] = 64 * h;
                s.ffn_embed[i] = widths[at % widths.len()];
            }
            s
        })
        .collect()
}

/// The smallest and largest uniform subnets of width `e`, and the first design subnet.
fn calibration_subnets(sn: &Supernet, e: usize, design: Option<Subnet>) -> Vec<Subnet> {
    let space = &sn.space;
    let min_f = space.ffn_ratio.iter().cloned().fold(f64::INFINITY, f64::min);
    let max_f = space.ffn_ratio.iter().cloned().fold(0.0, f64::max);
    let min_depth = *space.layer_num.iter().min().unwrap_or(&1);
    let max_depth = *space.layer_num.iter().max().unwrap_or(&1);
    let min_h = *space.heads_num.iter().min().unwrap_or(&1);
    let max_h = *space.heads_num.iter().max().unwrap_or(&1);
    let mut out = vec![Subnet::uniform(e, min_h, ffn_width(min_f, e), min_depth)];
    out.extend(design);
    out.push(Subnet::uniform(e, max_h, ffn_width(max_f, e), max_depth));
    out
}

/// `layer N attention` / `layer N ffn` → (N - 1, is_attention).
fn parse_layer_stage(label: &str) -> Option<(usize, bool)> {
    let rest = label.strip_prefix("layer ")?;
    let (n, part) = rest.split_once(' ')?;
    let n: usize = n.parse().ok()?;
    match part {
        "attention" => Some((n.checked_sub(1)?, true)),
        "ffn" => Some((n.checked_sub(1)?, false)),
        _ => None,
    }
}

/// Least squares `measured = scale * profiled + offset`, kept only where the offset comes out
/// non-negative (the forward's own fixed costs: a submit, a readback). A negative offset is
/// noise in a few points, and it would predict nonsense (even negative times) for subnets
/// smaller than those calibrated; then the fit is a pure scale through the origin.
fn fit(points: &[CalibrationPoint]) -> Calibration {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), p| (a + p.profiled_ms, b + p.measured_ms));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|p| (p.profiled_ms - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.profiled_ms - mx) * (p.measured_ms - my)).sum();
    if points.len() >= 2 && sxx > 1e-12 && sxy > 0.0 {
        let scale = sxy / sxx;
        let offset_ms = my - scale * mx;
        if offset_ms >= 0.0 {
            return Calibration { scale, offset_ms };
        }
    }
    let sxx0: f64 = points.iter().map(|p| p.profiled_ms * p.profiled_ms).sum();
    let sxy0: f64 = points.iter().map(|p| p.profiled_ms * p.measured_ms).sum();
    Calibration { scale: if sxx0 > 0.0 && sxy0 > 0.0 { sxy0 / sxx0 } else { 1.0 }, offset_ms: 0.0 }
}

fn fastest(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::INFINITY, f64::min)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

pub(crate) fn samples_for(seconds: f64) -> usize {
    (seconds * 16_000.0).round() as usize
}

pub(crate) fn check_seconds(model: &LightHubert, seconds: f64) -> Result<(), SearchError> {
    if seconds.is_finite() && seconds > 0.0 && frames_for(&model.supernet().dims, samples_for(seconds)) > 0 {
        Ok(())
    } else {
        Err(SearchError::BadSeconds(seconds))
    }
}

/// `seconds` of deterministic noise-like audio at 16 kHz: latency depends on length only.
pub fn probe_audio(seconds: f64) -> Vec<f32> {
    let mut state = 0x9e3779b97f4a7c15u64;
    (0..samples_for(seconds))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// Median wall-clock milliseconds of `runs` forward passes of `subnet` on `wave`, results read
/// back, after two warm-up passes (the first of a new shape fills the buffer pool).
pub fn measure_ms(model: &LightHubert, subnet: &Subnet, wave: &[f32], runs: usize) -> Result<f64, SearchError> {
    model.forward(subnet, wave, false)?;
    model.forward(subnet, wave, false)?;
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        model.forward(subnet, wave, false)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(&mut times))
}

/// Each subnet's latency as [`measure_ms`] gives it (median of `runs`), the lowest over
/// `rounds` rounds a third of a second apart, the subnets interleaved within each round. On a
/// machine with slow spells (other tenants, throttling), which only ever add time, this is the
/// figure to compare against a budget, and interleaving puts the subnets compared through the
/// same spells.
pub fn measure_interleaved_ms(model: &LightHubert, subnets: &[&Subnet], wave: &[f32], runs: usize, rounds: usize) -> Result<Vec<f64>, SearchError> {
    let mut best = vec![f64::INFINITY; subnets.len()];
    for round in 0..rounds.max(1) {
        if round > 0 {
            std::thread::sleep(std::time::Duration::from_millis(330));
        }
        for (b, s) in best.iter_mut().zip(subnets) {
            *b = b.min(measure_ms(model, s, wave, runs)?);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(profiled_ms: f64, measured_ms: f64) -> CalibrationPoint {
        CalibrationPoint { subnet: Subnet::uniform(64, 1, 192, 10), profiled_ms, measured_ms }
    }

    #[test]
    fn calibration_keeps_a_positive_offset() {
        let c = fit(&[point(10.0, 25.0), point(20.0, 45.0), point(30.0, 65.0)]);
        assert!((c.scale - 2.0).abs() < 1e-12 && (c.offset_ms - 5.0).abs() < 1e-9, "{c:?}");
    }

    /// Noisy points whose line crosses zero above the origin would predict negative times for
    /// small subnets: the fit falls back to a scale through the origin.
    #[test]
    fn calibration_never_predicts_below_zero() {
        let points = [point(60.0, 60.0), point(70.0, 95.0), point(80.0, 130.0)];
        let c = fit(&points);
        assert_eq!(c.offset_ms, 0.0, "{c:?}");
        let expected = (60.0 * 60.0 + 70.0 * 95.0 + 80.0 * 130.0) / (60.0f64 * 60.0 + 70.0 * 70.0 + 80.0 * 80.0);
        assert!((c.scale - expected).abs() < 1e-12);
        assert!(c.scale * 1.0 + c.offset_ms > 0.0);
    }
}

/// Why a latency table does not answer for this run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TableMismatch {
    #[error("it was measured on {table}, this is {this}")]
    Adapter { table: String, this: String },
    /// Kernel family and precision, the table's and this run's.
    #[error("it was measured with {} kernels and {}, this run uses {} and {}", table.0, table.1, this.0, this.1)]
    Setting { table: (String, String), this: (String, String) },
    #[error("it was measured for another supernet layout or search space")]
    Supernet,
    #[error("it was measured for {table} frames of audio, this search is for {this}")]
    Frames { table: usize, this: usize },
}
