//! The program's errors. Each one displays as one line that starts with the file (or the
//! option) it is about: `main` prints it as `error: <that line>`.

use std::path::{Path, PathBuf};

use lighthubert::checkpoint::CheckpointError;
use lighthubert::supernet::SubnetError;
use lighthubert_corpus::{AudioError, CorpusError};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not audio we can read, or too little of it.
    #[error(transparent)]
    Audio(#[from] AudioError),

    /// The corpus run could not start or go on (inputs, outputs, shards, a lost device).
    #[error(transparent)]
    Corpus(#[from] CorpusError),

    /// The checkpoint could not be read (the message names the file).
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),

    /// The checkpoint read, but the model could not be built from it (or uploaded).
    #[error("{label}: {source}")]
    Model { label: String, source: lighthubert::Error },

    /// `--subnet` (a file or a preset) does not name a subnet of this checkpoint.
    #[error("{label}: {source}")]
    Subnet { label: String, source: SubnetError },

    /// `--layers` is malformed or names states the subnet does not have.
    #[error("--layers {spec}: {source}")]
    Layers { spec: String, source: lighthubert::Error },

    /// The engine refused or failed a batch (`label` names its inputs).
    #[error("{label}: {source}")]
    Extract { label: String, source: lighthubert::Error },

    #[error("{}: already exists; pass --force to overwrite it", .0.display())]
    OutputExists(PathBuf),

    /// An output path that cannot be used as asked.
    #[error("{}: {reason}", path.display())]
    Output { path: PathBuf, reason: String },

    /// A run that ended without doing all of its work (files failed, or a signal stopped it):
    /// what is done is complete and recorded; `message` says what to do next.
    #[error("{message}")]
    Incomplete { message: String, exit: u8 },

    #[error("GPU: {0}")]
    Gpu(#[from] lighthubert::gpu::GpuError),

    /// A subnet that cannot be exported as asked (`label` names the subnet).
    #[error("--subnet {label}: {source}")]
    Export { label: String, source: lighthubert::export::ExportError },

    /// A search that cannot be done as asked (a budget, a latency table).
    #[error("{0}")]
    Search(#[from] lighthubert::search::SearchError),

    /// A command line that parses but asks for something impossible.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        CliError::Io { path: path.as_ref().to_path_buf(), source }
    }

    pub fn audio(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        CliError::Audio(AudioError::unreadable(path, reason))
    }

    pub fn output(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        CliError::Output { path: path.as_ref().to_path_buf(), reason: reason.into() }
    }

    /// An engine error from loading a model: checkpoint errors already carry the path.
    pub fn model(label: &str, e: lighthubert::Error) -> Self {
        match e {
            lighthubert::Error::Checkpoint(c) => CliError::Checkpoint(c),
            lighthubert::Error::Gpu(g) => CliError::Gpu(g),
            source => CliError::Model { label: label.to_string(), source },
        }
    }

    /// The exit status: 2 for a command line that cannot work, 130/143 for a run stopped by
    /// SIGINT/SIGTERM, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Corpus(CorpusError::Usage(_) | CorpusError::Shard(_)) => 2,
            CliError::Incomplete { exit, .. } => *exit,
            _ => 1,
        }
    }

    /// The one line `main` prints after `error: `: newlines from nested messages are folded.
    pub fn one_line(&self) -> String {
        one_line(&self.to_string())
    }
}

/// Folds any line breaks (and runs of whitespace around them) into single spaces, and drops
/// the " (os error N)" that std appends to I/O errors.
pub fn one_line(s: &str) -> String {
    let mut line = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    while let Some(i) = line.find(" (os error ") {
        match line[i..].find(')') {
            Some(j) => line.replace_range(i..i + j + 1, ""),
            None => break,
        }
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_folds_and_trims() {
        assert_eq!(super::one_line("a.pt: No such file (os error 2)\n  more"), "a.pt: No such file more");
    }
}
