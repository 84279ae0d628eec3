//! A subnet as a model of its own: its weights cut densely out of the supernet's, as
//! Hugging Face transformers' `HubertModel` names and configures them.
//!
//! What the supernet does by indexing, this does once on the host: rows and columns of each
//! matrix taken by the subnet's widths, the FFN's chunked unit map resolved, the positional
//! conv's weight norm folded before its regrouped slice is taken (the reference normalises the
//! full tensor, then slices), and the kept layers renumbered from 0.

use std::collections::BTreeMap;

use crate::checkpoint::{Checkpoint, CheckpointError, ExtractorMode};
use crate::kernels::pos_conv::weight_norm_dim2;
use crate::supernet::{Supernet, SubnetError, kept_layers};
use crate::Subnet;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Subnet(#[from] SubnetError),
    /// The subnet has a shape `HubertModel` cannot configure.
    #[error("transformers' HubertModel cannot express this subnet: {0}")]
    NotExpressible(String),
}

/// One dense tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Tensor {
    fn new(shape: Vec<usize>, values: Vec<f32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Tensor { shape, values }
    }
}

/// `HubertModel` has one width for every layer's heads and FFN, and 64-wide heads that fill the
/// model width.
pub fn check_hf_expressible(subnet: &Subnet) -> Result<(), ExportError> {
    let (e, heads, ffn) = (subnet.embed_dim, &subnet.heads_num, &subnet.ffn_embed);
    if let Some(h) = heads.iter().find(|&&h| h != heads[0]) {
        return Err(ExportError::NotExpressible(format!(
            "its layers have {} and {h} heads; HubertModel gives every layer the same number",
            heads[0]
        )));
    }
    if let Some(f) = ffn.iter().find(|&&f| f != ffn[0]) {
        return Err(ExportError::NotExpressible(format!(
            "its layers have FFN widths {} and {f}; HubertModel gives every layer the same",
            ffn[0]
        )));
    }
    if heads.first().is_some_and(|&h| 64 * h != e) {
        return Err(ExportError::NotExpressible(format!(
            "{} heads of 64 make {} attention channels, not the embed_dim {e}; HubertModel's heads split embed_dim",
            heads[0],
            64 * heads[0]
        )));
    }
    Ok(())
}

/// Rows `0..rows` and columns `0..cols` of a row-major matrix `cols_full` wide.
fn top_left(m: &[f32], cols_full: usize, rows: usize, cols: usize) -> Vec<f32> {
    (0..rows).flat_map(|r| m[r * cols_full..r * cols_full + cols].iter().copied()).collect()
}

/// The supernet FFN units a subnet's `ffn` units read, in order (the reference's chunk map: all
/// of them when `ffn` is the supernet's width).
pub fn ffn_units(supernet: &Supernet, embed: usize, ffn: usize) -> Vec<usize> {
    let d = &supernet.dims;
    if ffn == d.ffn {
        return (0..ffn).collect();
    }
    (0..ffn).map(|j| (j / embed) * d.ffn_chunk + j % embed).collect()
}

/// The subnet's weights under `HubertModel`'s names.
pub fn hf_tensors(ckpt: &Checkpoint, supernet: &Supernet, subnet: &Subnet) -> Result<BTreeMap<String, Tensor>, ExportError> {
    supernet.validate(subnet)?;
    check_hf_expressible(subnet)?;
    let d = &supernet.dims;
    let (e, ef) = (subnet.embed_dim, d.embed);
    let mut out = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, values: Vec<f32>| {
        out.insert(name, Tensor::new(shape, values));
    };
    let full = |key: &str, shape: &[usize]| ckpt.tensor(key, shape).map(|t| t.values.clone());

    // The conv feature extractor and its LayerNorm do not depend on the subnet.
    let mut in_ch = 1;
    for (i, spec) in d.conv_layers.iter().enumerate() {
        // fairseq's `conv_layers.{i}.0` (the conv) and `.2` (its norm) are HF's `.conv` and `.layer_norm`.
        let p = format!("feature_extractor.conv_layers.{i}");
        let shape = vec![spec.channels, in_ch, spec.kernel];
        put(format!("{p}.conv.weight"), shape.clone(), full(&format!("{p}.0.weight"), &shape)?);
        if d.conv_bias {
            put(format!("{p}.conv.bias"), vec![spec.channels], full(&format!("{p}.0.bias"), &[spec.channels])?);
        }
        let norm = match (d.extractor_mode, i) {
            (ExtractorMode::Default, 0) => Some(format!("{p}.2")),
            (ExtractorMode::Default, _) => None,
            (ExtractorMode::LayerNorm, _) => Some(format!("{p}.2.1")),
        };
        if let Some(n) = norm {
            for part in ["weight", "bias"] {
                put(format!("{p}.layer_norm.{part}"), vec![spec.channels], full(&format!("{n}.{part}"), &[spec.channels])?);
            }
        }
        in_ch = spec.channels;
    }
    let ch = d.conv_channels;
    for part in ["weight", "bias"] {
        put(format!("feature_projection.layer_norm.{part}"), vec![ch], full(&format!("layer_norm.{part}"), &[ch])?);
    }
    let w = full("post_extract_proj.weight", &[ef, ch])?;
    put("feature_projection.projection.weight".into(), vec![e, ch], w[..e * ch].to_vec());
    put("feature_projection.projection.bias".into(), vec![e], full("post_extract_proj.bias", &[ef])?[..e].to_vec());

    // The positional conv: g * v / ||v|| over the full tensor, then the first E output channels
    // and the first E/16 inputs of each, which regroups 16 groups over E channels.
    let (k, groups) = (d.pos_conv_kernel, d.pos_conv_groups);
    let (gs_full, gs) = (ef / groups, e / groups);
    let (g, v) = match ckpt.optional_tensor("encoder.pos_conv.0.weight_g", &[1, 1, k])? {
        Some(g) => (g.values.clone(), full("encoder.pos_conv.0.weight_v", &[ef, gs_full, k])?),
        None => (
            full("encoder.pos_conv.0.parametrizations.weight.original0", &[1, 1, k])?,
            full("encoder.pos_conv.0.parametrizations.weight.original1", &[ef, gs_full, k])?,
        ),
    };
    let folded = weight_norm_dim2(&v, &g, k);
    let weight = top_left(&folded, gs_full * k, e, gs * k);
    // HubertModel keeps the weight norm: v = the folded weight, g = its norm per tap, so that
    // g * v / ||v|| gives the folded weight back.
    let mut norms = vec![0f64; k];
    for (i, &x) in weight.iter().enumerate() {
        norms[i % k] += x as f64 * x as f64;
    }
    put("encoder.pos_conv_embed.conv.weight_g".into(), vec![1, 1, k], norms.iter().map(|n| n.sqrt() as f32).collect());
    put("encoder.pos_conv_embed.conv.weight_v".into(), vec![e, gs, k], weight);
    put("encoder.pos_conv_embed.conv.bias".into(), vec![e], full("encoder.pos_conv.0.bias", &[ef])?[..e].to_vec());
    for part in ["weight", "bias"] {
        put(format!("encoder.layer_norm.{part}"), vec![e], full(&format!("encoder.layer_norm.{part}"), &[ef])?[..e].to_vec());
    }

    let kept = kept_layers(subnet.layer_num).ok_or_else(|| {
        ExportError::Subnet(SubnetError::Unfit { field: "layer_num".into(), reason: format!("{} layers", subnet.layer_num) })
    })?;
    let (a_full, f_full) = (d.attention, d.ffn);
    for (j, &l) in kept.iter().enumerate() {
        let (p, q) = (format!("encoder.layers.{l}"), format!("encoder.layers.{j}"));
        let (a, f) = (64 * subnet.heads_num[j], subnet.ffn_embed[j]);
        for proj in ["q_proj", "k_proj", "v_proj"] {
            let w = full(&format!("{p}.self_attn.{proj}.weight"), &[a_full, ef])?;
            put(format!("{q}.attention.{proj}.weight"), vec![a, e], top_left(&w, ef, a, e));
            let b = full(&format!("{p}.self_attn.{proj}.bias"), &[a_full])?;
            put(format!("{q}.attention.{proj}.bias"), vec![a], b[..a].to_vec());
        }
        let w = full(&format!("{p}.self_attn.out_proj.weight"), &[ef, a_full])?;
        put(format!("{q}.attention.out_proj.weight"), vec![e, a], top_left(&w, a_full, e, a));
        put(format!("{q}.attention.out_proj.bias"), vec![e], full(&format!("{p}.self_attn.out_proj.bias"), &[ef])?[..e].to_vec());
        let units = ffn_units(supernet, e, f);
        let w1 = full(&format!("{p}.fc1.weight"), &[f_full, ef])?;
        let b1 = full(&format!("{p}.fc1.bias"), &[f_full])?;
        put(format!("{q}.feed_forward.intermediate_dense.weight"), vec![f, e], units.iter().flat_map(|&u| w1[u * ef..u * ef + e].iter().copied()).collect());
        put(format!("{q}.feed_forward.intermediate_dense.bias"), vec![f], units.iter().map(|&u| b1[u]).collect());
        let w2 = full(&format!("{p}.fc2.weight"), &[ef, f_full])?;
        put(format!("{q}.feed_forward.output_dense.weight"), vec![e, f], (0..e).flat_map(|r| units.iter().map(move |&u| (r, u))).map(|(r, u)| w2[r * f_full + u]).collect());
        put(format!("{q}.feed_forward.output_dense.bias"), vec![e], full(&format!("{p}.fc2.bias"), &[ef])?[..e].to_vec());
        for (from, to) in [("self_attn_layer_norm", "layer_norm"), ("final_layer_norm", "final_layer_norm")] {
            for part in ["weight", "bias"] {
                put(format!("{q}.{to}.{part}"), vec![e], full(&format!("{p}.{from}.{part}"), &[ef])?[..e].to_vec());
            }
        }
    }
    Ok(out)
}

/// `config.json` of the `HubertModel` [`hf_tensors`] fills.
pub fn hf_config(supernet: &Supernet, subnet: &Subnet) -> serde_json::Value {
    let d = &supernet.dims;
    serde_json::json!({
        "architectures": ["HubertModel"],
        "model_type": "hubert",
        "hidden_size": subnet.embed_dim,
        "num_hidden_layers": subnet.layer_num,
        "num_attention_heads": subnet.heads_num.first().copied().unwrap_or(0),
        "intermediate_size": subnet.ffn_embed.first().copied().unwrap_or(0),
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "feat_extract_norm": match d.extractor_mode { ExtractorMode::Default => "group", ExtractorMode::LayerNorm => "layer" },
        "feat_extract_activation": "gelu",
        "feat_proj_layer_norm": true,
        "conv_dim": d.conv_layers.iter().map(|l| l.channels).collect::<Vec<_>>(),
        "conv_kernel": d.conv_layers.iter().map(|l| l.kernel).collect::<Vec<_>>(),
        "conv_stride": d.conv_layers.iter().map(|l| l.stride).collect::<Vec<_>>(),
        "conv_bias": d.conv_bias,
        "num_feat_extract_layers": d.conv_layers.len(),
        "num_conv_pos_embeddings": d.pos_conv_kernel,
        "num_conv_pos_embedding_groups": d.pos_conv_groups,
        "do_stable_layer_norm": false,
        // No masked_spec_embed: the checkpoint's mask_emb is training-only.
        "apply_spec_augment": false,
        "mask_time_prob": 0.0,
        "mask_feature_prob": 0.0,
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "feat_proj_dropout": 0.0,
        "final_dropout": 0.0,
        "layerdrop": 0.0,
        "torch_dtype": "float32",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_refuses_what_it_cannot_express() {
        let ok = Subnet::uniform(384, 6, 1536, 12);
        assert!(check_hf_expressible(&ok).is_ok());
        let mut mixed = ok.clone();
        mixed.heads_num[3] = 4;
        mixed.atten_dim[3] = 256;
        assert!(check_hf_expressible(&mixed).unwrap_err().to_string().contains("6 and 4 heads"));
        let mut ffn = ok.clone();
        ffn.ffn_embed[11] = 1152;
        assert!(check_hf_expressible(&ffn).unwrap_err().to_string().contains("FFN widths 1536 and 1152"));
        let narrow = Subnet::uniform(384, 4, 1536, 12);
        assert!(check_hf_expressible(&narrow).unwrap_err().to_string().contains("not the embed_dim 384"));
    }
}
