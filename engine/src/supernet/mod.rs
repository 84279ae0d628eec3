//! Search spaces and subnets of the LightHuBERT supernet: which subnets exist, which one a
//! preset or a JSON file names, whether it fits the checkpoint, and what it costs.

mod flops;
mod params;
mod space;
mod subnet;

pub use flops::{forward_flops, layer_flops};
pub use params::{layer_parameters, parameter_count};
pub use space::SearchSpace;
pub use subnet::{ffn_width, kept_layers, kept_layers_of, LayerChoice, Preset, Subnet};

use thiserror::Error;

use crate::checkpoint::{ConvLayerSpec, ExtractorMode, ModelConfig};

#[derive(Debug, Error, PartialEq)]
pub enum SubnetError {
    #[error("subnet JSON: {0}")]
    Json(String),
    #[error("unknown subnet preset `{0}` (expected default, min, max or random:SEED)")]
    UnknownPreset(String),
    #[error("subnet field `{field}` = {value} is not in the search space (allowed: {allowed})")]
    NotInSpace { field: String, value: String, allowed: String },
    #[error("subnet field `{field}` has {len} entries but layer_num is {layer_num}")]
    ListLength { field: String, len: usize, layer_num: usize },
    #[error("subnet field `{field}`: {reason}")]
    Inconsistent { field: String, reason: String },
    #[error("subnet field `{field}` does not fit the checkpoint: {reason}")]
    Unfit { field: String, reason: String },
    #[error("subnet field `{field}` = {value} is not supported: only \"global\" attention is implemented")]
    Unsupported { field: String, value: String },
    #[error("the checkpoint names no known search space: {0}")]
    UnknownSpace(String),
    /// An exported file holds one subnet; any other needs the supernet it was cut from.
    #[error("this file is one exported subnet ({exported}) and runs only that one; run other subnets from the checkpoint it was cut from")]
    NotExported { exported: String },
    #[error("exported subnet: {0}")]
    BadExport(String),
}

/// The widths of one supernet layer's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerWidths {
    /// q/k/v output width (heads * 64).
    pub attention: usize,
    pub ffn: usize,
}

/// The subnet an exported file holds, parsed from its config.
fn exported_subnet(cfg: &ModelConfig) -> Result<Option<Subnet>, SubnetError> {
    cfg.exported_subnet.as_deref().map(|json| Subnet::from_json(json).map_err(|e| SubnetError::BadExport(e.to_string()))).transpose()
}

/// The supernet's own widths, read from the checkpoint's config (and checked against its
/// tensors when the model loads). Released files are 768 wide; test files are narrower.
#[derive(Debug, Clone, PartialEq)]
pub struct SupernetDims {
    pub extractor_mode: ExtractorMode,
    pub conv_layers: Vec<ConvLayerSpec>,
    pub conv_bias: bool,
    /// Channels of the conv features (the last conv layer's width).
    pub conv_channels: usize,
    pub embed: usize,
    /// q/k/v output width of the supernet's widest layer (heads * 64).
    pub attention: usize,
    /// FFN width of the widest layer.
    pub ffn: usize,
    /// The FFN's hidden units form `ffn_chunks` chunks of `ffn_chunk` units; a subnet of width
    /// E takes the first E units of each chunk it uses.
    pub ffn_chunks: usize,
    pub ffn_chunk: usize,
    pub layers: usize,
    /// Each layer's widths: all `attention` and `ffn` in a trained supernet; an exported
    /// subnet's own.
    pub layer_widths: Vec<LayerWidths>,
    pub pos_conv_kernel: usize,
    pub pos_conv_groups: usize,
}

impl SupernetDims {
    pub fn from_config(cfg: &ModelConfig) -> Result<Self, SubnetError> {
        let unsupported = |what: String| Err(SubnetError::UnknownSpace(what));
        if cfg.layer_norm_first {
            return unsupported("layer_norm_first = true is not a LightHuBERT layout".into());
        }
        if cfg.pos_conv_depth != 1 {
            return unsupported(format!("pos_conv_depth = {} (only 1 is supported)", cfg.pos_conv_depth));
        }
        let conv_channels = match cfg.conv_layers.last() {
            Some(l) => l.channels,
            None => return unsupported("conv_feature_layers is empty".into()),
        };
        if cfg.conv_pos_groups == 0 || !cfg.encoder_embed_dim.is_multiple_of(cfg.conv_pos_groups) || !cfg.conv_pos.is_multiple_of(2) {
            return unsupported(format!("positional conv of kernel {} with {} groups", cfg.conv_pos, cfg.conv_pos_groups));
        }
        if let Some(subnet) = exported_subnet(cfg)? {
            return Self::exported(cfg, conv_channels, &subnet);
        }
        let (embed, ffn) = (cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim);
        if embed == 0 || ffn < embed || cfg.encoder_attention_heads.saturating_mul(64) != embed {
            return unsupported(format!(
                "encoder widths embed {embed}, ffn {ffn}, heads {} (heads * 64 must equal embed)",
                cfg.encoder_attention_heads
            ));
        }
        if cfg.encoder_layers != 12 {
            return unsupported(format!("{} encoder layers (LightHuBERT's depth map needs 12)", cfg.encoder_layers));
        }
        let ffn_chunks = ffn / embed;
        Ok(SupernetDims {
            extractor_mode: cfg.extractor_mode,
            conv_layers: cfg.conv_layers.clone(),
            conv_bias: cfg.conv_bias,
            conv_channels,
            embed,
            attention: cfg.encoder_attention_heads * 64,
            ffn,
            ffn_chunks,
            ffn_chunk: ffn / ffn_chunks,
            layers: cfg.encoder_layers,
            layer_widths: vec![LayerWidths { attention: cfg.encoder_attention_heads * 64, ffn }; cfg.encoder_layers],
            pos_conv_kernel: cfg.conv_pos,
            pos_conv_groups: cfg.conv_pos_groups,
        })
    }

    /// An exported file's dims: its layers are the subnet's, dense, numbered from 0, and the
    /// config's encoder widths must agree with the subnet.
    fn exported(cfg: &ModelConfig, conv_channels: usize, subnet: &Subnet) -> Result<Self, SubnetError> {
        let bad = |what: String| Err(SubnetError::BadExport(what));
        let n = subnet.layer_num;
        if [subnet.heads_num.len(), subnet.atten_dim.len(), subnet.ffn_embed.len(), subnet.slide_wsz.len()].iter().any(|&l| l != n) {
            return bad(format!("its lists do not all have layer_num = {n} entries"));
        }
        // Far beyond any real width: a hostile file must not overflow the arithmetic below.
        const LIMIT: usize = 1 << 20;
        if subnet.embed_dim > LIMIT || subnet.heads_num.iter().chain(&subnet.ffn_embed).any(|&w| w > LIMIT) {
            return bad(format!("widths beyond {LIMIT}"));
        }
        let layer_widths: Vec<LayerWidths> = subnet.heads_num.iter().zip(&subnet.ffn_embed).map(|(&h, &f)| LayerWidths { attention: 64 * h, ffn: f }).collect();
        let attention = layer_widths.iter().map(|w| w.attention).max().unwrap_or(0);
        let ffn = layer_widths.iter().map(|w| w.ffn).max().unwrap_or(0);
        let e = subnet.embed_dim;
        if n == 0 || e == 0 || layer_widths.iter().any(|w| w.attention == 0 || w.ffn == 0) {
            return bad("it has no layers, or a layer without heads or FFN units".into());
        }
        let config = (cfg.encoder_layers, cfg.encoder_embed_dim, cfg.encoder_attention_heads.saturating_mul(64), cfg.encoder_ffn_embed_dim);
        if config != (n, e, attention, ffn) {
            return bad(format!(
                "the config says {} layers of width {} (attention {}, FFN {}), the subnet {n} of width {e} (attention up to {attention}, FFN up to {ffn})",
                config.0, config.1, config.2, config.3
            ));
        }
        Ok(SupernetDims {
            extractor_mode: cfg.extractor_mode,
            conv_layers: cfg.conv_layers.clone(),
            conv_bias: cfg.conv_bias,
            conv_channels,
            embed: e,
            attention,
            ffn,
            // Dense: each layer's units are its own, in order.
            ffn_chunks: 1,
            ffn_chunk: ffn,
            layers: n,
            layer_widths,
            pos_conv_kernel: cfg.conv_pos,
            pos_conv_groups: cfg.conv_pos_groups,
        })
    }
}

/// A checkpoint's supernet: its widths, its search space and its default subnet.
#[derive(Debug, Clone)]
pub struct Supernet {
    pub dims: SupernetDims,
    pub space: SearchSpace,
    /// `student_hubert` (stage 1) runs its max subnet by default, the pruned ones the middle.
    pub default_preset: Preset,
    /// An exported file's one subnet: every preset names it, and nothing else runs.
    pub exported: Option<Subnet>,
}

impl Supernet {
    pub fn from_config(cfg: &ModelConfig) -> Result<Self, SubnetError> {
        let dims = SupernetDims::from_config(cfg)?;
        if let Some(mut subnet) = exported_subnet(cfg)? {
            let space = SearchSpace::holding(&subnet)?;
            subnet.ffn_ratio = None;
            subnet.validate(&space, &dims)?;
            return Ok(Supernet { dims, space, default_preset: Preset::Default, exported: Some(subnet) });
        }
        let (space, default_preset) = if let Some(space) = &cfg.search_space {
            (SearchSpace::custom(space), Preset::Default)
        } else if cfg.name == "student_hubert" {
            (SearchSpace::base(), Preset::Max)
        } else {
            let yaml = cfg.pruner_supernet.as_deref().unwrap_or("").to_lowercase();
            if yaml.ends_with("small.yaml") {
                (SearchSpace::small(), Preset::Default)
            } else if yaml.ends_with("base.yaml") {
                (SearchSpace::base(), Preset::Default)
            } else {
                return Err(SubnetError::UnknownSpace(format!(
                    "model `{}` with pruner_supernet {:?} (expected *Small.yaml or *Base.yaml)",
                    cfg.name, cfg.pruner_supernet
                )));
            }
        };
        Ok(Supernet { dims, space, default_preset, exported: None })
    }

    /// The subnet a preset names; `default` follows the checkpoint's kind. An exported file's
    /// every preset is its subnet.
    pub fn preset(&self, preset: &Preset) -> Subnet {
        if let Some(only) = &self.exported {
            return only.clone();
        }
        match preset {
            Preset::Default => self.space.preset(&self.default_preset),
            p => self.space.preset(p),
        }
    }

    /// Parses a preset name or the authors' JSON dict, and validates it.
    pub fn subnet(&self, spec: &str) -> Result<Subnet, SubnetError> {
        let subnet = if spec.trim_start().starts_with('{') {
            Subnet::from_json(spec)?
        } else {
            self.preset(&spec.parse()?)
        };
        self.validate(&subnet)?;
        Ok(subnet)
    }

    pub fn validate(&self, subnet: &Subnet) -> Result<(), SubnetError> {
        if let Some(only) = self.exported.as_ref().filter(|only| !only.same_layers(subnet)) {
            return Err(SubnetError::NotExported { exported: only.to_json() });
        }
        subnet.validate(&self.space, &self.dims)
    }

    /// The kept layers of `subnet` with the supernet layer each one runs.
    pub fn layers(&self, subnet: &Subnet) -> Vec<LayerChoice> {
        subnet.layers_of(self.dims.layers)
    }

    pub fn parameter_count(&self, subnet: &Subnet) -> u64 {
        parameter_count(&self.dims, subnet)
    }
}

/// Frames the conv feature extractor makes from `samples` samples (0 when too short).
pub fn frames_for(dims: &SupernetDims, samples: usize) -> usize {
    let mut t = samples;
    for l in &dims.conv_layers {
        t = l.out_len(t);
    }
    t
}

/// The fewest samples that make one frame (400 for the released extractor).
pub fn min_samples(dims: &SupernetDims) -> usize {
    dims.conv_layers.iter().rev().fold(1, |need, l| (need - 1) * l.stride + l.kernel)
}
