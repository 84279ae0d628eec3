// Depth-step prelude of linear_subgroup_32x4.wgsl: four depth values per step, vec4 loads
// (vec4-aligned slices). Composed after linear_common.wgsl and a weight storage prelude.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

const STEP: u32 = 4u;

// The next four depth values of the four weight rows starting at w0 .. w3, `at` steps in, one
// column per unit: frame values (a vec4) times it give the four units' partial sums.
fn weight_step(w0: u32, w1: u32, w2: u32, w3: u32, at: u32) -> mat4x4<f32> {
    return mat4x4<f32>(weight4(w0 + at), weight4(w1 + at), weight4(w2 + at), weight4(w3 + at));
}
