// Normalisations: LayerNorm over a frame's channels (optionally after a residual add and
// before a GELU), cooperatively (layer_norm_rowwise.wgsl has the row-per-invocation form for
// CPU adapters), and GroupNorm with one group per channel, over time, then GELU.
// All take statistics in two passes (mean, then squared deviations) to match the
// reference's accuracy. Needs the gelu.wgsl prelude.

struct NormParams {
    rows: u32,
    width: u32,
    // bit 0: add residual before normalising, bit 1: GELU after the affine
    flags: u32,
    eps: f32,
}

const FLAG_RESIDUAL: u32 = 1u;
const FLAG_GELU: u32 = 2u;
const WG: u32 = 256u;
const LN_LANES: u32 = 64u;
const LN_ROWS: u32 = 4u;

@group(0) @binding(0) var<uniform> p: NormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> residual: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
// Valid frames of each utterance (group_norm_time only).
@group(0) @binding(6) var<storage, read> lengths: array<u32>;

var<workgroup> partial: array<f32, WG>;

// Tree sum over `width` consecutive invocations starting at `first`. Barriers are the cost
// here (on CPU implementations especially): LayerNorm runs 4 rows of 64 invocations per
// workgroup, so each barrier serves four rows.
fn workgroup_sum(v: f32, first: u32, lane: u32, width: u32) -> f32 {
    partial[first + lane] = v;
    workgroupBarrier();
    for (var s = width / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            partial[first + lane] += partial[first + lane + s];
        }
        workgroupBarrier();
    }
    let total = partial[first];
    workgroupBarrier();
    return total;
}

fn input_at(i: u32) -> f32 {
    if ((p.flags & FLAG_RESIDUAL) != 0u) {
        return x[i] + residual[i];
    }
    return x[i];
}

// 64 invocations per row, 4 rows per workgroup; gamma and beta are the first `width` entries
// of the full tensors.
@compute @workgroup_size(64, 4)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) groups: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    // Rows past the end still take part in every barrier; they only skip the writes.
    let row = (wid.y * groups.x + wid.x) * LN_ROWS + lid.y;
    let live = row < p.rows;
    let lane = lid.x;
    let first = lid.y * LN_LANES;
    let base = min(row, p.rows - 1u) * p.width;
    let n = f32(p.width);
    var s = 0.0;
    for (var c = lane; c < p.width; c += LN_LANES) {
        s += input_at(base + c);
    }
    let mean = workgroup_sum(s, first, lane, LN_LANES) / n;
    var q = 0.0;
    for (var c = lane; c < p.width; c += LN_LANES) {
        let d = input_at(base + c) - mean;
        q += d * d;
    }
    let inv_std = inverseSqrt(workgroup_sum(q, first, lane, LN_LANES) / n + p.eps);
    if (!live) {
        return;
    }
    for (var c = lane; c < p.width; c += LN_LANES) {
        var v = (input_at(base + c) - mean) * inv_std * gamma[c] + beta[c];
        if ((p.flags & FLAG_GELU) != 0u) {
            v = gelu(v);
        }
        y[base + c] = v;
    }
}

// One workgroup per (channel, utterance): x and y are [batch, rows, width] with rows the
// padded frame count. Statistics cover the utterance's own frames only, so padding never
// reaches them; padded frames are normalised with the same statistics (finite, unused).
@compute @workgroup_size(256)
fn group_norm_time(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(local_invocation_id) lid3: vec3<u32>) {
    let ch = wid.x;
    if (ch >= p.width) {
        return;
    }
    let lid = lid3.x;
    let base = wid.y * p.rows * p.width + ch;
    let valid = min(lengths[wid.y], p.rows);
    let n = f32(max(valid, 1u));
    var s = 0.0;
    for (var t = lid; t < valid; t += WG) {
        s += x[base + t * p.width];
    }
    let mean = workgroup_sum(s, 0u, lid, WG) / n;
    var q = 0.0;
    for (var t = lid; t < valid; t += WG) {
        let d = x[base + t * p.width] - mean;
        q += d * d;
    }
    let inv_std = inverseSqrt(workgroup_sum(q, 0u, lid, WG) / n + p.eps);
    for (var t = lid; t < p.rows; t += WG) {
        let i = base + t * p.width;
        var v = (x[i] - mean) * inv_std * gamma[ch] + beta[ch];
        if ((p.flags & FLAG_GELU) != 0u) {
            v = gelu(v);
        }
        y[i] = v;
    }
}
