// attention.wgsl's attention for devices whose subgroups are exactly the 8 invocations of a
// workgroup (lavapipe). The 8 invocations take 16 neighbouring query frames of one head, l and
// l + 8 for invocation l, so they read the same key and value rows: instead of each loading all
// 16 vec4 of a row, invocation l loads vec4s l and l + 8 and the others read them by broadcast,
// and those loads feed both queries' scores and weighted sums. On lavapipe a storage load costs
// a branch and a bounds check per lane and component: the loads were most of the time (one
// query per invocation took 185 ms at 10 s of small:default, two take 152). Broadcasts need
// constant lanes, hence the written-out sums. Composed after attention.wgsl (its bindings and
// helpers); same online softmax and padding mask.

// Query t's output row: its 16 accumulated vec4s over the softmax denominator (nothing past
// the frames).
fn store_query(t: u32, b: u32, head_off: u32, denom: f32,
               o0: vec4<f32>, o1: vec4<f32>, o2: vec4<f32>, o3: vec4<f32>, o4: vec4<f32>, o5: vec4<f32>, o6: vec4<f32>, o7: vec4<f32>,
               o8: vec4<f32>, o9: vec4<f32>, o10: vec4<f32>, o11: vec4<f32>, o12: vec4<f32>, o13: vec4<f32>, o14: vec4<f32>, o15: vec4<f32>) {
    if (t >= p.frames) {
        return;
    }
    let inv = select(0.0, 1.0 / denom, denom > 0.0);
    let o_base = out_at(b * p.frames + t, head_off);
    out[o_base + 0u] = o0 * inv;
    out[o_base + 1u] = o1 * inv;
    out[o_base + 2u] = o2 * inv;
    out[o_base + 3u] = o3 * inv;
    out[o_base + 4u] = o4 * inv;
    out[o_base + 5u] = o5 * inv;
    out[o_base + 6u] = o6 * inv;
    out[o_base + 7u] = o7 * inv;
    out[o_base + 8u] = o8 * inv;
    out[o_base + 9u] = o9 * inv;
    out[o_base + 10u] = o10 * inv;
    out[o_base + 11u] = o11 * inv;
    out[o_base + 12u] = o12 * inv;
    out[o_base + 13u] = o13 * inv;
    out[o_base + 14u] = o14 * inv;
    out[o_base + 15u] = o15 * inv;
}

@compute @workgroup_size(8, 1, 1)
fn attention_subgroup16(@builtin(workgroup_id) wg: vec3<u32>,
                        @builtin(subgroup_invocation_id) lane: u32) {
    // No early return: every invocation must reach every broadcast. Queries past the end
    // repeat the last frame and are not stored; the key loop is the same for all eight.
    let ta = wg.x * 16u + lane;
    let tb = ta + 8u;
    let h = wg.y;
    let b = wg.z;
    let head_off = h * VEC_PER_HEAD;
    let qa_base = q_at(b * p.frames + min(ta, p.frames - 1u), head_off);
    let qb_base = q_at(b * p.frames + min(tb, p.frames - 1u), head_off);
    let k_off = key_offset();
    let qa0 = q[qa_base + 0u] * p.scale;
    let qa1 = q[qa_base + 1u] * p.scale;
    let qa2 = q[qa_base + 2u] * p.scale;
    let qa3 = q[qa_base + 3u] * p.scale;
    let qa4 = q[qa_base + 4u] * p.scale;
    let qa5 = q[qa_base + 5u] * p.scale;
    let qa6 = q[qa_base + 6u] * p.scale;
    let qa7 = q[qa_base + 7u] * p.scale;
    let qa8 = q[qa_base + 8u] * p.scale;
    let qa9 = q[qa_base + 9u] * p.scale;
    let qa10 = q[qa_base + 10u] * p.scale;
    let qa11 = q[qa_base + 11u] * p.scale;
    let qa12 = q[qa_base + 12u] * p.scale;
    let qa13 = q[qa_base + 13u] * p.scale;
    let qa14 = q[qa_base + 14u] * p.scale;
    let qa15 = q[qa_base + 15u] * p.scale;
    let qb0 = q[qb_base + 0u] * p.scale;
    let qb1 = q[qb_base + 1u] * p.scale;
    let qb2 = q[qb_base + 2u] * p.scale;
    let qb3 = q[qb_base + 3u] * p.scale;
    let qb4 = q[qb_base + 4u] * p.scale;
    let qb5 = q[qb_base + 5u] * p.scale;
    let qb6 = q[qb_base + 6u] * p.scale;
    let qb7 = q[qb_base + 7u] * p.scale;
    let qb8 = q[qb_base + 8u] * p.scale;
    let qb9 = q[qb_base + 9u] * p.scale;
    let qb10 = q[qb_base + 10u] * p.scale;
    let qb11 = q[qb_base + 11u] * p.scale;
    let qb12 = q[qb_base + 12u] * p.scale;
    let qb13 = q[qb_base + 13u] * p.scale;
    let qb14 = q[qb_base + 14u] * p.scale;
    let qb15 = q[qb_base + 15u] * p.scale;
    var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0); var a4 = vec4<f32>(0.0); var a5 = vec4<f32>(0.0); var a6 = vec4<f32>(0.0); var a7 = vec4<f32>(0.0);
    var a8 = vec4<f32>(0.0); var a9 = vec4<f32>(0.0); var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0); var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0); var a14 = vec4<f32>(0.0); var a15 = vec4<f32>(0.0);
    var c0 = vec4<f32>(0.0); var c1 = vec4<f32>(0.0); var c2 = vec4<f32>(0.0); var c3 = vec4<f32>(0.0); var c4 = vec4<f32>(0.0); var c5 = vec4<f32>(0.0); var c6 = vec4<f32>(0.0); var c7 = vec4<f32>(0.0);
    var c8 = vec4<f32>(0.0); var c9 = vec4<f32>(0.0); var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0); var c12 = vec4<f32>(0.0); var c13 = vec4<f32>(0.0); var c14 = vec4<f32>(0.0); var c15 = vec4<f32>(0.0);
    var max_a = -3.0e38;
    var max_b = -3.0e38;
    var denom_a = 0.0;
    var denom_b = 0.0;
    let keys = min(lengths[b], p.frames);
    for (var s = 0u; s < keys; s++) {
        let k_base = q_at(b * p.frames + s, head_off) + k_off;
        let k_lo = k[k_base + lane];
        let k_hi = k[k_base + 8u + lane];
        let v_lo = v[k_base + k_off + lane];
        let v_hi = v[k_base + k_off + 8u + lane];
        let k0 = subgroupBroadcast(k_lo, 0u);
        let k1 = subgroupBroadcast(k_lo, 1u);
        let k2 = subgroupBroadcast(k_lo, 2u);
        let k3 = subgroupBroadcast(k_lo, 3u);
        let k4 = subgroupBroadcast(k_lo, 4u);
        let k5 = subgroupBroadcast(k_lo, 5u);
        let k6 = subgroupBroadcast(k_lo, 6u);
        let k7 = subgroupBroadcast(k_lo, 7u);
        let k8 = subgroupBroadcast(k_hi, 0u);
        let k9 = subgroupBroadcast(k_hi, 1u);
        let k10 = subgroupBroadcast(k_hi, 2u);
        let k11 = subgroupBroadcast(k_hi, 3u);
        let k12 = subgroupBroadcast(k_hi, 4u);
        let k13 = subgroupBroadcast(k_hi, 5u);
        let k14 = subgroupBroadcast(k_hi, 6u);
        let k15 = subgroupBroadcast(k_hi, 7u);
        let score_a = dot(qa0, k0)
            + dot(qa1, k1)
            + dot(qa2, k2)
            + dot(qa3, k3)
            + dot(qa4, k4)
            + dot(qa5, k5)
            + dot(qa6, k6)
            + dot(qa7, k7)
            + dot(qa8, k8)
            + dot(qa9, k9)
            + dot(qa10, k10)
            + dot(qa11, k11)
            + dot(qa12, k12)
            + dot(qa13, k13)
            + dot(qa14, k14)
            + dot(qa15, k15);
        let score_b = dot(qb0, k0)
            + dot(qb1, k1)
            + dot(qb2, k2)
            + dot(qb3, k3)
            + dot(qb4, k4)
            + dot(qb5, k5)
            + dot(qb6, k6)
            + dot(qb7, k7)
            + dot(qb8, k8)
            + dot(qb9, k9)
            + dot(qb10, k10)
            + dot(qb11, k11)
            + dot(qb12, k12)
            + dot(qb13, k13)
            + dot(qb14, k14)
            + dot(qb15, k15);
        let new_a = max(max_a, score_a);
        let new_b = max(max_b, score_b);
        let corr_a = exp(max_a - new_a);
        let corr_b = exp(max_b - new_b);
        let weight_a = exp(score_a - new_a);
        let weight_b = exp(score_b - new_b);
        denom_a = denom_a * corr_a + weight_a;
        denom_b = denom_b * corr_b + weight_b;
        let v0 = subgroupBroadcast(v_lo, 0u);
        a0 = a0 * corr_a + weight_a * v0;
        c0 = c0 * corr_b + weight_b * v0;
        let v1 = subgroupBroadcast(v_lo, 1u);
        a1 = a1 * corr_a + weight_a * v1;
        c1 = c1 * corr_b + weight_b * v1;
        let v2 = subgroupBroadcast(v_lo, 2u);
        a2 = a2 * corr_a + weight_a * v2;
        c2 = c2 * corr_b + weight_b * v2;
        let v3 = subgroupBroadcast(v_lo, 3u);
        a3 = a3 * corr_a + weight_a * v3;
        c3 = c3 * corr_b + weight_b * v3;
        let v4 = subgroupBroadcast(v_lo, 4u);
        a4 = a4 * corr_a + weight_a * v4;
        c4 = c4 * corr_b + weight_b * v4;
        let v5 = subgroupBroadcast(v_lo, 5u);
        a5 = a5 * corr_a + weight_a * v5;
        c5 = c5 * corr_b + weight_b * v5;
        let v6 = subgroupBroadcast(v_lo, 6u);
        a6 = a6 * corr_a + weight_a * v6;
        c6 = c6 * corr_b + weight_b * v6;
        let v7 = subgroupBroadcast(v_lo, 7u);
        a7 = a7 * corr_a + weight_a * v7;
        c7 = c7 * corr_b + weight_b * v7;
        let v8 = subgroupBroadcast(v_hi, 0u);
        a8 = a8 * corr_a + weight_a * v8;
        c8 = c8 * corr_b + weight_b * v8;
        let v9 = subgroupBroadcast(v_hi, 1u);
        a9 = a9 * corr_a + weight_a * v9;
        c9 = c9 * corr_b + weight_b * v9;
        let v10 = subgroupBroadcast(v_hi, 2u);
        a10 = a10 * corr_a + weight_a * v10;
        c10 = c10 * corr_b + weight_b * v10;
        let v11 = subgroupBroadcast(v_hi, 3u);
        a11 = a11 * corr_a + weight_a * v11;
        c11 = c11 * corr_b + weight_b * v11;
        let v12 = subgroupBroadcast(v_hi, 4u);
        a12 = a12 * corr_a + weight_a * v12;
        c12 = c12 * corr_b + weight_b * v12;
        let v13 = subgroupBroadcast(v_hi, 5u);
        a13 = a13 * corr_a + weight_a * v13;
        c13 = c13 * corr_b + weight_b * v13;
        let v14 = subgroupBroadcast(v_hi, 6u);
        a14 = a14 * corr_a + weight_a * v14;
        c14 = c14 * corr_b + weight_b * v14;
        let v15 = subgroupBroadcast(v_hi, 7u);
        a15 = a15 * corr_a + weight_a * v15;
        c15 = c15 * corr_b + weight_b * v15;
        max_a = new_a;
        max_b = new_b;
    }
    store_query(ta, b, head_off, denom_a, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15);
    store_query(tb, b, head_off, denom_b, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15);
}
