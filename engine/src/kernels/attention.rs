//! Multi-head self-attention over a subnet's heads with a key padding mask
//! (`shaders/attention.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::CommandStream;
use crate::gpu::Kernel;

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
    _pad: [u32; 3],
}

/// How an attention dispatch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionForm {
    /// One invocation per query, 64 per workgroup: any device.
    PerQuery,
    /// 8 neighbouring queries per workgroup sharing key and value loads by subgroup broadcast:
    /// CPU-family devices with subgroups of exactly 8 (lavapipe).
    Subgroup8,
}

impl AttentionForm {
    pub fn for_device(ctx: &crate::gpu::GpuContext) -> Self {
        if ctx.kernel_family == crate::gpu::KernelFamily::Cpu && ctx.subgroup_size == Some(8) {
            AttentionForm::Subgroup8
        } else {
            AttentionForm::PerQuery
        }
    }
}

/// out = softmax(q k^T / 8, keys < length) v per head, for q, k, v [batch * frames, heads * 64].
/// `lengths` holds one u32 per utterance: its keys at or past that index are padding.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    stream: &mut CommandStream,
    q: &wgpu::Buffer,
    k: &wgpu::Buffer,
    v: &wgpu::Buffer,
    lengths: &wgpu::Buffer,
    frames: u32,
    batch: u32,
    heads: u32,
    out: &wgpu::Buffer,
) {
    let form = AttentionForm::for_device(stream.context());
    attention_as(stream, form, q, k, v, lengths, frames, batch, heads, out);
}

/// [`attention`] in a given form (`Subgroup8` needs a device with 8-wide subgroups).
#[allow(clippy::too_many_arguments)]
pub fn attention_as(
    stream: &mut CommandStream,
    form: AttentionForm,
    q: &wgpu::Buffer,
    k: &wgpu::Buffer,
    v: &wgpu::Buffer,
    lengths: &wgpu::Buffer,
    frames: u32,
    batch: u32,
    heads: u32,
    out: &wgpu::Buffer,
) {
    let params = AttentionParams {
        frames,
        batch,
        heads,
        row_stride: heads * HEAD_DIM,
        scale: 1.0 / (HEAD_DIM as f32).sqrt(),
        _pad: [0; 3],
    };
    let (kernel, per_group) = match form {
        AttentionForm::PerQuery => (Kernel::Attention, 64),
        AttentionForm::Subgroup8 => (Kernel::AttentionSubgroup, 8),
    };
    stream.dispatch(kernel, &params, &[q, k, v, lengths, out], [frames.div_ceil(per_group), heads, batch]);
    // Scores and the weighted sum of values, against every key (padding makes it less).
    let (rows, a) = (batch as f64 * frames as f64, (heads * HEAD_DIM) as f64);
    stream.cost(4.0 * rows * frames as f64 * a, 4.0 * 4.0 * rows * a);
}

/// CPU reference of [`attention`], in f64.
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

/// The parameter blocks of this module, for `params_match_the_shaders`.
#[cfg(test)]
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(AttentionParams { frames, batch, heads, row_stride, scale })]
}
