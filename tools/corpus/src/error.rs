//! What can stop a corpus run before or while it works. Per-file problems (one unreadable
//! file) are not here: a run records them as [`crate::Failure`]s and goes on.

use std::path::{Path, PathBuf};

use crate::audio::AudioError;

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An audio file could not be used (with `--fail-fast`, or where the layout cannot skip it).
    #[error(transparent)]
    Audio(#[from] AudioError),

    /// A line of a file list or manifest that cannot be used.
    #[error("{}:{line}: {reason}", path.display())]
    ListLine { path: PathBuf, line: usize, reason: String },

    /// An input that is not a usable file or folder.
    #[error("{}: {reason}", path.display())]
    Input { path: PathBuf, reason: String },

    /// Two inputs would write the same output.
    #[error("{}: its id `{id}` is also the id of {} (ids are output paths without the extension); rename one or run them separately", second.display(), first.display())]
    DuplicateId { id: String, first: PathBuf, second: PathBuf },

    /// An output path that cannot be used as asked.
    #[error("{}: {reason}", path.display())]
    Output { path: PathBuf, reason: String },

    #[error("{}: already exists; pass --force to overwrite it", .0.display())]
    OutputExists(PathBuf),

    /// An output would replace an input.
    #[error("{}: is an input of this run (it would be replaced by features); choose another --out", .0.display())]
    OutputIsInput(PathBuf),

    /// The output folder holds a run made with other settings.
    #[error("{}: this folder holds a run with {field} {theirs}, not {ours}; use another --out, or --force to start over", path.display())]
    ConfigMismatch { path: PathBuf, field: String, ours: String, theirs: String },

    /// A shard that cannot be run (`--shard`, or the environment's).
    #[error("{0}")]
    Shard(String),

    /// Settings that cannot work together (e.g. the fairseq layout with several layers).
    #[error("{0}")]
    Usage(String),

    /// The engine failed in a way that stops the run (a lost device).
    #[error("{label}: {source}")]
    Engine { label: String, source: lighthubert::Error },
}

impl CorpusError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        CorpusError::Io { path: path.as_ref().to_path_buf(), source }
    }

    pub fn output(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        CorpusError::Output { path: path.as_ref().to_path_buf(), reason: reason.into() }
    }

    pub fn input(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        CorpusError::Input { path: path.as_ref().to_path_buf(), reason: reason.into() }
    }
}
