//! Batched extraction: each utterance of a padded batch equals its single run, and the
//! reference fixtures still match from inside a batch, in both extractor modes.

use std::sync::Arc;

use kernels_tests::{assert_close, compare, fixture_path, fixtures_dir, gpu, random_values, Fixture};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::{ExtractOptions, LayerSelection, LightHubert, Subnet};

fn model(name: &str) -> (Checkpoint, Arc<LightHubert>) {
    let ckpt = Checkpoint::open(fixture_path(name)).unwrap_or_else(|e| panic!("{e}"));
    let model = Arc::new(LightHubert::load(gpu(), &ckpt).unwrap_or_else(|e| panic!("{e}")));
    (ckpt, model)
}

/// The fixture's utterance sits between a longer and a shorter one; all three must equal
/// their single runs, and the fixture its reference.
fn check_in_batch(case: &str) {
    let f = Fixture::load(fixtures_dir().join("e2e").join(format!("{case}.safetensors")));
    let (_, model) = model(f.meta("checkpoint"));
    let subnet = Subnet::from_json(f.meta("subnet")).unwrap();
    let normalize = f.meta("normalize") == "true";
    let wave = f.get("waveform");
    let longer: Vec<f32> = random_values(9, wave.len() * 3 / 2 + 123).iter().map(|v| v * 0.4).collect();
    let shorter: Vec<f32> = random_values(10, 1000).iter().map(|v| v * 0.2 + 0.05).collect();
    let batch: [&[f32]; 3] = [&longer, wave, &shorter];
    let options = ExtractOptions { normalize: Some(normalize), layers: LayerSelection::All };
    let out = model.extract(&subnet, &batch, &options).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(out.len(), 3);
    let mut worst = 0f64;
    for (b, (w, feats)) in batch.iter().zip(&out).enumerate() {
        assert_eq!(feats.frames, (w.len() - 400) / 320 + 1, "{case}: utterance {b} keeps its own frame count");
        let alone = model.forward(&subnet, w, normalize).unwrap();
        for (i, (got, want)) in feats.states.iter().zip(&alone.states).enumerate() {
            let e = assert_close(&format!("{case} batch[{b}] state {i} vs alone"), got, want, 1e-6, 1e-5);
            worst = worst.max(e.max_abs);
        }
    }
    for (i, got) in out[1].states.iter().enumerate() {
        assert_close(&format!("{case} in batch, hidden.{i} vs reference"), got, f.get(&format!("hidden.{i}")), 1e-5, 2e-4);
    }
    eprintln!("{case}: batched vs alone, worst max abs {worst:.2e}");
}

#[test]
fn default_mode_batch_matches_single_runs_and_reference() {
    // GroupNorm over time is where padding would leak in this mode.
    check_in_batch("default-ckpt-default-subnet");
    check_in_batch("default-ckpt-min");
}

#[test]
fn layer_norm_mode_batch_matches_single_runs_and_reference() {
    check_in_batch("f16-ckpt-default-subnet");
    check_in_batch("f16-ckpt-mixed-e64-10");
}

#[test]
fn layer_selection_and_weighted_sum() {
    let (_, model) = model("tiny-default.pt");
    let subnet = model.supernet().preset(&lighthubert::Preset::Default);
    let wave = random_values(3, 6000);
    let all = model.extract(&subnet, &[&wave], &ExtractOptions::default()).unwrap().remove(0);
    assert_eq!(all.layer_indices, (0..=12).collect::<Vec<_>>());
    let picked = ExtractOptions { layers: "0, 4,12".parse().unwrap(), ..Default::default() };
    let some = model.extract(&subnet, &[&wave], &picked).unwrap().remove(0);
    assert_eq!(some.layer_indices, vec![0, 4, 12]);
    assert_eq!(some.states, vec![all.states[0].clone(), all.states[4].clone(), all.states[12].clone()]);

    let mixed = some.weighted_sum(&[0.5, -1.0, 2.0]).unwrap();
    let want: Vec<f32> = (0..mixed.len())
        .map(|j| 0.5 * all.states[0][j] - all.states[4][j] + 2.0 * all.states[12][j])
        .collect();
    assert!(compare(&mixed, &want).max_abs < 1e-5);
    assert!(some.weighted_sum(&[1.0]).is_err());

    let too_deep = ExtractOptions { layers: "13".parse().unwrap(), ..Default::default() };
    let err = model.extract(&subnet, &[&wave], &too_deep).unwrap_err().to_string();
    assert!(err.contains("hidden state 13"), "{err}");
    assert!("1,x".parse::<LayerSelection>().is_err());

    // Counted from the end and ranges resolve against this subnet's 13 states.
    let relative = ExtractOptions { layers: "last,-13,3-4".parse().unwrap(), ..Default::default() };
    let some = model.extract(&subnet, &[&wave], &relative).unwrap().remove(0);
    assert_eq!(some.layer_indices, vec![12, 0, 3, 4]);
    assert_eq!(some.states, [12, 0, 3, 4].map(|i| all.states[i].clone()));
    let too_far_back = ExtractOptions { layers: "-14".parse().unwrap(), ..Default::default() };
    let err = model.extract(&subnet, &[&wave], &too_far_back).unwrap_err().to_string();
    assert!(err.contains("hidden state -14 does not exist: this subnet has 13 (0 to 12, or -13 to -1)"), "{err}");
}

#[test]
fn normalisation_defaults_to_the_checkpoint_and_can_be_overridden() {
    let wave: Vec<f32> = random_values(5, 5000).iter().map(|v| v * 0.3 + 0.1).collect();
    // tiny-default.pt says normalize = False; the f16 file says nothing, which means off.
    for name in ["tiny-default.pt", "tiny-layernorm-f16.pt"] {
        let (mut ckpt, model) = model(name);
        assert!(!model.default_normalize(), "{name}");
        let subnet = model.supernet().preset(&lighthubert::Preset::Default);
        let plain = model.forward(&subnet, &wave, false).unwrap();
        let normed = model.forward(&subnet, &wave, true).unwrap();
        assert_ne!(plain.states, normed.states, "normalisation must change the input");
        let default = model.extract(&subnet, &[&wave], &ExtractOptions::default()).unwrap().remove(0);
        assert_eq!(default.states, plain.states);
        let forced = ExtractOptions { normalize: Some(true), ..Default::default() };
        assert_eq!(model.extract(&subnet, &[&wave], &forced).unwrap().remove(0).states, normed.states);

        // A checkpoint trained on normalised audio turns it on by default.
        ckpt.task_normalize = Some(true);
        let normalising = LightHubert::load(gpu(), &ckpt).unwrap();
        assert!(normalising.default_normalize());
        let default = normalising.extract(&subnet, &[&wave], &ExtractOptions::default()).unwrap().remove(0);
        assert_eq!(default.states, normed.states);
        let off = ExtractOptions { normalize: Some(false), ..Default::default() };
        assert_eq!(normalising.extract(&subnet, &[&wave], &off).unwrap().remove(0).states, plain.states);
    }
}

#[test]
fn too_short_and_non_finite_audio_are_refused() {
    let (_, model) = model("tiny-default.pt");
    let subnet = model.supernet().preset(&lighthubert::Preset::Default);
    let short = vec![0.1f32; 399];
    let err = model.forward(&subnet, &short, false).unwrap_err().to_string();
    assert!(err.contains("399 samples") && err.contains("400"), "{err}");
    let mut bad = vec![0.1f32; 1000];
    bad[17] = f32::NAN;
    assert!(model.forward(&subnet, &bad, false).unwrap_err().to_string().contains("sample 17"));
    assert!(model.extract(&subnet, &[], &ExtractOptions::default()).unwrap().is_empty());
}

#[test]
fn batches_split_to_fit_the_buffer_limit() {
    let ckpt = Checkpoint::open(fixtures_dir().join("tiny-default.pt")).unwrap();
    let mut model = LightHubert::load(gpu(), &ckpt).unwrap();
    let subnet = model.supernet().preset(&lighthubert::Preset::Default);
    let waves: Vec<Vec<f32>> = [9000usize, 4000, 12000, 700].iter().enumerate().map(|(i, &n)| random_values(20 + i as u64, n)).collect();
    let refs: Vec<&[f32]> = waves.iter().map(|w| w.as_slice()).collect();
    let whole = model.extract(&subnet, &refs, &ExtractOptions::default()).unwrap();
    // Room for about one 12000-sample utterance: the first conv block's output is the largest
    // activation, (12000 - 10) / 5 + 1 frames of 64 channels.
    let one = ((12000 - 10) / 5 + 1) * 64 * 4;
    model.set_activation_limit(Some(one as u64));
    assert!(model.fits(&subnet, 1, 12000) && !model.fits(&subnet, 2, 12000));
    let split = model.extract(&subnet, &refs, &ExtractOptions::default()).unwrap();
    assert_eq!(split, whole, "splitting a batch must not change any result");

    // Alone, a longer utterance runs its conv extractor in chunks (long_audio.rs checks the
    // values); one whose waveform alone exceeds the limit cannot run at all.
    let longer = random_values(30, 13000);
    assert!(model.fits(&subnet, 1, 13000) && !model.fits(&subnet, 2, 13000));
    model.extract(&subnet, &[&longer], &ExtractOptions::default()).expect("chunked");
    let too_long = random_values(31, 160_000);
    let err = model.extract(&subnet, &[&too_long], &ExtractOptions::default()).unwrap_err();
    assert!(matches!(err, lighthubert::Error::TooLongForDevice { index: 0, samples: 160_000, .. }), "{err}");
    let short = vec![0.0f32; 100];
    let err = model.extract(&subnet, &[&short], &ExtractOptions::default()).unwrap_err();
    assert!(matches!(err, lighthubert::Error::AudioTooShort { .. }), "{err}");
}
