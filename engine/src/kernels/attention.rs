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
    let params = AttentionParams {
        frames,
        batch,
        heads,
        row_stride: heads * HEAD_DIM,
        scale: 1.0 / (HEAD_DIM as f32).sqrt(),
        _pad: [0; 3],
    };
    stream.dispatch(
        Kernel::Attention,
        &params,
        &[q, k, v, lengths, out],
        [frames.div_ceil(64), heads, batch],
    );
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
