use std::collections::HashMap;
use std::sync::Mutex;

use super::{Kernel, ParamsBinding};

/// Pipelines are compiled on first use and kept for the life of the device; kernels that
/// compose the same module share its compiled shader. A device binds each kernel's parameters
/// one way only ([`GpuContext::params_binding`](super::GpuContext::params_binding)), so the
/// binding is not part of the key.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<(&'static str, &'static str), wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(&'static str, &'static str, &'static str), wgpu::ComputePipeline>>,
}

impl PipelineCache {
    pub fn get(&self, device: &wgpu::Device, kernel: &Kernel, binding: ParamsBinding) -> wgpu::ComputePipeline {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pipelines.get(&kernel.key()) {
            return p.clone();
        }
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            modules
                .entry(kernel.module_key())
                .or_insert_with(|| {
                    device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(&kernel.module_label()),
                        source: wgpu::ShaderSource::Wgsl(kernel.composed_for(binding).into()),
                    })
                })
                .clone()
        };
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry_point),
            layout: None,
            module: &module,
            entry_point: Some(kernel.entry_point),
            compilation_options: Default::default(),
            cache: None,
        });
        pipelines.insert(kernel.key(), pipeline.clone());
        pipeline
    }

    pub fn len(&self) -> usize {
        self.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }
}
