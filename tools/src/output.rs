//! Where features go: planning the output paths before any work, and writing each file
//! atomically (a temporary file in the same directory, renamed into place when complete).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use lighthubert::Features;
use safetensors::tensor::{Dtype, View};

use crate::error::CliError;
use crate::npy;

/// The file format of the features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One float32 array [states, frames, embed] (NumPy .npy v1.0).
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

/// Which file each input writes, decided (and checked) before any work starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub format: Format,
    /// One per input, in input order.
    pub outputs: Vec<PathBuf>,
    /// The directory to create, when `--out` names one that does not exist yet.
    pub create_dir: Option<PathBuf>,
}

/// Decides the outputs of `inputs` for `--out out` and checks them: the format the extension
/// names agrees with `--format`, no two inputs write one file, and no output exists unless
/// `force`. Nothing is created or written.
pub fn plan(inputs: &[PathBuf], out: &Path, format: Option<Format>, force: bool) -> Result<Plan, CliError> {
    let ext_format = Format::from_path(out);
    let out_is_dir = out.is_dir();
    let as_file = inputs.len() == 1 && ext_format.is_some() && !out_is_dir;
    let plan = if as_file {
        let ext_format = ext_format.unwrap_or(Format::Npy);
        if let Some(f) = format.filter(|&f| f != ext_format) {
            return Err(CliError::output(
                out,
                format!("the extension says {} but --format is {}", ext_format.extension(), f.extension()),
            ));
        }
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
            return Err(CliError::output(out, format!("directory {} does not exist", parent.display())));
        }
        Plan { format: ext_format, outputs: vec![out.to_path_buf()], create_dir: None }
    } else {
        if out.exists() && !out_is_dir {
            return Err(CliError::output(
                out,
                "exists and is not a directory; with several inputs --out must be a directory",
            ));
        }
        if !out_is_dir && ext_format.is_some() {
            return Err(CliError::output(
                out,
                format!(
                    "with {} inputs --out must be a directory, not a .{} file",
                    inputs.len(),
                    out.extension().and_then(|e| e.to_str()).unwrap_or("")
                ),
            ));
        }
        let format = format.unwrap_or(Format::Npy);
        let mut seen: HashMap<PathBuf, &PathBuf> = HashMap::new();
        let mut outputs = Vec::with_capacity(inputs.len());
        for input in inputs {
            let stem = input
                .file_stem()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| CliError::audio(input, "has no file name to name its output after"))?;
            let mut name = stem.to_os_string();
            name.push(".");
            name.push(format.extension());
            let output = out.join(name);
            if let Some(first) = seen.get(&output) {
                return Err(CliError::DuplicateStem { first: (*first).clone(), second: input.clone(), output });
            }
            seen.insert(output.clone(), input);
            outputs.push(output);
        }
        Plan { format, outputs, create_dir: (!out_is_dir).then(|| out.to_path_buf()) }
    };
    for o in &plan.outputs {
        if o.is_dir() {
            return Err(CliError::output(o, "is a directory"));
        }
        if !force && o.exists() {
            return Err(CliError::OutputExists(o.clone()));
        }
    }
    Ok(plan)
}

/// Writes `path` through a temporary file in its directory, renamed into place only when
/// `write` succeeded: a failed run never leaves a partial file. Without `force` an existing
/// file (even one that appeared since the plan was checked) is never replaced.
pub fn write_atomic<F>(path: &Path, force: bool, write: F) -> Result<(), CliError>
where
    F: FnOnce(&mut std::fs::File) -> std::io::Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".{name}.");
    builder.prefix(&prefix).suffix(".partial");
    // An ordinary file's mode (0666 less the umask), not a temporary file's 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| CliError::io(path, e))?;
    write(tmp.as_file_mut()).map_err(|e| CliError::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| CliError::io(path, e))?;
    let persisted = if force { tmp.persist(path) } else { tmp.persist_noclobber(path) };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::OutputExists(path.to_path_buf())
        } else {
            CliError::io(path, e.error)
        }
    })?;
    Ok(())
}

/// What the safetensors metadata records about a run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The subnet in the authors' JSON format.
    pub subnet_json: String,
    pub normalize: bool,
    /// The checkpoint file, or a description of the bundled one.
    pub checkpoint: String,
    /// Frames per second of the features (16000 / the extractor's total stride).
    pub frame_rate: String,
    /// How the weight matrices were stored on the GPU (f32 or f16).
    pub weights: String,
    /// The arithmetic of the GEMMs (f32, or f16 on the GPU kernels).
    pub math: String,
}

/// Writes one utterance's features as `format` to `path` (atomically).
pub fn write_features(
    path: &Path,
    format: Format,
    force: bool,
    features: &Features,
    source: &Path,
    run: &RunInfo,
) -> Result<(), CliError> {
    match format {
        Format::Npy => write_atomic(path, force, |file| {
            let parts: Vec<&[f32]> = features.states.iter().map(Vec::as_slice).collect();
            npy::write_f32(BufWriter::new(file), &[features.states.len(), features.frames, features.embed], &parts)
        }),
        Format::Safetensors => write_atomic(path, force, |file| {
            let bytes = safetensors_bytes(features, source, run)?;
            let mut w = BufWriter::new(file);
            w.write_all(&bytes)?;
            w.flush()
        }),
    }
}

/// A borrowed [T, E] float32 tensor for the safetensors serialiser.
struct F32View<'a> {
    shape: [usize; 2],
    values: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        if cfg!(target_endian = "little") {
            Cow::Borrowed(bytemuck::cast_slice(self.values))
        } else {
            Cow::Owned(self.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        }
    }
    fn data_len(&self) -> usize {
        self.values.len() * 4
    }
}

/// The metadata of a safetensors output.
pub fn metadata(features: &Features, source: &Path, run: &RunInfo) -> HashMap<String, String> {
    let layers = format!("[{}]", features.layer_indices.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    HashMap::from([
        ("subnet".to_string(), run.subnet_json.clone()),
        ("frame_rate".to_string(), run.frame_rate.clone()),
        ("sample_rate".to_string(), "16000".to_string()),
        ("source".to_string(), source.display().to_string()),
        ("layers".to_string(), layers),
        ("normalize".to_string(), run.normalize.to_string()),
        ("weights".to_string(), run.weights.clone()),
        ("math".to_string(), run.math.clone()),
        ("checkpoint".to_string(), run.checkpoint.clone()),
    ])
}

fn safetensors_bytes(features: &Features, source: &Path, run: &RunInfo) -> std::io::Result<Vec<u8>> {
    let tensors: BTreeMap<String, F32View<'_>> = features
        .layer_indices
        .iter()
        .zip(&features.states)
        .map(|(i, s)| (format!("hidden_state.{i}"), F32View { shape: [features.frames, features.embed], values: s }))
        .collect();
    safetensors::serialize(tensors, Some(metadata(features, source, run))).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn one_input_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.safetensors");
        let p = plan(&paths(&["x/a.wav"]), &out, None, false).unwrap();
        assert_eq!((p.format, p.outputs, p.create_dir), (Format::Safetensors, vec![out.clone()], None));
        assert!(
            plan(&paths(&["x/a.wav"]), &out, Some(Format::Npy), false)
                .unwrap_err()
                .to_string()
                .contains("--format is npy")
        );
    }

    #[test]
    fn several_inputs_to_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("feats");
        let p = plan(&paths(&["a/one.wav", "b/two.flac"]), &out, Some(Format::Safetensors), false).unwrap();
        assert_eq!(p.outputs, vec![out.join("one.safetensors"), out.join("two.safetensors")]);
        assert_eq!(p.create_dir, Some(out.clone()));
        let e = plan(&paths(&["a/one.wav", "b/one.flac"]), &out, None, false).unwrap_err();
        assert!(matches!(e, CliError::DuplicateStem { .. }), "{e}");
        assert!(e.to_string().starts_with("b/one.flac: "), "{e}");
        assert!(plan(&paths(&["a.wav", "b.wav"]), &dir.path().join("x.npy"), None, false).is_err());
    }

    #[test]
    fn existing_outputs_need_force() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.npy"), b"old").unwrap();
        let e = plan(&paths(&["a.wav", "b.wav"]), dir.path(), None, false).unwrap_err();
        assert!(matches!(e, CliError::OutputExists(_)), "{e}");
        assert!(plan(&paths(&["a.wav", "b.wav"]), dir.path(), None, true).is_ok());
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
        assert!(matches!(write_atomic(&path, false, |f| f.write_all(b"two")), Err(CliError::OutputExists(_))));
        write_atomic(&path, true, |f| f.write_all(b"three")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
