//! `lighthubert export`: one subnet as a model of its own. `--format hf` writes the folder
//! transformers' `HubertModel.from_pretrained` loads.

use std::collections::HashMap;
use std::io::Write;

use half::f16;
use lighthubert::export::{ExportError, hf_config, hf_tensors};
use lighthubert_corpus::output::{sort_header, write_atomic};
use lighthubert_corpus::run::CheckpointId;
use safetensors::tensor::{Dtype as StDtype, TensorView};

use crate::bundled;
use crate::cli::{ExportArgs, ExportFormat, Weights};
use crate::commands::{load_checkpoint, resolve_subnet, subnet_summary, supernet_of};
use crate::error::CliError;

pub fn export(args: ExportArgs) -> Result<(), CliError> {
    let src = load_checkpoint(args.checkpoint.as_deref())?;
    let supernet = supernet_of(&src)?;
    let subnet = resolve_subnet(&supernet, &args.subnet)?;
    let export_err = |source: ExportError| CliError::Export { label: args.subnet.clone(), source };
    lighthubert::export::check_hf_expressible(&subnet).map_err(export_err)?;

    // The folder: usable, and holding no earlier export unless --force.
    let out = &args.out;
    if out.exists() && !out.is_dir() {
        return Err(CliError::output(out, "exists and is not a folder (--format hf writes a folder)"));
    }
    std::fs::create_dir_all(out).map_err(|e| CliError::io(out, e))?;
    tempfile::Builder::new()
        .prefix(".lighthubert-write-test.")
        .tempfile_in(out)
        .map_err(|e| CliError::output(out, format!("cannot write here: {e}")))?;
    let (config_path, weights_path) = (out.join("config.json"), out.join("model.safetensors"));
    if !args.force {
        for p in [&config_path, &weights_path] {
            if p.exists() {
                return Err(CliError::OutputExists(p.clone()));
            }
        }
    }

    let tensors = hf_tensors(&src.ckpt, &supernet, &subnet).map_err(export_err)?;
    let checkpoint = match &args.checkpoint {
        Some(p) => CheckpointId::of_file(p)?,
        None => CheckpointId::of_bytes(bundled::CHECKPOINT_NAME, bundled::CHECKPOINT),
    };
    // One format so far; `--format` is required so that a later default cannot change what a
    // script that names it gets.
    let ExportFormat::Hf = args.format;
    let (dtype, width) = match args.weights {
        Weights::F32 => (StDtype::F32, 4),
        Weights::F16 => (StDtype::F16, 2),
    };
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, t)| {
            let data = match args.weights {
                Weights::F32 => t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                Weights::F16 => t.values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
            };
            (name, t.shape, data)
        })
        .collect();
    let parameters: usize = bytes.iter().map(|(_, s, _)| s.iter().product::<usize>()).sum();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(dtype, shape.clone(), data).map(|v| (name.clone(), v)).map_err(|e| CliError::output(&weights_path, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = HashMap::from([
        // transformers reads a safetensors file only when its format says PyTorch.
        ("format".to_string(), "pt".to_string()),
        ("lighthubert_subnet".to_string(), subnet.to_json()),
        ("lighthubert_checkpoint".to_string(), checkpoint.name.clone()),
        ("lighthubert_checkpoint_size".to_string(), checkpoint.size.to_string()),
        ("lighthubert_checkpoint_sha256".to_string(), checkpoint.sha256.clone()),
    ]);
    let mut file = safetensors::serialize(views, Some(metadata)).map_err(|e| CliError::output(&weights_path, e.to_string()))?;
    sort_header(&mut file).map_err(|e| CliError::io(&weights_path, e))?;
    let config = serde_json::to_string_pretty(&hf_config(&supernet, &subnet)).unwrap_or_default();
    write_atomic(&weights_path, args.force, |f| f.write_all(&file))?;
    write_atomic(&config_path, args.force, |f| f.write_all(format!("{config}\n").as_bytes()))?;

    let _ = writeln!(
        std::io::stdout(),
        "{}: HubertModel of subnet {}\n  {parameters} parameters stored in {} ({:.1} MB: config.json, model.safetensors){}",
        out.display(),
        subnet_summary(&supernet, &subnet),
        if width == 4 { "f32" } else { "f16" },
        file.len() as f64 / 1e6,
        if src.bundled { "\n  NOTE: the bundled demo checkpoint has RANDOM weights" } else { "" },
    );
    Ok(())
}
