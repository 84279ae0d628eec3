// y = act(x W_s^T + b_s) with scalar loads and 4 x 4 outputs per invocation: any slice, any
// device (linear_common.wgsl has the parameters and the slicing).
//
// x rows may overlap (x_row_stride < depth): the conv feature extractor runs through this
// kernel as an implicit GEMM whose row t is the window starting at sample t * stride.
// The z dimension walks a batch of utterances, each `x_batch_stride` / `y_batch_stride`
// values apart, so one dispatch serves a padded batch whose rows overlap within an utterance.
// Needs the gelu.wgsl, weight storage (binding 2) and linear_common.wgsl preludes.

const TILE: u32 = 4u;

@group(0) @binding(1) var<storage, read> x: array<f32>;

// Each invocation owns a 4 x 4 block of outputs: 4 frames by 4 units.
@compute @workgroup_size(8, 8)
fn linear(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * TILE;
    let t0 = gid.y * TILE;
    if (n0 >= p.cols || t0 >= p.rows) {
        return;
    }
    let x_off = gid.z * p.x_batch_stride;
    let y_off = gid.z * p.y_batch_stride;
    // Edge tiles repeat the last valid row/unit so the inner loop needs no bounds checks.
    var x_base: array<u32, 4>;
    var w_base: array<u32, 4>;
    for (var i = 0u; i < TILE; i++) {
        x_base[i] = x_off + min(t0 + i, p.rows - 1u) * p.x_row_stride;
        w_base[i] = weight_row(min(n0 + i, p.cols - 1u)) * p.w_row_stride;
    }
    var acc: array<vec4<f32>, 4>;
    var k0 = 0u;
    while (k0 < p.depth) {
        let len = min(p.col_chunk, p.depth - k0);
        let w_col = (k0 / p.col_chunk) * p.col_chunk_stride;
        for (var kk = 0u; kk < len; kk++) {
            let wv = vec4<f32>(
                weight(w_base[0] + w_col + kk),
                weight(w_base[1] + w_col + kk),
                weight(w_base[2] + w_col + kk),
                weight(w_base[3] + w_col + kk),
            );
            let k = k0 + kk;
            acc[0] = fma(vec4<f32>(x[x_base[0] + k]), wv, acc[0]);
            acc[1] = fma(vec4<f32>(x[x_base[1] + k]), wv, acc[1]);
            acc[2] = fma(vec4<f32>(x[x_base[2] + k]), wv, acc[2]);
            acc[3] = fma(vec4<f32>(x[x_base[3] + k]), wv, acc[3]);
        }
        k0 += len;
    }
    for (var i = 0u; i < TILE; i++) {
        let t = t0 + i;
        if (t >= p.rows) {
            break;
        }
        for (var j = 0u; j < TILE; j++) {
            let n = n0 + j;
            if (n < p.cols) {
                y[y_off + t * p.cols + n] = activate(acc[i][j] + bias_of(n));
            }
        }
    }
}
