// y = act(x W_s^T + b_s), as linear.wgsl computes it, tiled for GPUs through workgroup memory.
//
// A workgroup of 16 x 16 invocations owns a 64-frame x 64-unit block of the output and walks
// the depth 16 values at a time: each step, every invocation stages one vec4 of x and one of
// the weight slice into workgroup memory, then accumulates a 4 x 4 block (one mat4) from it.
// Invocation (tx, ty) owns units n0 + tx + 16j and frames t0 + ty + 16i (i, j < 4), so
// neighbouring invocations read neighbouring vec4s of the staged weight (no bank conflicts)
// and the same staged frame (a broadcast), and their stores to y are contiguous.
//
// Needs vec4-aligned slices (depth, strides and column chunks multiples of 4; see
// LinearForm::vec4_aligned), a staging prelude first (stage_f32.wgsl, or stage_f16.wgsl for f16
// arithmetic), then the gelu.wgsl, weight storage (binding 2) and linear_common.wgsl preludes.

const BLOCK: u32 = 64u;
// Depth per step, in vec4s.
const STEP4: u32 = 4u;

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

// [depth vec4 within the step][frame or unit within the block]
var<workgroup> xs: array<Stage4, 256>;
var<workgroup> ws: array<Stage4, 256>;

// Weight column of subnet depth index k (a multiple of 4, so a vec4 never straddles chunks).
fn weight_col(k: u32) -> u32 {
    return (k / p.col_chunk) * p.col_chunk_stride + k % p.col_chunk;
}

@compute @workgroup_size(16, 16)
fn linear_shared(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let n0 = wid.x * BLOCK;
    let t0 = wid.y * BLOCK;
    let x_off = wid.z * (p.x_batch_stride / 4u);
    let y_off = wid.z * p.y_batch_stride;
    let tx = lid.x;
    let ty = lid.y;

    // What this invocation stages each step: vec4 `part` of frame / unit `slot` of the block.
    let l = ty * 16u + tx;
    let slot = l / STEP4;
    let part = l % STEP4;
    // Past the edge, stage the last valid frame / unit: finite values that are never stored.
    let x_row = x_off + min(t0 + slot, p.rows - 1u) * (p.x_row_stride / 4u);
    let w_row = weight_row(min(n0 + slot, p.cols - 1u)) * (p.w_row_stride / 4u);

    var c = mat4x4<f32>();
    let depth4 = p.depth / 4u;
    for (var k4 = 0u; k4 < depth4; k4 += STEP4) {
        let kv = k4 + part;
        let live = kv < depth4;
        let kc = min(kv, depth4 - 1u);
        xs[part * BLOCK + slot] = select(Stage4(0.0), stage(x[x_row + kc]), live);
        ws[part * BLOCK + slot] = select(Stage4(0.0), stage(weight4(w_row + weight_col(kc * 4u) / 4u)), live);
        workgroupBarrier();
        for (var q = 0u; q < STEP4; q++) {
            let b = q * BLOCK;
            // Rows of f are this invocation's 4 frames, columns of w its 4 units.
            let f = transpose(StageMat(xs[b + ty], xs[b + ty + 16u], xs[b + ty + 32u], xs[b + ty + 48u]));
            let w = StageMat(ws[b + tx], ws[b + tx + 16u], ws[b + tx + 32u], ws[b + tx + 48u]);
            c += mat4x4<f32>(f * w);
        }
        workgroupBarrier();
    }

    for (var j = 0u; j < 4u; j++) {
        let n = n0 + tx + 16u * j;
        if (n >= p.cols) {
            break;
        }
        let b = bias_of(n);
        for (var i = 0u; i < 4u; i++) {
            let t = t0 + ty + 16u * i;
            if (t < p.rows) {
                y[y_off + t * p.cols + n] = activate(c[j][i] + b);
            }
        }
    }
}
