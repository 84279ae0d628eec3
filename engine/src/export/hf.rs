//! A subnet as transformers' `HubertModel`: [`subnet_tensors`] under HF's names, with the
//! positional conv's weight norm folded into the weight, and the `config.json` that describes it.

use std::collections::BTreeMap;

use super::{subnet_tensors, ExportError, Tensor};
use crate::checkpoint::exported;
use crate::checkpoint::{Checkpoint, ExtractorMode};
use crate::supernet::Supernet;
use crate::Subnet;

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

/// HF's name for a tensor [`subnet_tensors`] names as the checkpoint does (`None` for the
/// positional conv, which [`hf_tensors`] folds apart).
fn hf_name(name: &str) -> Option<String> {
    if name.starts_with("encoder.pos_conv.") {
        return None;
    }
    if let Some(rest) = name.strip_prefix("feature_extractor.conv_layers.") {
        // fairseq's `conv_layers.{i}.0` (the conv) and `.2` / `.2.1` (its norm).
        let (i, rest) = rest.split_once('.')?;
        let part = rest.rsplit('.').next()?;
        let module = if rest.starts_with("0.") { "conv" } else { "layer_norm" };
        return Some(format!("feature_extractor.conv_layers.{i}.{module}.{part}"));
    }
    if let Some(part) = name.strip_prefix("layer_norm.") {
        return Some(format!("feature_projection.layer_norm.{part}"));
    }
    if let Some(part) = name.strip_prefix("post_extract_proj.") {
        return Some(format!("feature_projection.projection.{part}"));
    }
    let renamed = name
        .replace(".self_attn.", ".attention.")
        .replace(".self_attn_layer_norm.", ".layer_norm.")
        .replace(".fc1.", ".feed_forward.intermediate_dense.")
        .replace(".fc2.", ".feed_forward.output_dense.");
    Some(renamed)
}

/// The subnet's weights under `HubertModel`'s names.
pub fn hf_tensors(ckpt: &Checkpoint, supernet: &Supernet, subnet: &Subnet) -> Result<BTreeMap<String, Tensor>, ExportError> {
    check_hf_expressible(subnet)?;
    let mut ours = subnet_tensors(ckpt, supernet, subnet)?;
    let mut out: BTreeMap<String, Tensor> = BTreeMap::new();
    let k = supernet.dims.pos_conv_kernel;
    // The folded weight g * v / ||v|| (the norm the full tensor's), tap by tap.
    let v = ours.remove(exported::POS_CONV_V).expect("subnet_tensors cuts v");
    let scales = ours.remove(exported::TAP_SCALE).expect("subnet_tensors resolves the weight norm").values;
    let weight: Vec<f32> = v.values.iter().enumerate().map(|(i, &x)| (x as f64 * scales[i % k] as f64) as f32).collect();
    // HubertModel keeps the weight norm: v = the folded weight, g = its norm per tap, so that
    // g * v / ||v|| gives the folded weight back.
    let mut norms = vec![0f64; k];
    for (i, &x) in weight.iter().enumerate() {
        norms[i % k] += x as f64 * x as f64;
    }
    out.insert("encoder.pos_conv_embed.conv.weight_g".into(), Tensor::new(vec![1, 1, k], norms.iter().map(|n| n.sqrt() as f32).collect()));
    out.insert("encoder.pos_conv_embed.conv.weight_v".into(), Tensor::new(v.shape, weight));
    let bias = ours.remove("encoder.pos_conv.0.bias").expect("subnet_tensors cuts the bias");
    out.insert("encoder.pos_conv_embed.conv.bias".into(), bias);
    for (name, t) in ours {
        if let Some(hf) = hf_name(&name) {
            out.insert(hf, t);
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
