// Weight storage prelude: the kernel's weight (binding 2) holds f32 values.
// weight(i) is element i of the full supernet tensor; weight4(j) is elements 4j .. 4j + 3.
// Scalar reads index into the vec4s through the reference, so they load one value, not four.
// weights_f16.wgsl provides the same two functions over f16 storage.

@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;

fn weight(i: u32) -> f32 {
    return w[i >> 2u][i & 3u];
}

fn weight4(j: u32) -> vec4<f32> {
    return w[j];
}
