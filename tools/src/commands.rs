//! What each command does: `run` sends each to its module; `info`, `subnet` and `adapters`
//! are short enough to live here.

use std::io::Write;
use std::path::Path;

use lighthubert::gpu::{AdapterChoice, GpuError};
use lighthubert::model::min_samples;
use lighthubert::{Preset, SearchSpace};

use crate::cli::{Cli, Command, ExtractArgs, Space, SubnetArgs};
use crate::error::CliError;
use crate::setup::{frame_rate, load_checkpoint, resolve_subnet, subnet_summary, supernet_of};

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
