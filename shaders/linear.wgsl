// y = act(x W_s^T + b_s), where W_s is a subnet's slice of a full supernet weight, read in place.
//
// The slice is described by two index maps instead of a copy:
//   output unit n   reads weight row    (n / row_chunk) * row_chunk_stride + n % row_chunk
//   input feature k reads weight column (k / col_chunk) * col_chunk_stride + k % col_chunk
// A prefix slice is one chunk (chunk = stride = the full width). LightHuBERT's FFN takes the
// first E units of each of the supernet's C-wide chunks, so fc1 uses a chunked row map and
// fc2 the same map on its columns. The bias follows the row map.
//
// x rows may overlap (x_row_stride < depth): the conv feature extractor runs through this
// kernel as an implicit GEMM whose row t is the window starting at sample t * stride.
// The z dimension walks a batch of utterances, each `x_batch_stride` / `y_batch_stride`
// values apart, so one dispatch serves a padded batch whose rows overlap within an utterance.
// Needs the gelu.wgsl prelude and a weight storage prelude (weights_f32.wgsl or
// weights_f16.wgsl), which declares binding 2.

struct LinearParams {
    rows: u32,
    cols: u32,
    depth: u32,
    x_row_stride: u32,
    w_row_stride: u32,
    row_chunk: u32,
    row_chunk_stride: u32,
    col_chunk: u32,
    col_chunk_stride: u32,
    // bit 0: add bias, bit 1: GELU
    flags: u32,
    x_batch_stride: u32,
    y_batch_stride: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_GELU: u32 = 2u;
const TILE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: LinearParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn weight_row(n: u32) -> u32 {
    return (n / p.row_chunk) * p.row_chunk_stride + n % p.row_chunk;
}

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
    var b = vec4<f32>(0.0);
    if ((p.flags & FLAG_BIAS) != 0u) {
        for (var j = 0u; j < TILE; j++) {
            b[j] = bias[weight_row(min(n0 + j, p.cols - 1u))];
        }
    }
    for (var i = 0u; i < TILE; i++) {
        let t = t0 + i;
        if (t >= p.rows) {
            break;
        }
        for (var j = 0u; j < TILE; j++) {
            let n = n0 + j;
            if (n < p.cols) {
                var v = acc[i][j] + b[j];
                if ((p.flags & FLAG_GELU) != 0u) {
                    v = gelu(v);
                }
                y[y_off + t * p.cols + n] = v;
            }
        }
    }
}
