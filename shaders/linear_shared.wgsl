// y = act(x W_s^T + b_s), as linear.wgsl computes it, tiled for GPUs through workgroup memory.
//
// A workgroup of LANES x LANES invocations owns a BLOCK-frame x BLOCK-unit block of the output
// (BLOCK = 4 LANES) and walks the depth 16 values at a time: each step, the invocations stage
// BLOCK vec4s of x and as many of the weight slice into workgroup memory, then each accumulates
// a 4 x 4 block (one mat4) from them. Invocation (tx, ty) owns units n0 + tx + LANES j and
// frames t0 + ty + LANES i (i, j < 4), so neighbouring invocations read neighbouring vec4s of
// the staged weight (no bank conflicts) and the same staged frame (a broadcast), and their
// stores to y are contiguous.
//
// Needs vec4-aligned slices (depth, strides and column chunks multiples of 4; see
// LinearForm::vec4_aligned), a staging prelude first (stage_f32.wgsl, or stage_f16.wgsl for f16
// arithmetic), a tile prelude (tile_64.wgsl or tile_32.wgsl: BLOCK and LANES), then the
// gelu.wgsl, weight storage (binding 2) and linear_common.wgsl preludes.

// Depth per step, in vec4s.
const STEP4: u32 = 4u;
// Staged vec4s per invocation and step, of x and of the weight each: 1 for 64 x 64 blocks.
const STAGED: u32 = STEP4 * BLOCK / (LANES * LANES);

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

// [depth vec4 within the step][frame or unit within the block]
var<workgroup> xs: array<Stage4, STEP4 * BLOCK>;
var<workgroup> ws: array<Stage4, STEP4 * BLOCK>;

// Weight column of subnet depth index k (a multiple of 4, so a vec4 never straddles chunks).
fn weight_col(k: u32) -> u32 {
    return (k / p.col_chunk) * p.col_chunk_stride + k % p.col_chunk;
}

@compute @workgroup_size(LANES, LANES)
fn linear_shared(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let n0 = wid.x * BLOCK;
    let t0 = wid.y * BLOCK;
    let x_off = wid.z * (p.x_batch_stride / 4u);
    let y_off = wid.z * p.y_batch_stride;
    let tx = lid.x;
    let ty = lid.y;

    // What this invocation stages each step: vec4 `part` of frame / unit `slot` of the block,
    // for each of its STAGED entries. Past the edge, the last valid frame / unit: finite
    // values that are never stored.
    let l = ty * LANES + tx;
    var x_rows: array<u32, STAGED>;
    var w_rows: array<u32, STAGED>;
    for (var e = 0u; e < STAGED; e++) {
        let slot = (l + e * LANES * LANES) / STEP4;
        x_rows[e] = x_off + min(t0 + slot, p.rows - 1u) * (p.x_row_stride / 4u);
        w_rows[e] = weight_row(min(n0 + slot, p.cols - 1u)) * (p.w_row_stride / 4u);
    }

    var c = mat4x4<f32>();
    let depth4 = p.depth / 4u;
    // Whole steps load without checks; only the last, partial step (depth not a multiple of
    // 16) checks and zero-fills the vec4s past the depth.
    let whole = depth4 - depth4 % STEP4;
    for (var k4 = 0u; k4 < depth4; k4 += STEP4) {
        let tail = k4 >= whole;
        for (var e = 0u; e < STAGED; e++) {
            let entry = l + e * LANES * LANES;
            let slot = entry / STEP4;
            let part = entry % STEP4;
            let kv = k4 + part;
            if (!tail) {
                xs[part * BLOCK + slot] = stage(x[x_rows[e] + kv]);
                ws[part * BLOCK + slot] = stage(weight4(w_rows[e] + weight_col(kv * 4u) / 4u));
            } else {
                let live = kv < depth4;
                let kc = min(kv, depth4 - 1u);
                xs[part * BLOCK + slot] = select(Stage4(0.0), stage(x[x_rows[e] + kc]), live);
                ws[part * BLOCK + slot] = select(Stage4(0.0), stage(weight4(w_rows[e] + weight_col(kc * 4u) / 4u)), live);
            }
        }
        workgroupBarrier();
        for (var q = 0u; q < STEP4; q++) {
            let b = q * BLOCK;
            // Rows of f are this invocation's 4 frames, columns of w its 4 units.
            let f = transpose(StageMat(xs[b + ty], xs[b + ty + LANES], xs[b + ty + 2u * LANES], xs[b + ty + 3u * LANES]));
            let w = StageMat(ws[b + tx], ws[b + tx + LANES], ws[b + tx + 2u * LANES], ws[b + tx + 3u * LANES]);
            c += mat4x4<f32>(f * w);
        }
        workgroupBarrier();
    }

    for (var j = 0u; j < 4u; j++) {
        let n = n0 + tx + LANES * j;
        if (n >= p.cols) {
            break;
        }
        let b = bias_of(n);
        for (var i = 0u; i < 4u; i++) {
            let t = t0 + ty + LANES * i;
            if (t < p.rows) {
                y[y_off + t * p.cols + n] = activate(c[j][i] + b);
            }
        }
    }
}
