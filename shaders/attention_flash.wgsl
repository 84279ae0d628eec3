// Attention for GPUs, flash style: a workgroup owns 64 queries of one head of one utterance.
// Keys and values pass through workgroup memory a tile of 16 at a time, loaded once and read
// by all 64 queries, instead of each query reading every key and value row from memory itself.
// Each invocation keeps its query's 64 values and output accumulator in registers. The softmax
// is online, in f32, rescaled once per tile: the running max moves to the tile's max, then the
// tile's weights are added. Composed after attention.wgsl (parameters, bindings) and
// attention_tiles.wgsl (the staged tiles).

const QUERIES_PER_GROUP: u32 = 64u;

@compute @workgroup_size(64, 1, 1)
fn attention_flash(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.y;
    let b = wid.z;
    let t = wid.x * QUERIES_PER_GROUP + lid;
    // Every invocation runs every tile and barrier (uniform control flow); only queries inside
    // the utterance's frames read and write.
    let in_frames = t < p.frames;
    let head_off = h * VEC_PER_HEAD;
    let row = b * p.frames + min(t, p.frames - 1u);
    let q_base = q_at(row, head_off);
    var qh = scaled_query(q_base);
    // Function-scope variables start at zero.
    var acc: array<vec4<f32>, 16>;
    var running_max = -3.0e38;
    var denom = 0.0;
    let keys = min(lengths[b], p.frames);
    for (var s0 = 0u; s0 < keys; s0 += KEYS_PER_TILE) {
        stage_kv_tile(lid, b, head_off, s0, keys);
        workgroupBarrier();
        let in_tile = min(KEYS_PER_TILE, keys - s0);
        var scores: array<f32, 16>;
        var tile_max = -3.0e38;
        for (var j = 0u; j < in_tile; j++) {
            var score = 0.0;
            for (var d = 0u; d < VEC_PER_HEAD; d++) {
                score += dot(qh[d], k_tile[j * VEC_PER_HEAD + d]);
            }
            scores[j] = score;
            tile_max = max(tile_max, score);
        }
        let new_max = max(running_max, tile_max);
        let correction = exp(running_max - new_max);
        denom *= correction;
        for (var d = 0u; d < VEC_PER_HEAD; d++) {
            acc[d] *= correction;
        }
        for (var j = 0u; j < in_tile; j++) {
            let weight = exp(scores[j] - new_max);
            denom += weight;
            for (var d = 0u; d < VEC_PER_HEAD; d++) {
                acc[d] += weight * v_tile[j * VEC_PER_HEAD + d];
            }
        }
        running_max = new_max;
        // The next tile overwrites k_tile and v_tile only once every query is done with them.
        workgroupBarrier();
    }
    if (in_frames) {
        let inv = select(0.0, 1.0 / denom, denom > 0.0);
        let o_base = out_at(row, head_off);
        for (var d = 0u; d < VEC_PER_HEAD; d++) {
            out[o_base + d] = acc[d] * inv;
        }
    }
}
