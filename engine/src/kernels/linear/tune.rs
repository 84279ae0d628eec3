//! Where the GPU GEMM switches from 32 x 32 to 64 x 64 blocks, measured on the device.
//!
//! `linear_shared` has two tile sizes. 64 x 64 blocks reuse each staged value more; 32 x 32
//! blocks make four times as many workgroups, which is what fills a large GPU when the output
//! is small (a short utterance's projections). Where one starts to beat the other depends on
//! the card (how many compute units, how much workgroup memory each has), so loading a model
//! times both on the shapes a forward pass runs and keeps the line: below it (counted in 64 x
//! 64 blocks of the output), 32 x 32. The result goes to a cache file per adapter, driver,
//! engine version, shader text and precision, so a card is measured once.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{IndexMap, Linear, LinearForm, LinearInput, WeightSlice, SHARED32, SHARED32_HALF_MATH, SHARED64, SHARED64_HALF_MATH};
use crate::gpu::{Arithmetic, CommandStream, GpuContext, GpuError, Precision};

/// The line until a device is measured: the largest GPUs have about 130 compute units (an
/// H100 132), and a 1 s utterance's q projection in small:default is 6 blocks of 64.
pub const DEFAULT_LINE: u64 = 128;

/// The GEMM shapes timed: (rows, depth, cols). Rows are 1, 4, 10 and 30 s of audio; the
/// widths are base's projections, fused q/k/v, FFN in and out, and small's fused q/k/v.
pub const SHAPES: &[(u32, u32, u32)] = &[
    (49, 768, 768),
    (49, 768, 2304),
    (49, 768, 3072),
    (49, 3072, 768),
    (49, 384, 1152),
    (199, 768, 768),
    (199, 768, 2304),
    (199, 768, 3072),
    (199, 3072, 768),
    (199, 384, 1152),
    (499, 768, 768),
    (499, 768, 2304),
    (499, 3072, 768),
    (1499, 768, 768),
    (1499, 768, 3072),
    (1499, 3072, 768),
];

/// Timed runs of each form on each shape (the median counts), after one untimed round.
const RUNS: usize = 3;

/// One shape's timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timed {
    pub rows: u32,
    pub depth: u32,
    pub cols: u32,
    /// 64 x 64 blocks of the output.
    pub blocks: u64,
    pub shared64_us: f64,
    pub shared32_us: f64,
}

/// A measured line, as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// Identifies the adapter, driver, engine build and precision it was measured for.
    pub key: String,
    /// Below this many 64 x 64 blocks, 32 x 32 blocks.
    pub line: u64,
    /// Whether GPU timestamps timed the dispatches (else the wall clock, submit included).
    pub gpu_timestamps: bool,
    pub timed: Vec<Timed>,
}

/// The cache file: every tuning measured on this machine.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    tunings: Vec<Tuning>,
}

/// Where tunings are kept by default: `gemm-tuning.json` in [`crate::cache::dir`].
pub fn default_cache() -> Option<PathBuf> {
    crate::cache::dir().map(|d| d.join("gemm-tuning.json"))
}

/// The line for `precision` on `ctx`'s device: from `cache` if it holds one for this adapter,
/// driver, engine build and precision, else measured now (well under a second on a GPU) and
/// written back. The context keeps it, and [`LinearForm::for_device`] reads it from there.
/// A cache that cannot be read or written is measured around, not an error.
pub fn tune(ctx: &GpuContext, precision: Precision, cache: Option<&Path>) -> Result<Tuning, GpuError> {
    tune_on(ctx, precision, cache, SHAPES)
}

/// [`tune`] on other shapes than [`SHAPES`] (tests time small ones).
pub fn tune_on(ctx: &GpuContext, precision: Precision, cache: Option<&Path>, shapes: &[(u32, u32, u32)]) -> Result<Tuning, GpuError> {
    let key = key(ctx, precision, shapes);
    let mut file = cache.and_then(read_cache).unwrap_or_default();
    let tuning = match file.tunings.iter().find(|t| t.key == key) {
        Some(t) => t.clone(),
        None => {
            let tuning = measure(ctx, precision, key, shapes)?;
            file.tunings.retain(|t| t.key != tuning.key);
            file.tunings.push(tuning.clone());
            if let Some(path) = cache {
                let _ = write_cache(path, &file);
            }
            tuning
        }
    };
    ctx.set_tile_line(precision, tuning.line);
    Ok(tuning)
}

/// Times both tile forms on every shape and places the line above the largest output on
/// which 32 x 32 blocks were faster.
fn measure(ctx: &GpuContext, precision: Precision, key: String, shapes: &[(u32, u32, u32)]) -> Result<Tuning, GpuError> {
    ctx.scoped(|| {
        let max = |f: fn(&(u32, u32, u32)) -> u32| shapes.iter().map(f).max().unwrap_or(1) as usize;
        let (rows, depth, cols) = (max(|s| s.0), max(|s| s.1), max(|s| s.2));
        let x = ctx.activation_from("tune x", &pattern(rows * depth))?;
        let mut w = ctx.upload_matrix("tune w", &pattern(cols * depth), precision.weights)?;
        w.math = precision.math;
        let y = ctx.activation("tune y", rows * cols)?;
        let queue = |stream: &mut CommandStream| {
            for &(rows, depth, cols) in shapes {
                let input = LinearInput::dense(&x, rows, depth);
                let weight = WeightSlice { weight: &w, bias: None, row_stride: depth, first_row: 0, rows: IndexMap::PREFIX, cols: IndexMap::PREFIX };
                for form in [LinearForm::Shared64, LinearForm::Shared32] {
                    Linear { input, weight, cols, act: super::Activation::None, y: &y }.record_as(stream, form);
                }
            }
        };
        // One untimed round: clocks up, caches warm.
        let mut warm = CommandStream::new(ctx);
        queue(&mut warm);
        warm.submit()?;
        let mut stream = CommandStream::new(ctx);
        for _ in 0..RUNS {
            queue(&mut stream);
        }
        let profile = stream.submit_profiled()?;
        let per_run = 2 * shapes.len();
        let median_us = |i: usize| {
            let mut d: Vec<f64> = (0..RUNS).map(|r| profile.timings[r * per_run + i].duration_ns / 1e3).collect();
            d.sort_by(f64::total_cmp);
            d[RUNS / 2]
        };
        let timed: Vec<Timed> = shapes
            .iter()
            .enumerate()
            .map(|(s, &(rows, depth, cols))| Timed {
                rows,
                depth,
                cols,
                blocks: blocks64(rows, cols),
                shared64_us: median_us(2 * s),
                shared32_us: median_us(2 * s + 1),
            })
            .collect();
        Ok(Tuning { key, line: line_from(&timed), gpu_timestamps: profile.gpu_timestamps, timed })
    })
}

/// 64 x 64 blocks of a [rows, cols] output: what [`LinearForm::for_device`] compares with the
/// line.
pub fn blocks64(rows: u32, cols: u32) -> u64 {
    rows.div_ceil(64) as u64 * cols.div_ceil(64) as u64
}

/// One past the most blocks on which 32 x 32 blocks won (1 if they never did: 64 x 64
/// everywhere).
pub fn line_from(timed: &[Timed]) -> u64 {
    timed.iter().filter(|t| t.shared32_us < t.shared64_us).map(|t| t.blocks + 1).max().unwrap_or(1)
}

/// Names what a tuning holds for: the adapter and its driver, the backend, this engine's
/// version, the text of the two kernels timed and the shapes (a change to any re-measures),
/// and the precision.
fn key(ctx: &GpuContext, precision: Precision, shapes: &[(u32, u32, u32)]) -> String {
    let i = &ctx.adapter_info;
    let (big, small) = match precision.math {
        Arithmetic::F32 => (SHARED64.get(precision.weights), SHARED32.get(precision.weights)),
        Arithmetic::F16 | Arithmetic::F16Matrix => (SHARED64_HALF_MATH.get(precision.weights), SHARED32_HALF_MATH.get(precision.weights)),
    };
    let text = format!("{}{}{shapes:?}", big.composed_for(ctx.params_binding(big)), small.composed_for(ctx.params_binding(small)));
    format!(
        "{} [{:04x}:{:04x}] {:?}, driver {} {}; lighthubert {}, kernels {:016x}; {} weights, {} math",
        i.name,
        i.vendor,
        i.device,
        i.backend,
        i.driver,
        i.driver_info,
        env!("CARGO_PKG_VERSION"),
        fnv1a(text.as_bytes()),
        precision.weights.name(),
        precision.math.name()
    )
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Values in [-1, 1) that vary, so no shortcut for zeros flatters a form.
fn pattern(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 23) as f32 - 1.0).collect()
}

fn read_cache(path: &Path) -> Option<CacheFile> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_cache(path: &Path, file: &CacheFile) -> std::io::Result<()> {
    crate::cache::write_atomically(path, &serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(blocks: u64, big: f64, small: f64) -> Timed {
        Timed { rows: 0, depth: 0, cols: 0, blocks, shared64_us: big, shared32_us: small }
    }

    #[test]
    fn the_line_sits_above_the_largest_output_where_small_blocks_won() {
        assert_eq!(line_from(&[timed(6, 10.0, 5.0), timed(40, 10.0, 9.0), timed(400, 10.0, 12.0)]), 41);
        assert_eq!(line_from(&[timed(6, 5.0, 10.0), timed(400, 10.0, 12.0)]), 1);
        assert_eq!(line_from(&[timed(6, 10.0, 5.0), timed(4000, 10.0, 9.0)]), 4001);
        assert_eq!(blocks64(49, 384), 6);
        assert_eq!(blocks64(1499, 3072), 24 * 48);
    }
}
