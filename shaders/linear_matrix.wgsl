// y = act(x W_s^T + b_s), as linear.wgsl computes it, on matrix units: 16 x 16 x 16 products
// of f16 inputs accumulated in f32 (wgpu's cooperative matrices; tensor cores on NVIDIA).
//
// A workgroup of 4 subgroups of 32 owns a 64-frame x 64-unit block of the output and walks
// the depth 32 values at a time. Each step, all 128 invocations stage the block's x rows and
// weight rows, converted to f16, in workgroup memory: row-major [frame][depth] for x (the
// A operand), [unit][depth] for the weights, which is W_s^T column-major (the B operand).
// Subgroup s then owns the 32 x 32 quarter (s / 2, s % 2) of the block: 2 x 2 accumulator
// tiles, each step 2 A tiles and 2 B tiles loaded per 16 of depth. At the end the
// accumulators go through workgroup memory once more, so the epilogue (bias, GELU, edges)
// runs per element as in the other forms, and stores to y are contiguous.
//
// Staged rows are padded from 32 to 40 values: consecutive rows then start in different
// memory banks, and every tile's first element and the row stride stay multiples of 16 bytes,
// which cooperative loads require. Rows past the output's edge stage the last valid row
// (finite values that are never stored); the depth past its end stages zeros.
//
// Needs vec4-aligned slices (see LinearForm::vec4_aligned) and subgroups of exactly 32.
// Composed after matrix_units.wgsl, gelu.wgsl, a weight storage prelude and linear_common.wgsl.

const BLOCK: u32 = 64u;
const STEP: u32 = 32u;
const STEP4: u32 = 8u;
const ROW: u32 = 40u;
const INVOCATIONS: u32 = 128u;
// Staged vec4s per invocation and step, of x and of the weight each.
const STAGED: u32 = 4u; // BLOCK * STEP4 / INVOCATIONS
const OUT_ROW: u32 = 68u;

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

// The staged x rows, then the staged weight rows, BLOCK * ROW values each.
var<workgroup> staged: array<f16, 5120>;
const XS: u32 = 0u;
const WS: u32 = 2560u;
var<workgroup> out: array<f32, 4352>; // BLOCK * OUT_ROW

// Weight column of subnet depth index k (a multiple of 4, so a vec4 never straddles chunks).
fn weight_col(k: u32) -> u32 {
    return (k / p.col_chunk) * p.col_chunk_stride + k % p.col_chunk;
}

fn stage(at: u32, v: vec4<f32>) {
    let h = vec4<f16>(v);
    staged[at] = h.x;
    staged[at + 1u] = h.y;
    staged[at + 2u] = h.z;
    staged[at + 3u] = h.w;
}

@compute @workgroup_size(128)
fn linear_matrix(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(local_invocation_index) l: u32,
                 @builtin(subgroup_id) sg: u32) {
    let n0 = wid.x * BLOCK;
    let t0 = wid.y * BLOCK;
    let x_off = wid.z * (p.x_batch_stride / 4u);
    let y_off = wid.z * p.y_batch_stride;

    // What this invocation stages each step: vec4 `part` of frame / unit `slot` of the block.
    var x_rows: array<u32, STAGED>;
    var w_rows: array<u32, STAGED>;
    for (var e = 0u; e < STAGED; e++) {
        let slot = (l + e * INVOCATIONS) / STEP4;
        x_rows[e] = x_off + min(t0 + slot, p.rows - 1u) * (p.x_row_stride / 4u);
        w_rows[e] = weight_row(min(n0 + slot, p.cols - 1u)) * (p.w_row_stride / 4u);
    }

    // This subgroup's quarter: frames r0 .. r0 + 32, units c0 .. c0 + 32 of the block.
    let r0 = (sg / 2u) * 32u;
    let c0 = (sg % 2u) * 32u;
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();

    let depth4 = p.depth / 4u;
    // Whole steps load without checks; only the last, partial one zero-fills past the depth.
    let whole = depth4 - depth4 % STEP4;
    for (var k4 = 0u; k4 < depth4; k4 += STEP4) {
        let tail = k4 >= whole;
        for (var e = 0u; e < STAGED; e++) {
            let entry = l + e * INVOCATIONS;
            let slot = entry / STEP4;
            let part = entry % STEP4;
            let kv = k4 + part;
            let at = slot * ROW + part * 4u;
            if (!tail) {
                stage(XS + at, x[x_rows[e] + kv]);
                stage(WS + at, weight4(w_rows[e] + weight_col(kv * 4u) / 4u));
            } else {
                let live = kv < depth4;
                let kc = min(kv, depth4 - 1u);
                stage(XS + at, select(vec4<f32>(0.0), x[x_rows[e] + kc], live));
                stage(WS + at, select(vec4<f32>(0.0), weight4(w_rows[e] + weight_col(kc * 4u) / 4u), live));
            }
        }
        workgroupBarrier();
        for (var k = 0u; k < STEP; k += 16u) {
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&staged[XS + r0 * ROW + k], ROW);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(&staged[XS + (r0 + 16u) * ROW + k], ROW);
            let b0 = coopLoad<coop_mat16x16<f16, B>>(&staged[WS + c0 * ROW + k], ROW);
            let b1 = coopLoad<coop_mat16x16<f16, B>>(&staged[WS + (c0 + 16u) * ROW + k], ROW);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
        }
        workgroupBarrier();
    }

    coopStoreT(c00, &out[r0 * OUT_ROW + c0], OUT_ROW);
    coopStoreT(c01, &out[r0 * OUT_ROW + c0 + 16u], OUT_ROW);
    coopStoreT(c10, &out[(r0 + 16u) * OUT_ROW + c0], OUT_ROW);
    coopStoreT(c11, &out[(r0 + 16u) * OUT_ROW + c0 + 16u], OUT_ROW);
    workgroupBarrier();

    // Invocation l writes unit n0 + l % 64 of every other frame from frame l / 64.
    let j = l % BLOCK;
    let n = n0 + j;
    if (n < p.cols) {
        let b = bias_of(n);
        for (var i = l / BLOCK; i < BLOCK; i += INVOCATIONS / BLOCK) {
            let t = t0 + i;
            if (t < p.rows) {
                y[y_off + t * p.cols + n] = activate(out[i * OUT_ROW + j] + b);
            }
        }
    }
}
