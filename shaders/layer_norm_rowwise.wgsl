// LayerNorm with one invocation per row and no barriers, reading whole vec4s: the form CPU
// implementations (lavapipe) run fastest, since their barriers cost per invocation and every
// storage load costs a loop over the SIMD lanes. Same maths as `layer_norm` in norm.wgsl:
// y = LN(x (+ residual)) * gamma + beta, then GELU if asked, statistics in two passes.
// Needs width % 4 == 0 and the gelu.wgsl prelude.

struct NormParams {
    rows: u32,
    width: u32,
    // bit 0: add residual before normalising, bit 1: GELU after the affine
    flags: u32,
    eps: f32,
}

const FLAG_RESIDUAL: u32 = 1u;
const FLAG_GELU: u32 = 2u;

@group(0) @binding(0) var<uniform> p: NormParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> gamma: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> beta: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4<f32>>;

fn input4(i: u32) -> vec4<f32> {
    if ((p.flags & FLAG_RESIDUAL) != 0u) {
        return x[i] + residual[i];
    }
    return x[i];
}

@compute @workgroup_size(64)
fn layer_norm_rowwise(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) groups: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = (wid.y * groups.x + wid.x) * 64u + lid.x;
    if (row >= p.rows) {
        return;
    }
    let width4 = p.width / 4u;
    let base = row * width4;
    let n = f32(p.width);
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < width4; c++) {
        s += input4(base + c);
    }
    let mean = (s.x + s.y + s.z + s.w) / n;
    var q = vec4<f32>(0.0);
    for (var c = 0u; c < width4; c++) {
        let d = input4(base + c) - mean;
        q += d * d;
    }
    let inv_std = inverseSqrt((q.x + q.y + q.z + q.w) / n + p.eps);
    for (var c = 0u; c < width4; c++) {
        var v = (input4(base + c) - mean) * inv_std * gamma[c] + beta[c];
        if ((p.flags & FLAG_GELU) != 0u) {
            v = vec4<f32>(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w));
        }
        y[base + c] = v;
    }
}
