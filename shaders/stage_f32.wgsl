// Staging prelude of linear_shared.wgsl: x and weight tiles sit in workgroup memory as f32 and
// their products run in f32. stage_f16.wgsl swaps in f16 (with f32 accumulation).

alias Stage4 = vec4<f32>;
alias StageMat = mat4x4<f32>;

fn stage(v: vec4<f32>) -> Stage4 {
    return v;
}
