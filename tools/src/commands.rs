//! What each command does.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::{AdapterChoice, GpuContext};
use lighthubert::model::min_samples;
use lighthubert::supernet::Supernet;
use lighthubert::{ExtractOptions, LayerSelection, LightHubert, Preset, SearchSpace, Subnet};

use crate::audio::{self, AudioInfo};
use crate::bundled;
use crate::cli::{Cli, Command, ExtractArgs, Space, SubnetArgs};
use crate::error::CliError;
use crate::output::{self, RunInfo};
use crate::resample::{TARGET_RATE, To16k};

/// Prints a line on stdout; a closed pipe (`| head`) is not an error worth a panic.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => extract(ExtractArgs::demo()),
        Some(Command::Extract(args)) => extract(args),
        Some(Command::Info { file }) => info(&file),
        Some(Command::Subnet(args)) => subnet(args),
        Some(Command::Profile(args)) => crate::profile::profile(args),
        Some(Command::Search(args)) => crate::search::search(args),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared steps

/// A checkpoint and how to name it.
pub struct Source {
    pub ckpt: Checkpoint,
    /// The file as given, or a description of the bundled one.
    pub label: String,
    pub bundled: bool,
}

/// Reads `--checkpoint FILE`, or the bundled demo checkpoint when none is given.
pub fn load_checkpoint(path: Option<&Path>) -> Result<Source, CliError> {
    match path {
        Some(p) => Ok(Source { ckpt: Checkpoint::open(p)?, label: p.display().to_string(), bundled: false }),
        None => Ok(Source {
            ckpt: Checkpoint::from_bytes(bundled::CHECKPOINT, bundled::checkpoint_path())?,
            label: bundled::checkpoint_label(),
            bundled: true,
        }),
    }
}

/// The checkpoint's supernet (its widths and search space), from its config alone.
fn supernet_of(src: &Source) -> Result<Supernet, CliError> {
    Supernet::from_config(&src.ckpt.config).map_err(|source| CliError::Subnet { label: src.label.clone(), source })
}

/// `--subnet`: an existing file is read as the authors' JSON; anything else is a preset.
pub fn resolve_subnet(supernet: &Supernet, spec: &str) -> Result<Subnet, CliError> {
    let path = Path::new(spec);
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| CliError::io(path, e))?;
        let label = path.display().to_string();
        let subnet = Subnet::from_json(&text).map_err(|source| CliError::Subnet { label: label.clone(), source })?;
        supernet.validate(&subnet).map_err(|source| CliError::Subnet { label, source })?;
        return Ok(subnet);
    }
    // A name that can only be a file is reported as a missing file, not as an unknown preset.
    let looks_like_a_file = spec.ends_with(".json") || spec.contains(std::path::MAIN_SEPARATOR) || spec.contains('/');
    if looks_like_a_file {
        let err = std::fs::metadata(path)
            .err()
            .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
        return Err(CliError::io(path, err));
    }
    supernet.subnet(spec).map_err(|source| CliError::Subnet { label: spec.to_string(), source })
}

/// `--layers`, checked against the subnet's hidden states; repeats are refused.
fn resolve_layers(spec: &str, subnet: &Subnet) -> Result<(LayerSelection, Vec<usize>), CliError> {
    let layers_err = |source| CliError::Layers { spec: spec.to_string(), source };
    let selection: LayerSelection = spec.parse().map_err(layers_err)?;
    let indices = selection.resolve(subnet.layer_num + 1).map_err(layers_err)?;
    for (k, i) in indices.iter().enumerate() {
        if indices[..k].contains(i) {
            return Err(CliError::Usage(format!("--layers {spec}: index {i} is named twice")));
        }
    }
    Ok((selection, indices))
}

pub fn open_gpu() -> Result<Arc<GpuContext>, CliError> {
    Ok(Arc::new(GpuContext::new(&AdapterChoice::from_env())?))
}

/// Frames per second of the features: 16 kHz over the extractor's total stride.
fn frame_rate(supernet: &Supernet) -> String {
    let stride: usize = supernet.dims.conv_layers.iter().map(|l| l.stride).product();
    let rate = TARGET_RATE as f64 / stride.max(1) as f64;
    if rate.fract() == 0.0 { format!("{rate}") } else { format!("{rate:.4}") }
}

fn subnet_summary(supernet: &Supernet, subnet: &Subnet) -> String {
    let heads = summarise(&subnet.heads_num);
    let ffn = summarise(&subnet.ffn_embed);
    format!(
        "embed {}, {} layers, heads {heads}, ffn {ffn}: {:.2} M parameters",
        subnet.embed_dim,
        subnet.layer_num,
        supernet.parameter_count(subnet) as f64 / 1e6
    )
}

/// `6` when every layer agrees, else `4-8`.
fn summarise(v: &[usize]) -> String {
    let (lo, hi) = (v.iter().min().copied().unwrap_or(0), v.iter().max().copied().unwrap_or(0));
    if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") }
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

// ---------------------------------------------------------------------------------------------
// extract

pub fn extract(args: ExtractArgs) -> Result<(), CliError> {
    if args.inputs.is_empty() {
        if let Some(out) = &args.out {
            return Err(CliError::Usage(format!("--out {}: no INPUT audio files given", out.display())));
        }
        return demo(&args);
    }
    let Some(out) = args.out.clone() else {
        return Err(CliError::Usage(format!(
            "{}: where should the features go? pass --out FILE.npy|FILE.safetensors|DIR",
            args.inputs[0].display()
        )));
    };

    // Everything that can be checked is checked before any work: outputs, inputs, checkpoint,
    // subnet, layers.
    let plan = output::plan(&args.inputs, &out, args.format, args.force)?;
    let infos: Vec<AudioInfo> = args.inputs.iter().map(|p| audio::probe(p)).collect::<Result<_, _>>()?;
    let src = load_checkpoint(args.checkpoint.as_deref())?;
    let supernet = supernet_of(&src)?;
    let subnet = resolve_subnet(&supernet, &args.subnet)?;
    let (layers, _) = resolve_layers(&args.layers, &subnet)?;
    let min = min_samples(&supernet.dims);
    for (path, info) in args.inputs.iter().zip(&infos) {
        if let Some(n) = info.frames_16k() {
            audio::check_length(path, n as usize, min)?;
        }
    }

    let ctx = open_gpu()?;
    let t_load = Instant::now();
    let model = LightHubert::load_with(ctx.clone(), &src.ckpt, crate::cli::precision(args.weights, args.math)).map_err(|e| CliError::model(&src.label, e))?;
    let load_time = t_load.elapsed();
    let Source { ckpt, label: ckpt_label, bundled } = src;
    drop(ckpt); // the weights live on the GPU now
    let normalize = args.normalize().unwrap_or_else(|| model.default_normalize());
    let options = ExtractOptions { normalize: Some(normalize), layers };
    let run = RunInfo {
        subnet_json: subnet.to_json(),
        normalize,
        checkpoint: ckpt_label.clone(),
        frame_rate: frame_rate(&supernet),
        weights: model.weight_precision().name().to_string(),
        math: model.precision().math.name().to_string(),
    };

    if bundled {
        say!("NOTE: no --checkpoint: using the {}; these features mean nothing", bundled::checkpoint_label());
    }
    say!("checkpoint {ckpt_label}, loaded in {:.2} s", load_time.as_secs_f64());
    say!("subnet     {}", subnet_summary(&supernet, &subnet));
    say!("adapter    {}", ctx.describe());
    say!("precision  {} weights, {} arithmetic", model.weight_precision().name(), model.precision().math.name());
    say!("normalize  {normalize}; {} file(s) in batches of {}", args.inputs.len(), args.batch_size);

    // Longest first, so padding stays small within a batch and memory peaks early.
    let mut order: Vec<usize> = (0..args.inputs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(infos[i].frames_16k().unwrap_or(u64::MAX)));

    let total_audio: f64 = infos.iter().filter_map(AudioInfo::seconds).sum();
    let progress = progress_bar(args.inputs.len(), total_audio);
    let created_dir = match &plan.create_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| CliError::io(d, e))?;
            Some(d.clone())
        }
        None => None,
    };

    let started = Instant::now();
    let job = Job {
        args: &args,
        plan: &plan,
        model: &model,
        subnet: &subnet,
        options: &options,
        run: &run,
        min,
        total_audio,
    };
    let result = job.run(&order, &progress);
    progress.finish_and_clear();
    match result {
        Ok(audio_seconds) => {
            let wall = started.elapsed().as_secs_f64();
            say!(
                "done: {} file(s), {audio_seconds:.2} s of audio in {wall:.2} s ({:.1} s of audio per second)",
                args.inputs.len(),
                audio_seconds / wall.max(1e-9)
            );
            Ok(())
        }
        Err(e) => {
            if let Some(d) = created_dir {
                let _ = std::fs::remove_dir(d); // only if still empty
            }
            Err(e)
        }
    }
}

/// Everything the batches of one `extract` run share.
struct Job<'a> {
    args: &'a ExtractArgs,
    plan: &'a output::Plan,
    model: &'a LightHubert,
    subnet: &'a Subnet,
    options: &'a ExtractOptions,
    run: &'a RunInfo,
    /// Fewest 16 kHz samples the model takes.
    min: usize,
    /// Seconds of audio in all inputs, as far as their headers tell.
    total_audio: f64,
}

impl Job<'_> {
    /// Decodes, extracts and writes the inputs `order` names, `batch_size` at a time.
    /// Returns the seconds of audio done.
    fn run(&self, order: &[usize], progress: &ProgressBar) -> Result<f64, CliError> {
        let Job { args, plan, model, subnet, options, run, min, total_audio } = *self;
        let mut resampler = To16k::new();
        let mut audio_seconds = 0.0;
        let started = Instant::now();
        for batch in order.chunks(args.batch_size as usize) {
            let mut waves = Vec::with_capacity(batch.len());
            let mut infos = Vec::with_capacity(batch.len());
            for &i in batch {
                let (info, wave) = audio::read_16k(&args.inputs[i], &mut resampler, min)?;
                infos.push(info);
                waves.push(wave);
            }
            let refs: Vec<&[f32]> = waves.iter().map(Vec::as_slice).collect();
            let features = model.extract(subnet, &refs, options).map_err(|source| CliError::Extract {
                label: batch.iter().map(|&i| args.inputs[i].display().to_string()).collect::<Vec<_>>().join(", "),
                source,
            })?;
            for ((&i, f), (info, wave)) in batch.iter().zip(&features).zip(infos.iter().zip(&waves)) {
                let (input, out) = (&args.inputs[i], &plan.outputs[i]);
                output::write_features(out, plan.format, args.force, f, input, run)?;
                audio_seconds += seconds(wave.len());
                progress.inc(1);
                progress.set_message(progress_message(audio_seconds, total_audio, started.elapsed().as_secs_f64()));
                progress.suspend(|| {
                    say!(
                        "{} ({}, {} Hz, {} ch, {:.2} s) -> {} [{} x {} x {}]",
                        input.display(),
                        info.format,
                        info.rate,
                        info.channels,
                        seconds(wave.len()),
                        out.display(),
                        f.states.len(),
                        f.frames,
                        f.embed
                    )
                });
            }
        }
        Ok(audio_seconds)
    }
}

/// A bar on stderr for runs of several files: files done, audio done, audio-seconds per
/// second. Hidden when stderr is not a terminal.
fn progress_bar(files: usize, total_audio: f64) -> ProgressBar {
    if files < 2 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(files as u64);
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} {bar:30} {pos}/{len} files, {msg}") {
        bar.set_style(style);
    }
    bar.set_message(progress_message(0.0, total_audio, 0.0));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn progress_message(done: f64, total: f64, elapsed: f64) -> String {
    let rate = if elapsed > 0.0 { format!("{:.1}", done / elapsed) } else { "-".into() };
    format!("{done:.1}/{total:.1} s of audio, {rate} audio-s/s")
}

// ---------------------------------------------------------------------------------------------
// The demo summary: `lighthubert`, or `extract` with no INPUT and no --out

fn demo(args: &ExtractArgs) -> Result<(), CliError> {
    let src = load_checkpoint(args.checkpoint.as_deref())?;
    let supernet = supernet_of(&src)?;
    let subnet = resolve_subnet(&supernet, &args.subnet)?;
    let (layers, _) = resolve_layers(&args.layers, &subnet)?;
    let clip_label = PathBuf::from(format!("<bundled>/{}", bundled::CLIP_NAME));
    let clip = audio::read_wav_bytes(bundled::CLIP, &clip_label)?;
    let wave = To16k::new().resample(&clip.samples, clip.info.rate).map_err(|e| CliError::audio(&clip_label, e))?;
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

// ---------------------------------------------------------------------------------------------
// info

fn info(path: &Path) -> Result<(), CliError> {
    let src = load_checkpoint(Some(path))?;
    let supernet = supernet_of(&src)?;
    let (cfg, d, space) = (&src.ckpt.config, &supernet.dims, &supernet.space);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    say!("checkpoint   {} ({:.1} MB)", path.display(), size as f64 / 1e6);
    say!("model        {} (pruner_supernet {})", cfg.name, cfg.pruner_supernet.as_deref().unwrap_or("not set"));
    let convs: Vec<String> =
        d.conv_layers.iter().map(|l| format!("({},{},{})", l.channels, l.kernel, l.stride)).collect();
    say!(
        "extractor    {:?}, {} conv blocks {} (channels,kernel,stride), bias {}",
        d.extractor_mode,
        d.conv_layers.len(),
        compress(&convs),
        d.conv_bias
    );
    say!(
        "             {} frames/s; one frame needs {} samples ({:.1} ms)",
        frame_rate(&supernet),
        min_samples(d),
        min_samples(d) as f64 / 16.0
    );
    say!(
        "supernet     {} layers, embed {}, attention {} ({} heads of 64), ffn {} ({} chunks of {})",
        d.layers,
        d.embed,
        d.attention,
        d.attention / 64,
        d.ffn,
        d.ffn_chunks,
        d.ffn_chunk
    );
    say!("pos conv     kernel {}, {} groups", d.pos_conv_kernel, d.pos_conv_groups);
    say!(
        "normalize    {}",
        match src.ckpt.task_normalize {
            Some(b) => format!("{b} (cfg.task.normalize)"),
            None => "not recorded (extract defaults to off)".into(),
        }
    );
    say!(
        "search space {}: embed_dim {:?}, heads_num {:?}, ffn_ratio {:?}, layer_num {:?}",
        space.name,
        space.embed_dim,
        space.heads_num,
        space.ffn_ratio,
        space.layer_num
    );
    for (name, preset) in [("default", Preset::Default), ("min", Preset::Min), ("max", Preset::Max)] {
        let s = supernet.preset(&preset);
        let note = if name == "default" && supernet.default_preset != Preset::Default {
            format!(" (= {:?} for this checkpoint kind)", supernet.default_preset).to_lowercase()
        } else {
            String::new()
        };
        say!("{:<12} {}{note}", format!("  {name}"), subnet_summary(&supernet, &s));
        say!("             {}", s.to_json());
    }
    let dtypes: Vec<String> = src.ckpt.dtype_summary().iter().map(|(t, n)| format!("{t} x {n}")).collect();
    say!(
        "tensors      {} read ({} values; stored as {}), {} training-only skipped",
        src.ckpt.keys().count(),
        src.ckpt.total_values(),
        dtypes.join(", "),
        src.ckpt.ignored_keys().count()
    );
    Ok(())
}

/// `a a a b` -> `a x3 b`.
fn compress(items: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        while j < items.len() && items[j] == items[i] {
            j += 1;
        }
        out.push(if j - i > 1 { format!("{}x{}", items[i], j - i) } else { items[i].clone() });
        i = j;
    }
    out.join(" ")
}

// ---------------------------------------------------------------------------------------------
// subnet

fn subnet(args: SubnetArgs) -> Result<(), CliError> {
    let subnet = match (&args.checkpoint, args.space) {
        (Some(path), _) => {
            let src = load_checkpoint(Some(path))?;
            resolve_subnet(&supernet_of(&src)?, &args.preset)?
        }
        (None, Space::Demo) => {
            let src = load_checkpoint(None)?;
            resolve_subnet(&supernet_of(&src)?, &args.preset)?
        }
        (None, space) => {
            let preset: Preset = args.preset.parse().map_err(|source| {
                if Path::new(&args.preset).exists() {
                    CliError::Usage(format!(
                        "{}: a subnet file is checked against a checkpoint: pass --checkpoint FILE",
                        args.preset
                    ))
                } else {
                    CliError::Subnet { label: args.preset.clone(), source }
                }
            })?;
            let space = if space == Space::Base { SearchSpace::base() } else { SearchSpace::small() };
            space.preset(&preset)
        }
    };
    let json = if args.pretty {
        serde_json::to_string_pretty(&subnet).unwrap_or_else(|_| subnet.to_json())
    } else {
        subnet.to_json()
    };
    say!("{json}");
    Ok(())
}
