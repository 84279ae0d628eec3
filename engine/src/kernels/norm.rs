//! LayerNorm over channels (with optional residual add and GELU) and GroupNorm over time
//! (`shaders/norm.wgsl`). Affine parameters are prefixes of the full supernet tensors.

use bytemuck::{Pod, Zeroable};

use super::{fold_groups, gelu_f64, CommandStream};
use crate::gpu::{Kernel, KernelFamily};

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

/// y[r] = LN(x[r] (+ residual[r])) * gamma + beta, then GELU if asked, for `rows` rows of `width`,
/// in the form that suits the device.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    stream: &mut CommandStream,
    x: &wgpu::Buffer,
    residual: Option<&wgpu::Buffer>,
    affine: Affine,
    rows: u32,
    width: u32,
    gelu: bool,
    y: &wgpu::Buffer,
) {
    let form = LayerNormForm::for_device(stream.context(), width);
    layer_norm_as(stream, form, x, residual, affine, rows, width, gelu, y);
}

/// [`layer_norm`] in a given form.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_as(
    stream: &mut CommandStream,
    form: LayerNormForm,
    x: &wgpu::Buffer,
    residual: Option<&wgpu::Buffer>,
    affine: Affine,
    rows: u32,
    width: u32,
    gelu: bool,
    y: &wgpu::Buffer,
) {
    assert!(form != LayerNormForm::Rowwise || width.is_multiple_of(4), "layer_norm_rowwise reads whole vec4s");
    let flags = if residual.is_some() { FLAG_RESIDUAL } else { 0 } | if gelu { FLAG_GELU } else { 0 };
    let empty = stream.context().empty.clone();
    let (kernel, rows_per_group) = match form {
        LayerNormForm::Cooperative => (Kernel::LayerNorm, 4),
        LayerNormForm::Rowwise => (Kernel::LayerNormRowwise, 64),
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

/// GroupNorm with one group per channel: each channel of x [batch, frames, channels]
/// normalised over the first `lengths[b]` frames of its utterance, then GELU if asked (the
/// `default` extractor mode's first block). `lengths` holds one u32 per utterance.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_time(
    stream: &mut CommandStream,
    x: &wgpu::Buffer,
    affine: Affine,
    lengths: &wgpu::Buffer,
    batch: u32,
    frames: u32,
    channels: u32,
    gelu: bool,
    y: &wgpu::Buffer,
) {
    // This entry point never reads the residual (binding 2).
    stream.dispatch_bound(
        Kernel::GroupNormTime,
        &NormParams { rows: frames, width: channels, flags: if gelu { FLAG_GELU } else { 0 }, eps: EPS },
        &[(1, x), (3, affine.gamma), (4, affine.beta), (5, y), (6, lengths)],
        [channels, batch, 1],
    );
    let n = batch as f64 * frames as f64 * channels as f64;
    stream.cost(8.0 * n, 4.0 * (3.0 * n + 2.0 * channels as f64));
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

/// CPU reference of [`layer_norm`].
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


/// CPU reference of [`group_norm_time`] for one utterance (all frames valid).
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

/// First pass of a chunked [`group_norm_time`] (one utterance): the mean and the sum of squared
/// deviations of each channel over the first `count` of the chunk's `frames` rows, into
/// `stats[chunk]` ([chunks, channels] of 2 f32).
#[allow(clippy::too_many_arguments)]
pub fn group_norm_partial(stream: &mut CommandStream, x: &wgpu::Buffer, stats: &wgpu::Buffer, chunk: u32, count: u32, frames: u32, channels: u32) {
    let params = ChunkNormParams { rows: frames, width: channels, count, chunk, chunks: 0, count_full: 0, count_last: 0, flags: 0, eps: EPS, _pad: [0; 3] };
    stream.dispatch_bound(Kernel::GroupNormPartial, &params, &[(1, x), (4, stats)], [channels, 1, 1]);
    let n = count as f64 * channels as f64;
    stream.cost(4.0 * n, 4.0 * 2.0 * n);
}

/// Second pass: the utterance's statistics from every chunk's, then the chunk's `frames` rows
/// normalised (and GELU if asked) into `y`.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_apply(
    stream: &mut CommandStream,
    x: &wgpu::Buffer,
    affine: Affine,
    stats: &wgpu::Buffer,
    split: NormChunks,
    frames: u32,
    channels: u32,
    gelu: bool,
    y: &wgpu::Buffer,
) {
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
        Kernel::GroupNormApply,
        &params,
        &[(1, x), (2, affine.gamma), (3, affine.beta), (4, stats), (5, y)],
        [channels, 1, 1],
    );
    let n = frames as f64 * channels as f64;
    stream.cost(8.0 * n, 4.0 * 2.0 * n);
}

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

/// The parameter blocks of this module, for `params_match_the_shaders`.
#[cfg(test)]
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(NormParams { rows, width, flags, eps }), super::params_layout!(ChunkNormParams { rows, width, count, chunk, chunks, count_full, count_last, flags, eps })]
}
