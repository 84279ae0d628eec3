//! Reader for an exported subnet (`lighthubert export`): a safetensors file whose tensors
//! keep the checkpoint's own names at the subnet's dense shapes, and whose metadata holds the
//! model config, the subnet and the checkpoint it was cut from.
//!
//! Only the positional conv differs from a checkpoint: its weight norm arrives resolved, as
//! `v` cut to the subnet's width and one scale per tap (`g / ||v||` of the *full* tensor,
//! which the cut alone no longer knows).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::config::{self, ConfigError, ModelConfig};
use super::pickle::PyValue;
use super::{CheckpointError, StoredDtype, TensorData};
use crate::supernet::Subnet;

/// The metadata key every exported file carries, and its one version so far.
pub const FORMAT_KEY: &str = "lighthubert_format";
pub const FORMAT: &str = "lighthubert-subnet/1";
/// `cfg.model` of the exported model, as JSON with the checkpoint config's field names.
pub const CONFIG_KEY: &str = "lighthubert_config";
/// The subnet the file holds, in the authors' JSON format.
pub const SUBNET_KEY: &str = "lighthubert_subnet";
/// `cfg.task.normalize` of the source checkpoint, `true` or `false`, absent when it had none.
pub const TASK_NORMALIZE_KEY: &str = "lighthubert_task_normalize";
/// The source checkpoint: file name, size in bytes and SHA-256.
pub const CHECKPOINT_KEY: &str = "lighthubert_checkpoint";
pub const CHECKPOINT_SIZE_KEY: &str = "lighthubert_checkpoint_size";
pub const CHECKPOINT_SHA256_KEY: &str = "lighthubert_checkpoint_sha256";

/// The positional conv's per-tap weight-norm scales, `[kernel]`.
pub const TAP_SCALE: &str = "encoder.pos_conv.0.tap_scale";
/// The positional conv's `v`, cut to the subnet: `[embed, embed / groups, kernel]`.
pub const POS_CONV_V: &str = "encoder.pos_conv.0.weight_v";

/// The checkpoint an exported file was cut from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The source checkpoint's file name.
    pub checkpoint: String,
    pub size: u64,
    pub sha256: String,
}

/// Whether `head` (a file's first bytes) starts like a safetensors file: a little-endian
/// header length, then the header's opening brace.
pub fn looks_like_safetensors(head: &[u8]) -> bool {
    head.len() >= 9 && head[8] == b'{' && !head.starts_with(b"PK")
}

/// What [`read`] returns: the parts of a `Checkpoint` an exported file fills.
pub(super) struct Exported {
    pub config: ModelConfig,
    pub task_normalize: Option<bool>,
    pub origin: Origin,
    pub tensors: BTreeMap<String, TensorData>,
}

/// Reads an exported subnet file held in memory.
pub(super) fn read(bytes: &[u8], path: &Path) -> Result<Exported, CheckpointError> {
    let structure = |reason: String| CheckpointError::Structure { path: path.to_path_buf(), reason };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| structure(format!("not a readable safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    match meta.get(FORMAT_KEY).map(String::as_str) {
        Some(FORMAT) => {}
        Some(other) => return Err(structure(format!("exported subnet format `{other}`; this version reads `{FORMAT}`"))),
        None => {
            return Err(structure(format!(
                "a safetensors file without `{FORMAT_KEY}` metadata: not a subnet written by `lighthubert export` \
                 (a Hugging Face export is read by transformers, not by lighthubert)"
            )));
        }
    }
    let config_error = |e: ConfigError| CheckpointError::Config { path: path.to_path_buf(), field: e.field, reason: e.reason };
    let field = |key: &str| meta.get(key).ok_or_else(|| config_error(ConfigError { field: key.into(), reason: "missing".into() }));

    let json: serde_json::Value = serde_json::from_str(field(CONFIG_KEY)?)
        .map_err(|e| config_error(ConfigError { field: CONFIG_KEY.into(), reason: format!("not JSON: {e}") }))?;
    let mut config = config::parse_model_config(&to_py(&json), CONFIG_KEY).map_err(config_error)?;
    let subnet = Subnet::from_json(field(SUBNET_KEY)?)
        .map_err(|e| config_error(ConfigError { field: SUBNET_KEY.into(), reason: e.to_string() }))?;
    config.exported_subnet = Some(subnet);
    let task_normalize = match meta.get(TASK_NORMALIZE_KEY).map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(config_error(ConfigError { field: TASK_NORMALIZE_KEY.into(), reason: format!("`{other}` is not true or false") }));
        }
    };
    let origin = Origin {
        checkpoint: field(CHECKPOINT_KEY)?.clone(),
        size: field(CHECKPOINT_SIZE_KEY)?
            .parse()
            .map_err(|_| config_error(ConfigError { field: CHECKPOINT_SIZE_KEY.into(), reason: "not a byte count".into() }))?,
        sha256: field(CHECKPOINT_SHA256_KEY)?.clone(),
    };

    let st = SafeTensors::deserialize(bytes).map_err(|e| structure(format!("not a readable safetensors file: {e}")))?;
    let mut tensors = BTreeMap::new();
    for (key, view) in st.iter() {
        let dtype = match view.dtype() {
            Dtype::F32 => StoredDtype::F32,
            Dtype::F16 => StoredDtype::F16,
            Dtype::BF16 => StoredDtype::BF16,
            other => {
                return Err(CheckpointError::UnsupportedDtype { path: path.to_path_buf(), key: key.to_string(), dtype: format!("{other:?}") });
            }
        };
        let values = super::tensor::decode(dtype, view.data());
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(CheckpointError::NonFinite { path: path.to_path_buf(), key: key.to_string(), index, value });
        }
        tensors.insert(key.to_string(), TensorData { shape: view.shape().to_vec(), dtype, values });
    }
    Ok(Exported { config, task_normalize, origin, tensors })
}

/// The metadata an exported file carries (the tensors aside).
pub fn metadata(config: &serde_json::Value, subnet: &Subnet, task_normalize: Option<bool>, origin: &Origin) -> HashMap<String, String> {
    let mut m = HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT.to_string()),
        (CONFIG_KEY.to_string(), config.to_string()),
        (SUBNET_KEY.to_string(), subnet.to_json()),
        (CHECKPOINT_KEY.to_string(), origin.checkpoint.clone()),
        (CHECKPOINT_SIZE_KEY.to_string(), origin.size.to_string()),
        (CHECKPOINT_SHA256_KEY.to_string(), origin.sha256.clone()),
    ]);
    if let Some(n) = task_normalize {
        m.insert(TASK_NORMALIZE_KEY.to_string(), n.to_string());
    }
    m
}

/// JSON as the pickle VM would have decoded the same Python literal, so that one parser (with
/// its strict types and the authors' defaults) reads both formats' configs.
fn to_py(v: &serde_json::Value) -> PyValue {
    use serde_json::Value;
    match v {
        Value::Null => PyValue::None,
        Value::Bool(b) => PyValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => PyValue::Int(i),
            None => PyValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => PyValue::Str(s.clone()),
        Value::Array(items) => PyValue::List(items.iter().map(to_py).collect()),
        Value::Object(map) => PyValue::Dict(map.iter().map(|(k, v)| (PyValue::Str(k.clone()), to_py(v))).collect()),
    }
}
