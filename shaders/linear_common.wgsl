// Linear-layer prelude: the parameters, bias and output bindings, and the row map that every
// linear kernel (linear, linear_tiled, linear_shared) shares; each declares its own x
// (binding 1) and takes its weight from a storage prelude (binding 2).
//
// y = act(x W_s^T + b_s), where W_s is a subnet's slice of a full supernet weight, read in
// place through two index maps:
//   output unit n   reads weight row    first_row + (n / row_chunk) * row_chunk_stride + n % row_chunk
//   depth index k   reads weight column (k / col_chunk) * col_chunk_stride + k % col_chunk
// A prefix slice is one chunk (chunk = stride = the full width); LightHuBERT's FFN takes the
// first E units of each of the supernet's C-wide chunks (fc1 rows, fc2 columns). `first_row`
// picks one of several weights stored back to back (q, k and v). The bias follows the row map. The z dimension walks a batch, `x_batch_stride` / `y_batch_stride` apart.

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
    first_row: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_GELU: u32 = 2u;

@group(0) @binding(0) var<uniform> p: LinearParams;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn weight_row(n: u32) -> u32 {
    return p.first_row + (n / p.row_chunk) * p.row_chunk_stride + n % p.row_chunk;
}

// The epilogue, split so that a kernel reads each unit's bias once: `bias_of(n)` is unit n's
// bias (0 without one), `activate` applies GELU when asked.
fn bias_of(n: u32) -> f32 {
    if ((p.flags & FLAG_BIAS) != 0u) {
        return bias[weight_row(n)];
    }
    return 0.0;
}

fn activate(v: f32) -> f32 {
    if ((p.flags & FLAG_GELU) != 0u) {
        return gelu(v);
    }
    return v;
}
