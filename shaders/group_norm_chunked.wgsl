// The `default` extractor's GroupNorm over time (one group per channel) when the first conv
// block's output is too long for one buffer and runs in chunks of frames. Two passes over the
// chunks: `group_norm_partial` takes each chunk's mean and sum of squared deviations over the
// frames it owns; `group_norm_apply` combines them (Chan et al.'s pairwise update, so no
// catastrophic cancellation) into the utterance's statistics and normalises a chunk, then GELU.
// Needs the gelu.wgsl prelude.

struct ChunkNormParams {
    // Frames in the chunk's buffer, and its channels.
    rows: u32,
    width: u32,
    // Frames this chunk owns in the statistics (a prefix of `rows`), and its index.
    count: u32,
    chunk: u32,
    // apply: chunks so far, the frames every chunk but the last owns, and the last's.
    chunks: u32,
    count_full: u32,
    count_last: u32,
    flags: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const FLAG_GELU: u32 = 2u;
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: ChunkNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
// [chunk][channel] of (mean, M2).
@group(0) @binding(4) var<storage, read_write> stats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WG>;

fn workgroup_sum(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// One workgroup per channel.
@compute @workgroup_size(256)
fn group_norm_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let ch = wid.x;
    let lid = lid3.x;
    let n = min(p.count, p.rows);
    var s = 0.0;
    for (var t = lid; t < n; t += WG) {
        s += x[t * p.width + ch];
    }
    let mean = workgroup_sum(s, lid) / f32(max(n, 1u));
    var q = 0.0;
    for (var t = lid; t < n; t += WG) {
        let d = x[t * p.width + ch] - mean;
        q += d * d;
    }
    let m2 = workgroup_sum(q, lid);
    if (lid == 0u) {
        stats[p.chunk * p.width + ch] = vec2<f32>(mean, m2);
    }
}

// One workgroup per channel: the utterance's statistics from every chunk's, then the chunk.
@compute @workgroup_size(256)
fn group_norm_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let ch = wid.x;
    let lid = lid3.x;
    var n = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    for (var c = 0u; c < p.chunks; c++) {
        let nb = f32(select(p.count_full, p.count_last, c + 1u == p.chunks));
        let sb = stats[c * p.width + ch];
        let delta = sb.x - mean;
        let total = n + nb;
        mean += delta * nb / total;
        m2 += sb.y + delta * delta * n * nb / total;
        n = total;
    }
    let inv_std = inverseSqrt(m2 / n + p.eps);
    for (var t = lid; t < p.rows; t += WG) {
        let i = t * p.width + ch;
        var v = (x[i] - mean) * inv_std * gamma[ch] + beta[ch];
        if ((p.flags & FLAG_GELU) != 0u) {
            v = gelu(v);
        }
        y[i] = v;
    }
}
