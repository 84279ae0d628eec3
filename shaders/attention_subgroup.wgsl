// attention.wgsl's attention for devices whose subgroups are exactly the 8 invocations of a
// workgroup (lavapipe), composed after attention.wgsl (its bindings). The 8 invocations take 8
// neighbouring query frames of one head, so they read the same key and value rows: instead of
// each loading all 16 vec4 of a row, invocation l loads vec4s l and l + 8 and the others read
// them by broadcast, 2 loads instead of 16 per row. Broadcasts need constant lanes, hence the
// written-out sums. Same online softmax and padding mask as attention.wgsl.

@compute @workgroup_size(8, 1, 1)
fn attention_subgroup(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(subgroup_invocation_id) lane: u32) {
    // No early return: every invocation must reach every broadcast. Queries past the end
    // repeat the last frame and are not stored; the key loop is the same for all eight.
    let live = gid.x < p.frames;
    let t = min(gid.x, p.frames - 1u);
    let h = gid.y;
    let b = gid.z;
    let head_off = h * VEC_PER_HEAD;
    let q_base = q_at(b * p.frames + t, head_off);
    let k_off = key_offset();
    let q0 = q[q_base + 0u] * p.scale;
    let q1 = q[q_base + 1u] * p.scale;
    let q2 = q[q_base + 2u] * p.scale;
    let q3 = q[q_base + 3u] * p.scale;
    let q4 = q[q_base + 4u] * p.scale;
    let q5 = q[q_base + 5u] * p.scale;
    let q6 = q[q_base + 6u] * p.scale;
    let q7 = q[q_base + 7u] * p.scale;
    let q8 = q[q_base + 8u] * p.scale;
    let q9 = q[q_base + 9u] * p.scale;
    let q10 = q[q_base + 10u] * p.scale;
    let q11 = q[q_base + 11u] * p.scale;
    let q12 = q[q_base + 12u] * p.scale;
    let q13 = q[q_base + 13u] * p.scale;
    let q14 = q[q_base + 14u] * p.scale;
    let q15 = q[q_base + 15u] * p.scale;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    var a8 = vec4<f32>(0.0);
    var a9 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a12 = vec4<f32>(0.0);
    var a13 = vec4<f32>(0.0);
    var a14 = vec4<f32>(0.0);
    var a15 = vec4<f32>(0.0);
    var running_max = -3.0e38;
    var denom = 0.0;
    let keys = min(lengths[b], p.frames);
    for (var s = 0u; s < keys; s++) {
        let k_base = q_at(b * p.frames + s, head_off) + k_off;
        let k_lo = k[k_base + lane];
        let k_hi = k[k_base + 8u + lane];
        let v_lo = v[k_base + k_off + lane];
        let v_hi = v[k_base + k_off + 8u + lane];
        let score = dot(q0, subgroupBroadcast(k_lo, 0u))
            + dot(q1, subgroupBroadcast(k_lo, 1u))
            + dot(q2, subgroupBroadcast(k_lo, 2u))
            + dot(q3, subgroupBroadcast(k_lo, 3u))
            + dot(q4, subgroupBroadcast(k_lo, 4u))
            + dot(q5, subgroupBroadcast(k_lo, 5u))
            + dot(q6, subgroupBroadcast(k_lo, 6u))
            + dot(q7, subgroupBroadcast(k_lo, 7u))
            + dot(q8, subgroupBroadcast(k_hi, 0u))
            + dot(q9, subgroupBroadcast(k_hi, 1u))
            + dot(q10, subgroupBroadcast(k_hi, 2u))
            + dot(q11, subgroupBroadcast(k_hi, 3u))
            + dot(q12, subgroupBroadcast(k_hi, 4u))
            + dot(q13, subgroupBroadcast(k_hi, 5u))
            + dot(q14, subgroupBroadcast(k_hi, 6u))
            + dot(q15, subgroupBroadcast(k_hi, 7u));
        let new_max = max(running_max, score);
        let correction = exp(running_max - new_max);
        let weight = exp(score - new_max);
        denom = denom * correction + weight;
        a0 = a0 * correction + weight * subgroupBroadcast(v_lo, 0u);
        a1 = a1 * correction + weight * subgroupBroadcast(v_lo, 1u);
        a2 = a2 * correction + weight * subgroupBroadcast(v_lo, 2u);
        a3 = a3 * correction + weight * subgroupBroadcast(v_lo, 3u);
        a4 = a4 * correction + weight * subgroupBroadcast(v_lo, 4u);
        a5 = a5 * correction + weight * subgroupBroadcast(v_lo, 5u);
        a6 = a6 * correction + weight * subgroupBroadcast(v_lo, 6u);
        a7 = a7 * correction + weight * subgroupBroadcast(v_lo, 7u);
        a8 = a8 * correction + weight * subgroupBroadcast(v_hi, 0u);
        a9 = a9 * correction + weight * subgroupBroadcast(v_hi, 1u);
        a10 = a10 * correction + weight * subgroupBroadcast(v_hi, 2u);
        a11 = a11 * correction + weight * subgroupBroadcast(v_hi, 3u);
        a12 = a12 * correction + weight * subgroupBroadcast(v_hi, 4u);
        a13 = a13 * correction + weight * subgroupBroadcast(v_hi, 5u);
        a14 = a14 * correction + weight * subgroupBroadcast(v_hi, 6u);
        a15 = a15 * correction + weight * subgroupBroadcast(v_hi, 7u);
        running_max = new_max;
    }
    if (live) {
        let inv = select(0.0, 1.0 / denom, denom > 0.0);
        let o_base = out_at(b * p.frames + t, head_off);
        out[o_base + 0u] = a0 * inv;
        out[o_base + 1u] = a1 * inv;
        out[o_base + 2u] = a2 * inv;
        out[o_base + 3u] = a3 * inv;
        out[o_base + 4u] = a4 * inv;
        out[o_base + 5u] = a5 * inv;
        out[o_base + 6u] = a6 * inv;
        out[o_base + 7u] = a7 * inv;
        out[o_base + 8u] = a8 * inv;
        out[o_base + 9u] = a9 * inv;
        out[o_base + 10u] = a10 * inv;
        out[o_base + 11u] = a11 * inv;
        out[o_base + 12u] = a12 * inv;
        out[o_base + 13u] = a13 * inv;
        out[o_base + 14u] = a14 * inv;
        out[o_base + 15u] = a15 * inv;
    }
}
