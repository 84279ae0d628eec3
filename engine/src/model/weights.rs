//! The two kinds of parameter every block loads: a norm's affine pair and a linear layer's
//! weight and bias, each uploaded once at its full supernet size.

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::gpu::{GpuContext, Precision, WeightMatrix};
use crate::kernels::linear::{IndexMap, WeightSlice};
use crate::kernels::norm::Affine;

pub(super) struct Norm {
    gamma: wgpu::Buffer,
    beta: wgpu::Buffer,
}

impl Norm {
    /// `{prefix}.weight` and `{prefix}.bias`, both `width` long.
    pub fn load(ctx: &GpuContext, ckpt: &Checkpoint, prefix: &str, width: usize) -> Result<Norm> {
        let g = ckpt.tensor(&format!("{prefix}.weight"), &[width])?;
        let b = ckpt.tensor(&format!("{prefix}.bias"), &[width])?;
        Ok(Norm {
            gamma: ctx.upload_weight(&format!("{prefix}.weight"), &g.values)?,
            beta: ctx.upload_weight(&format!("{prefix}.bias"), &b.values)?,
        })
    }

    pub fn affine(&self) -> Affine<'_> {
        Affine { gamma: &self.gamma, beta: &self.beta }
    }
}

/// A linear layer's full supernet weight [out_full, in_full] and bias; a subnet reads a slice.
pub(super) struct Dense {
    pub weight: WeightMatrix,
    pub bias: Option<wgpu::Buffer>,
    /// Row length of the full weight.
    pub in_full: u32,
}

impl Dense {
    /// `{prefix}.weight` [out, inp] and `{prefix}.bias` [out].
    pub fn load(ctx: &GpuContext, ckpt: &Checkpoint, prefix: &str, out: usize, inp: usize, precision: Precision) -> Result<Dense> {
        let w = ckpt.tensor(&format!("{prefix}.weight"), &[out, inp])?;
        let b = ckpt.tensor(&format!("{prefix}.bias"), &[out])?;
        Ok(Dense {
            weight: gemm_weight(ctx, &format!("{prefix}.weight"), &w.values, precision)?,
            bias: Some(ctx.upload_weight(&format!("{prefix}.bias"), &b.values)?),
            in_full: inp as u32,
        })
    }

    /// Several linear layers of the same shape, `{prefix}.weight` [out, inp] and `{prefix}.bias`
    /// [out] for each prefix, stored back to back as one [n * out, inp] weight and one bias:
    /// each stays the supernet tensor it is, and one dispatch can read all of them (q, k and v).
    pub fn load_stacked(ctx: &GpuContext, ckpt: &Checkpoint, prefixes: &[String], out: usize, inp: usize, precision: Precision) -> Result<Dense> {
        let mut weights = Vec::with_capacity(prefixes.len() * out * inp);
        let mut biases = Vec::with_capacity(prefixes.len() * out);
        for prefix in prefixes {
            weights.extend_from_slice(&ckpt.tensor(&format!("{prefix}.weight"), &[out, inp])?.values);
            biases.extend_from_slice(&ckpt.tensor(&format!("{prefix}.bias"), &[out])?.values);
        }
        let label = prefixes.join(" + ");
        Ok(Dense {
            weight: gemm_weight(ctx, &format!("{label} weights"), &weights, precision)?,
            bias: Some(ctx.upload_weight(&format!("{label} biases"), &biases)?),
            in_full: inp as u32,
        })
    }

    /// The first rows and columns: a subnet's slice of every layer but the FFN.
    pub fn prefix(&self) -> WeightSlice<'_> {
        self.slice(IndexMap::PREFIX, IndexMap::PREFIX)
    }

    pub fn slice(&self, rows: IndexMap, cols: IndexMap) -> WeightSlice<'_> {
        WeightSlice { weight: &self.weight, bias: self.bias.as_ref(), row_stride: self.in_full, first_row: 0, rows, cols }
    }
}

/// A weight matrix that the linear kernels read, computed with in `precision.math` where the
/// GEMM supports it.
pub(super) fn gemm_weight(ctx: &GpuContext, label: &str, values: &[f32], precision: Precision) -> Result<WeightMatrix> {
    let mut m = ctx.upload_matrix(label, values, precision.weights)?;
    m.math = precision.math;
    Ok(m)
}
