//! What can be wrong with an audio file. Every error names the file, so a corpus run can
//! report it and go on.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Not audio we can read (not a known format, a malformed header, a damaged stream).
    #[error("{}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },

    /// The stream ends before the length its header promises: a cut or partly copied file.
    #[error("{}: truncated: the header promises {expected} samples per channel, the stream ends after {decoded}", path.display())]
    Truncated { path: PathBuf, expected: u64, decoded: u64 },

    /// Shorter than one frame of the model.
    #[error(
        "{}: too short: {samples} samples at 16 kHz ({:.3} s); the model needs at least {min} ({:.3} s, one frame)",
        path.display(), *samples as f64 / 16000.0, *min as f64 / 16000.0
    )]
    TooShort { path: PathBuf, samples: usize, min: usize },

    /// A NaN or infinite sample (float WAV can hold them).
    #[error("{}: sample {index} is not a finite number", path.display())]
    NonFinite { path: PathBuf, index: usize },
}

impl AudioError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        AudioError::Io { path: path.as_ref().to_path_buf(), source }
    }

    pub fn unreadable(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        AudioError::Unreadable { path: path.as_ref().to_path_buf(), reason: reason.into() }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            AudioError::Io { path, .. }
            | AudioError::Unreadable { path, .. }
            | AudioError::Truncated { path, .. }
            | AudioError::TooShort { path, .. }
            | AudioError::NonFinite { path, .. } => path,
        }
    }

    /// The problem without the file name (for a failures table whose other column is the file).
    pub fn reason(&self) -> String {
        let full = self.to_string();
        let prefix = format!("{}: ", self.path().display());
        full.strip_prefix(&prefix).map(str::to_string).unwrap_or(full)
    }
}
