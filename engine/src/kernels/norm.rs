//! LayerNorm over channels (with optional residual add and GELU) and GroupNorm over time
//! (`shaders/norm.wgsl`). Affine parameters are prefixes of the full supernet tensors.

use bytemuck::{Pod, Zeroable};

use super::{fold_groups, gelu_f64, CommandStream};
use crate::gpu::sources::{GELU, GROUP_NORM_CHUNKED, LAYER_NORM_ROWWISE, NORM};
use crate::gpu::{Kernel, KernelFamily, ParamsLayout};

/// The eps of every norm in the reference.
pub const EPS: f32 = 1e-5;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    rows: u32,
    width: u32,
    flags: u32,
    eps: f32,
}

const FLAG_RESIDUAL: u32 = 1;
const FLAG_GELU: u32 = 2;

/// The affine parameters of a norm: full supernet vectors, of which the first `width` are used.
#[derive(Debug, Clone, Copy)]
pub struct Affine<'a> {
    pub gamma: &'a wgpu::Buffer,
    pub beta: &'a wgpu::Buffer,
}

/// How a LayerNorm dispatch spreads rows over invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerNormForm {
    /// 64 invocations per row, 4 rows per workgroup, tree reductions: for GPUs.
    Cooperative,
    /// One invocation per row, no barriers, vec4 loads (width % 4 == 0): for CPU
    /// implementations such as lavapipe, where a barrier costs per invocation (7x faster there
    /// on the conv extractor's norms) and every storage load a loop over the SIMD lanes.
    Rowwise,
}

impl LayerNormForm {
    pub fn for_device(ctx: &crate::gpu::GpuContext, width: u32) -> Self {
        if ctx.kernel_family == KernelFamily::Cpu && width.is_multiple_of(4) {
            LayerNormForm::Rowwise
        } else {
            LayerNormForm::Cooperative
        }
    }
}

const NORM_PARAMS: ParamsLayout = crate::params_layout!(NormParams { rows, width, flags, eps });
const CHUNK_PARAMS: ParamsLayout = crate::params_layout!(ChunkNormParams { rows, width, count, chunk, chunks, count_full, count_last, flags, eps });

/// [`LayerNormForm::Cooperative`].
pub static LAYER_NORM_COOPERATIVE: Kernel = Kernel::new(NORM, &[GELU], "layer_norm", NORM_PARAMS);
/// [`LayerNormForm::Rowwise`].
pub static LAYER_NORM_ROWWISE_KERNEL: Kernel = Kernel::new(LAYER_NORM_ROWWISE, &[GELU], "layer_norm_rowwise", NORM_PARAMS);
/// [`GroupNormTime`].
pub static GROUP_NORM_TIME: Kernel = Kernel::new(NORM, &[GELU], "group_norm_time", NORM_PARAMS);
/// [`GroupNormPartial`].
pub static GROUP_NORM_PARTIAL: Kernel = Kernel::new(GROUP_NORM_CHUNKED, &[GELU], "group_norm_partial", CHUNK_PARAMS);
/// [`GroupNormApply`].
pub static GROUP_NORM_APPLY: Kernel = Kernel::new(GROUP_NORM_CHUNKED, &[GELU], "group_norm_apply", CHUNK_PARAMS);

/// Every kernel of this module.
pub fn kernels() -> impl Iterator<Item = &'static Kernel> {
    [&LAYER_NORM_COOPERATIVE, &LAYER_NORM_ROWWISE_KERNEL, &GROUP_NORM_TIME, &GROUP_NORM_PARTIAL, &GROUP_NORM_APPLY].into_iter()
}

/// `y[r] = LN(x[r] (+ residual[r])) * gamma + beta`, then GELU if asked, for `rows` rows of
/// `width`.
#[derive(Debug, Clone, Copy)]
pub struct LayerNorm<'a> {
    pub x: &'a wgpu::Buffer,
    pub residual: Option<&'a wgpu::Buffer>,
    pub affine: Affine<'a>,
    pub rows: u32,
    pub width: u32,
    pub gelu: bool,
    pub y: &'a wgpu::Buffer,
}

impl LayerNorm<'_> {
    /// Queues the dispatch in the form that suits the device.
    pub fn record(&self, stream: &mut CommandStream) {
        self.record_as(stream, LayerNormForm::for_device(stream.context(), self.width));
    }

    /// Queues the dispatch in a given form.
    ///
    /// # Panics
    /// If `form` is [`LayerNormForm::Rowwise`] and the width is not a multiple of 4.
    pub fn record_as(&self, stream: &mut CommandStream, form: LayerNormForm) {
        let LayerNorm { x, residual, affine, rows, width, gelu, y } = *self;
        assert!(form != LayerNormForm::Rowwise || width.is_multiple_of(4), "layer_norm_rowwise reads whole vec4s");
        let flags = if residual.is_some() { FLAG_RESIDUAL } else { 0 } | if gelu { FLAG_GELU } else { 0 };
        let empty = stream.context().empty.clone();
        let (kernel, rows_per_group) = match form {
            LayerNormForm::Cooperative => (&LAYER_NORM_COOPERATIVE, 4),
            LayerNormForm::Rowwise => (&LAYER_NORM_ROWWISE_KERNEL, 64),
        };
        let max = stream.limits().max_compute_workgroups_per_dimension;
        let [gx, gy] = fold_groups(rows.div_ceil(rows_per_group), max);
        stream.dispatch(
            kernel,
            &NormParams { rows, width, flags, eps: EPS },
            &[x, residual.unwrap_or(&empty), affine.gamma, affine.beta, y],
            [gx, gy, 1],
        );
        let (n, inputs) = (rows as f64 * width as f64, if residual.is_some() { 2.0 } else { 1.0 });
        stream.cost(8.0 * n, 4.0 * (n * (inputs + 1.0) + 2.0 * width as f64));
    }
}

/// GroupNorm with one group per channel: each channel of x [batch, frames, channels]
/// normalised over the first `lengths[b]` frames of its utterance, then GELU if asked (the
/// `default` extractor mode's first block). `lengths` holds one u32 per utterance.
#[derive(Debug, Clone, Copy)]
pub struct GroupNormTime<'a> {
    pub x: &'a wgpu::Buffer,
    pub affine: Affine<'a>,
    pub lengths: &'a wgpu::Buffer,
    pub batch: u32,
    pub frames: u32,
    pub channels: u32,
    pub gelu: bool,
    pub y: &'a wgpu::Buffer,
}

impl GroupNormTime<'_> {
    pub fn record(&self, stream: &mut CommandStream) {
        let GroupNormTime { x, affine, lengths, batch, frames, channels, gelu, y } = *self;
        // This entry point never reads the residual (binding 2).
        stream.dispatch_bound(
            &GROUP_NORM_TIME,
            &NormParams { rows: frames, width: channels, flags: if gelu { FLAG_GELU } else { 0 }, eps: EPS },
            &[(1, x), (3, affine.gamma), (4, affine.beta), (5, y), (6, lengths)],
            [channels, batch, 1],
        );
        let n = batch as f64 * frames as f64 * channels as f64;
        stream.cost(8.0 * n, 4.0 * (3.0 * n + 2.0 * channels as f64));
    }
}

fn normalise(values: &[f64], gamma: &[f32], beta: &[f32], gelu: bool, stride: usize, out: &mut [f32]) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let inv = 1.0 / (var + EPS as f64).sqrt();
    for (i, v) in values.iter().enumerate() {
        let z = (v - mean) * inv * gamma[i.min(gamma.len() - 1)] as f64 + beta[i.min(beta.len() - 1)] as f64;
        out[i * stride] = if gelu { gelu_f64(z) } else { z } as f32;
    }
}

/// CPU reference of [`LayerNorm`].
pub fn layer_norm_cpu(
    x: &[f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    width: usize,
    gelu: bool,
) -> Vec<f32> {
    let mut y = vec![0f32; rows * width];
    for r in 0..rows {
        let row: Vec<f64> = (0..width)
            .map(|c| x[r * width + c] as f64 + residual.map_or(0.0, |res| res[r * width + c] as f64))
            .collect();
        normalise(&row, &gamma[..width], &beta[..width], gelu, 1, &mut y[r * width..]);
    }
    y
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ChunkNormParams {
    rows: u32,
    width: u32,
    count: u32,
    chunk: u32,
    chunks: u32,
    count_full: u32,
    count_last: u32,
    flags: u32,
    eps: f32,
    _pad: [u32; 3],
}

/// How the frames of one utterance's GroupNorm split into chunks: every chunk but the last owns
/// `count_full` frames of the statistics, the last `count_last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormChunks {
    pub chunks: u32,
    pub count_full: u32,
    pub count_last: u32,
}

/// First pass of a chunked [`GroupNormTime`] (one utterance): the mean and the sum of squared
/// deviations of each channel over the first `count` of the chunk's `frames` rows, into
/// `stats[chunk]` ([chunks, channels] of 2 f32).
#[derive(Debug, Clone, Copy)]
pub struct GroupNormPartial<'a> {
    pub x: &'a wgpu::Buffer,
    pub stats: &'a wgpu::Buffer,
    pub chunk: u32,
    pub count: u32,
    pub frames: u32,
    pub channels: u32,
}

impl GroupNormPartial<'_> {
    pub fn record(&self, stream: &mut CommandStream) {
        let GroupNormPartial { x, stats, chunk, count, frames, channels } = *self;
        let params = ChunkNormParams { rows: frames, width: channels, count, chunk, chunks: 0, count_full: 0, count_last: 0, flags: 0, eps: EPS, _pad: [0; 3] };
        stream.dispatch_bound(&GROUP_NORM_PARTIAL, &params, &[(1, x), (4, stats)], [channels, 1, 1]);
        let n = count as f64 * channels as f64;
        stream.cost(4.0 * n, 4.0 * 2.0 * n);
    }
}

/// Second pass: the utterance's statistics from every chunk's, then the chunk's `frames` rows
/// normalised (and GELU if asked) into `y`.
#[derive(Debug, Clone, Copy)]
pub struct GroupNormApply<'a> {
    pub x: &'a wgpu::Buffer,
    pub affine: Affine<'a>,
    pub stats: &'a wgpu::Buffer,
    pub split: NormChunks,
    pub frames: u32,
    pub channels: u32,
    pub gelu: bool,
    pub y: &'a wgpu::Buffer,
}

impl GroupNormApply<'_> {
    pub fn record(&self, stream: &mut CommandStream) {
        let GroupNormApply { x, affine, stats, split, frames, channels, gelu, y } = *self;
        let params = ChunkNormParams {
            rows: frames,
            width: channels,
            count: 0,
            chunk: 0,
            chunks: split.chunks,
            count_full: split.count_full,
            count_last: split.count_last,
            flags: if gelu { FLAG_GELU } else { 0 },
            eps: EPS,
            _pad: [0; 3],
        };
        stream.dispatch_bound(
            &GROUP_NORM_APPLY,
            &params,
            &[(1, x), (2, affine.gamma), (3, affine.beta), (4, stats), (5, y)],
            [channels, 1, 1],
        );
        let n = frames as f64 * channels as f64;
        stream.cost(8.0 * n, 4.0 * 2.0 * n);
    }
}

/// CPU reference of [`GroupNormTime`] for one utterance (all frames valid).
pub fn group_norm_time_cpu(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    frames: usize,
    channels: usize,
    gelu: bool,
) -> Vec<f32> {
    let mut y = vec![0f32; frames * channels];
    for c in 0..channels {
        let col: Vec<f64> = (0..frames).map(|t| x[t * channels + c] as f64).collect();
        normalise(&col, &gamma[c..c + 1], &beta[c..c + 1], gelu, channels, &mut y[c..]);
    }
    y
}
