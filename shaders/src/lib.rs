//! The WGSL kernels of the LightHuBERT engine, embedded at build time. The `.wgsl` files sit
//! next to this crate's manifest (the repository's `shaders/` folder), so the crate packages
//! and builds on its own and the engine depends on it rather than on a path outside itself.
//!
//! WGSL has no includes: the engine composes a module from preludes and a kernel file (see
//! `lighthubert::gpu::SHADER_FILES`).

pub const GELU: &str = include_str!("../gelu.wgsl");
pub const STAGE_F32: &str = include_str!("../stage_f32.wgsl");
pub const STAGE_F16: &str = include_str!("../stage_f16.wgsl");
pub const WEIGHTS_F32: &str = include_str!("../weights_f32.wgsl");
pub const WEIGHTS_F16: &str = include_str!("../weights_f16.wgsl");
pub const POINTWISE: &str = include_str!("../pointwise.wgsl");
pub const LINEAR_COMMON: &str = include_str!("../linear_common.wgsl");
pub const LINEAR: &str = include_str!("../linear.wgsl");
pub const LINEAR_TILED: &str = include_str!("../linear_tiled.wgsl");
pub const LINEAR_SHARED: &str = include_str!("../linear_shared.wgsl");
pub const LINEAR_TILED_SUBGROUP: &str = include_str!("../linear_tiled_subgroup.wgsl");
pub const NORM: &str = include_str!("../norm.wgsl");
pub const LAYER_NORM_ROWWISE: &str = include_str!("../layer_norm_rowwise.wgsl");
pub const GROUP_NORM_CHUNKED: &str = include_str!("../group_norm_chunked.wgsl");
pub const POS_CONV: &str = include_str!("../pos_conv.wgsl");
pub const POS_CONV_TILED: &str = include_str!("../pos_conv_tiled.wgsl");
pub const ATTENTION: &str = include_str!("../attention.wgsl");
pub const ATTENTION_SUBGROUP: &str = include_str!("../attention_subgroup.wgsl");
pub const PICTURE: &str = include_str!("../picture.wgsl");

/// Every file, by name: the engine's tests check that each one is composed and validated.
pub const FILES: &[(&str, &str)] = &[
    ("gelu.wgsl", GELU),
    ("stage_f32.wgsl", STAGE_F32),
    ("stage_f16.wgsl", STAGE_F16),
    ("weights_f32.wgsl", WEIGHTS_F32),
    ("weights_f16.wgsl", WEIGHTS_F16),
    ("pointwise.wgsl", POINTWISE),
    ("linear_common.wgsl", LINEAR_COMMON),
    ("linear.wgsl", LINEAR),
    ("linear_tiled.wgsl", LINEAR_TILED),
    ("linear_shared.wgsl", LINEAR_SHARED),
    ("linear_tiled_subgroup.wgsl", LINEAR_TILED_SUBGROUP),
    ("norm.wgsl", NORM),
    ("layer_norm_rowwise.wgsl", LAYER_NORM_ROWWISE),
    ("group_norm_chunked.wgsl", GROUP_NORM_CHUNKED),
    ("pos_conv.wgsl", POS_CONV),
    ("pos_conv_tiled.wgsl", POS_CONV_TILED),
    ("attention.wgsl", ATTENTION),
    ("attention_subgroup.wgsl", ATTENTION_SUBGROUP),
    ("picture.wgsl", PICTURE),
];
