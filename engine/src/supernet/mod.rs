//! Search spaces and subnets of the LightHuBERT supernet: which subnets exist, which one a
//! preset or a JSON file names, whether it fits the checkpoint, and what it costs.

mod flops;
mod params;
mod space;
mod subnet;

pub use flops::{forward_flops, layer_flops};
pub use params::{layer_parameters, parameter_count};
pub use space::SearchSpace;
pub use subnet::{ffn_width, kept_layers, LayerChoice, Preset, Subnet};

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
    /// q/k/v output width of the supernet (heads * 64).
    pub attention: usize,
    pub ffn: usize,
    /// The FFN's hidden units form `ffn_chunks` chunks of `ffn_chunk` units; a subnet of width
    /// E takes the first E units of each chunk it uses.
    pub ffn_chunks: usize,
    pub ffn_chunk: usize,
    pub layers: usize,
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
        let (embed, ffn) = (cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim);
        if embed == 0 || ffn < embed || cfg.encoder_attention_heads * 64 != embed {
            return unsupported(format!(
                "encoder widths embed {embed}, ffn {ffn}, heads {} (heads * 64 must equal embed)",
                cfg.encoder_attention_heads
            ));
        }
        if cfg.conv_pos_groups == 0 || !embed.is_multiple_of(cfg.conv_pos_groups) || !cfg.conv_pos.is_multiple_of(2) {
            return unsupported(format!("positional conv of kernel {} with {} groups", cfg.conv_pos, cfg.conv_pos_groups));
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
}

impl Supernet {
    pub fn from_config(cfg: &ModelConfig) -> Result<Self, SubnetError> {
        let dims = SupernetDims::from_config(cfg)?;
        let (space, default_preset) = if let Some(space) = &cfg.search_space {
            (space.clone(), Preset::Default)
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
        Ok(Supernet { dims, space, default_preset })
    }

    /// The subnet a preset names; `default` follows the checkpoint's kind.
    pub fn preset(&self, preset: &Preset) -> Subnet {
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
        subnet.validate(&self.space, &self.dims)
    }

    pub fn parameter_count(&self, subnet: &Subnet) -> u64 {
        parameter_count(&self.dims, subnet)
    }
}
