//! End-to-end tests of the `lighthubert` binary: each runs the built program on files made
//! here (with hound) or shipped in `tests/data/`, then reads its outputs back.
//!
//! Runs without --checkpoint use the bundled tiny checkpoint (random weights), so every GPU
//! run is a few hundred milliseconds even on a software rasteriser.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::{AdapterChoice, GpuContext};
use lighthubert::{ExtractOptions, LayerSelection, LightHubert};
use lighthubert_tools::{bundled, npy};
use safetensors::SafeTensors;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Helpers

mod common;
use common::{files_in, speech, write_wav};

/// A private XDG_RUNTIME_DIR for the children (Mesa warns on stderr without one).
fn runtime_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|d| d.is_dir()) {
            return d;
        }
        common::runtime_dir_in(&std::env::temp_dir().join(format!("lighthubert-cli-{}", std::process::id())))
    })
}

fn lighthubert(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lighthubert"))
        .args(args.iter().map(|a| a.as_ref()))
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .output()
        .expect("run lighthubert")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status, stdout(o), stderr(o));
}

/// A failure: non-zero exit, exactly one `error: ` line on stderr that contains `needle`
/// (the file it is about) and, when given, `problem`.
#[track_caller]
fn assert_one_line_error(o: &Output, needle: &str, problem: &str) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "expected a failure, got success\nstdout:\n{}", stdout(o));
    assert_eq!(err.lines().count(), 1, "stderr is not one line:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "stderr does not name {needle:?}: {err}");
    assert!(err.contains(problem), "stderr does not say {problem:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
    err
}


/// A test signal at any rate: a few harmonics under 4 kHz with a slow envelope.
fn tones(rate: u32, seconds: f64) -> Vec<f32> {
    let n = (rate as f64 * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let env = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let x =
                [220.0, 660.0, 1500.0, 3100.0].iter().map(|f| (2.0 * std::f64::consts::PI * f * t).sin()).sum::<f64>();
            (0.2 * env * x) as f32
        })
        .collect()
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The bundled model through the library, once per test process.
fn model() -> &'static LightHubert {
    static MODEL: OnceLock<LightHubert> = OnceLock::new();
    MODEL.get_or_init(|| {
        let ckpt = Checkpoint::from_bytes(bundled::CHECKPOINT, bundled::checkpoint_path()).unwrap();
        let ctx = Arc::new(GpuContext::new(&AdapterChoice::from_env()).unwrap());
        LightHubert::load(ctx, &ckpt).unwrap()
    })
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let num: f64 = got.iter().zip(want).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum();
    let rel = (num / den.max(1e-30)).sqrt();
    let max = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(rel < 1e-5 && max < 1e-3, "{what}: relative L2 {rel:e}, max abs {max:e}");
}

// ---------------------------------------------------------------------------------------------
// extract

#[test]
fn one_input_to_npy_matches_the_library() {
    let dir = TempDir::new().unwrap();
    let wave = speech(0.3, 1.2);
    let input = dir.path().join("utt.wav");
    write_wav(&input, 16_000, 32, true, std::slice::from_ref(&wave));
    let out = dir.path().join("utt.npy");
    let o = lighthubert(&[&"extract", &input, &"--out", &out]);
    assert_ok(&o);
    assert!(stdout(&o).contains("RANDOM") || stdout(&o).contains("random weights"), "{}", stdout(&o));

    let (shape, values) = npy::read_f32(&std::fs::read(&out).unwrap()).unwrap();
    let model = model();
    let subnet = model.supernet().subnet("default").unwrap();
    let want = model.extract(&subnet, &[&wave], &ExtractOptions::default()).unwrap().remove(0);
    assert_eq!(shape, vec![subnet.layer_num + 1, want.frames, want.embed]);
    assert_eq!(want.frames, (wave.len() - 400) / 320 + 1);
    let per_state = want.frames * want.embed;
    for (s, state) in want.states.iter().enumerate() {
        assert_close(&values[s * per_state..(s + 1) * per_state], state, &format!("state {s}"));
    }
    assert_eq!(files_in(dir.path()), vec![out, input], "temporary files left behind");
}

#[test]
fn one_input_to_safetensors_with_layers_and_metadata() {
    let dir = TempDir::new().unwrap();
    let wave = speech(1.0, 1.0);
    let input = dir.path().join("words.wav");
    write_wav(&input, 16_000, 16, false, std::slice::from_ref(&wave));
    let out = dir.path().join("feats.safetensors");
    let o =
        lighthubert(&[&"extract", &input, &"--out", &out, &"--layers", &"0,3", &"--subnet", &"max", &"--normalize"]);
    assert_ok(&o);

    let bytes = std::fs::read(&out).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(names, vec!["hidden_state.0", "hidden_state.3"]);
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta: HashMap<String, String> = meta.metadata().clone().unwrap();
    let model = model();
    let subnet = model.supernet().subnet("max").unwrap();
    assert_eq!(meta["subnet"], subnet.to_json());
    assert_eq!(serde_json::from_str::<serde_json::Value>(&meta["subnet"]).unwrap()["embed_dim"], subnet.embed_dim);
    assert_eq!(meta["frame_rate"], "50");
    assert_eq!(meta["sample_rate"], "16000");
    assert_eq!(meta["source"], input.display().to_string());
    assert_eq!(meta["layers"], "[0,3]");
    assert_eq!(meta["normalize"], "true");
    assert!(meta["checkpoint"].contains("tiny-layernorm-f16.pt"), "{}", meta["checkpoint"]);
    assert_eq!(meta["weights"], "f32");

    // The same numbers as the library, on the same 16-bit samples.
    let samples: Vec<f32> =
        hound::WavReader::open(&input).unwrap().samples::<i16>().map(|s| s.unwrap() as f32 / 32768.0).collect();
    let options = ExtractOptions { normalize: Some(true), layers: LayerSelection::Indices(vec![0, 3]) };
    let want = model.extract(&subnet, &[&samples], &options).unwrap().remove(0);
    for (k, index) in [0, 3].into_iter().enumerate() {
        let t = st.tensor(&format!("hidden_state.{index}")).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        assert_eq!(t.shape(), &[want.frames, want.embed]);
        let got: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_close(&got, &want.states[k], &format!("hidden_state.{index}"));
    }
}

#[test]
fn f16_weight_storage_is_recorded_and_exact_for_an_f16_checkpoint() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("words.wav");
    write_wav(&input, 16_000, 16, false, &[speech(1.0, 1.0)]);
    let read = |name: &str, weights: &str| {
        let out = dir.path().join(name);
        assert_ok(&lighthubert(&[&"extract", &input, &"--out", &out, &"--layers", &"12", &"--weights", &weights]));
        let bytes = std::fs::read(&out).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("hidden_state.12").unwrap();
        let values: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        (meta.metadata().clone().unwrap()["weights"].clone(), values)
    };
    let (w16, half) = read("f16.safetensors", "f16");
    let (w32, full) = read("f32.safetensors", "f32");
    assert_eq!((w16.as_str(), w32.as_str()), ("f16", "f32"));
    // The bundled checkpoint stores f16: f16 storage holds the same values.
    assert_close(&half, &full, "f16 vs f32 storage");
    let o = lighthubert(&[&"extract", &input, &"--out", &dir.path().join("x.npy"), &"--weights", &"bf16"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bf16"), "{}", stderr(&o));
    // f16 arithmetic lives in the GPU kernels: on a CPU-family device it is refused, not ignored.
    if lighthubert::gpu::GpuContext::new(&Default::default()).is_ok_and(|c| c.kernel_family == lighthubert::gpu::KernelFamily::Cpu) {
        let o = lighthubert(&[&"extract", &input, &"--out", &dir.path().join("y.npy"), &"--math", &"f16"]);
        assert_one_line_error(&o, "tiny-layernorm-f16.pt", "f16 arithmetic");
        assert!(!dir.path().join("y.npy").exists());
    }
}

#[test]
fn several_inputs_of_mixed_rates_into_a_directory() {
    let dir = TempDir::new().unwrap();
    let a = dir.path().join("phone.wav"); // 8 kHz 16-bit mono
    write_wav(&a, 8_000, 16, false, &[tones(8_000, 0.7)]);
    let b = dir.path().join("music.wav"); // 44.1 kHz 24-bit stereo
    let left = tones(44_100, 1.3);
    let right: Vec<f32> = left.iter().map(|v| -0.5 * v).collect();
    write_wav(&b, 44_100, 24, false, &[left, right]);
    let c = dir.path().join("studio.wav"); // 16 kHz float
    write_wav(&c, 16_000, 32, true, &[speech(0.2, 0.9)]);
    let d = dir.path().join("byte.wav"); // 11.025 kHz 8-bit
    write_wav(&d, 11_025, 8, false, &[tones(11_025, 0.5)]);
    let out = dir.path().join("features"); // does not exist yet
    let o = lighthubert(&[
        &"extract",
        &a,
        &b,
        &c,
        &d,
        &data("speech-22k-stereo.flac"),
        &data("speech-24k.ogg"),
        &data("speech-44k.mp3"),
        &"--out",
        &out,
        &"--batch-size",
        &"3",
    ]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(text.contains("WAV 24-bit PCM, 44100 Hz, 2 ch"), "{text}");
    assert!(text.contains("FLAC, 22050 Hz, 2 ch"), "{text}");
    assert!(text.contains("Ogg Vorbis, 24000 Hz, 1 ch"), "{text}");
    assert!(text.contains("MP3, 44100 Hz, 1 ch"), "{text}");
    assert!(text.contains("done: 7 file(s)"), "{text}");

    // Each input's own frame count: 16 kHz samples = seconds * 16000 (to within a sample).
    let expect = [
        ("phone", 0.7),
        ("music", 1.3),
        ("studio", 0.9),
        ("byte", 0.5),
        ("speech-22k-stereo", 0.6),
        ("speech-24k", 0.6),
        ("speech-44k", 0.6),
    ];
    let mut written: Vec<PathBuf> = files_in(&out).into_iter().filter(|p| p.extension().is_some_and(|e| e == "npy")).collect();
    written.sort();
    assert_eq!(written.len(), expect.len(), "{written:?}");
    for (stem, secs) in expect {
        let (shape, values) = npy::read_f32(&std::fs::read(out.join(format!("{stem}.npy"))).unwrap()).unwrap();
        let samples = secs * 16_000.0;
        let frames = |n: f64| ((n - 400.0) / 320.0).floor() as usize + 1;
        // MP3 decoders may keep a little encoder padding; the others are exact to a sample.
        let slack = if stem == "speech-44k" { 2000.0 } else { 2.0 };
        assert!(
            shape[1] >= frames(samples - slack) && shape[1] <= frames(samples + slack),
            "{stem}: {shape:?} for {secs} s"
        );
        assert_eq!((shape[0], shape[2]), (13, 96), "{stem}: {shape:?}");
        assert!(values.iter().all(|v| v.is_finite()), "{stem}");
    }

    // Outputs map to their inputs (the run sorts by length): the 16 kHz file equals a lone run.
    let lone = dir.path().join("studio-alone.npy");
    assert_ok(&lighthubert(&[&"extract", &c, &"--out", &lone]));
    let (_, batched) = npy::read_f32(&std::fs::read(out.join("studio.npy")).unwrap()).unwrap();
    let (_, alone) = npy::read_f32(&std::fs::read(&lone).unwrap()).unwrap();
    assert_close(&batched, &alone, "studio batched vs alone");
}

#[test]
fn force_is_needed_to_overwrite() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("a.wav");
    write_wav(&input, 16_000, 16, false, &[speech(0.5, 0.5)]);
    let out = dir.path().join("a.npy");
    std::fs::write(&out, b"precious").unwrap();

    let o = lighthubert(&[&"extract", &input, &"--out", &out]);
    assert_one_line_error(&o, "a.npy", "--force");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");

    // Also in directory mode, before any work: b.npy does not exist but a.npy does.
    let b = dir.path().join("b.wav");
    write_wav(&b, 16_000, 16, false, &[speech(0.5, 0.5)]);
    let o = lighthubert(&[&"extract", &b, &input, &"--out", &dir.path()]);
    assert_one_line_error(&o, "a.npy", "already exists");
    assert!(!dir.path().join("b.npy").exists());

    let o = lighthubert(&[&"extract", &input, &"--out", &out, &"--force"]);
    assert_ok(&o);
    let (shape, _) = npy::read_f32(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(shape[0], 13);
    assert_eq!(files_in(dir.path()).len(), 3, "{:?}", files_in(dir.path()));
}

#[test]
fn equal_stems_in_different_folders_mirror_their_folders() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    std::fs::create_dir_all(dir.path().join("y")).unwrap();
    let a = dir.path().join("x/same.wav");
    let b = dir.path().join("y/same.wav");
    write_wav(&a, 16_000, 16, false, &[speech(0.5, 0.5)]);
    write_wav(&b, 16_000, 16, false, &[speech(1.0, 0.5)]);
    let out = dir.path().join("out");
    let o = lighthubert(&[&"extract", &a, &b, &"--out", &out]);
    assert_ok(&o);
    let (_, from_x) = npy::read_f32(&std::fs::read(out.join("x/same.npy")).unwrap()).unwrap();
    let (_, from_y) = npy::read_f32(&std::fs::read(out.join("y/same.npy")).unwrap()).unwrap();
    assert_ne!(from_x, from_y, "each input wrote its own file");
    // The same file named twice has one id twice: refused before any work.
    let o = lighthubert(&[&"extract", &a, &a, &"--out", &dir.path().join("twice")]);
    assert_one_line_error(&o, "same.wav", "is also the id of");
    assert!(!dir.path().join("twice").exists());
}

// ---------------------------------------------------------------------------------------------
// Error cases: one line naming the file, non-zero exit, nothing written

fn assert_fails_cleanly(dir: &TempDir, args: &[&dyn AsRef<std::ffi::OsStr>], needle: &str, problem: &str) {
    let before = files_in(dir.path());
    let o = lighthubert(args);
    assert_one_line_error(&o, needle, problem);
    assert_eq!(files_in(dir.path()), before, "files changed after a failed run");
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let dir = TempDir::new().unwrap();
    let p = |n: &str| dir.path().join(n);
    let out = p("out.npy");

    assert_fails_cleanly(&dir, &[&"extract", &p("missing.wav"), &"--out", &out], "missing.wav", "No such file");

    std::fs::write(p("notes.wav"), "hello, this is text").unwrap();
    assert_fails_cleanly(
        &dir,
        &[&"extract", &p("notes.wav"), &"--out", &out],
        "notes.wav",
        "not a readable audio file",
    );
    std::fs::write(p("notes.mp3"), vec![7u8; 5000]).unwrap();
    assert_fails_cleanly(
        &dir,
        &[&"extract", &p("notes.mp3"), &"--out", &out],
        "notes.mp3",
        "not a readable audio file",
    );

    std::fs::write(p("cut.wav"), &bundled::CLIP[..30]).unwrap();
    assert_fails_cleanly(&dir, &[&"extract", &p("cut.wav"), &"--out", &out], "cut.wav", "truncated");

    write_wav(&p("silent.wav"), 16_000, 16, false, &[vec![]]);
    assert_fails_cleanly(&dir, &[&"extract", &p("silent.wav"), &"--out", &out], "silent.wav", "no audio samples");

    write_wav(&p("blip.wav"), 16_000, 16, false, &[vec![0.1; 399]]);
    assert_fails_cleanly(&dir, &[&"extract", &p("blip.wav"), &"--out", &out], "blip.wav", "too short");
    // 8 kHz: 199 samples are 398 at 16 kHz.
    write_wav(&p("blip8k.wav"), 8_000, 16, false, &[vec![0.1; 199]]);
    assert_fails_cleanly(&dir, &[&"extract", &p("blip8k.wav"), &"--out", &out], "blip8k.wav", "too short");

    std::fs::write(p("empty.flac"), b"").unwrap();
    assert_fails_cleanly(&dir, &[&"extract", &p("empty.flac"), &"--out", &out], "empty.flac", "empty file");

    // A bad file among good ones does not stop the run: tools/tests/extract_corpus.rs.
}

#[test]
fn bad_options_fail_with_one_line() {
    let dir = TempDir::new().unwrap();
    let p = |n: &str| dir.path().join(n);
    let input = p("a.wav");
    write_wav(&input, 16_000, 16, false, &[speech(0.5, 0.5)]);
    let out = p("a.npy");

    std::fs::write(p("bad.json"), "{\"embed_dim\": 96,").unwrap();
    assert_fails_cleanly(
        &dir,
        &[&"extract", &input, &"--out", &out, &"--subnet", &p("bad.json")],
        "bad.json",
        "subnet JSON",
    );

    // A subnet of the released small space does not fit the tiny checkpoint.
    let small = lighthubert(&[&"subnet", &"max", &"--space", &"small"]);
    assert_ok(&small);
    std::fs::write(p("small-max.json"), stdout(&small)).unwrap();
    assert_fails_cleanly(
        &dir,
        &[&"extract", &input, &"--out", &out, &"--subnet", &p("small-max.json")],
        "small-max.json",
        "not in the search space",
    );

    assert_fails_cleanly(
        &dir,
        &[&"extract", &input, &"--out", &out, &"--subnet", &"medium"],
        "medium",
        "unknown subnet preset",
    );
    assert_fails_cleanly(
        &dir,
        &[&"extract", &input, &"--out", &out, &"--subnet", &p("nope.json")],
        "nope.json",
        "No such file",
    );

    std::fs::write(p("model.pt"), "not a checkpoint").unwrap();
    assert_fails_cleanly(
        &dir,
        &[&"extract", &input, &"--out", &out, &"--checkpoint", &p("model.pt")],
        "model.pt",
        "not a zip archive",
    );
    assert_fails_cleanly(
        &dir,
        &[&"extract", &input, &"--out", &out, &"--checkpoint", &p("gone.pt")],
        "gone.pt",
        "No such file",
    );

    assert_fails_cleanly(
        &dir,
        &[&"extract", &input, &"--out", &out, &"--layers", &"0,x"],
        "--layers 0,x",
        "expected `all`",
    );
    assert_fails_cleanly(
        &dir,
        &[&"extract", &input, &"--out", &out, &"--layers", &"0,13"],
        "--layers 0,13",
        "does not exist",
    );
    assert_fails_cleanly(
        &dir,
        &[&"extract", &input, &"--out", &p("a.safetensors"), &"--format", &"npy"],
        "a.safetensors",
        "--format",
    );
    write_wav(&p("b.wav"), 16_000, 16, false, &[speech(0.5, 0.5)]);
    assert_fails_cleanly(&dir, &[&"extract", &input, &p("b.wav"), &"--out", &p("x.npy")], "x.npy", "must be a directory");
    for odd in ["out.np", "feats.h5"] {
        assert_fails_cleanly(&dir, &[&"extract", &input, &"--out", &p(odd)], odd, "unknown extension");
    }
    assert_fails_cleanly(&dir, &[&"extract", &input, &"--out", &out, &"--weights", &"f8"], "f8", "f32, f16");
    assert_fails_cleanly(&dir, &[&"extract", &input], "a.wav", "--out");
    assert_fails_cleanly(&dir, &[&"extract", &input, &"--out", &out, &"--batch-size", &"0"], "--batch-size", "");
    assert_fails_cleanly(&dir, &[&"extract", &"--normalize", &"--no-normalize"], "--no-normalize", "");
    assert_fails_cleanly(&dir, &[&"info", &p("model.pt")], "model.pt", "not a zip archive");
}

// ---------------------------------------------------------------------------------------------
// info, subnet, the demo

#[test]
fn adapters_are_numbered_and_settings_are_checked_before_any_work() {
    let o = lighthubert(&[&"adapters"]);
    assert_ok(&o);
    assert!(stdout(&o).starts_with("0: "), "{}", stdout(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_lighthubert"))
        .args(["adapters"])
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .env("WGPU_BACKEND", "cuda")
        .output()
        .unwrap();
    assert_one_line_error(&o, "WGPU_BACKEND", "`cuda` is not a backend (expected vulkan");

    // A folder that takes no file is refused before the model loads (as root, /proc/self).
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("a.wav");
    write_wav(&input, 16_000, 16, false, &[speech(0.5, 0.5)]);
    let o = lighthubert(&[&"extract", &input, &"--out", &"/proc/self/"]);
    assert_one_line_error(&o, "/proc/self", "cannot write here");
    assert!(!stdout(&o).contains("adapter"), "{}", stdout(&o));

    // A file named like a preset does not replace the preset.
    let o = Command::new(env!("CARGO_BIN_EXE_lighthubert"))
        .args(["extract", "--subnet", "min", "a.wav", "--out", "a.npy"])
        .current_dir(dir.path())
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .output()
        .unwrap();
    std::fs::write(dir.path().join("min"), "{not json").unwrap();
    assert_ok(&o);
    let o = Command::new(env!("CARGO_BIN_EXE_lighthubert"))
        .args(["extract", "--subnet", "min", "a.wav", "--out", "b.npy"])
        .current_dir(dir.path())
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(std::fs::read(dir.path().join("a.npy")).unwrap(), std::fs::read(dir.path().join("b.npy")).unwrap());
}

#[test]
fn info_describes_a_checkpoint() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(bundled::CHECKPOINT_NAME);
    std::fs::write(&path, bundled::CHECKPOINT).unwrap();
    let o = lighthubert(&[&"info", &path]);
    assert_ok(&o);
    let text = stdout(&o);
    for needle in [
        "tiny-layernorm-f16.pt",
        "LayerNorm",
        "12 layers, embed 128",
        "search space",
        "default",
        "min",
        "max",
        "M parameters",
        "\"embed_dim\":96",
        "float16",
        "50 frames/s",
    ] {
        assert!(text.contains(needle), "info lacks {needle:?}:\n{text}");
    }
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn subnet_prints_presets_as_json() {
    let parse = |o: &Output| -> serde_json::Value {
        assert_ok(o);
        serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
    };
    let v = parse(&lighthubert(&[&"subnet", &"default"]));
    assert_eq!(v["embed_dim"], 384);
    assert_eq!(v["layer_num"], 12);
    assert_eq!(v["ffn_embed"][0], 1536);
    let v = parse(&lighthubert(&[&"subnet", &"max", &"--space", &"base"]));
    assert_eq!(v["embed_dim"], 768);
    let v = parse(&lighthubert(&[&"subnet", &"min", &"--space", &"small", &"--pretty"]));
    assert_eq!((v["embed_dim"].as_u64(), v["layer_num"].as_u64()), (Some(256), Some(10)));
    let a = stdout(&lighthubert(&[&"subnet", &"random:7", &"--space", &"demo"]));
    let b = stdout(&lighthubert(&[&"subnet", &"random:7", &"--space", &"demo"]));
    assert_eq!(a, b, "random:SEED is reproducible");
    let v: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert!([64, 96, 128].contains(&v["embed_dim"].as_u64().unwrap()), "{a}");

    // Round trip: a printed subnet is accepted by extract --subnet FILE (checked in the demo).
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("s.json");
    std::fs::write(&file, &a).unwrap();
    let o = lighthubert(&[&"subnet", &file, &"--checkpoint", &{
        let ck = dir.path().join("tiny.pt");
        std::fs::write(&ck, bundled::CHECKPOINT).unwrap();
        ck
    }]);
    assert_eq!(parse(&o), v);

    let o = lighthubert(&[&"subnet", &"random:x"]);
    assert_one_line_error(&o, "random:x", "unknown subnet preset");
}

#[test]
fn no_arguments_runs_the_demo() {
    let o = lighthubert(&[]);
    assert_ok(&o);
    let text = stdout(&o);
    for needle in [
        "RANDOM weights",
        "adapter",
        "subnet",
        "parameters",
        "speech.wav",
        "hidden states of 141 frames x 96 channels",
        "hidden_state.12",
        "rms",
        "first extract",
    ] {
        assert!(text.contains(needle), "demo output lacks {needle:?}:\n{text}");
    }
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));

    // Without XDG_RUNTIME_DIR (Slurm jobs, containers, sudo) Mesa would print
    // "error: XDG_RUNTIME_DIR is invalid or not set" twice; the program gives it a folder.
    for runtime in [None, Some("/nonexistent-runtime-dir")] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lighthubert"));
        match runtime {
            None => c.env_remove("XDG_RUNTIME_DIR"),
            Some(d) => c.env("XDG_RUNTIME_DIR", d),
        };
        let o = c.output().unwrap();
        assert_ok(&o);
        assert!(stderr(&o).is_empty(), "XDG_RUNTIME_DIR={runtime:?}: {}", stderr(&o));
    }
}

#[test]
fn profile_prints_a_kernel_table_and_writes_a_chrome_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.json");
    let o = lighthubert(&[&"profile", &"--seconds", &"0.5", &"--runs", &"1", &"--trace", &trace]);
    assert_ok(&o);
    let out = stdout(&o);
    for kernel in ["linear", "layer_norm", "attention", "pos_conv_residual"] {
        assert!(out.contains(&format!("| {kernel}")), "no row for {kernel}:\n{out}");
    }
    assert!(out.contains("GFLOP/s") && out.contains("| **all** |"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = json["traceEvents"].as_array().expect("traceEvents");
    assert!(events.len() > 50, "one event per dispatch");
    assert!(events.iter().all(|e| e["ph"] == "X" && e["dur"].as_f64().is_some_and(|d| d >= 0.0)));
    assert!(events.iter().any(|e| e["args"]["stage"] == "layer 1 attention"));

    // An existing trace is kept unless --force.
    let o = lighthubert(&[&"profile", &"--seconds", &"0.5", &"--runs", &"1", &"--trace", &trace]);
    assert_one_line_error(&o, "trace.json", "already exists");
}
