//! The one error type of the checkpoint reader.
//!
//! Every variant carries the file path so a message is useful on its own in a log line
//! ("tiny.pt: tensor `x` has shape [2], expected [3]"); variants that concern one tensor or
//! one config field name it too.

use std::path::PathBuf;

/// Why a checkpoint could not be read, or a tensor could not be handed out.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The bytes are not a zip archive at all (e.g. the legacy pre-1.6 `torch.save` format).
    #[error("{}: not a zip archive ({reason})", path.display())]
    NotZip { path: PathBuf, reason: String },

    /// A zip archive, but truncated, corrupt or using features we do not read.
    #[error("{}: damaged zip archive: {reason}", path.display())]
    Zip { path: PathBuf, reason: String },

    #[error("{}: no `<root>/data.pkl` member: not a torch.save archive", path.display())]
    MissingDataPkl { path: PathBuf },

    /// The pickle names a global outside the allow-list. Nothing was executed: the reader
    /// never executes anything, it only recognises a handful of names as tags.
    #[error("{}: data.pkl refers to the global `{name}`, which a checkpoint reader does not accept", path.display())]
    ForbiddenGlobal { path: PathBuf, name: String },

    #[error("{}: data.pkl: {reason} (at byte {offset})", path.display())]
    Pickle {
        path: PathBuf,
        offset: usize,
        reason: String,
    },

    /// The pickle decoded, but its contents are not shaped like a checkpoint.
    #[error("{}: {reason}", path.display())]
    Structure { path: PathBuf, reason: String },

    #[error("{}: tensor `{key}` needs storage member `{member}`, which the archive lacks", path.display())]
    MissingStorage {
        path: PathBuf,
        key: String,
        member: String,
    },

    #[error("{}: tensor `{key}`: storage shorter than the tensor claims ({reason})", path.display())]
    StorageTooShort {
        path: PathBuf,
        key: String,
        reason: String,
    },

    #[error("{}: tensor `{key}` is stored as {dtype}; only float32, float16 and bfloat16 are read", path.display())]
    UnsupportedDtype {
        path: PathBuf,
        key: String,
        dtype: String,
    },

    /// A size limit that protects against hostile files was hit (zip bombs, absurd views).
    #[error("{}: {what}", path.display())]
    ResourceLimit { path: PathBuf, what: String },

    #[error("{}: tensor `{key}` is missing", path.display())]
    MissingTensor { path: PathBuf, key: String },

    #[error("{}: tensor `{key}` has shape {found:?}, expected {expected:?}", path.display())]
    ShapeMismatch {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("{}: tensor `{key}` holds a non-finite value ({value}) at flat index {index}", path.display())]
    NonFinite {
        path: PathBuf,
        key: String,
        index: usize,
        value: f32,
    },

    #[error("{}: config field `{field}`: {reason}", path.display())]
    Config {
        path: PathBuf,
        field: String,
        reason: String,
    },
}

impl CheckpointError {
    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            CheckpointError::Io { path, .. }
            | CheckpointError::NotZip { path, .. }
            | CheckpointError::Zip { path, .. }
            | CheckpointError::MissingDataPkl { path }
            | CheckpointError::ForbiddenGlobal { path, .. }
            | CheckpointError::Pickle { path, .. }
            | CheckpointError::Structure { path, .. }
            | CheckpointError::MissingStorage { path, .. }
            | CheckpointError::StorageTooShort { path, .. }
            | CheckpointError::UnsupportedDtype { path, .. }
            | CheckpointError::ResourceLimit { path, .. }
            | CheckpointError::MissingTensor { path, .. }
            | CheckpointError::ShapeMismatch { path, .. }
            | CheckpointError::NonFinite { path, .. }
            | CheckpointError::Config { path, .. } => path,
        }
    }
}
