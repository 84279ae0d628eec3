//! The steps every command shares: load the checkpoint (or the bundled one), build its
//! supernet, resolve a subnet and a layer list, open the GPU, and describe a subnet.

use std::path::Path;
use std::sync::Arc;

use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::{AdapterChoice, GpuContext};
use lighthubert::supernet::Supernet;
use lighthubert::{LayerSelection, Preset, Subnet};

use lighthubert_corpus::audio::resample::TARGET_RATE;

use crate::bundled;
use crate::error::CliError;

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
