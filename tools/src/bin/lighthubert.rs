//! `lighthubert`: run a LightHuBERT subnet on audio and print what it computed.
//!
//! With no arguments it runs the bundled demo: the tiny test checkpoint (official format,
//! RANDOM weights, for trying the engine, not for features) on a bundled speech clip.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::{AdapterChoice, GpuContext};
use lighthubert::LightHubert;

const USAGE: &str = "usage: lighthubert [--checkpoint FILE.pt] [--subnet PRESET|JSON-FILE] [--normalize | --no-normalize] [AUDIO.wav]

  PRESET is default, min, max or random:SEED. AUDIO must be 16 kHz WAV (mono, or channels
  averaged). Without --checkpoint, runs the bundled demo checkpoint (random weights).";

struct Args {
    checkpoint: Option<PathBuf>,
    subnet: String,
    normalize: Option<bool>,
    audio: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { checkpoint: None, subnet: "default".into(), normalize: None, audio: None };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--checkpoint" => args.checkpoint = Some(it.next().ok_or("--checkpoint needs a file")?.into()),
            "--subnet" => args.subnet = it.next().ok_or("--subnet needs a preset or a JSON file")?,
            "--normalize" => args.normalize = Some(true),
            "--no-normalize" => args.normalize = Some(false),
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            _ if args.audio.is_some() => return Err(format!("only one audio file is taken\n{USAGE}")),
            _ => args.audio = Some(a.into()),
        }
    }
    Ok(args)
}

fn bundled(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels-tests/fixtures").join(name)
}

fn read_wav(path: &Path) -> Result<Vec<f32>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut reader = hound::WavReader::open(path).map_err(|e| fail(&e))?;
    let spec = reader.spec();
    if spec.sample_rate != 16_000 {
        return Err(fail(&format!("sample rate {} Hz; this build reads 16 kHz audio only", spec.sample_rate)));
    }
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>().map_err(|e| fail(&e))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader.samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect::<Result<_, _>>().map_err(|e| fail(&e))?
        }
    };
    let ch = spec.channels.max(1) as usize;
    Ok(samples.chunks(ch).map(|f| f.iter().sum::<f32>() / ch as f32).collect())
}

fn run(args: Args) -> Result<(), String> {
    let demo = args.checkpoint.is_none();
    let ckpt_path = args.checkpoint.clone().unwrap_or_else(|| bundled("tiny-default.pt"));
    let audio_path = args.audio.clone().unwrap_or_else(|| bundled("speech.wav"));
    let ckpt = Checkpoint::open(&ckpt_path).map_err(|e| e.to_string())?;
    let ctx = Arc::new(GpuContext::new(&AdapterChoice::from_env()).map_err(|e| e.to_string())?);
    let t0 = Instant::now();
    let model = LightHubert::load(ctx.clone(), &ckpt).map_err(|e| format!("{}: {e}", ckpt_path.display()))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let spec = if Path::new(&args.subnet).is_file() {
        std::fs::read_to_string(&args.subnet).map_err(|e| format!("{}: {e}", args.subnet))?
    } else {
        args.subnet.clone()
    };
    let subnet = model.supernet().subnet(&spec).map_err(|e| format!("{}: {e}", args.subnet))?;
    let wave = read_wav(&audio_path)?;
    let normalize = args.normalize.or(model.task_normalize()).unwrap_or(false);
    let t1 = Instant::now();
    let out = model.forward(&subnet, &wave, normalize).map_err(|e| format!("{}: {e}", audio_path.display()))?;
    let cold_ms = t1.elapsed().as_secs_f64() * 1e3;
    let t2 = Instant::now();
    model.forward(&subnet, &wave, normalize).map_err(|e| e.to_string())?;
    let warm_ms = t2.elapsed().as_secs_f64() * 1e3;

    if demo {
        println!("DEMO: bundled test checkpoint with RANDOM weights: the numbers show the engine runs, not speech features.");
    }
    println!("adapter     {}", ctx.describe());
    println!("checkpoint  {} ({} space, {} layers of width {})", ckpt_path.display(), model.supernet().space.name, model.supernet().dims.layers, model.supernet().dims.embed);
    println!("subnet      {} ({} parameters)", subnet.to_json(), model.supernet().parameter_count(&subnet));
    println!("audio       {} ({:.2} s, normalize {normalize})", audio_path.display(), wave.len() as f64 / 16_000.0);
    println!("output      {} hidden states of {} frames x {} channels", out.states.len(), out.frames, out.embed);
    println!("time        load {load_ms:.0} ms, first forward {cold_ms:.0} ms, second {warm_ms:.0} ms");
    for (i, s) in out.states.iter().enumerate() {
        let n = s.len().max(1) as f64;
        let mean = s.iter().map(|&v| v as f64).sum::<f64>() / n;
        let rms = (s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n).sqrt();
        println!("  hidden[{i:2}]  mean {mean:+.4}  rms {rms:.4}");
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
