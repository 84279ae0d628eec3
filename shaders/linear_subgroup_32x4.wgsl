// y = act(x W_s^T + b_s) for CPU adapters whose subgroups are exactly the 8 invocations of a
// workgroup (lavapipe), in vec4 or scalar depth steps (below). A workgroup owns 32
// frames by 32 units; invocation l owns units l, l + 8, l + 16 and l + 24 for all 32 frames: 32
// vec4 accumulators a_j, one per frame, whose components are its four units. One step along the
// depth reads four depth values
//   - of the invocation's own four weight rows: 4 vec4 loads, a different row in every lane, as
//     the matrix W = [w_n0 w_n1 w_n2 w_n3] (one column per unit);
//   - of the 32 frames: lane l loads frames l, l + 8, l + 16 and l + 24 (4 vec4 loads), and
//     frame j reaches every lane by subgroup broadcast;
// then a_j += x_j W for each frame: 512 multiply-adds for 8 loads.
//
// Why this shape, on llvmpipe (Mesa 25.0, 8 lanes of 32 bits): a storage-buffer load costs a
// branch and a bounds check per lane and component (about 75 cycles per vec4), whether its
// address is uniform or not, so loads want large tiles; but every variable a loop updates is
// blended with the loop's execution mask (128 accumulators already live on the stack), and
// the loop body is already about 24 KB of machine code (each load unrolled over the lanes),
// so larger tiles lose more than they save. Measured on a 2-core Zen 5, Mesa 25.0.7: 32 x 4
// per invocation ran the transformer and conv GEMMs 1.6-2x faster than 16 x 16 per invocation
// with x broadcast the same way (the form it replaced); 16 x 4, 24 x 4, 64 x 4, 32 x 6, 32 x 8
// and two depth steps per iteration were all slower, 40 x 4 no faster.
//
// The depth step comes from a prelude: step_vec4.wgsl (the above: vec4 loads, vec4-aligned
// slices) or step_scalar.wgsl (one depth value per step: any slice, e.g. the conv extractor's
// first layer, depth 10 with rows 5 values apart; 8 loads feed 128 multiply-adds there, where
// linear.wgsl's 4 x 4 tile spends 8 on 16). Slicing as in linear_common.wgsl. Needs the
// gelu.wgsl, weight storage (binding 2), linear_common.wgsl and step preludes.

const FRAMES: u32 = 32u;
const UNITS: u32 = 32u;

// Frames and units past the edge repeat the last one, so the depth loop needs no bounds checks;
// the repeats are never stored.
fn frame_start(t: u32, x_off: u32) -> u32 {
    return x_off + min(t, p.rows - 1u) * (p.x_row_stride / STEP);
}

fn unit_start(n: u32) -> u32 {
    return weight_row(min(n, p.cols - 1u)) * (p.w_row_stride / STEP);
}

// Frame t's outputs for the invocation's units n0, n0 + 8, n0 + 16 and n0 + 24, biases b.
fn store_frame(a: vec4<f32>, b: vec4<f32>, t: u32, n0: u32, y_off: u32) {
    if (t >= p.rows) {
        return;
    }
    for (var u = 0u; u < 4u; u++) {
        let n = n0 + 8u * u;
        if (n < p.cols) {
            y[y_off + t * p.cols + n] = activate(a[u] + b[u]);
        }
    }
}

@compute @workgroup_size(8, 1)
fn linear_subgroup_32x4(@builtin(workgroup_id) wg: vec3<u32>,
                        @builtin(subgroup_invocation_id) lane: u32) {
    // No early return: every invocation must reach every broadcast.
    let t0 = wg.y * FRAMES;
    let n0 = wg.x * UNITS + lane;
    let x_off = wg.z * (p.x_batch_stride / STEP);
    let y_off = wg.z * p.y_batch_stride;
    let xs0 = frame_start(t0 + lane, x_off);
    let xs1 = frame_start(t0 + 8u + lane, x_off);
    let xs2 = frame_start(t0 + 16u + lane, x_off);
    let xs3 = frame_start(t0 + 24u + lane, x_off);
    let ws0 = unit_start(n0);
    let ws1 = unit_start(n0 + 8u);
    let ws2 = unit_start(n0 + 16u);
    let ws3 = unit_start(n0 + 24u);

    var a0 = vec4<f32>(); var a1 = vec4<f32>(); var a2 = vec4<f32>(); var a3 = vec4<f32>();
    var a4 = vec4<f32>(); var a5 = vec4<f32>(); var a6 = vec4<f32>(); var a7 = vec4<f32>();
    var a8 = vec4<f32>(); var a9 = vec4<f32>(); var a10 = vec4<f32>(); var a11 = vec4<f32>();
    var a12 = vec4<f32>(); var a13 = vec4<f32>(); var a14 = vec4<f32>(); var a15 = vec4<f32>();
    var a16 = vec4<f32>(); var a17 = vec4<f32>(); var a18 = vec4<f32>(); var a19 = vec4<f32>();
    var a20 = vec4<f32>(); var a21 = vec4<f32>(); var a22 = vec4<f32>(); var a23 = vec4<f32>();
    var a24 = vec4<f32>(); var a25 = vec4<f32>(); var a26 = vec4<f32>(); var a27 = vec4<f32>();
    var a28 = vec4<f32>(); var a29 = vec4<f32>(); var a30 = vec4<f32>(); var a31 = vec4<f32>();

    // The depth runs through the weight's column chunks; a prefix slice is a single chunk.
    let depth = p.depth / STEP;
    let chunk = min(p.col_chunk, p.depth) / STEP;
    var k = 0u;
    var w_col = 0u;
    while (k < depth) {
        let len = min(chunk, depth - k);
        for (var kk = 0u; kk < len; kk++) {
            let x0 = x[xs0 + k + kk];
            let x1 = x[xs1 + k + kk];
            let x2 = x[xs2 + k + kk];
            let x3 = x[xs3 + k + kk];
            let w = weight_step(ws0, ws1, ws2, ws3, w_col + kk);
            a0 += subgroupBroadcast(x0, 0u) * w; a1 += subgroupBroadcast(x0, 1u) * w; a2 += subgroupBroadcast(x0, 2u) * w; a3 += subgroupBroadcast(x0, 3u) * w;
            a4 += subgroupBroadcast(x0, 4u) * w; a5 += subgroupBroadcast(x0, 5u) * w; a6 += subgroupBroadcast(x0, 6u) * w; a7 += subgroupBroadcast(x0, 7u) * w;
            a8 += subgroupBroadcast(x1, 0u) * w; a9 += subgroupBroadcast(x1, 1u) * w; a10 += subgroupBroadcast(x1, 2u) * w; a11 += subgroupBroadcast(x1, 3u) * w;
            a12 += subgroupBroadcast(x1, 4u) * w; a13 += subgroupBroadcast(x1, 5u) * w; a14 += subgroupBroadcast(x1, 6u) * w; a15 += subgroupBroadcast(x1, 7u) * w;
            a16 += subgroupBroadcast(x2, 0u) * w; a17 += subgroupBroadcast(x2, 1u) * w; a18 += subgroupBroadcast(x2, 2u) * w; a19 += subgroupBroadcast(x2, 3u) * w;
            a20 += subgroupBroadcast(x2, 4u) * w; a21 += subgroupBroadcast(x2, 5u) * w; a22 += subgroupBroadcast(x2, 6u) * w; a23 += subgroupBroadcast(x2, 7u) * w;
            a24 += subgroupBroadcast(x3, 0u) * w; a25 += subgroupBroadcast(x3, 1u) * w; a26 += subgroupBroadcast(x3, 2u) * w; a27 += subgroupBroadcast(x3, 3u) * w;
            a28 += subgroupBroadcast(x3, 4u) * w; a29 += subgroupBroadcast(x3, 5u) * w; a30 += subgroupBroadcast(x3, 6u) * w; a31 += subgroupBroadcast(x3, 7u) * w;
        }
        k += len;
        w_col += p.col_chunk_stride / STEP;
    }

    let b = vec4<f32>(bias_of(min(n0, p.cols - 1u)), bias_of(min(n0 + 8u, p.cols - 1u)),
                      bias_of(min(n0 + 16u, p.cols - 1u)), bias_of(min(n0 + 24u, p.cols - 1u)));
    store_frame(a0, b, t0 + 0u, n0, y_off); store_frame(a1, b, t0 + 1u, n0, y_off); store_frame(a2, b, t0 + 2u, n0, y_off); store_frame(a3, b, t0 + 3u, n0, y_off);
    store_frame(a4, b, t0 + 4u, n0, y_off); store_frame(a5, b, t0 + 5u, n0, y_off); store_frame(a6, b, t0 + 6u, n0, y_off); store_frame(a7, b, t0 + 7u, n0, y_off);
    store_frame(a8, b, t0 + 8u, n0, y_off); store_frame(a9, b, t0 + 9u, n0, y_off); store_frame(a10, b, t0 + 10u, n0, y_off); store_frame(a11, b, t0 + 11u, n0, y_off);
    store_frame(a12, b, t0 + 12u, n0, y_off); store_frame(a13, b, t0 + 13u, n0, y_off); store_frame(a14, b, t0 + 14u, n0, y_off); store_frame(a15, b, t0 + 15u, n0, y_off);
    store_frame(a16, b, t0 + 16u, n0, y_off); store_frame(a17, b, t0 + 17u, n0, y_off); store_frame(a18, b, t0 + 18u, n0, y_off); store_frame(a19, b, t0 + 19u, n0, y_off);
    store_frame(a20, b, t0 + 20u, n0, y_off); store_frame(a21, b, t0 + 21u, n0, y_off); store_frame(a22, b, t0 + 22u, n0, y_off); store_frame(a23, b, t0 + 23u, n0, y_off);
    store_frame(a24, b, t0 + 24u, n0, y_off); store_frame(a25, b, t0 + 25u, n0, y_off); store_frame(a26, b, t0 + 26u, n0, y_off); store_frame(a27, b, t0 + 27u, n0, y_off);
    store_frame(a28, b, t0 + 28u, n0, y_off); store_frame(a29, b, t0 + 29u, n0, y_off); store_frame(a30, b, t0 + 30u, n0, y_off); store_frame(a31, b, t0 + 31u, n0, y_off);
}
