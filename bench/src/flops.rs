//! Analytic FLOP counts of one forward pass (a multiply-add counts 2). Counted: the conv
//! extractor, post_extract_proj, the positional conv, q/k/v/out projections, the attention's
//! two T^2 products, fc1 and fc2. Not counted (a few percent at most): norms, GELU, softmax,
//! residual adds.

use lighthubert::model::frames_for;
use lighthubert::supernet::SupernetDims;
use lighthubert::Subnet;

pub fn forward_flops(dims: &SupernetDims, subnet: &Subnet, samples: usize) -> f64 {
    let mut total = 0.0;
    let (mut t, mut in_ch) = (samples as f64, 1.0);
    for l in &dims.conv_layers {
        t = ((t - l.kernel as f64) / l.stride as f64).floor() + 1.0;
        total += 2.0 * t * l.channels as f64 * l.kernel as f64 * in_ch;
        in_ch = l.channels as f64;
    }
    let t = frames_for(dims, samples) as f64;
    let e = subnet.embed_dim as f64;
    total += 2.0 * t * dims.conv_channels as f64 * e; // post_extract_proj
    total += 2.0 * t * e * (e / dims.pos_conv_groups as f64) * dims.pos_conv_kernel as f64; // pos conv
    for l in subnet.layers() {
        let (a, f) = (64.0 * l.heads as f64, l.ffn as f64);
        total += 2.0 * t * e * a * 3.0; // q, k, v
        total += 2.0 * 2.0 * t * t * a; // q k^T and p v
        total += 2.0 * t * a * e; // out_proj
        total += 2.0 * 2.0 * t * e * f; // fc1, fc2
    }
    total
}
