// linear_tiled.wgsl's GEMM with x shared across a subgroup: composed after linear_tiled.wgsl
// (its bindings and helpers), for devices whose subgroups are exactly the 8 invocations of a
// workgroup (lavapipe). The 8 invocations of a workgroup own 8 neighbouring 16-unit blocks of
// the same 16 frames, so instead of each loading all 16 frames' vec4 per depth step, invocation
// l loads frames l and l + 8 and the others read them by broadcast: 2 loads instead of 16.

fn frames_0123(v: vec4<f32>) -> mat4x4<f32> {
    return transpose(mat4x4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u)));
}

fn frames_4567(v: vec4<f32>) -> mat4x4<f32> {
    return transpose(mat4x4<f32>(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u)));
}

@compute @workgroup_size(8, 1)
fn linear_tiled_subgroup(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(subgroup_invocation_id) lane: u32) {
    // No early return: every invocation must reach every broadcast. Units past the edge
    // repeat the last one (w_start clamps) and store_block skips them; the dispatch covers
    // only frames below `rows`.
    let n0 = gid.x * TILE;
    let t0 = gid.y * TILE;
    let x_off = gid.z * (p.x_batch_stride / 4u);
    let y_off = gid.z * p.y_batch_stride;
    let xa = x_start(t0 + lane, x_off);
    let xb = x_start(t0 + 8u + lane, x_off);
    let ws0 = vec4<u32>(w_start(n0), w_start(n0 + 1u), w_start(n0 + 2u), w_start(n0 + 3u));
    let ws1 = vec4<u32>(w_start(n0 + 4u), w_start(n0 + 5u), w_start(n0 + 6u), w_start(n0 + 7u));
    let ws2 = vec4<u32>(w_start(n0 + 8u), w_start(n0 + 9u), w_start(n0 + 10u), w_start(n0 + 11u));
    let ws3 = vec4<u32>(w_start(n0 + 12u), w_start(n0 + 13u), w_start(n0 + 14u), w_start(n0 + 15u));

    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();

    let depth = p.depth / 4u;
    let chunk = min(p.col_chunk, p.depth) / 4u;
    var k = 0u;
    var w_col = 0u;
    while (k < depth) {
        let len = min(chunk, depth - k);
        for (var kk = 0u; kk < len; kk++) {
            let va = x[xa + k + kk];
            let vb = x[xb + k + kk];
            let x0 = frames_0123(va);
            let x1 = frames_4567(va);
            let x2 = frames_0123(vb);
            let x3 = frames_4567(vb);
            let w0 = w_block(ws0, w_col + kk);
            let w1 = w_block(ws1, w_col + kk);
            let w2 = w_block(ws2, w_col + kk);
            let w3 = w_block(ws3, w_col + kk);
            c00 += x0 * w0; c01 += x0 * w1; c02 += x0 * w2; c03 += x0 * w3;
            c10 += x1 * w0; c11 += x1 * w1; c12 += x1 * w2; c13 += x1 * w3;
            c20 += x2 * w0; c21 += x2 * w1; c22 += x2 * w2; c23 += x2 * w3;
            c30 += x3 * w0; c31 += x3 * w1; c32 += x3 * w2; c33 += x3 * w3;
        }
        k += len;
        w_col += p.col_chunk_stride / 4u;
    }

    store_block(c00, t0, n0, y_off); store_block(c01, t0, n0 + 4u, y_off);
    store_block(c02, t0, n0 + 8u, y_off); store_block(c03, t0, n0 + 12u, y_off);
    store_block(c10, t0 + 4u, n0, y_off); store_block(c11, t0 + 4u, n0 + 4u, y_off);
    store_block(c12, t0 + 4u, n0 + 8u, y_off); store_block(c13, t0 + 4u, n0 + 12u, y_off);
    store_block(c20, t0 + 8u, n0, y_off); store_block(c21, t0 + 8u, n0 + 4u, y_off);
    store_block(c22, t0 + 8u, n0 + 8u, y_off); store_block(c23, t0 + 8u, n0 + 12u, y_off);
    store_block(c30, t0 + 12u, n0, y_off); store_block(c31, t0 + 12u, n0 + 4u, y_off);
    store_block(c32, t0 + 12u, n0 + 8u, y_off); store_block(c33, t0 + 12u, n0 + 12u, y_off);
}
