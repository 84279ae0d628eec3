enable f16;

// Staging prelude of linear_shared.wgsl for adapters with SHADER_F16: x and weight tiles sit in
// workgroup memory as f16 (half the space and traffic) and each 4 x 4 x 4 block product runs in
// f16; the blocks accumulate in f32, so rounding does not grow with the depth. Must come first
// in the module: `enable` precedes every declaration.

alias Stage4 = vec4<f16>;
alias StageMat = mat4x4<f16>;

fn stage(v: vec4<f32>) -> Stage4 {
    return Stage4(v);
}
