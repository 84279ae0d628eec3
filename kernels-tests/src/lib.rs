//! Shared helpers for the validation tests: fixture loading, the GPU context, and error
//! figures against the reference.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use lighthubert::gpu::{AdapterChoice, GpuContext, KernelFamily};

/// The repository the fixtures are read from: where this crate was built, unless
/// `LIGHTHUBERT_REPO` names a copy (the GPU benchmark runs test binaries built elsewhere).
fn repo_dir() -> PathBuf {
    match std::env::var_os("LIGHTHUBERT_REPO").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    }
}

/// `tools/assets`: the demo checkpoint and speech clip the program bundles. They are made by
/// the fixture generator and serve the tests as fixtures too.
pub fn assets_dir() -> PathBuf {
    repo_dir().join("tools/assets")
}

/// A fixture file by name: from `fixtures/`, else one of the bundled demo assets.
pub fn fixture_path(name: &str) -> PathBuf {
    let path = fixtures_dir().join(name);
    if path.exists() { path } else { assets_dir().join(name) }
}

/// `kernels-tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    repo_dir().join("kernels-tests/fixtures")
}

/// One device for every test in a binary: creating a device per test is slow on lavapipe.
/// A second device on the same adapter that runs the other kernel family's forms (the GPU
/// forms on lavapipe), so every form is checked end to end whatever the test machine has.
pub fn gpu_other_family() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        let other = match gpu().kernel_family {
            KernelFamily::Cpu => "gpu",
            KernelFamily::Gpu => "cpu",
        };
        let choice = AdapterChoice { kernels: Some(other.into()), ..AdapterChoice::from_env() };
        Arc::new(GpuContext::new(&choice).unwrap_or_else(|e| panic!("{e}")))
    })
    .clone()
}

pub fn gpu() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = GpuContext::new(&AdapterChoice::from_env()).unwrap_or_else(|e| {
            panic!("these tests need a GPU adapter (in CI: lavapipe from mesa-vulkan-drivers): {e}")
        });
        eprintln!("adapter: {} ({})", ctx.describe(), ctx.capabilities());
        Arc::new(ctx)
    })
    .clone()
}

/// A safetensors fixture: f32 tensors with shapes, plus its string metadata.
pub struct Fixture {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: HashMap<String, String>,
    pub path: PathBuf,
}

impl Fixture {
    pub fn load(path: impl AsRef<Path>) -> Fixture {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let metadata = meta.metadata().clone().unwrap_or_default();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name} in {} is not f32", path.display());
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(name.to_string(), (view.shape().to_vec(), values));
        }
        Fixture { tensors, metadata, path }
    }

    pub fn get(&self, name: &str) -> &[f32] {
        &self.tensor(name).1
    }

    pub fn shape(&self, name: &str) -> &[usize] {
        &self.tensor(name).0
    }

    fn tensor(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("{} has no tensor `{name}`", self.path.display()))
    }

    pub fn meta(&self, key: &str) -> &str {
        self.metadata
            .get(key)
            .unwrap_or_else(|| panic!("{} has no metadata `{key}`", self.path.display()))
    }
}

/// Relative L2 error ||got - want|| / ||want|| and max abs error, accumulated in f64.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorFigures {
    pub rel_l2: f64,
    pub max_abs: f64,
}

impl ErrorFigures {
    pub fn worst(self, other: ErrorFigures) -> ErrorFigures {
        ErrorFigures { rel_l2: self.rel_l2.max(other.rel_l2), max_abs: self.max_abs.max(other.max_abs) }
    }
}

pub fn compare(got: &[f32], want: &[f32]) -> ErrorFigures {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let (mut diff, mut norm, mut max_abs) = (0f64, 0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        let d = g as f64 - w as f64;
        diff += d * d;
        norm += (w as f64) * (w as f64);
        // NaN must fail, so compare with a NaN-propagating max.
        max_abs = if d.abs().is_nan() || d.abs() > max_abs { d.abs() } else { max_abs };
    }
    ErrorFigures { rel_l2: (diff / norm.max(f64::MIN_POSITIVE)).sqrt(), max_abs }
}

/// Asserts both error figures are within bounds (and finite), naming the case.
pub fn assert_close(case: &str, got: &[f32], want: &[f32], max_rel_l2: f64, max_abs: f64) -> ErrorFigures {
    let e = compare(got, want);
    assert!(
        e.rel_l2 <= max_rel_l2 && e.max_abs <= max_abs,
        "{case}: rel L2 {:.3e} (limit {max_rel_l2:.0e}), max abs {:.3e} (limit {max_abs:.0e})",
        e.rel_l2,
        e.max_abs
    );
    approx::assert_abs_diff_eq!(got, want, epsilon = max_abs as f32);
    // Shown with --nocapture: the margins, not just pass/fail.
    eprintln!("{case}: rel L2 {:.2e}, max abs {:.2e}", e.rel_l2, e.max_abs);
    e
}

/// Deterministic pseudo-random values in [-1, 1) for CPU-reference tests.
pub fn random_values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 23) as f32) * 2.0 - 1.0
        })
        .collect()
}
