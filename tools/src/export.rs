//! `lighthubert export`: one subnet as a model of its own. By default one `.safetensors` file
//! that every command opens like a checkpoint; `--format hf` writes the folder transformers'
//! `HubertModel.from_pretrained` loads.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use lighthubert::checkpoint::Origin;
use lighthubert::export::{hf_config, hf_tensors, safetensors_file, subnet_file, ExportError, FileWeights};
use lighthubert::{Subnet, Supernet};
use lighthubert_corpus::output::write_atomic;
use lighthubert_corpus::run::CheckpointId;

use crate::bundled;
use crate::cli::{ExportArgs, ExportFormat, Weights};
use crate::setup::{load_checkpoint, resolve_subnet, subnet_summary, supernet_of, Source};
use crate::error::CliError;

pub fn export(args: ExportArgs) -> Result<(), CliError> {
    let src = load_checkpoint(args.checkpoint.as_deref())?;
    let supernet = supernet_of(&src)?;
    let subnet = resolve_subnet(&supernet, &args.subnet)?;
    let export_err = |source: ExportError| CliError::Export { label: args.subnet.clone(), source };
    let weights = match args.weights {
        Weights::F32 => FileWeights::F32,
        Weights::F16 => FileWeights::F16,
    };
    match args.format {
        ExportFormat::Subnet => {
            check_file_out(&args.out, args.force)?;
            let file = subnet_file(&src.ckpt, &supernet, &subnet, &origin(&args, &src)?, weights).map_err(export_err)?;
            write_atomic(&args.out, args.force, |f| f.write_all(&file))?;
            let parameters = supernet.parameter_count(&subnet);
            say(&src, format!(
                "{}: subnet {}\n  {parameters} parameters, {} ({:.1} MB); opens wherever a checkpoint does (--checkpoint {})",
                args.out.display(),
                subnet_summary(&supernet, &subnet),
                stored_as(weights),
                file.len() as f64 / 1e6,
                args.out.display(),
            ));
        }
        ExportFormat::Hf => {
            lighthubert::export::check_hf_expressible(&subnet).map_err(export_err)?;
            let (config_path, weights_path) = check_folder_out(&args.out, args.force)?;
            let file = hf_file(&src, &supernet, &subnet, weights, &origin(&args, &src)?).map_err(export_err)?;
            let config = serde_json::to_string_pretty(&hf_config(&supernet, &subnet)).unwrap_or_default();
            write_atomic(&weights_path, args.force, |f| f.write_all(&file))?;
            write_atomic(&config_path, args.force, |f| f.write_all(format!("{config}\n").as_bytes()))?;
            say(&src, format!(
                "{}: HubertModel of subnet {}\n  {} parameters stored in {} ({:.1} MB: config.json, model.safetensors)",
                args.out.display(),
                subnet_summary(&supernet, &subnet),
                supernet.parameter_count(&subnet),
                stored_as(weights),
                file.len() as f64 / 1e6,
            ));
        }
    }
    Ok(())
}

fn stored_as(weights: FileWeights) -> &'static str {
    match weights {
        FileWeights::F32 => "f32",
        FileWeights::F16 => "f16 weight matrices",
    }
}

fn say(src: &Source, text: String) {
    let note = if src.bundled { "\n  NOTE: the bundled demo checkpoint has RANDOM weights" } else { "" };
    let _ = writeln!(std::io::stdout(), "{text}{note}");
}

/// The checkpoint the export was cut from. Re-exporting an exported file keeps its origin.
fn origin(args: &ExportArgs, src: &Source) -> Result<Origin, CliError> {
    if let Some(o) = &src.ckpt.origin {
        return Ok(o.clone());
    }
    let id = match &args.checkpoint {
        Some(p) => CheckpointId::of_file(p)?,
        None => CheckpointId::of_bytes(bundled::CHECKPOINT_NAME, bundled::CHECKPOINT),
    };
    Ok(Origin { checkpoint: id.name, size: id.size, sha256: id.sha256 })
}

/// A file to write: not a folder, not an existing file unless `force`, and in a folder that
/// takes files. Checked before anything is computed, so a refusal leaves nothing behind.
fn check_file_out(out: &Path, force: bool) -> Result<(), CliError> {
    if out.is_dir() {
        return Err(CliError::output(out, "is a folder (the default --format subnet writes one .safetensors file; --format hf writes a folder)"));
    }
    if out.exists() && !force {
        return Err(CliError::OutputExists(out.to_path_buf()));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(CliError::output(out, "its folder does not exist"));
    }
    tempfile::Builder::new()
        .prefix(".lighthubert-write-test.")
        .tempfile_in(dir)
        .map_err(|e| CliError::output(out, format!("cannot write in its folder: {e}")))?;
    Ok(())
}

/// The folder of an HF export: usable, and holding no earlier export unless `force`.
fn check_folder_out(out: &Path, force: bool) -> Result<(std::path::PathBuf, std::path::PathBuf), CliError> {
    if out.exists() && !out.is_dir() {
        return Err(CliError::output(out, "exists and is not a folder (--format hf writes a folder)"));
    }
    std::fs::create_dir_all(out).map_err(|e| CliError::io(out, e))?;
    tempfile::Builder::new()
        .prefix(".lighthubert-write-test.")
        .tempfile_in(out)
        .map_err(|e| CliError::output(out, format!("cannot write here: {e}")))?;
    let (config_path, weights_path) = (out.join("config.json"), out.join("model.safetensors"));
    if !force {
        for p in [&config_path, &weights_path] {
            if p.exists() {
                return Err(CliError::OutputExists(p.clone()));
            }
        }
    }
    Ok((config_path, weights_path))
}

/// `model.safetensors` of an HF export: every tensor in `weights` (transformers loads a
/// float16 file as one dtype), with the subnet and its origin in the metadata.
fn hf_file(src: &Source, supernet: &Supernet, subnet: &Subnet, weights: FileWeights, origin: &Origin) -> Result<Vec<u8>, ExportError> {
    let dtype = match weights {
        FileWeights::F32 => safetensors::Dtype::F32,
        FileWeights::F16 => safetensors::Dtype::F16,
    };
    let tensors: BTreeMap<_, _> = hf_tensors(&src.ckpt, supernet, subnet)?.into_iter().map(|(n, t)| (n, (dtype, t))).collect();
    let metadata = [
        // transformers reads a safetensors file only when its format says PyTorch.
        ("format", "pt".to_string()),
        ("lighthubert_subnet", subnet.to_json()),
        ("lighthubert_checkpoint", origin.checkpoint.clone()),
        ("lighthubert_checkpoint_size", origin.size.to_string()),
        ("lighthubert_checkpoint_sha256", origin.sha256.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    safetensors_file(&tensors, metadata)
}
