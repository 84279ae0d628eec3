// Depth-step prelude of linear_subgroup_32x4.wgsl: one depth value per step, scalar loads (any
// slice: overlapping rows, any offsets). Composed after linear_common.wgsl and a weight storage
// prelude.

@group(0) @binding(1) var<storage, read> x: array<f32>;

const STEP: u32 = 1u;

// The next depth value of the four weight rows starting at w0 .. w3, `at` steps in: a frame
// value times it gives the four units' partial sums.
fn weight_step(w0: u32, w1: u32, w2: u32, w3: u32, at: u32) -> vec4<f32> {
    return vec4<f32>(weight(w0 + at), weight(w1 + at), weight(w2 + at), weight(w3 + at));
}
