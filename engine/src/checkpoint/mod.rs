//! Reader for the released LightHuBERT `.pt` checkpoints, with no Python at runtime, and for
//! the subnets `lighthubert export` writes ([`exported`]).
//!
//! A checkpoint is a `torch.save` zip archive ([`archive`]): `<root>/data.pkl` is a pickle
//! that a restricted VM ([`pickle`]) decodes into plain data without executing anything,
//! and each tensor is a strided view into a raw little-endian storage member, which
//! [`tensor`] materialises as a contiguous `Vec<f32>`. [`config`] reads `cfg['model']`.
//!
//! Only the state-dict tensors inference uses are read; the storages of `mask_emb`,
//! `label_embs_concat`, `final_proj.*` and `layer_pred_heads.*` (training heads) and of
//! everything outside `model` (optimizer state) are never touched.

pub mod archive;
pub mod config;
mod error;
pub mod exported;
pub mod pickle;
pub mod tensor;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use archive::{Archive, MemberError};
pub use config::{ConvLayerSpec, ExtractorMode, ModelConfig, StoredSpace};
pub use error::CheckpointError;
pub use exported::Origin;
use pickle::{PickleError, PyValue, StorageDtype, TensorRef};
pub use tensor::{StoredDtype, TensorData};

/// Materialised f32 bytes allowed per byte of file, plus a fixed allowance. f16/bf16
/// storages double when widened and views may share a storage; beyond that a file is
/// hostile (e.g. thousands of tensors viewing one large storage).
const OUTPUT_RATIO: u64 = 4;
const OUTPUT_ALLOWANCE: u64 = 16 << 20;

/// Whether inference ignores a state-dict key (pre-training heads), so its storage is
/// not read at all.
pub fn is_ignored_key(key: &str) -> bool {
    key == "mask_emb"
        || key == "label_embs_concat"
        || key.starts_with("final_proj.")
        || key.starts_with("layer_pred_heads.")
}

/// A loaded checkpoint: its model config and every state-dict tensor inference may use.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub config: ModelConfig,
    /// `cfg['task']['normalize']`: whether training normalised the waveform.
    pub task_normalize: Option<bool>,
    /// For an exported subnet file, the checkpoint it was cut from.
    pub origin: Option<Origin>,
    tensors: BTreeMap<String, TensorData>,
    ignored: Vec<String>,
}

impl Checkpoint {
    /// Reads a checkpoint file.
    pub fn open(path: impl AsRef<Path>) -> Result<Checkpoint, CheckpointError> {
        let path = path.as_ref();
        let io = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Self::from_reader(BufReader::new(file), len, path)
    }

    /// Reads a checkpoint held in memory; `path_for_messages` only labels errors.
    pub fn from_bytes(
        bytes: &[u8],
        path_for_messages: &Path,
    ) -> Result<Checkpoint, CheckpointError> {
        Self::from_reader(Cursor::new(bytes), bytes.len() as u64, path_for_messages)
    }

    fn from_reader<R: Read + Seek>(
        mut reader: R,
        len: u64,
        path: &Path,
    ) -> Result<Checkpoint, CheckpointError> {
        let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
        let mut head = Vec::with_capacity(9);
        (&mut reader).take(9).read_to_end(&mut head).map_err(io)?;
        reader.seek(SeekFrom::Start(0)).map_err(io)?;
        if exported::looks_like_safetensors(&head) {
            let e = exported::read(reader, len, path)?;
            return Ok(Checkpoint {
                path: path.to_path_buf(),
                config: e.config,
                task_normalize: e.task_normalize,
                origin: Some(e.origin),
                tensors: e.tensors,
                ignored: Vec::new(),
            });
        }
        let mut archive = Archive::open(reader, len, path)?;
        let pkl = archive.data_pkl()?;
        let root = pickle::load(&pkl).map_err(|e| pickle_error(path, e))?;
        let structure = |reason: String| CheckpointError::Structure {
            path: path.to_path_buf(),
            reason,
        };
        if !matches!(root, PyValue::Dict(_)) {
            return Err(structure(format!(
                "data.pkl holds a {}, not a checkpoint dict",
                root.type_name()
            )));
        }

        let (config, task_normalize) = read_config(&root, path)?;

        let entries = match root.get("model") {
            Some(PyValue::Dict(entries)) => entries,
            Some(other) => {
                return Err(structure(format!(
                    "`model` is a {}, not a state dict",
                    other.type_name()
                )));
            }
            None => return Err(structure("the checkpoint has no `model` state dict".into())),
        };

        // Group the needed tensors by storage so each storage member is read once.
        let mut by_storage: BTreeMap<&str, Vec<(&str, &TensorRef)>> = BTreeMap::new();
        let mut ignored = Vec::new();
        for (k, v) in entries {
            let PyValue::Str(key) = k else {
                return Err(structure(format!(
                    "state dict key of type {} (expected str)",
                    k.type_name()
                )));
            };
            if is_ignored_key(key) {
                ignored.push(key.clone());
                continue;
            }
            let PyValue::Tensor(t) = v else {
                return Err(structure(format!(
                    "state dict entry `{key}` is a {}, not a tensor",
                    v.type_name()
                )));
            };
            by_storage
                .entry(t.storage_key.as_str())
                .or_default()
                .push((key, t));
        }

        let mut output_left = len
            .saturating_mul(OUTPUT_RATIO)
            .saturating_add(OUTPUT_ALLOWANCE);
        let mut tensors = BTreeMap::new();
        for (storage_key, views) in by_storage {
            let loaded = load_storage(&mut archive, path, storage_key, &views, &mut output_left)?;
            tensors.extend(loaded);
        }

        Ok(Checkpoint {
            path: path.to_path_buf(),
            config,
            task_normalize,
            origin: None,
            tensors,
            ignored,
        })
    }

    /// The tensor `key`, which must have `expected_shape`.
    pub fn tensor(
        &self,
        key: &str,
        expected_shape: &[usize],
    ) -> Result<&TensorData, CheckpointError> {
        self.optional_tensor(key, expected_shape)?
            .ok_or_else(|| CheckpointError::MissingTensor {
                path: self.path.clone(),
                key: key.to_string(),
            })
    }

    /// The tensor `key` if present; present with another shape is an error.
    pub fn optional_tensor(
        &self,
        key: &str,
        expected_shape: &[usize],
    ) -> Result<Option<&TensorData>, CheckpointError> {
        match self.tensors.get(key) {
            None => Ok(None),
            Some(t) if t.shape == expected_shape => Ok(Some(t)),
            Some(t) => Err(CheckpointError::ShapeMismatch {
                path: self.path.clone(),
                key: key.to_string(),
                expected: expected_shape.to_vec(),
                found: t.shape.clone(),
            }),
        }
    }

    /// The tensor `key` whatever its shape (for inspection tools).
    pub fn get(&self, key: &str) -> Option<&TensorData> {
        self.tensors.get(key)
    }

    /// Keys of the loaded tensors, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Loaded tensors, sorted by key.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &TensorData)> {
        self.tensors.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// State-dict keys present in the file but skipped as unused by inference.
    pub fn ignored_keys(&self) -> impl Iterator<Item = &str> {
        self.ignored.iter().map(String::as_str)
    }

    /// How many loaded tensors each stored dtype accounts for.
    pub fn dtype_summary(&self) -> BTreeMap<StoredDtype, usize> {
        let mut m = BTreeMap::new();
        for t in self.tensors.values() {
            *m.entry(t.dtype).or_insert(0) += 1;
        }
        m
    }

    /// The distinct stored dtypes of the loaded tensors.
    pub fn dtypes(&self) -> BTreeSet<StoredDtype> {
        self.tensors.values().map(|t| t.dtype).collect()
    }

    /// Total number of loaded values.
    pub fn total_values(&self) -> usize {
        self.tensors.values().map(TensorData::numel).sum()
    }
}

fn pickle_error(path: &Path, e: PickleError) -> CheckpointError {
    match e {
        PickleError::ForbiddenGlobal { name } => CheckpointError::ForbiddenGlobal {
            path: path.to_path_buf(),
            name,
        },
        PickleError::Malformed { offset, reason } => CheckpointError::Pickle {
            path: path.to_path_buf(),
            offset,
            reason,
        },
    }
}

fn read_config(
    root: &PyValue,
    path: &Path,
) -> Result<(ModelConfig, Option<bool>), CheckpointError> {
    let config_error = |e: config::ConfigError| CheckpointError::Config {
        path: path.to_path_buf(),
        field: e.field,
        reason: e.reason,
    };
    let missing = |field: &str, reason: &str| CheckpointError::Config {
        path: path.to_path_buf(),
        field: field.to_string(),
        reason: reason.to_string(),
    };
    let cfg = match root.get("cfg") {
        Some(c @ PyValue::Dict(_)) => c,
        Some(PyValue::None) | None => {
            return Err(missing(
                "cfg",
                "missing (checkpoints configured through `args` only are not supported)",
            ));
        }
        Some(other) => {
            return Err(missing(
                "cfg",
                &format!("expected a dict, found {}", other.type_name()),
            ));
        }
    };
    let model = cfg
        .get("model")
        .ok_or_else(|| missing("cfg.model", "missing"))?;
    let config = config::parse_model_config(model, "cfg.model").map_err(config_error)?;
    let task_normalize =
        config::parse_task_normalize(cfg.get("task"), "cfg.task").map_err(config_error)?;
    Ok((config, task_normalize))
}

/// Reads one storage member and materialises every needed view into it.
fn load_storage<R: Read + Seek>(
    archive: &mut Archive<R>,
    path: &Path,
    storage_key: &str,
    views: &[(&str, &TensorRef)],
    output_left: &mut u64,
) -> Result<Vec<(String, TensorData)>, CheckpointError> {
    let Some(&(first_key, first)) = views.first() else {
        return Ok(Vec::new());
    };
    let dtype = match first.dtype {
        StorageDtype::Supported(d) => d,
        StorageDtype::Unsupported(name) => {
            return Err(CheckpointError::UnsupportedDtype {
                path: path.to_path_buf(),
                key: first_key.to_string(),
                dtype: name.to_string(),
            });
        }
    };
    for &(key, t) in views {
        if t.dtype != first.dtype || t.storage_numel != first.storage_numel {
            return Err(CheckpointError::Structure {
                path: path.to_path_buf(),
                reason: format!(
                    "tensors `{first_key}` and `{key}` describe storage `{storage_key}` differently"
                ),
            });
        }
    }
    let too_short = |key: &str, reason: String| CheckpointError::StorageTooShort {
        path: path.to_path_buf(),
        key: key.to_string(),
        reason,
    };

    // Bytes the storage must hold by its own account; the member is read only that far.
    let need = (first.storage_numel as u64)
        .checked_mul(dtype.size() as u64)
        .ok_or_else(|| {
            too_short(
                first_key,
                format!("{} elements overflow", first.storage_numel),
            )
        })?;
    let raw = match archive.storage(storage_key, need) {
        Ok(raw) => raw,
        Err(MemberError::Missing) => {
            return Err(CheckpointError::MissingStorage {
                path: path.to_path_buf(),
                key: first_key.to_string(),
                member: archive.storage_member_name(storage_key),
            });
        }
        Err(MemberError::Short { have, need }) => {
            return Err(too_short(
                first_key,
                format!(
                    "member `{}` holds {have} bytes, {} {} elements need {need}",
                    archive.storage_member_name(storage_key),
                    first.storage_numel,
                    dtype
                ),
            ));
        }
        Err(MemberError::Other(e)) => return Err(e),
    };

    let mut out = Vec::with_capacity(views.len());
    for &(key, t) in views {
        let numel = tensor::numel(&t.shape)
            .ok_or_else(|| too_short(key, format!("size {:?} overflows", t.shape)))?;
        let bytes = (numel as u64).saturating_mul(4);
        if bytes > *output_left {
            return Err(CheckpointError::ResourceLimit {
                path: path.to_path_buf(),
                what: format!(
                    "tensor `{key}` would bring the loaded values past {OUTPUT_RATIO}x the file \
                     size (views repeating one storage?)"
                ),
            });
        }
        *output_left -= bytes;
        let values = tensor::materialize(t, dtype, &raw).map_err(|e| match e {
            tensor::ViewError::OutOfBounds(reason) => too_short(key, reason),
            tensor::ViewError::NonFinite { index, value } => CheckpointError::NonFinite {
                path: path.to_path_buf(),
                key: key.to_string(),
                index,
                value,
            },
        })?;
        out.push((
            key.to_string(),
            TensorData {
                shape: t.shape.clone(),
                dtype,
                values,
            },
        ));
    }
    Ok(out)
}
