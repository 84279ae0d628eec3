//! Linear layers that read a subnet's rows and columns straight out of a full supernet
//! weight (`shaders/linear.wgsl`, `shaders/linear_tiled.wgsl`), also used as the conv feature
//! extractor's implicit GEMM.

pub mod tune;

use bytemuck::{Pod, Zeroable};

use super::{gelu_f64, CommandStream, PerWeights};
use crate::gpu::sources::{Source, GELU, LINEAR, LINEAR_COMMON, LINEAR_MATRIX, LINEAR_SHARED, LINEAR_SUBGROUP_32X4, LINEAR_TILED, MATRIX_UNITS, STAGE_F16, STAGE_F32, STEP_SCALAR, STEP_VEC4, TILE_32, TILE_64, WEIGHTS_F16, WEIGHTS_F32};
use crate::gpu::{Arithmetic, Kernel, KernelFamily, ParamsLayout, Precision, WeightMatrix, WeightPrecision};

/// Maps a subnet index onto a supernet index: `(i / chunk) * chunk_stride + i % chunk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexMap {
    pub chunk: u32,
    pub chunk_stride: u32,
}

impl IndexMap {
    /// The first entries, in order.
    pub const PREFIX: IndexMap = IndexMap { chunk: u32::MAX, chunk_stride: 0 };

    /// The first `take` of each `chunk_stride`-wide chunk (LightHuBERT's FFN slicing).
    pub fn chunked(take: u32, chunk_stride: u32) -> IndexMap {
        IndexMap { chunk: take, chunk_stride }
    }

    pub fn apply(self, i: u32) -> u32 {
        (i / self.chunk) * self.chunk_stride + i % self.chunk
    }
}

/// A sliced view of a full `[out_full, in_full]` weight and its bias, as the kernel reads it.
#[derive(Debug, Clone, Copy)]
pub struct WeightSlice<'a> {
    pub weight: &'a WeightMatrix,
    pub bias: Option<&'a wgpu::Buffer>,
    /// Row length of the full weight (`in_full`).
    pub row_stride: u32,
    /// Where the slice's rows start in the weight buffer: 0, or the first row of one of
    /// several weights stored back to back.
    pub first_row: u32,
    pub rows: IndexMap,
    pub cols: IndexMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    Gelu,
}

/// The input side of a linear layer: `batch` blocks of `rows` rows of `depth` features; row i
/// of block b starts at `b * batch_stride + i * row_stride` (a row stride below `depth` makes
/// overlapping conv windows). The output is `batch` contiguous blocks of [rows, cols].
#[derive(Debug, Clone, Copy)]
pub struct LinearInput<'a> {
    pub x: &'a wgpu::Buffer,
    pub rows: u32,
    pub depth: u32,
    pub row_stride: u32,
    pub batch: u32,
    pub batch_stride: u32,
}

impl<'a> LinearInput<'a> {
    /// A plain [rows, depth] matrix.
    pub fn dense(x: &'a wgpu::Buffer, rows: u32, depth: u32) -> Self {
        LinearInput { x, rows, depth, row_stride: depth, batch: 1, batch_stride: 0 }
    }

    /// Conv windows: row t of utterance b is the `depth` values from
    /// `b * batch_stride + t * row_stride`.
    pub fn windows(x: &'a wgpu::Buffer, rows: u32, depth: u32, row_stride: u32, batch: u32, batch_stride: u32) -> Self {
        LinearInput { x, rows, depth, row_stride, batch, batch_stride }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
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
    flags: u32,
    x_batch_stride: u32,
    y_batch_stride: u32,
    first_row: u32,
    _pad: [u32; 3],
}

const PARAMS: ParamsLayout = crate::params_layout!(LinearParams {
    rows, cols, depth, x_row_stride, w_row_stride, row_chunk, row_chunk_stride, col_chunk, col_chunk_stride, flags, x_batch_stride, y_batch_stride, first_row
});

const COMMON_F32: &[Source] = &[GELU, WEIGHTS_F32, LINEAR_COMMON];
const COMMON_F16: &[Source] = &[GELU, WEIGHTS_F16, LINEAR_COMMON];

/// [`LinearForm::Tile4`].
pub static TILE4: PerWeights = PerWeights::new(LINEAR, [COMMON_F32, COMMON_F16], "linear", PARAMS);
/// [`LinearForm::Tile16Vec4`].
pub static TILE16_VEC4: PerWeights = PerWeights::new(LINEAR_TILED, [COMMON_F32, COMMON_F16], "linear_tiled", PARAMS);
/// [`LinearForm::Subgroup32x4`]: `linear_subgroup_32x4.wgsl` in vec4 depth steps.
pub static SUBGROUP_32X4: PerWeights = PerWeights {
    f32: Kernel::new(LINEAR_SUBGROUP_32X4, &[GELU, WEIGHTS_F32, LINEAR_COMMON, STEP_VEC4], "linear_subgroup_32x4", PARAMS)
        .reading(WeightPrecision::F32, "vec4 steps, f32 weights")
        .with_subgroup_size(8),
    f16: Kernel::new(LINEAR_SUBGROUP_32X4, &[GELU, WEIGHTS_F16, LINEAR_COMMON, STEP_VEC4], "linear_subgroup_32x4", PARAMS)
        .reading(WeightPrecision::F16, "vec4 steps, f16 weights")
        .with_subgroup_size(8),
};
/// [`LinearForm::Subgroup32x4Scalar`]: the same file in scalar depth steps.
pub static SUBGROUP_32X4_SCALAR: PerWeights = PerWeights {
    f32: Kernel::new(LINEAR_SUBGROUP_32X4, &[GELU, WEIGHTS_F32, LINEAR_COMMON, STEP_SCALAR], "linear_subgroup_32x4", PARAMS)
        .reading(WeightPrecision::F32, "scalar steps, f32 weights")
        .with_subgroup_size(8),
    f16: Kernel::new(LINEAR_SUBGROUP_32X4, &[GELU, WEIGHTS_F16, LINEAR_COMMON, STEP_SCALAR], "linear_subgroup_32x4", PARAMS)
        .reading(WeightPrecision::F16, "scalar steps, f16 weights")
        .with_subgroup_size(8),
};
/// [`LinearForm::Shared64`] in f32 arithmetic. Before `linear_shared.wgsl` come a stage prelude
/// (the workgroup tiles' type), a tile prelude (their size), and the common ones.
pub static SHARED64: PerWeights = PerWeights::new(
    LINEAR_SHARED,
    [&[STAGE_F32, TILE_64, GELU, WEIGHTS_F32, LINEAR_COMMON], &[STAGE_F32, TILE_64, GELU, WEIGHTS_F16, LINEAR_COMMON]],
    "linear_shared",
    PARAMS,
);
/// [`LinearForm::Shared64`] in f16 arithmetic (`--math f16`).
pub static SHARED64_HALF_MATH: PerWeights = PerWeights {
    f32: Kernel::new(LINEAR_SHARED, &[STAGE_F16, TILE_64, GELU, WEIGHTS_F32, LINEAR_COMMON], "linear_shared", PARAMS)
        .reading(WeightPrecision::F32, "f32 weights, f16 arithmetic")
        .with_f16_arithmetic(),
    f16: Kernel::new(LINEAR_SHARED, &[STAGE_F16, TILE_64, GELU, WEIGHTS_F16, LINEAR_COMMON], "linear_shared", PARAMS)
        .reading(WeightPrecision::F16, "f16 weights, f16 arithmetic")
        .with_f16_arithmetic(),
};
/// [`LinearForm::Shared32`] in f32 arithmetic.
pub static SHARED32: PerWeights = PerWeights {
    f32: Kernel::new(LINEAR_SHARED, &[STAGE_F32, TILE_32, GELU, WEIGHTS_F32, LINEAR_COMMON], "linear_shared", PARAMS)
        .reading(WeightPrecision::F32, "32x32 tiles, f32 weights"),
    f16: Kernel::new(LINEAR_SHARED, &[STAGE_F32, TILE_32, GELU, WEIGHTS_F16, LINEAR_COMMON], "linear_shared", PARAMS)
        .reading(WeightPrecision::F16, "32x32 tiles, f16 weights"),
};
/// [`LinearForm::Shared32`] in f16 arithmetic.
pub static SHARED32_HALF_MATH: PerWeights = PerWeights {
    f32: Kernel::new(LINEAR_SHARED, &[STAGE_F16, TILE_32, GELU, WEIGHTS_F32, LINEAR_COMMON], "linear_shared", PARAMS)
        .reading(WeightPrecision::F32, "32x32 tiles, f32 weights, f16 arithmetic")
        .with_f16_arithmetic(),
    f16: Kernel::new(LINEAR_SHARED, &[STAGE_F16, TILE_32, GELU, WEIGHTS_F16, LINEAR_COMMON], "linear_shared", PARAMS)
        .reading(WeightPrecision::F16, "32x32 tiles, f16 weights, f16 arithmetic")
        .with_f16_arithmetic(),
};

/// The subgroup size [`LinearForm::Matrix`] is written for: 4 subgroups of a 128-invocation
/// workgroup, each owning a quarter of the block.
pub const MATRIX_SUBGROUP: u32 = 32;

/// [`LinearForm::Matrix`]: f16 inputs on matrix units, f32 accumulators.
pub static MATRIX: PerWeights = PerWeights {
    f32: Kernel::new(LINEAR_MATRIX, &[MATRIX_UNITS, GELU, WEIGHTS_F32, LINEAR_COMMON], "linear_matrix", PARAMS)
        .reading(WeightPrecision::F32, "f32 weights")
        .with_subgroup_size(MATRIX_SUBGROUP)
        .with_matrix_units(),
    f16: Kernel::new(LINEAR_MATRIX, &[MATRIX_UNITS, GELU, WEIGHTS_F16, LINEAR_COMMON], "linear_matrix", PARAMS)
        .reading(WeightPrecision::F16, "f16 weights")
        .with_subgroup_size(MATRIX_SUBGROUP)
        .with_matrix_units(),
};

/// Every kernel of this module.
pub fn kernels() -> impl Iterator<Item = &'static Kernel> {
    [&TILE4, &TILE16_VEC4, &SUBGROUP_32X4, &SUBGROUP_32X4_SCALAR, &SHARED64, &SHARED64_HALF_MATH, &SHARED32, &SHARED32_HALF_MATH, &MATRIX].into_iter().flat_map(PerWeights::both)
}

/// How a linear dispatch tiles its outputs over invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearForm {
    /// 4 x 4 outputs per invocation, 8 x 8 invocations per workgroup, scalar loads: any slice,
    /// any device.
    Tile4,
    /// 32 frames x 32 units per workgroup of 8 invocations, each owning 4 units of all 32
    /// frames (its own 4 weight rows, the frames loaded once per subgroup and broadcast), vec4
    /// loads along the depth: vec4-aligned slices on CPU devices whose subgroups are exactly 8
    /// wide (lavapipe, where it ran the GEMMs 1.6-2x faster than a 16 x 16 tile per invocation
    /// with the same broadcast: 128 accumulators per invocation instead of 256, and 8 vec4
    /// loads per 512 multiply-adds instead of 18 per 1024).
    Subgroup32x4,
    /// [`LinearForm::Subgroup32x4`] with scalar loads along the depth: any slice, on CPU
    /// devices whose subgroups are exactly 8 wide (the conv extractor's first layer on
    /// lavapipe, 8 loads per 128 multiply-adds where [`LinearForm::Tile4`] spends 8 per 16).
    Subgroup32x4Scalar,
    /// 64 x 64 outputs per 16 x 16 workgroup, the depth staged 16 at a time through workgroup
    /// memory, 4 x 4 outputs per invocation: vec4-aligned slices on GPUs.
    Shared64,
    /// [`LinearForm::Shared64`] with 32 x 32 outputs per 8 x 8 workgroup: four times the
    /// workgroups, for outputs too small to fill a GPU with 64 x 64 blocks (below the
    /// device's line, see [`tune`]).
    Shared32,
    /// 16 x 16 outputs per invocation as sixteen 4 x 4 matrices, vec4 loads along the depth,
    /// 8 x 1 invocations per workgroup: slices whose offsets are all multiples of 4. For CPU
    /// implementations, where every load from a storage buffer costs a loop over the SIMD
    /// lanes (lavapipe: about 8x `Tile4` on the conv extractor); its 256 accumulators would
    /// spill registers on a GPU.
    Tile16Vec4,
    /// 64 x 64 outputs per workgroup of 4 subgroups of 32, the depth staged 32 at a time in
    /// f16 through workgroup memory and multiplied on matrix units (16 x 16 x 16 cooperative
    /// matrices, f32 accumulators): vec4-aligned slices under [`Arithmetic::F16Matrix`],
    /// whatever the kernel family.
    Matrix,
}

impl LinearForm {
    /// The form for this device and this slice, with `cols` outputs per row.
    pub fn for_device(ctx: &crate::gpu::GpuContext, input: &LinearInput, w: &WeightSlice, cols: u32) -> Self {
        match (Self::vec4_aligned(input, w), ctx.kernel_family == KernelFamily::Cpu) {
            (false, true) if ctx.subgroup_size == Some(8) => LinearForm::Subgroup32x4Scalar,
            (false, _) => LinearForm::Tile4,
            (true, _) if w.weight.math == Arithmetic::F16Matrix => LinearForm::Matrix,
            (true, true) if ctx.subgroup_size == Some(8) => LinearForm::Subgroup32x4,
            (true, true) => LinearForm::Tile16Vec4,
            // Below the line (measured at load on GPUs, see `tune`), 64 x 64 blocks would be too
            // few to fill the device.
            (true, false) => {
                let blocks = tune::blocks64(input.rows, cols) * input.batch.max(1) as u64;
                let line = ctx.tile_line(Precision { weights: w.weight.precision, math: w.weight.math }).unwrap_or(tune::DEFAULT_LINE);
                if blocks < line { LinearForm::Shared32 } else { LinearForm::Shared64 }
            }
        }
    }

    /// Whether every x and weight offset the kernel computes is a multiple of 4 floats, so the
    /// depth can be read as vec4 (and a chunked column map never splits a vec4).
    pub fn vec4_aligned(input: &LinearInput, w: &WeightSlice) -> bool {
        let cols_ok = w.cols == IndexMap::PREFIX || (w.cols.chunk.is_multiple_of(4) && w.cols.chunk_stride.is_multiple_of(4));
        cols_ok && [input.depth, input.row_stride, input.batch_stride, w.row_stride].iter().all(|v| v % 4 == 0)
    }

    /// The kernel for weights stored as in `w`, and the outputs one workgroup covers along
    /// (units, frames).
    fn kernel_and_extent(self, w: &WeightMatrix) -> (&'static Kernel, [u32; 2]) {
        match self {
            LinearForm::Tile4 => (TILE4.get(w.precision), [4 * 8, 4 * 8]),
            // One row of 8 invocations: short transformer inputs still make enough workgroups
            // to keep every CPU thread busy.
            LinearForm::Tile16Vec4 => (TILE16_VEC4.get(w.precision), [16 * 8, 16]),
            LinearForm::Subgroup32x4 => (SUBGROUP_32X4.get(w.precision), [32, 32]),
            LinearForm::Subgroup32x4Scalar => (SUBGROUP_32X4_SCALAR.get(w.precision), [32, 32]),
            // The tiled forms take f16 matrix arithmetic as f16: both round the inputs to f16.
            LinearForm::Shared64 => match w.math {
                Arithmetic::F32 => (SHARED64.get(w.precision), [64, 64]),
                Arithmetic::F16 | Arithmetic::F16Matrix => (SHARED64_HALF_MATH.get(w.precision), [64, 64]),
            },
            LinearForm::Shared32 => match w.math {
                Arithmetic::F32 => (SHARED32.get(w.precision), [32, 32]),
                Arithmetic::F16 | Arithmetic::F16Matrix => (SHARED32_HALF_MATH.get(w.precision), [32, 32]),
            },
            LinearForm::Matrix => (MATRIX.get(w.precision), [64, 64]),
        }
    }
}

/// y[batch, rows, cols] = act(x W_s^T + b_s): a linear layer on a subnet's slice of a supernet
/// weight.
#[derive(Debug, Clone, Copy)]
pub struct Linear<'a> {
    pub input: LinearInput<'a>,
    pub weight: WeightSlice<'a>,
    pub cols: u32,
    pub act: Activation,
    pub y: &'a wgpu::Buffer,
}

impl Linear<'_> {
    /// Queues the dispatch in the form that suits the device and the slice.
    pub fn record(&self, stream: &mut CommandStream) {
        self.record_as(stream, LinearForm::for_device(stream.context(), &self.input, &self.weight, self.cols));
    }

    /// Queues the dispatch in a given form.
    ///
    /// # Panics
    /// If `form` reads vec4s and the slice is not [`LinearForm::vec4_aligned`]: a bug in the
    /// caller, not bad input.
    pub fn record_as(&self, stream: &mut CommandStream, form: LinearForm) {
        let Linear { input, weight: w, cols, act, y } = *self;
        let any_slice = matches!(form, LinearForm::Tile4 | LinearForm::Subgroup32x4Scalar);
        assert!(any_slice || LinearForm::vec4_aligned(&input, &w), "{form:?} needs a vec4-aligned slice");
        let params = LinearParams {
            rows: input.rows,
            cols,
            depth: input.depth,
            x_row_stride: input.row_stride,
            w_row_stride: w.row_stride,
            row_chunk: w.rows.chunk,
            row_chunk_stride: w.rows.chunk_stride,
            col_chunk: w.cols.chunk,
            col_chunk_stride: w.cols.chunk_stride,
            flags: u32::from(w.bias.is_some()) | if act == Activation::Gelu { 2 } else { 0 },
            x_batch_stride: input.batch_stride,
            y_batch_stride: input.rows * cols,
            first_row: w.first_row,
            _pad: [0; 3],
        };
        let empty = stream.context().empty.clone();
        let bias = w.bias.unwrap_or(&empty);
        let (kernel, [per_x, per_y]) = form.kernel_and_extent(w.weight);
        stream.dispatch(
            kernel,
            &params,
            &[input.x, &w.weight.buffer, bias, y],
            [cols.div_ceil(per_x), input.rows.div_ceil(per_y), input.batch.max(1)],
        );
        let (b, m, k, n) = (input.batch.max(1) as f64, input.rows as f64, input.depth as f64, cols as f64);
        let wb = w.weight.precision.bytes_per_value() as f64;
        stream.cost(2.0 * b * m * k * n, wb * n * k + 4.0 * (b * m * k + b * m * n));
    }
}

/// Lays a conv weight [out, in, kernel] out as [out, kernel, in]. With frame-major input
/// [frames, in], the receptive field of output frame t is then one contiguous run starting at
/// t * stride * in, so a strided conv is a [`Linear`] whose input rows overlap.
pub fn conv_weight_frame_major(w: &[f32], out: usize, inp: usize, kernel: usize) -> Vec<f32> {
    let mut r = vec![0f32; w.len()];
    for o in 0..out {
        for i in 0..inp {
            for k in 0..kernel {
                r[(o * kernel + k) * inp + i] = w[(o * inp + i) * kernel + k];
            }
        }
    }
    r
}

/// The inputs of [`linear_cpu`], the CPU reference of [`Linear`]: host copies of the
/// full weight and bias, sliced by the same maps.
#[derive(Debug, Clone, Copy)]
pub struct LinearCpu<'a> {
    pub x: &'a [f32],
    pub rows: usize,
    pub depth: usize,
    pub x_row_stride: usize,
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub w_row_stride: usize,
    pub row_map: IndexMap,
    pub col_map: IndexMap,
    pub cols: usize,
    pub act: Activation,
}

/// CPU reference of [`Linear`] (one batch), accumulating in f64.
pub fn linear_cpu(a: &LinearCpu) -> Vec<f32> {
    let mut y = vec![0f32; a.rows * a.cols];
    for t in 0..a.rows {
        for n in 0..a.cols {
            let r = a.row_map.apply(n as u32) as usize;
            let mut acc = a.bias.map_or(0.0, |b| b[r] as f64);
            for k in 0..a.depth {
                let c = a.col_map.apply(k as u32) as usize;
                acc += a.x[t * a.x_row_stride + k] as f64 * a.weight[r * a.w_row_stride + c] as f64;
            }
            y[t * a.cols + n] = match a.act {
                Activation::None => acc,
                Activation::Gelu => gelu_f64(acc),
            } as f32;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::IndexMap;

    #[test]
    fn ffn_chunk_map_matches_the_reference_layout() {
        // E = 96 of a supernet with four 128-wide chunks: unit 100 is the 5th unit of chunk 1.
        let m = IndexMap::chunked(96, 128);
        assert_eq!(m.apply(0), 0);
        assert_eq!(m.apply(95), 95);
        assert_eq!(m.apply(96), 128);
        assert_eq!(m.apply(100), 132);
        assert_eq!(IndexMap::PREFIX.apply(1234), 1234);
    }
}
