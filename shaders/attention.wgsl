// Multi-head self-attention over a subnet's heads, with a key padding mask per utterance.
//
// Row r (utterance b's frame t, r = b * frames + t) of q, k and v is heads * 64 wide (heads are
// always 64 wide in LightHuBERT; head h owns channels 64h .. 64h + 63). They come from the
// fused projection as one buffer, bound three times, whose rows hold a query, then a key, then
// a value (kv_offset = heads * 64, row_stride 3 times that), or as three buffers (kv_offset 0).
// The output is [batch * frames, heads * 64] in the same head layout, ready for out_proj. Keys at or beyond an utterance's length are padding and get no weight.
// The softmax is computed online (running max and sum), so no frames x frames score
// buffer exists and any length fits.

struct AttentionParams {
    frames: u32,
    batch: u32,
    heads: u32,
    // Floats per row of the q, k and v bindings.
    row_stride: u32,
    scale: f32,
    // Where a row's key starts in its row of k, and its value in v at twice that.
    kv_offset: u32,
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

// Where row r's query of the head at vec4 `head_off` starts in q; its key starts `key_offset()`
// further in k, its value twice that in v. Its output starts at `out_at(r, head_off)`.
fn q_at(r: u32, head_off: u32) -> u32 {
    return r * (p.row_stride / 4u) + head_off;
}

fn key_offset() -> u32 {
    return p.kv_offset / 4u;
}

// The query that starts at vec4 `q_base`, times the softmax scale.
fn scaled_query(q_base: u32) -> array<vec4<f32>, 16> {
    var qh: array<vec4<f32>, 16>;
    for (var d = 0u; d < VEC_PER_HEAD; d++) {
        qh[d] = q[q_base + d] * p.scale;
    }
    return qh;
}

fn out_at(r: u32, head_off: u32) -> u32 {
    return r * p.heads * VEC_PER_HEAD + head_off;
}

// One invocation per (query frame, head, utterance).
@compute @workgroup_size(64, 1, 1)
fn attention(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let h = gid.y;
    let b = gid.z;
    if (t >= p.frames || h >= p.heads || b >= p.batch) {
        return;
    }
    let head_off = h * VEC_PER_HEAD;
    let q_base = q_at(b * p.frames + t, head_off);
    let k_off = key_offset();
    var qh = scaled_query(q_base);
    // Function-scope variables start at zero.
    var acc: array<vec4<f32>, 16>;
    var running_max = -3.0e38;
    var denom = 0.0;
    let keys = min(lengths[b], p.frames);
    for (var s = 0u; s < keys; s++) {
        let k_base = q_at(b * p.frames + s, head_off) + k_off;
        var score = 0.0;
        for (var d = 0u; d < VEC_PER_HEAD; d++) {
            score += dot(qh[d], k[k_base + d]);
        }
        let new_max = max(running_max, score);
        let correction = exp(running_max - new_max);
        let weight = exp(score - new_max);
        denom = denom * correction + weight;
        for (var d = 0u; d < VEC_PER_HEAD; d++) {
            acc[d] = acc[d] * correction + weight * v[k_base + k_off + d];
        }
        running_max = new_max;
    }
    let inv = select(0.0, 1.0 / denom, denom > 0.0);
    let o_base = out_at(b * p.frames + t, head_off);
    for (var d = 0u; d < VEC_PER_HEAD; d++) {
        out[o_base + d] = acc[d] * inv;
    }
}
