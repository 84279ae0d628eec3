//! One module per operation, each a unit: the kernels it declares (a `static` [`Kernel`] per
//! form and weight precision: WGSL file, preludes, entry point, parameter layout), the
//! parameter block the shader reads, an argument struct whose `record` picks the form for the
//! device and queues the dispatch on a [`CommandStream`] (`record_as` takes a given form), and a
//! CPU reference (f64 accumulation) that tests compare the shader against on shapes the
//! fixtures do not cover. Nothing outside the module lists its kernels: [`all`] asks each.

pub mod attention;
pub mod linear;
pub mod norm;
pub mod pointwise;
pub mod pos_conv;

pub use crate::gpu::CommandStream;
use crate::gpu::{Kernel, ParamsLayout, WeightPrecision};
use lighthubert_shaders::Source;

/// Every kernel the engine dispatches, from each module's own list.
pub fn all() -> impl Iterator<Item = &'static Kernel> {
    attention::kernels().chain(linear::kernels()).chain(norm::kernels()).chain(pointwise::kernels()).chain(pos_conv::kernels())
}

/// A kernel composed once per weight storage precision: the same file and entry point, with
/// `weights_f32.wgsl` or `weights_f16.wgsl` among its preludes.
#[derive(Debug)]
pub struct PerWeights {
    pub f32: Kernel,
    pub f16: Kernel,
}

impl PerWeights {
    /// `preludes` for f32 and f16 weights, in that order.
    pub const fn new(shader: Source, preludes: [&'static [Source]; 2], entry_point: &'static str, params: ParamsLayout) -> PerWeights {
        PerWeights {
            f32: Kernel::new(shader, preludes[0], entry_point, params).reading(WeightPrecision::F32, "f32 weights"),
            f16: Kernel::new(shader, preludes[1], entry_point, params).reading(WeightPrecision::F16, "f16 weights"),
        }
    }

    pub const fn with_subgroup_size(self, size: u32) -> PerWeights {
        PerWeights { f32: self.f32.with_subgroup_size(size), f16: self.f16.with_subgroup_size(size) }
    }

    pub fn get(&'static self, precision: WeightPrecision) -> &'static Kernel {
        match precision {
            WeightPrecision::F32 => &self.f32,
            WeightPrecision::F16 => &self.f16,
        }
    }

    pub fn both(&'static self) -> [&'static Kernel; 2] {
        [&self.f32, &self.f16]
    }
}

/// The exact erf form of GELU, as the reference computes it.
pub fn gelu_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + erf_f64(x / std::f64::consts::SQRT_2))
}

/// erf to double precision (W. J. Cody's CALERF rational approximations), so CPU references
/// do not inherit the shader's f32 approximation.
#[allow(clippy::excessive_precision)] // the published coefficients, digit for digit
pub fn erf_f64(x: f64) -> f64 {
    const A: [f64; 5] = [3.16112374387056560e0, 1.13864154151050156e2, 3.77485237685302021e2, 3.20937758913846947e3, 1.85777706184603153e-1];
    const B: [f64; 4] = [2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3, 2.84423683343917062e3];
    const C: [f64; 9] = [
        5.64188496988670089e-1, 8.88314979438837594e0, 6.61191906371416295e1, 2.98635138197400131e2,
        8.81952221241769090e2, 1.71204761263407058e3, 2.05107837782607147e3, 1.23033935479799725e3,
        2.15311535474403846e-8,
    ];
    const D: [f64; 8] = [
        1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2, 1.62138957456669019e3,
        3.29079923573345963e3, 4.36261909014324716e3, 3.43936767414372164e3, 1.23033935480374942e3,
    ];
    const P: [f64; 6] = [3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2];
    const Q: [f64; 5] = [2.56852019228982242e0, 1.87295284992346725e0, 5.27905102951428412e-1, 6.05183413124413191e-2, 2.33520497626869185e-3];
    const FRAC_1_SQRT_PI: f64 = 0.564_189_583_547_756_3;

    let y = x.abs();
    if y <= 0.5 {
        let z = y * y;
        let (mut num, mut den) = (A[4] * z, z);
        for i in 0..3 {
            num = (num + A[i]) * z;
            den = (den + B[i]) * z;
        }
        return x * (num + A[3]) / (den + B[3]);
    }
    // erfc(y) for the two outer ranges.
    let erfc = if y <= 4.0 {
        let (mut num, mut den) = (C[8] * y, y);
        for i in 0..7 {
            num = (num + C[i]) * y;
            den = (den + D[i]) * y;
        }
        (num + C[7]) / (den + D[7]) * (-y * y).exp()
    } else {
        let z = 1.0 / (y * y);
        let (mut num, mut den) = (P[5] * z, z);
        for i in 0..4 {
            num = (num + P[i]) * z;
            den = (den + Q[i]) * z;
        }
        let r = z * (num + P[4]) / (den + Q[4]);
        (FRAC_1_SQRT_PI - r) / y * (-y * y).exp()
    };
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

/// Workgroup counts for a 1-D range, folded into x and y when x alone would exceed the limit.
pub(crate) fn fold_groups(groups: u32, max_per_dim: u32) -> [u32; 2] {
    if groups <= max_per_dim {
        [groups.max(1), 1]
    } else {
        let y = groups.div_ceil(max_per_dim);
        [groups.div_ceil(y), y]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        let cases = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (3.5, 0.9999992569016276),
            (5.0, 0.9999999999984626),
        ];
        for (x, want) in cases {
            assert!((erf_f64(x) - want).abs() < 1e-14, "erf({x}) = {} want {want}", erf_f64(x));
            assert!((erf_f64(-x) + want).abs() < 1e-14);
        }
    }

    #[test]
    fn fold_groups_stays_within_limit() {
        assert_eq!(fold_groups(10, 65535), [10, 1]);
        let [x, y] = fold_groups(200_000, 65535);
        assert!(x <= 65535 && x as u64 * y as u64 >= 200_000);
    }
}

#[cfg(test)]
mod kernel_tests {
    use std::collections::HashSet;

    use super::*;

    /// Each kernel's module parses and validates, has its entry point, and reads the parameter
    /// block its Rust side writes (size and field offsets), so the two cannot drift.
    #[test]
    fn every_kernel_checks() {
        for kernel in all() {
            kernel.check().unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// No two kernels claim one pipeline, and no two compositions share a module name.
    #[test]
    fn kernels_are_distinct() {
        let mut keys = HashSet::new();
        let mut modules = std::collections::HashMap::new();
        for kernel in all() {
            assert!(keys.insert(kernel.key()), "{} in {} is declared twice", kernel.entry_point, kernel.module_label());
            let composed = kernel.composed();
            let previous = modules.entry(kernel.module_key()).or_insert_with(|| composed.clone());
            assert_eq!(*previous, composed, "{} names two different compositions", kernel.module_label());
        }
    }

    /// Every file in `shaders/` is part of some kernel, so the checks above cover it.
    #[test]
    fn every_shader_file_is_used() {
        let used: HashSet<&str> = all().flat_map(|k| k.files().collect::<Vec<_>>()).collect();
        for file in crate::gpu::sources::ALL {
            assert!(used.contains(file.name), "shaders/{} is composed into no kernel, so nothing checks it", file.name);
        }
    }
}
