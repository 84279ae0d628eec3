// linear_subgroup_32x4.wgsl's tiling with scalar loads along the depth: any slice (linear.wgsl's
// conditions: overlapping rows, any offsets), on CPU adapters whose subgroups are exactly the 8
// invocations of a workgroup (lavapipe). The conv extractor's first layer (depth 10, rows 5
// values apart) is the slice that needs it. A workgroup owns 32 frames by 32 units; invocation l
// owns units l, l + 8, l + 16 and l + 24 for all 32 frames. One step along the depth loads one
// value of each of its 4 weight rows and of 4 frames (lane l: frames l, l + 8, l + 16, l + 24),
// every frame's value reaching every lane by subgroup broadcast: 8 loads feed 128
// multiply-adds, where linear.wgsl's 4 x 4 tile spends 8 on 16.
//
// Slicing as in linear_common.wgsl. Needs the gelu.wgsl, weight storage (binding 2) and
// linear_common.wgsl preludes.

const FRAMES: u32 = 32u;
const UNITS: u32 = 32u;

@group(0) @binding(1) var<storage, read> x: array<f32>;

// Frames and units past the edge repeat the last one and are never stored.
fn frame_start(t: u32, x_off: u32) -> u32 {
    return x_off + min(t, p.rows - 1u) * p.x_row_stride;
}

fn unit_start(n: u32) -> u32 {
    return weight_row(min(n, p.cols - 1u)) * p.w_row_stride;
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
fn linear_subgroup_32x4_scalar(@builtin(workgroup_id) wg: vec3<u32>,
                               @builtin(subgroup_invocation_id) lane: u32) {
    // No early return: every invocation must reach every broadcast.
    let n0 = wg.x * UNITS + lane;
    let t0 = wg.y * FRAMES;
    let x_off = wg.z * p.x_batch_stride;
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
    var k = 0u;
    var w_col = 0u;
    while (k < p.depth) {
        let len = min(p.col_chunk, p.depth - k);
        for (var kk = 0u; kk < len; kk++) {
            let x0 = x[xs0 + k + kk];
            let x1 = x[xs1 + k + kk];
            let x2 = x[xs2 + k + kk];
            let x3 = x[xs3 + k + kk];
            let w = vec4<f32>(weight(ws0 + w_col + kk), weight(ws1 + w_col + kk), weight(ws2 + w_col + kk), weight(ws3 + w_col + kk));
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
        w_col += p.col_chunk_stride;
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
