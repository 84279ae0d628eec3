//! Writing features: one file per utterance (`.npy` or `.safetensors`, float32 or float16),
//! always through a temporary file in the same folder that is renamed into place when complete,
//! so a reader never sees a partial file and an interrupted run leaves none.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::Path;

use lighthubert::Features;
use safetensors::tensor::{Dtype as StDtype, View};

use crate::error::CorpusError;
use crate::npy::{self, Dtype};
use crate::run::RunConfig;

/// The file format of per-utterance features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One array [states, frames, embed] (NumPy .npy v1.0).
    Npy,
    /// One [frames, embed] tensor per state, named `hidden_state.<index>`, with metadata.
    Safetensors,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Npy => "npy",
            Format::Safetensors => "safetensors",
        }
    }

    /// The format a file name's extension names, if any (case-insensitive).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "npy" => Some(Format::Npy),
            "safetensors" => Some(Format::Safetensors),
            _ => None,
        }
    }
}

/// Writes `path` through a temporary file in its folder, renamed into place only when `write`
/// succeeded: a failed or interrupted run never leaves a partial file (the temporary one is
/// removed when dropped). Without `replace` an existing file, even one that appeared since the
/// run was planned, is never replaced.
pub fn write_atomic<F>(path: &Path, replace: bool, write: F) -> Result<(), CorpusError>
where
    F: FnOnce(&mut std::fs::File) -> std::io::Result<()>,
{
    write_atomic_as(path, replace, None, write)
}

/// [`write_atomic`] by a named writer: its temporary file is `.<name>.<writer>.<random>.partial`,
/// so what a killed writer left behind can be told from what live ones are writing
/// ([`remove_partials`]).
pub fn write_atomic_as<F>(path: &Path, replace: bool, writer: Option<&str>, write: F) -> Result<(), CorpusError>
where
    F: FnOnce(&mut std::fs::File) -> std::io::Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut builder = tempfile::Builder::new();
    let prefix = match writer {
        Some(w) => format!(".{name}.{w}."),
        None => format!(".{name}."),
    };
    builder.prefix(&prefix).suffix(".partial");
    // An ordinary file's mode (0666 less the umask), not a temporary file's 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| CorpusError::io(path, e))?;
    write(tmp.as_file_mut()).map_err(|e| CorpusError::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| CorpusError::io(path, e))?;
    let persisted = if replace { tmp.persist(path) } else { tmp.persist_noclobber(path) };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            CorpusError::OutputExists(path.to_path_buf())
        } else {
            CorpusError::io(path, e.error)
        }
    })?;
    Ok(())
}

/// The temporary files that writers whose names start with `writer_prefix` left in `dirs`
/// (killed before they could remove them) are removed; returns how many. Only call it when
/// none of those writers can still be running.
pub fn remove_partials<'a>(dirs: impl IntoIterator<Item = &'a Path>, writer_prefix: &str) -> Result<usize, CorpusError> {
    let mut removed = 0;
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CorpusError::io(dir, e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".partial") && name.contains(&format!(".{writer_prefix}")) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(CorpusError::io(entry.path(), e)),
                }
            }
        }
    }
    Ok(removed)
}

/// Writes one utterance's features as `format` in `dtype` to `path` (atomically), as `writer`
/// ([`write_atomic_as`]).
#[allow(clippy::too_many_arguments)]
pub fn write_features(
    path: &Path,
    format: Format,
    dtype: Dtype,
    replace: bool,
    writer: Option<&str>,
    features: &Features,
    source: &Path,
    config: &RunConfig,
) -> Result<(), CorpusError> {
    match format {
        Format::Npy => write_atomic_as(path, replace, writer, |file| {
            let parts: Vec<&[f32]> = features.states.iter().map(Vec::as_slice).collect();
            let shape = [features.states.len(), features.frames, features.embed];
            npy::write(BufWriter::new(file), dtype, &shape, &parts)
        }),
        Format::Safetensors => write_atomic_as(path, replace, writer, |file| {
            let bytes = safetensors_bytes(features, dtype, source, config)?;
            let mut w = BufWriter::new(file);
            w.write_all(&bytes)?;
            w.flush()
        }),
    }
}

/// A [T, E] tensor for the safetensors serialiser, in the run's dtype.
struct StateView<'a> {
    shape: [usize; 2],
    values: &'a [f32],
    dtype: Dtype,
}

impl View for StateView<'_> {
    fn dtype(&self) -> StDtype {
        match self.dtype {
            Dtype::F32 => StDtype::F32,
            Dtype::F16 => StDtype::F16,
        }
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        if self.dtype == Dtype::F32 && cfg!(target_endian = "little") {
            return Cow::Borrowed(bytemuck::cast_slice(self.values));
        }
        let mut out = Vec::new();
        self.dtype.encode(self.values, &mut out);
        Cow::Owned(out)
    }
    fn data_len(&self) -> usize {
        self.values.len() * self.dtype.bytes()
    }
}

/// The metadata of a safetensors output: the run's settings and this utterance's source.
pub fn metadata(features: &Features, source: &Path, config: &RunConfig) -> HashMap<String, String> {
    let layers = format!("[{}]", features.layer_indices.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    HashMap::from([
        ("subnet".to_string(), config.subnet.to_string()),
        ("frame_rate".to_string(), config.frame_rate.clone()),
        ("sample_rate".to_string(), "16000".to_string()),
        ("source".to_string(), source.display().to_string()),
        ("layers".to_string(), layers),
        ("normalize".to_string(), config.normalize.to_string()),
        ("weights".to_string(), config.weights.clone()),
        ("math".to_string(), config.math.clone()),
        ("dtype".to_string(), config.dtype.name().to_string()),
        ("checkpoint".to_string(), config.checkpoint.name.clone()),
        ("checkpoint_sha256".to_string(), config.checkpoint.sha256.clone()),
    ])
}

fn safetensors_bytes(features: &Features, dtype: Dtype, source: &Path, config: &RunConfig) -> std::io::Result<Vec<u8>> {
    let tensors: BTreeMap<String, StateView<'_>> = features
        .layer_indices
        .iter()
        .zip(&features.states)
        .map(|(i, s)| {
            (format!("hidden_state.{i}"), StateView { shape: [features.frames, features.embed], values: s, dtype })
        })
        .collect();
    let mut bytes = safetensors::serialize(tensors, Some(metadata(features, source, config))).map_err(std::io::Error::other)?;
    sort_header(&mut bytes)?;
    Ok(bytes)
}

/// The safetensors crate writes the metadata in its HashMap's order, which changes from one
/// process (and one map) to the next; the engine's exporter has the same problem and the fix.
pub use lighthubert::export::sort_header;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_bytes_do_not_depend_on_hash_order() {
        let features = Features { frames: 2, embed: 3, layer_indices: vec![0, 4], states: vec![vec![0.5; 6], vec![-1.25; 6]] };
        let config = RunConfig {
            checkpoint: crate::run::CheckpointId { name: "c.pt".into(), size: 1, sha256: "ab".into() },
            subnet: serde_json::json!({"embed_dim": 3}),
            layers: vec![0, 4],
            normalize: true,
            weights: "f32".into(),
            math: "f32".into(),
            dtype: Dtype::F32,
            layout: "files".into(),
            format: "safetensors".into(),
            split: None,
            frame_rate: "50".into(),
        };
        let first = safetensors_bytes(&features, Dtype::F32, Path::new("a.wav"), &config).unwrap();
        // Every map gets its own hash seed, so unsorted metadata would come out in several orders.
        for _ in 0..16 {
            assert_eq!(safetensors_bytes(&features, Dtype::F32, Path::new("a.wav"), &config).unwrap(), first);
        }
        let st = safetensors::SafeTensors::deserialize(&first).unwrap();
        assert_eq!(st.tensor("hidden_state.4").unwrap().data(), bytemuck::cast_slice::<f32, u8>(&[-1.25; 6]));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&first).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["checkpoint_sha256"], "ab");
    }

    #[test]
    fn partials_of_named_writers_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [".a.npy.rayx1-h-1-aa.XYZ.partial", ".b.npy.rayx1-h-2-bb.QRS.partial", ".a.npy.rayy2-h-1-cc.XYZ.partial", ".a.npy.ABC.partial", "a.npy", ".rayx1.partial.npy"] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        assert_eq!(remove_partials([d, &d.join("missing")], "rayx1").unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, [".a.npy.ABC.partial", ".a.npy.rayy2-h-1-cc.XYZ.partial", ".rayx1.partial.npy", "a.npy"]);
        write_atomic_as(&d.join("c.npy"), false, Some("rayx1-h-3-dd"), |f| f.write_all(b"c")).unwrap();
        assert_eq!(std::fs::read(d.join("c.npy")).unwrap(), b"c");
    }

    #[test]
    fn atomic_write_leaves_nothing_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.npy");
        let e = write_atomic(&path, false, |f| {
            f.write_all(b"half")?;
            Err(std::io::Error::other("disk on fire"))
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write_atomic(&path, false, |f| f.write_all(b"one")).unwrap();
        assert!(matches!(write_atomic(&path, false, |f| f.write_all(b"two")), Err(CorpusError::OutputExists(_))));
        write_atomic(&path, true, |f| f.write_all(b"three")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
