//! Every end-to-end fixture: the whole forward pass of a subnet against the authors' model
//! (float64 truth), hidden state by hidden state. Bounds: relative L2 1e-5 and max abs 2e-4
//! per state; the reference's own float32 error here is about 6e-7 and 5e-6.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use kernels_tests::{assert_close, fixture_path, fixtures_dir, gpu, gpu_other_family, ErrorFigures, Fixture};
use lighthubert::checkpoint::{Checkpoint, StoredDtype};
use lighthubert::gpu::{Arithmetic, KernelFamily, Precision, WeightPrecision};
use lighthubert::{LightHubert, Subnet};

const REL_L2: f64 = 1e-5;
const MAX_ABS: f64 = 2e-4;

/// The model for a checkpoint and storage precision, and whether the checkpoint stores its
/// weight matrices in f16.
fn model(name: &str, precision: Precision, other_family: bool) -> (Arc<LightHubert>, bool) {
    type Cache = HashMap<(String, Precision, bool), (Arc<LightHubert>, bool)>;
    static MODELS: OnceLock<Mutex<Cache>> = OnceLock::new();
    let mut models = MODELS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    models
        .entry((name.to_string(), precision, other_family))
        .or_insert_with(|| {
            let ckpt = Checkpoint::open(fixture_path(name)).unwrap_or_else(|e| panic!("{e}"));
            let stored_f16 = ckpt.get("post_extract_proj.weight").expect("post_extract_proj.weight").dtype == StoredDtype::F16;
            let ctx = if other_family { gpu_other_family() } else { gpu() };
            let model = LightHubert::load_with(ctx, &ckpt, precision).unwrap_or_else(|e| panic!("{e}"));
            (Arc::new(model), stored_f16)
        })
        .clone()
}

/// Bounds per state. f16 storage is exact for a checkpoint stored in f16, so it keeps the f32
/// bounds there; on an f32 checkpoint it rounds every weight matrix (relative error up to
/// 2^-11), measured at 7e-4 to 1.1e-3 relative L2 and 3e-3 to 5.4e-3 max abs. f16 arithmetic
/// also rounds the GEMMs' inputs and block products: 1.3e-3 to 1.5e-3 and 7.7e-3 to 1.3e-2.
fn bounds(precision: Precision, checkpoint_stored_in_f16: bool) -> (f64, f64) {
    match (precision.weights, precision.math, checkpoint_stored_in_f16) {
        (_, Arithmetic::F16 | Arithmetic::F16Matrix, _) => (5e-3, 3e-2),
        (WeightPrecision::F32, _, _) | (WeightPrecision::F16, _, true) => (REL_L2, MAX_ABS),
        (WeightPrecision::F16, _, false) => (2e-3, 1e-2),
    }
}

fn check_case(case: &str, precision: impl Into<Precision>, other_family: bool) -> ErrorFigures {
    let precision = precision.into();
    let f = Fixture::load(fixtures_dir().join("e2e").join(format!("{case}.safetensors")));
    let (model, stored_f16) = model(f.meta("checkpoint"), precision, other_family);
    let family = model.context().kernel_family;
    let (rel_l2, max_abs) = bounds(precision, stored_f16);
    let subnet = Subnet::from_json(f.meta("subnet")).unwrap_or_else(|e| panic!("{case}: {e}"));
    let normalize = f.meta("normalize") == "true";
    let out = model.forward(&subnet, f.get("waveform"), normalize).unwrap_or_else(|e| panic!("{case}: {e}"));
    let expected_states = subnet.layer_num + 1;
    assert_eq!(out.states.len(), expected_states, "{case}: number of hidden states");
    assert_eq!(out.embed, subnet.embed_dim);
    let mut worst = ErrorFigures::default();
    for (i, got) in out.states.iter().enumerate() {
        let key = format!("hidden.{i}");
        assert_eq!(f.shape(&key), &[out.frames, out.embed], "{case}: shape of {key}");
        let e = assert_close(&format!("{case} {key} ({precision:?}, {family:?} kernels)"), got, f.get(&key), rel_l2, max_abs);
        worst = worst.worst(e);
    }
    eprintln!(
        "{case} ({precision:?}, {family:?} kernels): {} frames, E={}, {} states: worst rel L2 {:.2e}, max abs {:.2e} (reference f32 floor {} / {})",
        out.frames,
        out.embed,
        out.states.len(),
        worst.rel_l2,
        worst.max_abs,
        f.meta("floor_rel_l2"),
        f.meta("floor_max_abs")
    );
    worst
}

/// f16 weights and arithmetic on the device that runs the GPU kernel family. Where that
/// adapter lacks SHADER_F16 the mode does not exist, and loading must say so.
fn check_f16_arithmetic(case: &str) {
    let other = gpu().kernel_family != KernelFamily::Gpu;
    let ctx = if other { gpu_other_family() } else { gpu() };
    let precision = Precision { weights: WeightPrecision::F16, math: Arithmetic::F16 };
    if !ctx.shader_f16 {
        let ckpt = Checkpoint::open(fixtures_dir().join("tiny-default.pt")).unwrap_or_else(|e| panic!("{e}"));
        let err = LightHubert::load_with(ctx, &ckpt, precision).err().expect("no SHADER_F16: f16 arithmetic is refused");
        assert!(matches!(err, lighthubert::Error::Unsupported(_)), "{err}");
        return;
    }
    check_case(case, precision, other);
}

/// f16 inputs on matrix units, f32 accumulators, in the GEMMs. No lavapipe has matrix units,
/// so there loading must refuse, naming what is missing; the GPU benchmark runs these cases on
/// hardware that has them.
fn check_f16_matrix(case: &str) {
    let ctx = gpu();
    let precision = Precision { weights: WeightPrecision::F16, math: Arithmetic::F16Matrix };
    if !(ctx.matrix_units && ctx.subgroup_size == Some(lighthubert::kernels::linear::MATRIX_SUBGROUP)) {
        let ckpt = Checkpoint::open(fixtures_dir().join("tiny-default.pt")).unwrap_or_else(|e| panic!("{e}"));
        let err = LightHubert::load_with(ctx.clone(), &ckpt, precision).err().expect("no matrix units: f16-matrix arithmetic is refused");
        let message = err.to_string();
        assert!(matches!(err, lighthubert::Error::Unsupported(_)), "{message}");
        assert!(message.contains(&ctx.adapter_info.name) && message.contains("matrix units"), "{message}");
        return;
    }
    check_case(case, precision, false);
}

macro_rules! e2e_cases {
    ($($name:ident => $case:literal,)*) => {
        $(
            #[test]
            fn $name() {
                check_case($case, WeightPrecision::F32, false);
            }
        )*

        /// The same cases with the kernel forms of the other family (on lavapipe: the GPU
        /// forms, workgroup memory and cooperative reductions included).
        mod other_kernel_family {
            use super::*;
            $(
                #[test]
                fn $name() {
                    check_case($case, WeightPrecision::F32, true);
                }
            )*
        }

        /// f16 weights and f16 arithmetic in the GPU family's GEMM, where the adapter has
        /// SHADER_F16 (run on a GPU-family device, whatever this machine's adapter is).
        mod f16_arithmetic {
            use super::*;
            $(
                #[test]
                fn $name() {
                    check_f16_arithmetic($case);
                }
            )*
        }

        /// f16 inputs on matrix units, where the adapter has them.
        mod f16_matrix {
            use super::*;
            $(
                #[test]
                fn $name() {
                    check_f16_matrix($case);
                }
            )*
        }

        /// The same cases with the weight matrices stored in f16.
        mod f16_weights {
            use super::*;
            $(
                #[test]
                fn $name() {
                    check_case($case, WeightPrecision::F16, false);
                }
            )*
        }

        /// Every fixture in `e2e/` must have a test above: a new fixture cannot go unchecked.
        #[test]
        fn every_e2e_fixture_is_tested() {
            let known = [$($case),*];
            let dir = fixtures_dir().join("e2e");
            let mut found = 0;
            for entry in std::fs::read_dir(&dir).expect("e2e fixtures exist") {
                let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
                if let Some(stem) = name.strip_suffix(".safetensors") {
                    assert!(known.contains(&stem), "fixture e2e/{name} has no test");
                    found += 1;
                }
            }
            assert_eq!(found, known.len(), "some tested fixtures are missing from e2e/");
        }
    };
}

e2e_cases! {
    default_checkpoint_default_subnet => "default-ckpt-default-subnet",
    default_checkpoint_min_subnet => "default-ckpt-min",
    default_checkpoint_max_subnet => "default-ckpt-max",
    default_checkpoint_mixed_11_layers => "default-ckpt-mixed-11",
    default_checkpoint_mixed_e64 => "default-ckpt-mixed-e64",
    default_checkpoint_short_odd_length => "default-ckpt-short",
    f16_checkpoint_default_subnet => "f16-ckpt-default-subnet",
    f16_checkpoint_mixed_e128_11_layers => "f16-ckpt-mixed-e128-11",
    f16_checkpoint_mixed_e64_10_layers => "f16-ckpt-mixed-e64-10",
}

/// Parameters as immediates (the default where the adapter has them) and in a uniform buffer
/// run the same kernels on the same values: the features must be identical bit for bit, in
/// both kernel families. Where the adapter has no immediates, asking for them is an error.
#[test]
fn parameters_as_immediates_or_uniforms_give_identical_features() {
    use lighthubert::gpu::{AdapterChoice, GpuContext, GpuError};
    let f = Fixture::load(fixtures_dir().join("e2e").join("default-ckpt-mixed-11.safetensors"));
    let ckpt = Checkpoint::open(fixture_path(f.meta("checkpoint"))).unwrap_or_else(|e| panic!("{e}"));
    let subnet = Subnet::from_json(f.meta("subnet")).unwrap_or_else(|e| panic!("{e}"));
    let features = |kernels: &str, params: &str| {
        let choice = AdapterChoice { kernels: Some(kernels.into()), params: Some(params.into()), ..AdapterChoice::from_env() };
        let ctx = Arc::new(GpuContext::new(&choice).unwrap_or_else(|e| panic!("{e}")));
        let model = LightHubert::load(ctx.clone(), &ckpt).unwrap_or_else(|e| panic!("{e}"));
        let out = model.forward(&subnet, f.get("waveform"), f.meta("normalize") == "true").unwrap_or_else(|e| panic!("{e}"));
        (ctx, out.states)
    };
    for kernels in ["cpu", "gpu"] {
        let (ctx, uniform) = features(kernels, "uniform");
        assert!(!ctx.immediates, "LIGHTHUBERT_PARAMS=uniform");
        // Unset, the setting takes immediates wherever the adapter offers them.
        let by_default = GpuContext::new(&AdapterChoice { kernels: Some(kernels.into()), params: None, ..AdapterChoice::from_env() });
        if !by_default.unwrap_or_else(|e| panic!("{e}")).immediates {
            let choice = AdapterChoice { kernels: Some(kernels.into()), params: Some("immediate".into()), ..AdapterChoice::from_env() };
            let err = GpuContext::new(&choice).err().expect("no immediates on this adapter: asking for them is an error");
            assert!(matches!(err, GpuError::BadSetting { name: "LIGHTHUBERT_PARAMS", .. }), "{err}");
            continue;
        }
        let (ctx, immediate) = features(kernels, "immediate");
        assert!(ctx.immediates);
        for (i, (a, b)) in uniform.iter().zip(&immediate).enumerate() {
            assert_close(&format!("hidden.{i} ({kernels} kernels, uniform params)"), a, f.get(&format!("hidden.{i}")), REL_L2, MAX_ABS);
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "hidden.{i} ({kernels} kernels): immediates and uniforms differ");
        }
        assert_eq!(uniform.len(), immediate.len());
    }
}
