//! Element-wise kernels (`shaders/pointwise.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::{fold_groups, gelu_f64, CommandStream};
use crate::gpu::sources::{GELU, POINTWISE};
use crate::gpu::Kernel;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PointwiseParams {
    len: u32,
    _pad: [u32; 3],
}

pub static GELU_INPLACE: Kernel = Kernel::new(POINTWISE, &[GELU], "gelu_inplace", crate::params_layout!(PointwiseParams { len }));

/// Every kernel of this module.
pub fn kernels() -> impl Iterator<Item = &'static Kernel> {
    [&GELU_INPLACE].into_iter()
}

/// data = GELU(data), in place.
pub fn gelu_inplace(stream: &mut CommandStream, data: &wgpu::Buffer, len: u32) {
    let max = stream.limits().max_compute_workgroups_per_dimension;
    let [x, y] = fold_groups(len.div_ceil(256), max);
    stream.dispatch(&GELU_INPLACE, &PointwiseParams { len, _pad: [0; 3] }, &[data], [x, y, 1]);
    stream.cost(20.0 * len as f64, 8.0 * len as f64);
}

pub fn gelu_cpu(data: &[f32]) -> Vec<f32> {
    data.iter().map(|&v| gelu_f64(v as f64) as f32).collect()
}
