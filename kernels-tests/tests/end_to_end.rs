//! Every end-to-end fixture: the whole forward pass of a subnet against the authors' model
//! (float64 truth), hidden state by hidden state. Bounds: relative L2 1e-5 and max abs 2e-4
//! per state; the reference's own float32 error here is about 6e-7 and 5e-6.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use kernels_tests::{assert_close, fixtures_dir, gpu, ErrorFigures, Fixture};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::{LightHubert, Subnet};

const REL_L2: f64 = 1e-5;
const MAX_ABS: f64 = 2e-4;

fn model(name: &str) -> Arc<LightHubert> {
    static MODELS: OnceLock<Mutex<HashMap<String, Arc<LightHubert>>>> = OnceLock::new();
    let mut models = MODELS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    models
        .entry(name.to_string())
        .or_insert_with(|| {
            let ckpt = Checkpoint::open(fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{e}"));
            Arc::new(LightHubert::load(gpu(), &ckpt).unwrap_or_else(|e| panic!("{e}")))
        })
        .clone()
}

fn check_case(case: &str) -> ErrorFigures {
    let f = Fixture::load(fixtures_dir().join("e2e").join(format!("{case}.safetensors")));
    let model = model(f.meta("checkpoint"));
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
        let e = assert_close(&format!("{case} {key}"), got, f.get(&key), REL_L2, MAX_ABS);
        worst = worst.worst(e);
    }
    eprintln!(
        "{case}: {} frames, E={}, {} states: worst rel L2 {:.2e}, max abs {:.2e} (reference f32 floor {} / {})",
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

macro_rules! e2e_cases {
    ($($name:ident => $case:literal,)*) => {
        $(
            #[test]
            fn $name() {
                check_case($case);
            }
        )*

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
