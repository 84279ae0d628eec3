use std::collections::HashMap;
use std::sync::Mutex;

use super::{Arithmetic, WeightPrecision};

/// WGSL sources, embedded at build time by the `lighthubert-shaders` crate. WGSL has no
/// includes, so kernels are composed with preludes: `gelu.wgsl` for the kernels that need GELU,
/// and one weight storage prelude (`weights_f32.wgsl` or `weights_f16.wgsl`) for the kernels
/// that read weight matrices.
pub use lighthubert_shaders as sources;

/// Every compute entry point the engine dispatches; kernels that read weight matrices come
/// in one variant per storage precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    Gelu,
    Linear(WeightPrecision),
    LinearTiled(WeightPrecision),
    LinearShared(WeightPrecision, Arithmetic),
    LinearTiledSubgroup(WeightPrecision),
    LayerNorm,
    LayerNormRowwise,
    GroupNormTime,
    GroupNormPartial,
    GroupNormApply,
    PosConvResidual(WeightPrecision),
    PosConvTiled(WeightPrecision),
    Attention,
    AttentionSubgroup,
    /// Pictures for the demo: hidden states as a heatmap, audio as a waveform.
    Heatmap,
    Waveform,
}

/// A shader file and the preludes it is composed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShaderFile {
    pub name: &'static str,
    /// Names this composition among those of the same file (the weight precision).
    pub variant: &'static str,
    pub source: &'static str,
    pub preludes: &'static [&'static str],
}

impl ShaderFile {
    /// The full WGSL module: preludes first, then the file.
    pub fn composed(&self) -> String {
        let mut s = String::new();
        for p in self.preludes {
            s.push_str(p);
            s.push('\n');
        }
        s.push_str(self.source);
        s
    }

    /// `name`, with the variant if there is one: unique across [`SHADER_FILES`].
    pub fn label(&self) -> String {
        if self.variant.is_empty() {
            self.name.to_string()
        } else {
            format!("{} ({})", self.name, self.variant)
        }
    }
}

const WITH_GELU: &[&str] = &[sources::GELU];
const GELU_F32: &[&str] = &[sources::GELU, sources::WEIGHTS_F32];
const GELU_F16: &[&str] = &[sources::GELU, sources::WEIGHTS_F16];
const LINEAR_F32: &[&str] = &[sources::GELU, sources::WEIGHTS_F32, sources::LINEAR_COMMON];
const LINEAR_F16: &[&str] = &[sources::GELU, sources::WEIGHTS_F16, sources::LINEAR_COMMON];
const SHARED_F32: &[&str] = &[sources::STAGE_F32, sources::GELU, sources::WEIGHTS_F32, sources::LINEAR_COMMON];
const SHARED_F16: &[&str] = &[sources::STAGE_F32, sources::GELU, sources::WEIGHTS_F16, sources::LINEAR_COMMON];
const SHARED_F32_HALF_MATH: &[&str] = &[sources::STAGE_F16, sources::GELU, sources::WEIGHTS_F32, sources::LINEAR_COMMON];
const SHARED_F16_HALF_MATH: &[&str] = &[sources::STAGE_F16, sources::GELU, sources::WEIGHTS_F16, sources::LINEAR_COMMON];
const TILED_F32: &[&str] = &[sources::GELU, sources::WEIGHTS_F32, sources::LINEAR_COMMON, sources::LINEAR_TILED];
const TILED_F16: &[&str] = &[sources::GELU, sources::WEIGHTS_F16, sources::LINEAR_COMMON, sources::LINEAR_TILED];

const fn file(name: &'static str, variant: &'static str, source: &'static str, preludes: &'static [&'static str]) -> ShaderFile {
    ShaderFile { name, variant, source, preludes }
}

/// All shader modules, each as composed for compilation. The naga test validates these.
pub const SHADER_FILES: &[ShaderFile] = &[
    file("gelu.wgsl", "", sources::GELU, &[]),
    file("weights_f32.wgsl", "", sources::WEIGHTS_F32, &[]),
    file("weights_f16.wgsl", "", sources::WEIGHTS_F16, &[]),
    file("stage_f32.wgsl", "", sources::STAGE_F32, &[]),
    file("stage_f16.wgsl", "", sources::STAGE_F16, &[]),
    file("pointwise.wgsl", "", sources::POINTWISE, WITH_GELU),
    file("linear_common.wgsl", "", sources::LINEAR_COMMON, &[sources::GELU]),
    file("linear.wgsl", "f32 weights", sources::LINEAR, LINEAR_F32),
    file("linear.wgsl", "f16 weights", sources::LINEAR, LINEAR_F16),
    file("linear_tiled.wgsl", "f32 weights", sources::LINEAR_TILED, LINEAR_F32),
    file("linear_tiled.wgsl", "f16 weights", sources::LINEAR_TILED, LINEAR_F16),
    file("linear_shared.wgsl", "f32 weights", sources::LINEAR_SHARED, SHARED_F32),
    file("linear_shared.wgsl", "f16 weights", sources::LINEAR_SHARED, SHARED_F16),
    file("linear_shared.wgsl", "f32 weights, f16 arithmetic", sources::LINEAR_SHARED, SHARED_F32_HALF_MATH),
    file("linear_shared.wgsl", "f16 weights, f16 arithmetic", sources::LINEAR_SHARED, SHARED_F16_HALF_MATH),
    file("linear_tiled_subgroup.wgsl", "f32 weights", sources::LINEAR_TILED_SUBGROUP, TILED_F32),
    file("linear_tiled_subgroup.wgsl", "f16 weights", sources::LINEAR_TILED_SUBGROUP, TILED_F16),
    file("norm.wgsl", "", sources::NORM, WITH_GELU),
    file("layer_norm_rowwise.wgsl", "", sources::LAYER_NORM_ROWWISE, WITH_GELU),
    file("group_norm_chunked.wgsl", "", sources::GROUP_NORM_CHUNKED, WITH_GELU),
    file("pos_conv.wgsl", "f32 weights", sources::POS_CONV, GELU_F32),
    file("pos_conv.wgsl", "f16 weights", sources::POS_CONV, GELU_F16),
    file("pos_conv_tiled.wgsl", "f32 weights", sources::POS_CONV_TILED, GELU_F32),
    file("pos_conv_tiled.wgsl", "f16 weights", sources::POS_CONV_TILED, GELU_F16),
    file("attention.wgsl", "", sources::ATTENTION, &[]),
    file("attention_subgroup.wgsl", "", sources::ATTENTION_SUBGROUP, &[sources::ATTENTION]),
    file("picture.wgsl", "", sources::PICTURE, &[]),
];

impl Kernel {
    pub const ALL: [Kernel; 24] = [
        Kernel::Gelu,
        Kernel::Linear(WeightPrecision::F32),
        Kernel::Linear(WeightPrecision::F16),
        Kernel::LinearTiled(WeightPrecision::F32),
        Kernel::LinearTiled(WeightPrecision::F16),
        Kernel::LinearShared(WeightPrecision::F32, Arithmetic::F32),
        Kernel::LinearShared(WeightPrecision::F16, Arithmetic::F32),
        Kernel::LinearShared(WeightPrecision::F32, Arithmetic::F16),
        Kernel::LinearShared(WeightPrecision::F16, Arithmetic::F16),
        Kernel::LinearTiledSubgroup(WeightPrecision::F32),
        Kernel::LinearTiledSubgroup(WeightPrecision::F16),
        Kernel::LayerNorm,
        Kernel::LayerNormRowwise,
        Kernel::GroupNormTime,
        Kernel::GroupNormPartial,
        Kernel::GroupNormApply,
        Kernel::PosConvResidual(WeightPrecision::F32),
        Kernel::PosConvResidual(WeightPrecision::F16),
        Kernel::PosConvTiled(WeightPrecision::F32),
        Kernel::PosConvTiled(WeightPrecision::F16),
        Kernel::Attention,
        Kernel::AttentionSubgroup,
        Kernel::Heatmap,
        Kernel::Waveform,
    ];

    pub fn file(self) -> &'static ShaderFile {
        if let Kernel::LinearShared(p, Arithmetic::F16) = self {
            let variant = match p {
                WeightPrecision::F32 => "f32 weights, f16 arithmetic",
                WeightPrecision::F16 => "f16 weights, f16 arithmetic",
            };
            return find_file("linear_shared.wgsl", variant);
        }
        let (name, precision) = match self {
            Kernel::Gelu => ("pointwise.wgsl", None),
            Kernel::Linear(p) => ("linear.wgsl", Some(p)),
            Kernel::LinearTiled(p) => ("linear_tiled.wgsl", Some(p)),
            Kernel::LinearShared(p, _) => ("linear_shared.wgsl", Some(p)),
            Kernel::LinearTiledSubgroup(p) => ("linear_tiled_subgroup.wgsl", Some(p)),
            Kernel::LayerNorm | Kernel::GroupNormTime => ("norm.wgsl", None),
            Kernel::LayerNormRowwise => ("layer_norm_rowwise.wgsl", None),
            Kernel::GroupNormPartial | Kernel::GroupNormApply => ("group_norm_chunked.wgsl", None),
            Kernel::PosConvResidual(p) => ("pos_conv.wgsl", Some(p)),
            Kernel::PosConvTiled(p) => ("pos_conv_tiled.wgsl", Some(p)),
            Kernel::Attention => ("attention.wgsl", None),
            Kernel::AttentionSubgroup => ("attention_subgroup.wgsl", None),
            Kernel::Heatmap | Kernel::Waveform => ("picture.wgsl", None),
        };
        let variant = match precision {
            None => "",
            Some(WeightPrecision::F32) => "f32 weights",
            Some(WeightPrecision::F16) => "f16 weights",
        };
        find_file(name, variant)
    }

    /// The weight precision this kernel reads, if it reads weight matrices.
    pub fn weight_precision(self) -> Option<WeightPrecision> {
        match self {
            Kernel::Linear(p)
            | Kernel::LinearTiled(p)
            | Kernel::LinearShared(p, _)
            | Kernel::LinearTiledSubgroup(p)
            | Kernel::PosConvResidual(p)
            | Kernel::PosConvTiled(p) => Some(p),
            _ => None,
        }
    }

    /// Whether this kernel draws pictures (the demo's) rather than computing the model.
    pub fn draws_pictures(self) -> bool {
        matches!(self, Kernel::Heatmap | Kernel::Waveform)
    }

    /// Whether this kernel uses f16 arithmetic (needs SHADER_F16).
    pub fn uses_f16(self) -> bool {
        matches!(self, Kernel::LinearShared(_, Arithmetic::F16))
    }

    /// The subgroup size this kernel is written for, if it uses subgroup operations.
    pub fn subgroup_size(self) -> Option<u32> {
        match self {
            Kernel::LinearTiledSubgroup(_) | Kernel::AttentionSubgroup => Some(8),
            _ => None,
        }
    }

    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::Gelu => "gelu_inplace",
            Kernel::Linear(_) => "linear",
            Kernel::LinearTiled(_) => "linear_tiled",
            Kernel::LinearShared(..) => "linear_shared",
            Kernel::LinearTiledSubgroup(_) => "linear_tiled_subgroup",
            Kernel::LayerNorm => "layer_norm",
            Kernel::LayerNormRowwise => "layer_norm_rowwise",
            Kernel::GroupNormTime => "group_norm_time",
            Kernel::GroupNormPartial => "group_norm_partial",
            Kernel::GroupNormApply => "group_norm_apply",
            Kernel::PosConvResidual(_) => "pos_conv_residual",
            Kernel::PosConvTiled(_) => "pos_conv_tiled",
            Kernel::Attention => "attention",
            Kernel::AttentionSubgroup => "attention_subgroup",
            Kernel::Heatmap => "heatmap",
            Kernel::Waveform => "waveform",
        }
    }
}

fn find_file(name: &str, variant: &str) -> &'static ShaderFile {
    SHADER_FILES.iter().find(|f| f.name == name && f.variant == variant).expect("every kernel's file is listed")
}

/// Pipelines are compiled on first use and kept for the life of the device.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<&'static ShaderFile, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<Kernel, wgpu::ComputePipeline>>,
}

impl PipelineCache {
    pub fn get(&self, device: &wgpu::Device, kernel: Kernel) -> wgpu::ComputePipeline {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pipelines.get(&kernel) {
            return p.clone();
        }
        let file = kernel.file();
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            modules
                .entry(file)
                .or_insert_with(|| {
                    device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(&file.label()),
                        source: wgpu::ShaderSource::Wgsl(file.composed().into()),
                    })
                })
                .clone()
        };
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry_point()),
            layout: None,
            module: &module,
            entry_point: Some(kernel.entry_point()),
            compilation_options: Default::default(),
            cache: None,
        });
        pipelines.insert(kernel, pipeline.clone());
        pipeline
    }

    pub fn len(&self) -> usize {
        self.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }
}
