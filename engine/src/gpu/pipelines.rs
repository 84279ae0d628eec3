use std::collections::HashMap;
use std::sync::Mutex;

/// WGSL sources, embedded at build time. `gelu.wgsl` is a prelude of functions that the
/// kernels needing GELU are composed with (WGSL has no includes).
pub mod sources {
    pub const GELU: &str = include_str!("../../../shaders/gelu.wgsl");
    pub const POINTWISE: &str = include_str!("../../../shaders/pointwise.wgsl");
    pub const LINEAR: &str = include_str!("../../../shaders/linear.wgsl");
    pub const LINEAR_TILED: &str = include_str!("../../../shaders/linear_tiled.wgsl");
    pub const NORM: &str = include_str!("../../../shaders/norm.wgsl");
    pub const POS_CONV: &str = include_str!("../../../shaders/pos_conv.wgsl");
    pub const ATTENTION: &str = include_str!("../../../shaders/attention.wgsl");
}

/// Every compute entry point the engine dispatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    Gelu,
    Linear,
    LinearTiled,
    LayerNorm,
    LayerNormRowwise,
    GroupNormTime,
    PosConvResidual,
    Attention,
}

/// A shader file and the preludes it is composed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShaderFile {
    pub name: &'static str,
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
}

const WITH_GELU: &[&str] = &[sources::GELU];

/// All shader modules, each as composed for compilation. The naga test validates these.
pub const SHADER_FILES: &[ShaderFile] = &[
    ShaderFile { name: "gelu.wgsl", source: sources::GELU, preludes: &[] },
    ShaderFile { name: "pointwise.wgsl", source: sources::POINTWISE, preludes: WITH_GELU },
    ShaderFile { name: "linear.wgsl", source: sources::LINEAR, preludes: WITH_GELU },
    ShaderFile { name: "linear_tiled.wgsl", source: sources::LINEAR_TILED, preludes: WITH_GELU },
    ShaderFile { name: "norm.wgsl", source: sources::NORM, preludes: WITH_GELU },
    ShaderFile { name: "pos_conv.wgsl", source: sources::POS_CONV, preludes: WITH_GELU },
    ShaderFile { name: "attention.wgsl", source: sources::ATTENTION, preludes: &[] },
];

impl Kernel {
    pub const ALL: [Kernel; 8] = [
        Kernel::Gelu,
        Kernel::Linear,
        Kernel::LinearTiled,
        Kernel::LayerNorm,
        Kernel::LayerNormRowwise,
        Kernel::GroupNormTime,
        Kernel::PosConvResidual,
        Kernel::Attention,
    ];

    pub fn file(self) -> &'static ShaderFile {
        let name = match self {
            Kernel::Gelu => "pointwise.wgsl",
            Kernel::Linear => "linear.wgsl",
            Kernel::LinearTiled => "linear_tiled.wgsl",
            Kernel::LayerNorm | Kernel::LayerNormRowwise | Kernel::GroupNormTime => "norm.wgsl",
            Kernel::PosConvResidual => "pos_conv.wgsl",
            Kernel::Attention => "attention.wgsl",
        };
        SHADER_FILES.iter().find(|f| f.name == name).expect("every kernel's file is listed")
    }

    pub fn entry_point(self) -> &'static str {
        match self {
            Kernel::Gelu => "gelu_inplace",
            Kernel::Linear => "linear",
            Kernel::LinearTiled => "linear_tiled",
            Kernel::LayerNorm => "layer_norm",
            Kernel::LayerNormRowwise => "layer_norm_rowwise",
            Kernel::GroupNormTime => "group_norm_time",
            Kernel::PosConvResidual => "pos_conv_residual",
            Kernel::Attention => "attention",
        }
    }
}

/// Pipelines are compiled on first use and kept for the life of the device.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
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
                .entry(file.name)
                .or_insert_with(|| {
                    device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(file.name),
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
