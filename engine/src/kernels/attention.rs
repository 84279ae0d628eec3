//! Multi-head self-attention over a subnet's heads with a key padding mask
//! (`shaders/attention.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::CommandStream;
use crate::gpu::sources::{ATTENTION, ATTENTION_FLASH, ATTENTION_FLASH_SUBGROUP, ATTENTION_SUBGROUP16, ATTENTION_TILES};
use crate::gpu::{Kernel, ParamsLayout};

/// LightHuBERT's heads are 64 wide whatever the subnet.
pub const HEAD_DIM: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AttentionParams {
    frames: u32,
    batch: u32,
    heads: u32,
    row_stride: u32,
    scale: f32,
    kv_offset: u32,
    _pad: [u32; 2],
}

/// How an attention dispatch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionForm {
    /// One invocation per query, 64 per workgroup, each reading every key and value row
    /// itself: CPU-family devices without 8-wide subgroups (llvmpipe through GL).
    PerQuery,
    /// 64 queries of a head per workgroup, keys and values staged 16 at a time through
    /// workgroup memory and read by all of them, online softmax rescaled per tile: GPUs
    /// without subgroups of at least 8.
    Flash,
    /// [`AttentionForm::Flash`] with 8 lanes per query, each holding 8 of its 64 dimensions
    /// and summing scores across the 8 by subgroup shuffles, and 8 queries per workgroup, so a
    /// short utterance makes up to 8 times as many workgroups: GPUs whose subgroups are never
    /// smaller than 8 (any power of two from 8 up).
    FlashSubgroup,
    /// 16 neighbouring queries per workgroup of 8 invocations, two per invocation, sharing
    /// each key and value row by subgroup broadcast, so a row is loaded once for 16 queries:
    /// CPU-family devices with subgroups of exactly 8 (lavapipe, where loads dominate).
    Subgroup16,
}

impl AttentionForm {
    pub fn for_device(ctx: &crate::gpu::GpuContext) -> Self {
        match (ctx.kernel_family, ctx.subgroup_size) {
            (crate::gpu::KernelFamily::Gpu, _) if ctx.has_subgroups_for(&FLASH_SUBGROUP) => AttentionForm::FlashSubgroup,
            (crate::gpu::KernelFamily::Gpu, _) => AttentionForm::Flash,
            (crate::gpu::KernelFamily::Cpu, Some(8)) => AttentionForm::Subgroup16,
            (crate::gpu::KernelFamily::Cpu, _) => AttentionForm::PerQuery,
        }
    }
}

const PARAMS: ParamsLayout = crate::params_layout!(AttentionParams { frames, batch, heads, row_stride, scale, kv_offset });

/// [`AttentionForm::PerQuery`].
pub static PER_QUERY: Kernel = Kernel::new(ATTENTION, &[], "attention", PARAMS);
/// [`AttentionForm::Flash`]: shares `attention.wgsl`'s parameters and bindings.
pub static FLASH: Kernel = Kernel::new(ATTENTION_FLASH, &[ATTENTION, ATTENTION_TILES], "attention_flash", PARAMS);
/// [`AttentionForm::FlashSubgroup`]: shares `attention.wgsl`'s bindings and helpers.
pub static FLASH_SUBGROUP: Kernel = Kernel::new(ATTENTION_FLASH_SUBGROUP, &[ATTENTION, ATTENTION_TILES], "attention_flash_subgroup", PARAMS).with_min_subgroup_size(8);
/// [`AttentionForm::Subgroup16`]: shares `attention.wgsl`'s bindings and helpers.
pub static SUBGROUP16: Kernel = Kernel::new(ATTENTION_SUBGROUP16, &[ATTENTION], "attention_subgroup16", PARAMS).with_subgroup_size(8);

/// Every kernel of this module.
pub fn kernels() -> impl Iterator<Item = &'static Kernel> {
    [&PER_QUERY, &FLASH, &FLASH_SUBGROUP, &SUBGROUP16].into_iter()
}

/// Where attention finds its queries, keys and values, each [batch * frames, heads * 64].
#[derive(Debug, Clone, Copy)]
pub enum Qkv<'a> {
    /// One buffer whose rows hold a query, its key and its value, as the fused projection
    /// writes them (see [`qkv_rows`]).
    Fused(&'a wgpu::Buffer),
    /// Three buffers (when the fused one would be over the binding limit).
    Separate { q: &'a wgpu::Buffer, k: &'a wgpu::Buffer, v: &'a wgpu::Buffer },
}

/// out = softmax(q k^T / 8, keys < length) v per head, into `out` [batch * frames, heads * 64].
/// `lengths` holds one u32 per utterance: its keys at or past that index are padding.
#[derive(Debug, Clone, Copy)]
pub struct Attention<'a> {
    pub qkv: Qkv<'a>,
    pub lengths: &'a wgpu::Buffer,
    pub frames: u32,
    pub batch: u32,
    pub heads: u32,
    pub out: &'a wgpu::Buffer,
}

impl Attention<'_> {
    /// Queues the dispatch in the form that suits the device.
    pub fn record(&self, stream: &mut CommandStream) {
        self.record_as(stream, AttentionForm::for_device(stream.context()));
    }

    /// Queues the dispatch in a given form.
    pub fn record_as(&self, stream: &mut CommandStream, form: AttentionForm) {
        let Attention { qkv, lengths, frames, batch, heads, out } = *self;
        let a = heads * HEAD_DIM;
        let (q, k, v, row_stride, kv_offset) = match qkv {
            Qkv::Fused(b) => (b, b, b, 3 * a, a),
            Qkv::Separate { q, k, v } => (q, k, v, a, 0),
        };
        let params = AttentionParams { frames, batch, heads, row_stride, scale: 1.0 / (HEAD_DIM as f32).sqrt(), kv_offset, _pad: [0; 2] };
        let (kernel, per_group) = match form {
            AttentionForm::PerQuery => (&PER_QUERY, 64),
            AttentionForm::Flash => (&FLASH, 64),
            AttentionForm::FlashSubgroup => (&FLASH_SUBGROUP, 8),
            AttentionForm::Subgroup16 => (&SUBGROUP16, 16),
        };
        stream.dispatch(kernel, &params, &[q, k, v, lengths, out], [frames.div_ceil(per_group), heads, batch]);
        // Scores and the weighted sum of values, against every key (padding makes it less).
        let (rows, a) = (batch as f64 * frames as f64, (heads * HEAD_DIM) as f64);
        stream.cost(4.0 * rows * frames as f64 * a, 4.0 * 4.0 * rows * a);
    }
}

/// The rows of [`Attention`]'s `qkv` from separate q, k and v of `width` floats per row.
pub fn qkv_rows(q: &[f32], k: &[f32], v: &[f32], width: usize) -> Vec<f32> {
    q.chunks(width).zip(k.chunks(width)).zip(v.chunks(width)).flat_map(|((q, k), v)| q.iter().chain(k).chain(v).copied()).collect()
}

/// CPU reference of [`Attention`], in f64.
pub fn attention_cpu(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    lengths: &[u32],
    frames: usize,
    heads: usize,
) -> Vec<f32> {
    let d = HEAD_DIM as usize;
    let stride = heads * d;
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0f32; q.len()];
    for (b, &len) in lengths.iter().enumerate() {
        let keys = (len as usize).min(frames);
        for t in 0..frames {
            for h in 0..heads {
                let qo = (b * frames + t) * stride + h * d;
                let scores: Vec<f64> = (0..keys)
                    .map(|s| {
                        let ko = (b * frames + s) * stride + h * d;
                        (0..d).map(|i| q[qo + i] as f64 * scale * k[ko + i] as f64).sum()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                for i in 0..d {
                    let acc: f64 = (0..keys)
                        .map(|s| exps[s] * v[(b * frames + s) * stride + h * d + i] as f64)
                        .sum();
                    out[qo + i] = if sum > 0.0 { (acc / sum) as f32 } else { 0.0 };
                }
            }
        }
    }
    out
}
