//! Analytic FLOP counts of one forward pass (a multiply-add counts 2). Counted: the conv
//! extractor, post_extract_proj, the positional conv, q/k/v/out projections, the attention's
//! two T^2 products, fc1 and fc2. Not counted (a few percent at most): norms, GELU, softmax,
//! residual adds.

use super::{Subnet, SupernetDims};
use super::frames_for;

/// FLOPs of one forward pass of `subnet` over `samples` samples at 16 kHz.
pub fn forward_flops(dims: &SupernetDims, subnet: &Subnet, samples: usize) -> f64 {
    let mut total = 0.0;
    let (mut t, mut in_ch) = (samples, 1.0);
    for l in &dims.conv_layers {
        t = l.out_len(t);
        total += 2.0 * t as f64 * l.channels as f64 * l.kernel as f64 * in_ch;
        in_ch = l.channels as f64;
    }
    let t = frames_for(dims, samples) as f64;
    let e = subnet.embed_dim as f64;
    total += 2.0 * t * dims.conv_channels as f64 * e; // post_extract_proj
    total += 2.0 * t * e * (e / dims.pos_conv_groups as f64) * dims.pos_conv_kernel as f64; // pos conv
    for l in subnet.layers() {
        total += layer_flops(subnet.embed_dim, l.heads, l.ffn, t as usize);
    }
    total
}

/// FLOPs of one encoder layer over `frames` frames.
pub fn layer_flops(embed: usize, heads: usize, ffn: usize, frames: usize) -> f64 {
    let (e, a, f, t) = (embed as f64, 64.0 * heads as f64, ffn as f64, frames as f64);
    2.0 * t * e * a * 3.0 // q, k, v
        + 2.0 * 2.0 * t * t * a // q k^T and p v
        + 2.0 * t * a * e // out_proj
        + 2.0 * 2.0 * t * e * f // fc1, fc2
}
