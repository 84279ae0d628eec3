//! The demo summary: `lighthubert`, or `extract` with no INPUT and no --out. It runs the
//! bundled clip through a checkpoint (the bundled one by default) and prints what happened.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use lighthubert::model::min_samples;
use lighthubert::{ExtractOptions, LightHubert};
use lighthubert_corpus::audio;
use lighthubert_corpus::audio::resample::{TARGET_RATE, To16k};

use crate::bundled;
use crate::cli::ExtractArgs;
use crate::error::CliError;
use crate::setup::{frame_rate, load_checkpoint, open_gpu, resolve_layers, resolve_subnet, subnet_summary, supernet_of};

/// Prints a line on stdout; a closed pipe (`| head`) is not an error worth a panic.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

fn seconds(samples: usize) -> f64 {
    samples as f64 / TARGET_RATE as f64
}

const RANDOM_WEIGHTS_BANNER: &str = "\
################################################################################
#  DEMO: the bundled checkpoint has RANDOM weights. The numbers below          #
#  show the engine running on your GPU; they are NOT speech features.          #
#  For features, pass a released checkpoint: --checkpoint lighthubert_small.pt #
#  (https://huggingface.co/mechanicalsea/lighthubert)                          #
################################################################################";

pub fn demo(args: &ExtractArgs) -> Result<(), CliError> {
    let src = load_checkpoint(args.checkpoint.as_deref())?;
    let supernet = supernet_of(&src)?;
    let subnet = resolve_subnet(&supernet, &args.subnet)?;
    let (layers, _) = resolve_layers(&args.layers, &subnet)?;
    let clip_label = PathBuf::from(format!("<bundled>/{}", bundled::CLIP_NAME));
    let clip = audio::read_wav_bytes(bundled::CLIP, &clip_label)?;
    let wave = To16k::new().resample(&clip.samples, clip.info.rate).map_err(|e| CliError::audio(&clip_label, e.to_string()))?;
    audio::check_length(&clip_label, wave.len(), min_samples(&supernet.dims))?;

    let ctx = open_gpu()?;
    let t0 = Instant::now();
    let model = LightHubert::load_with(ctx.clone(), &src.ckpt, crate::cli::precision(args.weights, args.math)).map_err(|e| CliError::model(&src.label, e))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let normalize = args.normalize().unwrap_or_else(|| model.default_normalize());
    let options = ExtractOptions { normalize: Some(normalize), layers };
    let label = |source| CliError::Extract { label: clip_label.display().to_string(), source };
    let t1 = Instant::now();
    let out = model.extract(&subnet, &[&wave], &options).map_err(label)?;
    let cold_ms = t1.elapsed().as_secs_f64() * 1e3;
    let t2 = Instant::now();
    model.extract(&subnet, &[&wave], &options).map_err(label)?;
    let warm_ms = t2.elapsed().as_secs_f64() * 1e3;
    let Some(f) = out.into_iter().next() else {
        return Err(CliError::Usage("the engine returned no features".into()));
    };

    if src.bundled {
        say!("{RANDOM_WEIGHTS_BANNER}");
    }
    let d = &supernet.dims;
    say!("adapter     {}", ctx.describe());
    say!("checkpoint  {}: {} space, {} layers of width {}", src.label, supernet.space.name, d.layers, d.embed);
    say!("subnet      {}", subnet.to_json());
    say!("            {}", subnet_summary(&supernet, &subnet));
    say!("audio       {} ({:.2} s at 16 kHz, normalize {normalize})", clip_label.display(), seconds(wave.len()));
    say!(
        "output      {} hidden states of {} frames x {} channels ({} frames/s)",
        f.states.len(),
        f.frames,
        f.embed,
        frame_rate(&supernet)
    );
    say!(
        "time        load {load_ms:.0} ms, first extract {cold_ms:.0} ms, second {warm_ms:.0} ms ({:.1}x real time)",
        seconds(wave.len()) * 1e3 / warm_ms.max(1e-9)
    );
    for (i, s) in f.layer_indices.iter().zip(&f.states) {
        let n = s.len().max(1) as f64;
        let mean = s.iter().map(|&v| v as f64).sum::<f64>() / n;
        let rms = (s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n).sqrt();
        let what = if *i == 0 { "post_extract_proj" } else { "layer" };
        say!("  hidden_state.{i:<2} {what:<17} mean {mean:+.4}  rms {rms:.4}");
    }
    if src.bundled {
        say!("(RANDOM weights: see above. Try `lighthubert extract --help`.)");
    }
    Ok(())
}
