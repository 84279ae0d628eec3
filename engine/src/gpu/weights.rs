//! Weight matrices on the device, stored in f32 or f16. Kernels read them through the
//! `shaders/weights_f32.wgsl` or `shaders/weights_f16.wgsl` prelude, so the precision picks
//! the pipeline and nothing else changes.

use half::f16;

use crate::parse::UnknownChoice;
use half::slice::HalfFloatSliceExt;

use super::{GpuContext, GpuError};

/// How the large weight matrices (linear layers, conv extractor, positional conv) are stored.
/// Biases and norm parameters always stay f32: they are small and add straight to outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WeightPrecision {
    /// Bit-exact to an f32 checkpoint.
    #[default]
    F32,
    /// Half the memory and bandwidth; each weight rounds to the nearest f16 (relative error
    /// up to 2^-11), exact for checkpoints stored in f16. Arithmetic stays f32.
    F16,
}

impl WeightPrecision {
    pub fn bytes_per_value(self) -> u64 {
        match self {
            WeightPrecision::F32 => 4,
            WeightPrecision::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightPrecision::F32 => "f32",
            WeightPrecision::F16 => "f16",
        }
    }
}

impl std::str::FromStr for WeightPrecision {
    type Err = UnknownChoice;

    fn from_str(s: &str) -> Result<Self, UnknownChoice> {
        match s {
            "f32" => Ok(WeightPrecision::F32),
            "f16" => Ok(WeightPrecision::F16),
            _ => Err(UnknownChoice::new("weight precision", s, "f32 or f16")),
        }
    }
}

/// The arithmetic of the GEMMs that support a choice (the GPU family's `linear_shared`, the
/// matrix-unit `linear_matrix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Arithmetic {
    #[default]
    F32,
    /// Tiles staged and multiplied in f16, accumulated in f32; needs SHADER_F16.
    F16,
    /// f16 inputs multiplied on matrix units (tensor cores), accumulated in f32; needs
    /// [`GpuContext::matrix_units`] and subgroups of 32.
    F16Matrix,
}

impl Arithmetic {
    pub fn name(self) -> &'static str {
        match self {
            Arithmetic::F32 => "f32",
            Arithmetic::F16 => "f16",
            Arithmetic::F16Matrix => "f16-matrix",
        }
    }
}

impl std::str::FromStr for Arithmetic {
    type Err = UnknownChoice;

    fn from_str(s: &str) -> Result<Self, UnknownChoice> {
        match s {
            "f32" => Ok(Arithmetic::F32),
            "f16" => Ok(Arithmetic::F16),
            "f16-matrix" => Ok(Arithmetic::F16Matrix),
            _ => Err(UnknownChoice::new("arithmetic", s, "f32, f16 or f16-matrix")),
        }
    }
}

/// How a model stores its weight matrices and computes with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Precision {
    pub weights: WeightPrecision,
    pub math: Arithmetic,
}

impl From<WeightPrecision> for Precision {
    fn from(weights: WeightPrecision) -> Self {
        Precision { weights, math: Arithmetic::F32 }
    }
}

/// A full supernet weight tensor in device memory, and the arithmetic the GEMMs that read it
/// use.
#[derive(Debug)]
pub struct WeightMatrix {
    pub buffer: wgpu::Buffer,
    pub precision: WeightPrecision,
    pub math: Arithmetic,
}

/// The preludes read weights in groups of four, so storage is padded to a multiple of four
/// values (the padding is never indexed).
fn padded_len(n: usize) -> usize {
    n.div_ceil(4).max(1) * 4
}

impl GpuContext {
    /// Uploads a full weight tensor once, in `precision`.
    pub fn upload_matrix(&self, label: &str, values: &[f32], precision: WeightPrecision) -> Result<WeightMatrix, GpuError> {
        let n = padded_len(values.len());
        let buffer = match precision {
            WeightPrecision::F32 => {
                let mut v = values.to_vec();
                v.resize(n, 0.0);
                self.upload_weight_bytes(label, bytemuck::cast_slice(&v))?
            }
            WeightPrecision::F16 => {
                // The slice conversion uses the CPU's F16C instructions where it has them.
                let mut v = vec![f16::ZERO; n];
                v[..values.len()].convert_from_f32_slice(values);
                self.upload_weight_bytes(label, bytemuck::cast_slice(&v))?
            }
        };
        Ok(WeightMatrix { buffer, precision, math: Arithmetic::F32 })
    }
}

/// The values a [`WeightMatrix`] of `precision` holds: what the kernels compute with, for CPU
/// references and fidelity figures.
pub fn stored_values(values: &[f32], precision: WeightPrecision) -> Vec<f32> {
    match precision {
        WeightPrecision::F32 => values.to_vec(),
        WeightPrecision::F16 => values.iter().map(|&x| f16::from_f32(x).to_f32()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_storage_rounds_to_nearest_and_keeps_f16_values_exact() {
        let exact = [0.5f32, -1.25, 65504.0, 0.0];
        assert_eq!(stored_values(&exact, WeightPrecision::F16), exact);
        let x = 0.1f32;
        let r = stored_values(&[x], WeightPrecision::F16)[0];
        assert!(((r - x) / x).abs() <= 2f32.powi(-11), "{r}");
        assert_eq!(padded_len(0), 4);
        assert_eq!(padded_len(5), 8);
        assert_eq!("f16".parse::<WeightPrecision>(), Ok(WeightPrecision::F16));
        assert!("bf16".parse::<WeightPrecision>().is_err());
    }
}
