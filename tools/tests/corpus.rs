//! The bad-input corpus (`kernels-tests/fixtures/bad/`, made by
//! `tools/fixtures/gen_bad_corpus.py`): every case through the library and through the
//! `lighthubert` program. An error case must give its error kind, a message that names the
//! file or field and the problem, and a one-line, non-zero exit from the program, never a panic;
//! nothing a file says is executed. The valid audio must decode at its rate and channel count.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::{AdapterChoice, GpuContext};
use lighthubert::{Error, LightHubert, Supernet};
use lighthubert_tools::audio;
use lighthubert_tools::resample::To16k;
use serde_json::Value;
use tempfile::TempDir;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels-tests/fixtures/bad")
}

struct Case {
    file: PathBuf,
    name: String,
    kind: String,
    expect: String,
    says: Vec<String>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(corpus_dir().join("MANIFEST.json")).expect("corpus manifest");
    let manifest: Value = serde_json::from_str(&text).expect("manifest is JSON");
    let cases: Vec<Case> = manifest["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let file = corpus_dir().join(c["file"].as_str().expect("file"));
            Case {
                name: file.file_name().unwrap().to_string_lossy().into_owned(),
                file,
                kind: c["kind"].as_str().expect("kind").to_string(),
                expect: c["expect"].as_str().expect("expect").to_string(),
                says: c["says"].as_array().expect("says").iter().map(|s| s.as_str().expect("text").to_string()).collect(),
            }
        })
        .collect();
    // Every file in the corpus has an entry, and every entry a file.
    let listed: Vec<&PathBuf> = cases.iter().map(|c| &c.file).collect();
    for sub in ["checkpoints", "audio", "subnets"] {
        for entry in std::fs::read_dir(corpus_dir().join(sub)).expect("corpus folder") {
            let path = entry.unwrap().path();
            assert!(listed.contains(&&path), "{} has no manifest entry", path.display());
        }
    }
    assert!(cases.iter().all(|c| c.file.is_file()), "a manifest entry has no file");
    cases
}

fn assert_says(case: &Case, message: &str) {
    for needle in &case.says {
        assert!(message.contains(needle.as_str()), "{}: the message does not say {needle:?}: {message}", case.name);
    }
}

/// The library's answer to a checkpoint case: open, then load onto the GPU.
fn checkpoint_result(path: &Path) -> Result<(), Error> {
    let ckpt = Checkpoint::open(path)?;
    let ctx = std::sync::Arc::new(GpuContext::new(&AdapterChoice::from_env())?);
    LightHubert::load(ctx, &ckpt).map(drop)
}

fn tiny_supernet() -> Supernet {
    let ckpt = Checkpoint::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels-tests/fixtures/tiny-default.pt")).unwrap();
    Supernet::from_config(&ckpt.config).unwrap()
}

#[test]
fn every_case_through_the_library() {
    let supernet = tiny_supernet();
    let cwd_marker = Path::new("lighthubert-corpus-pwned");
    for case in cases() {
        match case.kind.as_str() {
            "checkpoint" => {
                let err = checkpoint_result(&case.file).err().unwrap_or_else(|| panic!("{}: loaded", case.name));
                let debug = format!("{err:?}");
                assert!(debug.starts_with(&case.expect), "{}: expected {}, got {debug}", case.name, case.expect);
                assert_says(&case, &err.to_string());
            }
            "audio" => {
                let result = audio::read_16k(&case.file, &mut To16k::new(), 400);
                match (case.expect.as_str(), result) {
                    ("ok", Ok((info, wave))) => {
                        assert_says(&case, &format!("{} {}", info.rate, info.channels));
                        // 0.2 s of audio at any rate is 3200 samples at 16 kHz.
                        assert_eq!(wave.len(), 3200, "{}", case.name);
                        assert!(wave.iter().all(|v| v.is_finite() && v.abs() < 1.0), "{}", case.name);
                    }
                    ("error", Err(e)) => assert_says(&case, &e.to_string()),
                    (want, got) => panic!("{}: expected {want}, got {:?}", case.name, got.map(|(i, _)| i)),
                }
            }
            "subnet" => {
                let text = std::fs::read_to_string(&case.file).unwrap();
                let err = Error::from(supernet.subnet(&text).err().unwrap_or_else(|| panic!("{}: accepted", case.name)));
                let debug = format!("{err:?}");
                assert!(debug.starts_with(&case.expect), "{}: expected {}, got {debug}", case.name, case.expect);
                assert_says(&case, &err.to_string());
            }
            other => panic!("unknown kind {other}"),
        }
    }
    assert!(!cwd_marker.exists(), "a hostile pickle ran its command");
}

fn lighthubert(dir: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lighthubert"))
        .args(args.iter().map(|a| a.as_ref()))
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", std::env::var_os("XDG_RUNTIME_DIR").unwrap_or_else(|| dir.into()))
        .output()
        .expect("run lighthubert")
}

#[test]
fn every_case_through_the_program() {
    let dir = TempDir::new().unwrap();
    let clip = corpus_dir().join("audio/pcm16-22050hz-2ch.wav");
    for case in cases() {
        let out = dir.path().join(format!("{}.npy", case.name));
        let o = match case.kind.as_str() {
            "checkpoint" => lighthubert(dir.path(), &[&"extract", &"--checkpoint", &case.file, &clip, &"--out", &out]),
            "audio" => lighthubert(dir.path(), &[&"extract", &case.file, &"--out", &out]),
            _ => lighthubert(dir.path(), &[&"extract", &"--subnet", &case.file, &clip, &"--out", &out]),
        };
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!err.contains("panicked"), "{}: {err}", case.name);
        if case.expect == "ok" {
            assert!(o.status.success(), "{}: {err}", case.name);
            assert!(out.is_file(), "{}", case.name);
            continue;
        }
        assert!(!o.status.success(), "{}: succeeded", case.name);
        assert_eq!(err.lines().count(), 1, "{}: not one line:\n{err}", case.name);
        assert!(err.starts_with("error: "), "{}: {err}", case.name);
        // The program names the file, or for a subnet file, the file and the field.
        assert!(err.contains(&case.name), "{}: the error does not name the file: {err}", case.name);
        assert!(!out.exists(), "{}: an output was written", case.name);
    }
    assert!(!dir.path().join("lighthubert-corpus-pwned").exists(), "a hostile pickle ran its command");
}

/// The in-memory WAV decoder (the bundled clip's, and the fuzz target's) must agree with the
/// file decoder on every audio case: the same samples, or both an error.
#[test]
fn the_in_memory_wav_decoder_agrees_with_the_file_decoder() {
    for case in cases().into_iter().filter(|c| c.kind == "audio") {
        let bytes = std::fs::read(&case.file).unwrap();
        let from_bytes = audio::read_wav_bytes(&bytes, &case.file);
        match (audio::read_mono(&case.file), from_bytes) {
            (Ok(a), Ok(b)) => assert_eq!(a.samples, b.samples, "{}", case.name),
            (Err(_), Err(e)) => assert!(e.to_string().contains(&case.name), "{}: {e}", case.name),
            (a, b) => panic!("{}: file decoder {:?}, bytes decoder {:?}", case.name, a.map(|x| x.samples.len()), b.map(|x| x.samples.len())),
        }
    }
}

/// A ten-minute file (made here: 19 MB is too much for the repository) decodes whole and the
/// model plans to run it in one piece within this device's binding limit, chunking the conv
/// extractor. The forward itself takes ten minutes on lavapipe and is the opt-in test in
/// `kernels-tests/tests/long_audio.rs`.
#[test]
fn a_ten_minute_file_decodes_and_fits_the_device() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("ten-minutes.wav");
    let spec = hound::WavSpec { channels: 2, sample_rate: 16_000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    let samples = 16_000 * 600;
    for i in 0..samples {
        let v = (8000.0 * (i as f32 * 0.0625).sin()) as i16;
        w.write_sample(v).unwrap();
        w.write_sample(v / 2).unwrap();
    }
    w.finalize().unwrap();

    let ctx = std::sync::Arc::new(GpuContext::new(&AdapterChoice::from_env()).unwrap());
    let ckpt = Checkpoint::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels-tests/fixtures/tiny-default.pt")).unwrap();
    let model = LightHubert::load(ctx, &ckpt).unwrap();
    let (info, wave) = audio::read_16k(&path, &mut To16k::new(), 400).unwrap();
    assert_eq!((info.rate, info.channels, wave.len()), (16_000, 2, samples));
    assert!((wave[1000] - 0.75 * 8000.0 / 32768.0 * (1000f32 * 0.0625).sin()).abs() < 1e-4, "channels are averaged");
    let subnet = model.supernet().preset(&lighthubert::Preset::Default);
    let conv0_bytes = ((samples - 10) / 5 + 1) as u64 * model.supernet().dims.conv_layers[0].channels as u64 * 4;
    assert!(conv0_bytes > model.activation_limit(), "ten minutes must need chunking on this device");
    assert!(model.fits(&subnet, 1, wave.len()), "ten minutes must run as one utterance");
}
