// y = act(x W_s^T + b_s), as linear.wgsl computes it, for slices whose every offset is a multiple
// of four floats: depth, row strides, batch strides and the column chunking. x and W are then
// read as vec4 along the depth, and each invocation owns a 16 x 16 block of outputs, held as
// sixteen 4 x 4 matrices C_ij (frames 4i.., units 4j..). One step along the depth reads four
// depth values of 16 frames and 16 weight rows, as four matrices each:
//     X_i = [x_t[k..k+4]] for the 4 frames t of block i   (4 frames x 4 depth)
//     W_j = [w_n[k..k+4]] for the 4 units n of block j    (4 depth x 4 units, one column per unit)
//     C_ij += X_i W_j
// which is 1024 multiply-adds for 32 vec4 loads. On CPU adapters (llvmpipe) each load costs a
// loop over the SIMD lanes, so this ratio, not the arithmetic, sets the speed.
//
// Slicing as in linear_common.wgsl. The sixteen accumulators are separate variables, not an
// array or a struct behind a pointer: that keeps them in registers on llvmpipe. Needs the
// gelu.wgsl, weight storage (binding 2) and linear_common.wgsl preludes.

const TILE: u32 = 16u;

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

// Edge tiles repeat the last valid frame / unit, so the depth loop needs no bounds checks;
// the repeats are never stored.
fn x_start(t: u32, x_off: u32) -> u32 {
    return x_off + min(t, p.rows - 1u) * (p.x_row_stride / 4u);
}

fn w_start(n: u32) -> u32 {
    return weight_row(min(n, p.cols - 1u)) * (p.w_row_stride / 4u);
}

// Rows of the result are frames: transpose the four loaded frame vectors.
fn x_block(s: vec4<u32>, k: u32) -> mat4x4<f32> {
    return transpose(mat4x4<f32>(x[s.x + k], x[s.y + k], x[s.z + k], x[s.w + k]));
}

fn w_block(s: vec4<u32>, k: u32) -> mat4x4<f32> {
    return mat4x4<f32>(weight4(s.x + k), weight4(s.y + k), weight4(s.z + k), weight4(s.w + k));
}

fn store_block(c: mat4x4<f32>, t0: u32, n0: u32, y_off: u32) {
    for (var j = 0u; j < 4u; j++) {
        let n = n0 + j;
        if (n >= p.cols) {
            return;
        }
        let b = bias_of(n);
        for (var i = 0u; i < 4u; i++) {
            let t = t0 + i;
            if (t < p.rows) {
                y[y_off + t * p.cols + n] = activate(c[j][i] + b);
            }
        }
    }
}

// 8 invocations side by side along the units: one SIMD row on llvmpipe, and short inputs
// still make enough workgroups for every CPU thread.
@compute @workgroup_size(8, 1)
fn linear_tiled(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * TILE;
    let t0 = gid.y * TILE;
    if (n0 >= p.cols || t0 >= p.rows) {
        return;
    }
    let x_off = gid.z * (p.x_batch_stride / 4u);
    let y_off = gid.z * p.y_batch_stride;
    let xs0 = vec4<u32>(x_start(t0, x_off), x_start(t0 + 1u, x_off), x_start(t0 + 2u, x_off), x_start(t0 + 3u, x_off));
    let xs1 = vec4<u32>(x_start(t0 + 4u, x_off), x_start(t0 + 5u, x_off), x_start(t0 + 6u, x_off), x_start(t0 + 7u, x_off));
    let xs2 = vec4<u32>(x_start(t0 + 8u, x_off), x_start(t0 + 9u, x_off), x_start(t0 + 10u, x_off), x_start(t0 + 11u, x_off));
    let xs3 = vec4<u32>(x_start(t0 + 12u, x_off), x_start(t0 + 13u, x_off), x_start(t0 + 14u, x_off), x_start(t0 + 15u, x_off));
    let ws0 = vec4<u32>(w_start(n0), w_start(n0 + 1u), w_start(n0 + 2u), w_start(n0 + 3u));
    let ws1 = vec4<u32>(w_start(n0 + 4u), w_start(n0 + 5u), w_start(n0 + 6u), w_start(n0 + 7u));
    let ws2 = vec4<u32>(w_start(n0 + 8u), w_start(n0 + 9u), w_start(n0 + 10u), w_start(n0 + 11u));
    let ws3 = vec4<u32>(w_start(n0 + 12u), w_start(n0 + 13u), w_start(n0 + 14u), w_start(n0 + 15u));

    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();

    // The depth runs through the weight's column chunks; a prefix slice is a single chunk.
    let depth = p.depth / 4u;
    let chunk = min(p.col_chunk, p.depth) / 4u;
    var k = 0u;
    var w_col = 0u;
    while (k < depth) {
        let len = min(chunk, depth - k);
        for (var kk = 0u; kk < len; kk++) {
            let x0 = x_block(xs0, k + kk);
            let x1 = x_block(xs1, k + kk);
            let x2 = x_block(xs2, k + kk);
            let x3 = x_block(xs3, k + kk);
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
