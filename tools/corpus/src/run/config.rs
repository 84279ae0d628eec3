//! The settings that decide what a run writes. They are saved once in the output folder; a
//! run (or a shard) that finds another configuration there refuses to mix its files in.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::CorpusError;
use crate::npy::Dtype;

/// Which checkpoint: its file name, size and SHA-256 (a path differs between machines; these
/// do not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointId {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

impl CheckpointId {
    /// Reads the file through once for its hash.
    pub fn of_file(path: &Path) -> Result<CheckpointId, CorpusError> {
        let mut file = std::fs::File::open(path).map_err(|e| CorpusError::io(path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|e| CorpusError::io(path, e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(CheckpointId { name, size, sha256: hex(&hasher.finalize()) })
    }

    /// A checkpoint held in memory (the bundled one), under `name`.
    pub fn of_bytes(name: &str, bytes: &[u8]) -> CheckpointId {
        CheckpointId { name: name.to_string(), size: bytes.len() as u64, sha256: hex(&Sha256::digest(bytes)) }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything that changes the bytes a run writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub checkpoint: CheckpointId,
    /// The subnet in the authors' dict format.
    pub subnet: serde_json::Value,
    /// The hidden states kept, as indices.
    pub layers: Vec<usize>,
    pub normalize: bool,
    /// How the weights were stored on the GPU (`f32`, `f16`).
    pub weights: String,
    /// The GEMMs' arithmetic (`f32`, `f16`).
    pub math: String,
    /// How features are stored on disk.
    pub dtype: Dtype,
    /// `files` (one file per utterance, `format`) or `fairseq` (one array per shard).
    pub layout: String,
    /// `npy` or `safetensors` (the `files` layout).
    pub format: String,
    /// The fairseq layout's split name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// Frames per second of the features.
    pub frame_rate: String,
}

impl RunConfig {
    /// The first setting that differs from `saved`, as (field, ours, theirs).
    pub fn difference(&self, saved: &RunConfig) -> Option<(String, String, String)> {
        let (ours, theirs) = (serde_json::to_value(self).ok()?, serde_json::to_value(saved).ok()?);
        let (ours, theirs) = (ours.as_object()?, theirs.as_object()?);
        for (key, value) in ours {
            let other = theirs.get(key).unwrap_or(&serde_json::Value::Null);
            if other != value {
                return Some(match (value, other) {
                    (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                        let sub = a.iter().find(|(k, v)| b.get(*k) != Some(v)).map(|(k, _)| k.clone());
                        match sub {
                            Some(k) => (format!("{key}.{k}"), a[&k].to_string(), b.get(&k).map(|v| v.to_string()).unwrap_or("none".into())),
                            None => (key.clone(), value.to_string(), other.to_string()),
                        }
                    }
                    _ => (key.clone(), value.to_string(), other.to_string()),
                });
            }
        }
        theirs.keys().find(|k| !ours.contains_key(*k)).map(|k| (k.clone(), "none".into(), theirs[k].to_string()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> RunConfig {
        RunConfig {
            checkpoint: CheckpointId::of_bytes("a.pt", b"weights"),
            subnet: serde_json::json!({"embed_dim": 256}),
            layers: vec![0, 12],
            normalize: false,
            weights: "f32".into(),
            math: "f32".into(),
            dtype: Dtype::F32,
            layout: "files".into(),
            format: "npy".into(),
            split: None,
            frame_rate: "50".into(),
        }
    }

    #[test]
    fn names_the_first_difference() {
        let a = sample();
        assert_eq!(a.difference(&a.clone()), None);
        let mut b = a.clone();
        b.layers = vec![3];
        assert_eq!(a.difference(&b), Some(("layers".into(), "[0,12]".into(), "[3]".into())));
        let mut c = a.clone();
        c.checkpoint.sha256 = "00".into();
        let (field, _, theirs) = a.difference(&c).unwrap();
        assert_eq!((field.as_str(), theirs.as_str()), ("checkpoint.sha256", "\"00\""));
        // sha256 of "weights"
        assert_eq!(a.checkpoint.sha256.len(), 64);
    }
}
