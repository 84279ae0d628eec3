// Attention for GPUs with subgroups, flash style with 8 lanes per query: a workgroup owns 8
// queries of one head of one utterance, an eighth of attention_flash.wgsl's 64, so a short
// utterance still spreads over many workgroups (1 s, 49 frames: 7 per head instead of 1).
// Lane l of a query's 8 holds vec4s l and l + 8 of its query and of its output accumulator.
// A score is a partial dot product per lane, summed over the query's 8 lanes by butterfly
// shuffles (xor 4, 2, 1). A query's lanes are an aligned group of 8 subgroup invocation ids,
// so its shuffles never leave it, however the driver lays subgroups over the workgroup; a
// subgroup of any power-of-two size from 8 up holds whole queries, numbered by subgroup id.
// That needs full subgroups, which drivers give a one-dimensional workgroup of 64.
// Each butterfly step adds the same two numbers in every lane, and addition commutes, so all 8
// lanes hold the same scores, hence the same running max and denominator.
// Keys and values pass through workgroup memory 16 at a time, shared by the 8 queries; the
// softmax is online in f32, rescaled once per tile, as in attention_flash.wgsl.
// Composed after attention.wgsl (parameters, bindings, helpers) and attention_tiles.wgsl. No
// `enable subgroups;`: naga 30 rejects it as unimplemented, and accepts subgroup built-ins
// without it where the device has the SUBGROUP feature.

const LANES_PER_QUERY: u32 = 8u;
const QUERIES_PER_GROUP: u32 = 8u;
const NO_WEIGHT: f32 = -3.0e38;

// x summed over the 8 lanes of this lane's query, in each of them.
fn query_sum(x: vec4<f32>) -> vec4<f32> {
    let x4 = x + subgroupShuffleXor(x, 4u);
    let x2 = x4 + subgroupShuffleXor(x4, 2u);
    return x2 + subgroupShuffleXor(x2, 1u);
}

@compute @workgroup_size(64, 1, 1)
fn attention_flash_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32,
                            @builtin(subgroup_id) subgroup: u32,
                            @builtin(subgroup_size) subgroup_size: u32,
                            @builtin(subgroup_invocation_id) subgroup_lane: u32) {
    let h = wid.y;
    let b = wid.z;
    let lane = subgroup_lane % LANES_PER_QUERY;
    let query = subgroup * (subgroup_size / LANES_PER_QUERY) + subgroup_lane / LANES_PER_QUERY;
    let t = wid.x * QUERIES_PER_GROUP + query;
    // Every invocation runs every tile, barrier and shuffle (uniform control flow); only
    // queries inside the utterance's frames write.
    let in_frames = t < p.frames;
    let head_off = h * VEC_PER_HEAD;
    let row = b * p.frames + min(t, p.frames - 1u);
    let q_base = q_at(row, head_off) + lane;
    let q_lo = q[q_base] * p.scale;
    let q_hi = q[q_base + LANES_PER_QUERY] * p.scale;
    var acc_lo = vec4<f32>(0.0);
    var acc_hi = vec4<f32>(0.0);
    var running_max = NO_WEIGHT;
    var denom = 0.0;
    let keys = min(lengths[b], p.frames);
    for (var s0 = 0u; s0 < keys; s0 += KEYS_PER_TILE) {
        // The tile's tail past the last key repeats it, to be masked below.
        stage_kv_tile(lid, b, head_off, s0, keys);
        workgroupBarrier();
        // scores[i] holds keys 4i .. 4i + 3 of the tile, so that one shuffle sums four.
        var scores: array<vec4<f32>, 4>;
        var tile_max = NO_WEIGHT;
        for (var i = 0u; i < 4u; i++) {
            var partial: vec4<f32>;
            for (var c = 0u; c < 4u; c++) {
                let kv = (4u * i + c) * VEC_PER_HEAD + lane;
                partial[c] = dot(q_lo, k_tile[kv]) + dot(q_hi, k_tile[kv + LANES_PER_QUERY]);
            }
            let in_keys = s0 + 4u * i + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(keys);
            let s = select(vec4<f32>(NO_WEIGHT), query_sum(partial), in_keys);
            scores[i] = s;
            tile_max = max(tile_max, max(max(s.x, s.y), max(s.z, s.w)));
        }
        let new_max = max(running_max, tile_max);
        let correction = exp(running_max - new_max);
        denom *= correction;
        acc_lo *= correction;
        acc_hi *= correction;
        for (var i = 0u; i < 4u; i++) {
            // Masked keys: exp(-3e38 - max) is 0.
            let w = exp(scores[i] - new_max);
            denom += w.x + w.y + w.z + w.w;
            for (var c = 0u; c < 4u; c++) {
                let kv = (4u * i + c) * VEC_PER_HEAD + lane;
                acc_lo += w[c] * v_tile[kv];
                acc_hi += w[c] * v_tile[kv + LANES_PER_QUERY];
            }
        }
        running_max = new_max;
        // The next tile overwrites k_tile and v_tile only once every query is done with them.
        workgroupBarrier();
    }
    if (in_frames) {
        let inv = select(0.0, 1.0 / denom, denom > 0.0);
        let o_base = out_at(row, head_off) + lane;
        out[o_base] = acc_lo * inv;
        out[o_base + LANES_PER_QUERY] = acc_hi * inv;
    }
}
