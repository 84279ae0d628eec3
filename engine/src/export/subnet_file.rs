//! The exported subnet file (format `lighthubert-subnet/1`): the subnet's dense weights under
//! the checkpoint's own names, so the engine loads it as it loads a checkpoint, and the model
//! config, the subnet and the source checkpoint in its metadata
//! ([`crate::checkpoint::exported`] reads it back).
//!
//! The positional conv keeps its weight norm apart: `v` cut to the subnet, and one scale per
//! tap computed from the full `v` as the supernet computes it. Folding the scale into `v` would
//! change the arithmetic (`sum(v * x) * s` and `sum((v * s) * x)` round differently in f32),
//! and the exported model would no longer give the supernet's hidden states bit for bit.

use std::collections::BTreeMap;

use safetensors::Dtype;

use super::{ffn_units, safetensors_file, top_left, ExportError, Tensor};
use crate::checkpoint::exported::{self, Origin};
use crate::checkpoint::{Checkpoint, ExtractorMode};
use crate::model::pos_conv_weight_norm;
use crate::supernet::{ffn_width, Supernet};
use crate::Subnet;

/// How an exported file stores its weight matrices. Biases, norms and the positional conv's
/// tap scales stay f32 either way, as the engine keeps them on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileWeights {
    F32,
    F16,
}

/// The subnet's weights under the checkpoint's names, at its dense shapes. Layers are
/// renumbered from 0; the positional conv is `v` cut to the subnet plus its tap scales.
pub fn subnet_tensors(ckpt: &Checkpoint, supernet: &Supernet, subnet: &Subnet) -> Result<BTreeMap<String, Tensor>, ExportError> {
    supernet.validate(subnet)?;
    let d = &supernet.dims;
    let (e, ef) = (subnet.embed_dim, d.embed);
    let mut out = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, values: Vec<f32>| {
        out.insert(name, Tensor::new(shape, values));
    };
    let full = |key: &str, shape: &[usize]| ckpt.tensor(key, shape).map(|t| t.values.clone());
    let head = |key: &str, full_len: usize, len: usize| full(key, &[full_len]).map(|v| v[..len].to_vec());

    // The conv feature extractor and its LayerNorm do not depend on the subnet.
    let mut in_ch = 1;
    for (i, spec) in d.conv_layers.iter().enumerate() {
        let p = format!("feature_extractor.conv_layers.{i}");
        let shape = vec![spec.channels, in_ch, spec.kernel];
        put(format!("{p}.0.weight"), shape.clone(), full(&format!("{p}.0.weight"), &shape)?);
        if d.conv_bias {
            put(format!("{p}.0.bias"), vec![spec.channels], full(&format!("{p}.0.bias"), &[spec.channels])?);
        }
        let norm = match (d.extractor_mode, i) {
            (ExtractorMode::Default, 0) => Some(format!("{p}.2")),
            (ExtractorMode::Default, _) => None,
            (ExtractorMode::LayerNorm, _) => Some(format!("{p}.2.1")),
        };
        if let Some(n) = norm {
            for part in ["weight", "bias"] {
                put(format!("{n}.{part}"), vec![spec.channels], full(&format!("{n}.{part}"), &[spec.channels])?);
            }
        }
        in_ch = spec.channels;
    }
    let ch = d.conv_channels;
    for part in ["weight", "bias"] {
        put(format!("layer_norm.{part}"), vec![ch], full(&format!("layer_norm.{part}"), &[ch])?);
    }
    let w = full("post_extract_proj.weight", &[ef, ch])?;
    put("post_extract_proj.weight".into(), vec![e, ch], w[..e * ch].to_vec());
    put("post_extract_proj.bias".into(), vec![e], head("post_extract_proj.bias", ef, e)?);

    // The positional conv: the first E output channels and the first E/16 inputs of each
    // (16 groups regrouped over E channels), and the weight norm of the full tensor per tap.
    let (k, groups) = (d.pos_conv_kernel, d.pos_conv_groups);
    let (gs_full, gs) = (ef / groups, e / groups);
    let (v, scales) = pos_conv_weight_norm(ckpt, ef, gs_full, k)?;
    put(exported::POS_CONV_V.into(), vec![e, gs, k], top_left(&v.values, gs_full * k, e, gs * k));
    put(exported::TAP_SCALE.into(), vec![k], scales);
    put("encoder.pos_conv.0.bias".into(), vec![e], head("encoder.pos_conv.0.bias", ef, e)?);
    for part in ["weight", "bias"] {
        put(format!("encoder.layer_norm.{part}"), vec![e], head(&format!("encoder.layer_norm.{part}"), ef, e)?);
    }

    for (j, choice) in supernet.layers(subnet).into_iter().enumerate() {
        let (p, q) = (format!("encoder.layers.{}", choice.layer), format!("encoder.layers.{j}"));
        let full_w = d.layer_widths[choice.layer];
        let (a, f, a_full, f_full) = (64 * choice.heads, choice.ffn, full_w.attention, full_w.ffn);
        for proj in ["q_proj", "k_proj", "v_proj"] {
            let w = full(&format!("{p}.self_attn.{proj}.weight"), &[a_full, ef])?;
            put(format!("{q}.self_attn.{proj}.weight"), vec![a, e], top_left(&w, ef, a, e));
            put(format!("{q}.self_attn.{proj}.bias"), vec![a], head(&format!("{p}.self_attn.{proj}.bias"), a_full, a)?);
        }
        let w = full(&format!("{p}.self_attn.out_proj.weight"), &[ef, a_full])?;
        put(format!("{q}.self_attn.out_proj.weight"), vec![e, a], top_left(&w, a_full, e, a));
        put(format!("{q}.self_attn.out_proj.bias"), vec![e], head(&format!("{p}.self_attn.out_proj.bias"), ef, e)?);
        let units = ffn_units(supernet, e, f);
        let w1 = full(&format!("{p}.fc1.weight"), &[f_full, ef])?;
        let b1 = full(&format!("{p}.fc1.bias"), &[f_full])?;
        put(format!("{q}.fc1.weight"), vec![f, e], units.iter().flat_map(|&u| w1[u * ef..u * ef + e].iter().copied()).collect());
        put(format!("{q}.fc1.bias"), vec![f], units.iter().map(|&u| b1[u]).collect());
        let w2 = full(&format!("{p}.fc2.weight"), &[ef, f_full])?;
        put(format!("{q}.fc2.weight"), vec![e, f], (0..e).flat_map(|r| units.iter().map(move |&u| (r, u))).map(|(r, u)| w2[r * f_full + u]).collect());
        put(format!("{q}.fc2.bias"), vec![e], head(&format!("{p}.fc2.bias"), ef, e)?);
        for norm in ["self_attn_layer_norm", "final_layer_norm"] {
            for part in ["weight", "bias"] {
                put(format!("{q}.{norm}.{part}"), vec![e], head(&format!("{p}.{norm}.{part}"), ef, e)?);
            }
        }
    }
    Ok(out)
}

/// `cfg.model` of the exported model, with the checkpoint config's field names: the source's
/// extractor and positional conv, and the subnet's encoder (the widest layer's widths).
pub fn subnet_config(ckpt: &Checkpoint, supernet: &Supernet, subnet: &Subnet) -> serde_json::Value {
    let d = &supernet.dims;
    let conv: Vec<String> = d.conv_layers.iter().map(|l| format!("({}, {}, {})", l.channels, l.kernel, l.stride)).collect();
    serde_json::json!({
        "_name": ckpt.config.name,
        "extractor_mode": match d.extractor_mode { ExtractorMode::Default => "default", ExtractorMode::LayerNorm => "layer_norm" },
        "conv_feature_layers": format!("[{}]", conv.join(", ")),
        "conv_bias": d.conv_bias,
        "encoder_layers": subnet.layer_num,
        "encoder_embed_dim": subnet.embed_dim,
        "encoder_attention_heads": subnet.heads_num.iter().copied().max().unwrap_or(0),
        "encoder_ffn_embed_dim": subnet.ffn_embed.iter().copied().max().unwrap_or(0),
        "conv_pos": d.pos_conv_kernel,
        "conv_pos_groups": d.pos_conv_groups,
        "layer_norm_first": false,
        "pos_conv_depth": 1,
    })
}

/// The whole exported file: [`subnet_tensors`] with its weight matrices (every tensor of two
/// or more dimensions) in `weights`, and the metadata that makes it loadable on its own.
pub fn subnet_file(ckpt: &Checkpoint, supernet: &Supernet, subnet: &Subnet, origin: &Origin, weights: FileWeights) -> Result<Vec<u8>, ExportError> {
    let tensors = subnet_tensors(ckpt, supernet, subnet)?;
    let typed = tensors
        .into_iter()
        .map(|(name, t)| {
            let dtype = if weights == FileWeights::F16 && t.shape.len() >= 2 { Dtype::F16 } else { Dtype::F32 };
            (name, (dtype, t))
        })
        .collect();
    // The ratios spelled out, so the file's one-subnet search space has the source's ratios.
    let mut stored = subnet.clone();
    stored.ffn_ratio = Some(
        subnet
            .ffn_embed
            .iter()
            .map(|&f| supernet.space.ffn_ratio.iter().copied().find(|&r| ffn_width(r, subnet.embed_dim) == f).unwrap_or(f as f64 / subnet.embed_dim as f64))
            .collect(),
    );
    let metadata = exported::metadata(&subnet_config(ckpt, supernet, subnet), &stored.to_json(), ckpt.task_normalize, origin);
    safetensors_file(&typed, metadata)
}
