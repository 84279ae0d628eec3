//! Parameter counts, computed as the reference's `calc_sampled_param_num` does: every
//! parameter outside the encoder and post_extract_proj at full size (the conv extractor, its
//! norms, the feature LayerNorm and `mask_emb`), plus the subnet's slices of the rest.

use super::{Subnet, SupernetDims};
use crate::checkpoint::ExtractorMode;

pub fn parameter_count(dims: &SupernetDims, subnet: &Subnet) -> u64 {
    let mut total = 0u64;
    let mut in_ch = 1u64;
    for (i, l) in dims.conv_layers.iter().enumerate() {
        let c = l.channels as u64;
        total += c * in_ch * l.kernel as u64 + if dims.conv_bias { c } else { 0 };
        let has_norm = match dims.extractor_mode {
            ExtractorMode::LayerNorm => true,
            ExtractorMode::Default => i == 0,
        };
        if has_norm {
            total += 2 * c;
        }
        in_ch = c;
    }
    let c = dims.conv_channels as u64;
    total += dims.embed as u64; // mask_emb
    total += 2 * c; // feature layer_norm
    let e = subnet.embed_dim as u64;
    total += e * c + e; // post_extract_proj
    // SConv1d counts in * out * kernel // groups, plus the bias.
    total += e * e * dims.pos_conv_kernel as u64 / dims.pos_conv_groups as u64 + e;
    total += 2 * e; // encoder layer_norm
    for l in subnet.layers() {
        total += layer_parameters(subnet.embed_dim, l.heads, l.ffn);
    }
    total
}

/// Parameters of one encoder layer of a subnet `embed` wide.
pub fn layer_parameters(embed: usize, heads: usize, ffn: usize) -> u64 {
    let (e, a, f) = (embed as u64, 64 * heads as u64, ffn as u64);
    3 * (a * e + a) + (e * a + e) // q, k, v, out_proj
        + 4 * e // two LayerNorms
        + (f * e + f) + (e * f + e) // fc1, fc2
}
