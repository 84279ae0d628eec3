//! A subnet as a model of its own: its weights cut densely out of the supernet's.
//!
//! What the supernet does by indexing, this does once on the host: rows and columns of each
//! matrix taken by the subnet's widths, the FFN's chunked unit map resolved, the positional
//! conv regrouped and its weight norm resolved (the reference normalises the full tensor,
//! then slices), and the kept layers renumbered from 0. [`subnet_file`] writes the result as
//! a file the engine opens like a checkpoint; [`hf`] names and configures it as transformers'
//! `HubertModel`.

pub mod hf;
mod subnet_file;

use std::collections::{BTreeMap, HashMap};

use half::slice::HalfFloatSliceExt;

pub use hf::{check_hf_expressible, hf_config, hf_tensors};
pub use subnet_file::{subnet_config, subnet_file, subnet_tensors, FileWeights};

use crate::checkpoint::CheckpointError;
use crate::supernet::{Supernet, SubnetError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Subnet(#[from] SubnetError),
    /// The subnet has a shape `HubertModel` cannot configure.
    #[error("transformers' HubertModel cannot express this subnet: {0}")]
    NotExpressible(String),
    /// The tensors could not be laid out as a safetensors file.
    #[error("cannot lay out the safetensors file: {0}")]
    Serialize(String),
}

/// One dense tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Tensor {
    fn new(shape: Vec<usize>, values: Vec<f32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Tensor { shape, values }
    }
}

/// Rows `0..rows` and columns `0..cols` of a row-major matrix `cols_full` wide.
fn top_left(m: &[f32], cols_full: usize, rows: usize, cols: usize) -> Vec<f32> {
    (0..rows).flat_map(|r| m[r * cols_full..r * cols_full + cols].iter().copied()).collect()
}

/// The supernet FFN units a subnet's `ffn` units read, in order (the reference's chunk map: all
/// of them when `ffn` is the supernet's width).
pub fn ffn_units(supernet: &Supernet, embed: usize, ffn: usize) -> Vec<usize> {
    let d = &supernet.dims;
    if ffn == d.ffn || d.ffn_chunks == 1 {
        return (0..ffn).collect();
    }
    (0..ffn).map(|j| (j / embed) * d.ffn_chunk + j % embed).collect()
}

/// A safetensors file of `tensors`, each stored as its [`safetensors::Dtype`] (F32 or F16),
/// with `metadata`. The header's keys are sorted: the safetensors crate writes its metadata in
/// HashMap order, which changes from one process to the next, and one input should give the
/// same bytes every time.
pub fn safetensors_file(tensors: &BTreeMap<String, (safetensors::Dtype, Tensor)>, metadata: HashMap<String, String>) -> Result<Vec<u8>, ExportError> {
    use safetensors::tensor::TensorView;
    let bytes: Vec<(&String, safetensors::Dtype, &Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, (dtype, t))| {
            let data = match dtype {
                safetensors::Dtype::F16 => {
                    let mut halves = vec![half::f16::ZERO; t.values.len()];
                    halves.convert_from_f32_slice(&t.values);
                    halves.iter().flat_map(|h| h.to_le_bytes()).collect()
                }
                _ => t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            (name, *dtype, &t.shape, data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, dtype, shape, data)| TensorView::new(*dtype, shape.to_vec(), data).map(|v| (name.to_string(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ExportError::Serialize(e.to_string()))?;
    let mut file = safetensors::serialize(views, Some(metadata)).map_err(|e| ExportError::Serialize(e.to_string()))?;
    sort_header(&mut file).map_err(|e| ExportError::Serialize(e.to_string()))?;
    Ok(file)
}

/// Rewrites a safetensors file's JSON header with its keys sorted. The sorted header is the
/// same JSON, so it has the same length, and the offsets still hold.
pub fn sort_header(bytes: &mut [u8]) -> std::io::Result<()> {
    let bad = |why: &str| std::io::Error::other(format!("safetensors header: {why}"));
    let n = bytes.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).ok_or_else(|| bad("too short"))? as usize;
    let header = bytes.get(8..8usize.saturating_add(n)).ok_or_else(|| bad("shorter than it says"))?;
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let sorted = serde_json::to_vec(&value).map_err(|e| bad(&e.to_string()))?;
    if sorted.len() > n {
        return Err(bad("sorted header is longer than the original"));
    }
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + n].fill(b' ');
    Ok(())
}
