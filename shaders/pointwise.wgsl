// Element-wise kernels. Needs the gelu.wgsl prelude.

struct PointwiseParams {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: PointwiseParams;
@group(0) @binding(1) var<storage, read_write> data: array<f32>;

// 2-D dispatch so lengths beyond 65535 workgroups still fit.
@compute @workgroup_size(256)
fn gelu_inplace(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * 256u + gid.x;
    if (i < p.len) {
        data[i] = gelu(data[i]);
    }
}
