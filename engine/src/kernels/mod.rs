//! One module per WGSL kernel family: the parameter block the shader reads, a function that
//! queues the dispatch on a [`CommandStream`], and a CPU reference (f64 accumulation) that
//! tests compare the shader against on shapes the fixtures do not cover.

pub mod attention;
pub mod linear;
pub mod norm;
pub mod picture;
pub mod pointwise;
pub mod pos_conv;

pub use crate::gpu::CommandStream;

/// A parameter block as Rust lays it out: its size and each named field's offset. The padding
/// fields (`_pad`) are covered by the size. `params_match_the_shaders` holds every block to the
/// WGSL struct naga parses from the shaders that read it, so the two cannot drift.
#[cfg(test)]
#[derive(Clone)]
pub(crate) struct ParamsLayout {
    pub name: &'static str,
    pub size: usize,
    pub fields: Vec<(&'static str, usize)>,
}

/// `params_layout!(LinearParams { rows, cols })`: the [`ParamsLayout`] of a `#[repr(C)]` struct.
#[cfg(test)]
macro_rules! params_layout {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        $crate::kernels::ParamsLayout {
            name: stringify!($ty),
            size: std::mem::size_of::<$ty>(),
            fields: vec![$((stringify!($field), std::mem::offset_of!($ty, $field))),*],
        }
    };
}
#[cfg(test)]
pub(crate) use params_layout;

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
mod params_tests {
    use std::collections::HashSet;

    use super::*;
    use crate::gpu::SHADER_FILES;

    #[test]
    fn params_match_the_shaders() {
        let rust: Vec<ParamsLayout> =
            [attention::params_layouts(), linear::params_layouts(), norm::params_layouts(), picture::params_layouts(), pointwise::params_layouts(), pos_conv::params_layouts()].concat();
        let mut matched = HashSet::new();
        for file in SHADER_FILES {
            let source = file.composed();
            let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{}: {}", file.label(), e.emit_to_string(&source)));
            for (_, var) in module.global_variables.iter().filter(|(_, v)| v.space == naga::AddressSpace::Uniform) {
                let ty = &module.types[var.ty];
                let name = ty.name.as_deref().unwrap_or("(unnamed)");
                let naga::TypeInner::Struct { members, span } = &ty.inner else {
                    panic!("{}: uniform {name} is not a struct", file.label());
                };
                let r = rust.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("{}: uniform struct {name} has no Rust parameter block", file.label()));
                assert_eq!(r.size, *span as usize, "{}: {name} is {} bytes in WGSL, {} in Rust", file.label(), span, r.size);
                for m in members.iter().filter(|m| !m.name.as_deref().unwrap_or("_").starts_with('_')) {
                    let field = m.name.as_deref().unwrap_or_default();
                    let (_, offset) = r.fields.iter().find(|(n, _)| *n == field).unwrap_or_else(|| panic!("{}: {name}.{field} is in WGSL, not in Rust", file.label()));
                    assert_eq!(*offset, m.offset as usize, "{}: {name}.{field} at byte {} in WGSL, {offset} in Rust", file.label(), m.offset);
                }
                for (field, _) in &r.fields {
                    assert!(members.iter().any(|m| m.name.as_deref() == Some(*field)), "{}: {name}.{field} is in Rust, not in WGSL", file.label());
                }
                matched.insert(name.to_string());
            }
        }
        for r in &rust {
            assert!(matched.contains(r.name), "{} is read by no shader", r.name);
        }
    }
}
