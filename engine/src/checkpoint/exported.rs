//! Reader for an exported subnet (`lighthubert export`): a safetensors file whose tensors
//! keep the checkpoint's own names at the subnet's dense shapes, and whose metadata holds the
//! model config, the subnet and the checkpoint it was cut from.
//!
//! Only the positional conv differs from a checkpoint: its weight norm arrives resolved, as
//! `v` cut to the subnet's width and one scale per tap (`g / ||v||` of the *full* tensor,
//! which the cut alone no longer knows).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use safetensors::tensor::{Dtype, Metadata};
use serde::{Deserialize, Serialize};

use super::config::{self, ConfigError, ModelConfig};
use super::pickle::PyValue;
use super::{CheckpointError, StoredDtype, TensorData};

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

/// The largest JSON header read (the safetensors crate's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// Reads an exported subnet file of `len` bytes from its start. The tensors are read one at a
/// time in file order, so the file is never held in memory twice.
pub(super) fn read(mut reader: impl Read, len: u64, path: &Path) -> Result<Exported, CheckpointError> {
    let structure = |reason: String| CheckpointError::Structure { path: path.to_path_buf(), reason };
    let unreadable = |why: String| structure(format!("not a readable safetensors file: {why}"));
    let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let mut n = [0u8; 8];
    reader.read_exact(&mut n).map_err(io)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || 8 + n > len {
        return Err(unreadable(format!("its header claims {n} bytes of a {len}-byte file")));
    }
    let mut header_bytes = vec![0u8; n as usize];
    reader.read_exact(&mut header_bytes).map_err(io)?;
    // Deserialising the crate's Metadata checks the header: dtypes, shapes and contiguous,
    // non-overlapping offsets that match them.
    let header: Metadata = serde_json::from_slice(&header_bytes).map_err(|e| unreadable(e.to_string()))?;
    if 8 + n + header.data_len() as u64 != len {
        return Err(unreadable(format!("its header describes {} bytes of tensors, the file holds {} (truncated?)", header.data_len(), len - 8 - n)));
    }
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
    let subnet_json = field(SUBNET_KEY)?;
    // A config that disagrees with its subnet is a damaged file, said as such here rather than
    // as a subnet error when the model loads (the supernet module checks the subnet itself).
    check_widths(&config, subnet_json).map_err(|reason| config_error(ConfigError { field: SUBNET_KEY.into(), reason }))?;
    config.exported_subnet = Some(subnet_json.clone());
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

    let mut tensors = BTreeMap::new();
    let mut raw = Vec::new();
    for key in header.offset_keys() {
        let Some(info) = header.info(&key) else { continue };
        let dtype = match info.dtype {
            Dtype::F32 => StoredDtype::F32,
            Dtype::F16 => StoredDtype::F16,
            Dtype::BF16 => StoredDtype::BF16,
            other => {
                return Err(CheckpointError::UnsupportedDtype { path: path.to_path_buf(), key, dtype: format!("{other:?}") });
            }
        };
        let (start, end) = info.data_offsets;
        raw.resize(end - start, 0);
        reader.read_exact(&mut raw).map_err(io)?;
        let values = super::tensor::decode(dtype, &raw);
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(CheckpointError::NonFinite { path: path.to_path_buf(), key, index, value });
        }
        tensors.insert(key, TensorData { shape: info.shape.clone(), dtype, values });
    }
    Ok(Exported { config, task_normalize, origin, tensors })
}

/// The stored subnet's widths, as far as the reader holds them to the config.
#[derive(Deserialize)]
struct SubnetWidths {
    embed_dim: usize,
    layer_num: usize,
    heads_num: Vec<usize>,
    ffn_embed: Vec<usize>,
}

/// The config's encoder is the subnet's: its depth, width, and widest heads and FFN.
fn check_widths(config: &ModelConfig, subnet_json: &str) -> Result<(), String> {
    let w: SubnetWidths = serde_json::from_str(subnet_json).map_err(|e| e.to_string())?;
    let (heads, ffn) = (w.heads_num.iter().copied().max().unwrap_or(0), w.ffn_embed.iter().copied().max().unwrap_or(0));
    let c = config;
    if (c.encoder_layers, c.encoder_embed_dim, c.encoder_attention_heads, c.encoder_ffn_embed_dim) != (w.layer_num, w.embed_dim, heads, ffn)
        || w.heads_num.len() != w.layer_num
        || w.ffn_embed.len() != w.layer_num
    {
        return Err(format!(
            "the config says {} layers of width {} (up to {} heads, FFN {}), the subnet {} of width {} (heads {:?}, FFN {:?})",
            c.encoder_layers, c.encoder_embed_dim, c.encoder_attention_heads, c.encoder_ffn_embed_dim, w.layer_num, w.embed_dim, w.heads_num, w.ffn_embed
        ));
    }
    Ok(())
}

/// The metadata an exported file carries (the tensors aside).
pub fn metadata(config: &serde_json::Value, subnet_json: &str, task_normalize: Option<bool>, origin: &Origin) -> HashMap<String, String> {
    let mut m = HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT.to_string()),
        (CONFIG_KEY.to_string(), config.to_string()),
        (SUBNET_KEY.to_string(), subnet_json.to_string()),
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
