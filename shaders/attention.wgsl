// Multi-head self-attention over a subnet's heads, with a key padding mask per utterance.
//
// q, k and v are [batch * frames, heads * 64] (heads are always 64 wide in LightHuBERT);
// head h owns channels 64h .. 64h + 63, and the output uses the same layout, ready for
// out_proj. Keys at or beyond an utterance's length are padding and get no weight.
// The softmax is computed online (running max and sum), so no frames x frames score
// buffer exists and any length fits.

struct AttentionParams {
    frames: u32,
    batch: u32,
    heads: u32,
    row_stride: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const HEAD_DIM: u32 = 64u;
const VEC_PER_HEAD: u32 = 16u;

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> lengths: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;

// One invocation per (query frame, head, utterance).
@compute @workgroup_size(64, 1, 1)
fn attention(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let h = gid.y;
    let b = gid.z;
    if (t >= p.frames || h >= p.heads || b >= p.batch) {
        return;
    }
    let stride = p.row_stride / 4u;
    let head_off = h * VEC_PER_HEAD;
    let q_base = (b * p.frames + t) * stride + head_off;
    var qh: array<vec4<f32>, 16>;
    var acc: array<vec4<f32>, 16>;
    for (var d = 0u; d < VEC_PER_HEAD; d++) {
        qh[d] = q[q_base + d] * p.scale;
        acc[d] = vec4<f32>(0.0);
    }
    var running_max = -3.0e38;
    var denom = 0.0;
    let keys = min(lengths[b], p.frames);
    for (var s = 0u; s < keys; s++) {
        let kv_base = (b * p.frames + s) * stride + head_off;
        var score = 0.0;
        for (var d = 0u; d < VEC_PER_HEAD; d++) {
            score += dot(qh[d], k[kv_base + d]);
        }
        let new_max = max(running_max, score);
        let correction = exp(running_max - new_max);
        let weight = exp(score - new_max);
        denom = denom * correction + weight;
        for (var d = 0u; d < VEC_PER_HEAD; d++) {
            acc[d] = acc[d] * correction + weight * v[kv_base + d];
        }
        running_max = new_max;
    }
    let inv = select(0.0, 1.0 / denom, denom > 0.0);
    for (var d = 0u; d < VEC_PER_HEAD; d++) {
        out[q_base + d] = acc[d] * inv;
    }
}
