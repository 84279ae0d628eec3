//! What each command does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::{AdapterChoice, GpuContext, GpuError};
use lighthubert::model::min_samples;
use lighthubert::supernet::Supernet;
use lighthubert::{ExtractOptions, LayerSelection, LightHubert, Preset, SearchSpace, Subnet};

use lighthubert_corpus::audio;
use crate::bundled;
use crate::cli::{Cli, Command, ExtractArgs, Space, SubnetArgs};
use crate::error::CliError;
use lighthubert_corpus::audio::resample::{TARGET_RATE, To16k};

/// Prints a line on stdout; a closed pipe (`| head`) is not an error worth a panic.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => crate::extract::extract(ExtractArgs::demo()),
        Some(Command::Extract(args)) => crate::extract::extract(args),
        Some(Command::Info { file }) => info(&file),
        Some(Command::Subnet(args)) => subnet(args),
        Some(Command::Profile(args)) => crate::profile::profile(args),
        Some(Command::Search(args)) => crate::search::search(args),
        Some(Command::Adapters) => adapters(),
        Some(Command::Export(args)) => crate::export::export(args),
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
pub fn supernet_of(src: &Source) -> Result<Supernet, CliError> {
    Supernet::from_config(&src.ckpt.config).map_err(|source| CliError::Subnet { label: src.label.clone(), source })
}

/// `--subnet`: a preset name (`default`, `min`, `max`, `random:SEED`) is always the preset,
/// even where a file of that name exists (`./min` names the file); anything else is a JSON
/// file in the authors' format.
pub fn resolve_subnet(supernet: &Supernet, spec: &str) -> Result<Subnet, CliError> {
    if spec.parse::<Preset>().is_ok() {
        return supernet.subnet(spec).map_err(|source| CliError::Subnet { label: spec.to_string(), source });
    }
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
pub fn resolve_layers(spec: &str, subnet: &Subnet) -> Result<(LayerSelection, Vec<usize>), CliError> {
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
pub fn frame_rate(supernet: &Supernet) -> String {
    let stride: usize = supernet.dims.conv_layers.iter().map(|l| l.stride).product();
    let rate = TARGET_RATE as f64 / stride.max(1) as f64;
    if rate.fract() == 0.0 { format!("{rate}") } else { format!("{rate:.4}") }
}

pub fn subnet_summary(supernet: &Supernet, subnet: &Subnet) -> String {
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
// The demo summary: `lighthubert`, or `extract` with no INPUT and no --out

pub fn demo(args: &ExtractArgs) -> Result<(), CliError> {
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
    if let (Some(origin), Some(only)) = (&src.ckpt.origin, &supernet.exported) {
        let values = src.ckpt.total_values() as u64;
        say!(
            "exported     one subnet, {} ({} values stored, {:.2} bytes each)",
            subnet_summary(&supernet, only),
            values,
            size as f64 / values.max(1) as f64
        );
        say!("origin       cut from {} ({} bytes, sha256 {})", origin.checkpoint, origin.size, origin.sha256);
    }
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
    if supernet.exported.is_some() {
        let layers: Vec<String> = d.layer_widths.iter().map(|w| format!("({},{})", w.attention / 64, w.ffn)).collect();
        say!("layers       {} dense layers of width {} (heads,ffn): {}", d.layers, d.embed, compress(&layers));
    } else {
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
    }
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
    let presets: &[(&str, Preset)] = if supernet.exported.is_some() {
        &[("every preset", Preset::Default)]
    } else {
        &[("default", Preset::Default), ("min", Preset::Min), ("max", Preset::Max)]
    };
    for (name, preset) in presets {
        let s = supernet.preset(preset);
        let note = if *name == "default" && supernet.default_preset != Preset::Default {
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
// adapters

fn adapters() -> Result<(), CliError> {
    let choice = AdapterChoice::from_env();
    let lines = lighthubert::gpu::list_adapters(&choice)?;
    if lines.is_empty() {
        return Err(GpuError::NoAdapter { backends: "the backends WGPU_BACKEND allows".into() }.into());
    }
    for line in lines {
        say!("{line}");
    }
    say!("(the first is the default; LIGHTHUBERT_ADAPTER=N picks another, or a part of its name)");
    Ok(())
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
