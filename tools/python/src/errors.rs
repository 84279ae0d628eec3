//! Rust errors as the Python exceptions of `lighthubert.errors`, by kind, each carrying the
//! one-line message the command prints.

use lighthubert_corpus::{AudioError, CorpusError};
use lighthubert_tools::CliError;
use lighthubert_tools::error::one_line;
use pyo3::PyErr;

/// The exception classes, defined in Python (`lighthubert/errors.py`) so that they can also
/// derive from `ValueError` and `OSError`.
mod py {
    pyo3::import_exception!(lighthubert.errors, Error);
    pyo3::import_exception!(lighthubert.errors, CheckpointError);
    pyo3::import_exception!(lighthubert.errors, AudioError);
    pyo3::import_exception!(lighthubert.errors, SubnetError);
    pyo3::import_exception!(lighthubert.errors, DeviceError);
    pyo3::import_exception!(lighthubert.errors, InputError);
    pyo3::import_exception!(lighthubert.errors, OutputError);
    pyo3::import_exception!(lighthubert.errors, UsageError);
}

/// Which exception class a failure raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Other,
    Checkpoint,
    Audio,
    Subnet,
    Device,
    Input,
    Output,
    Usage,
}

/// An exception of `kind` with `message` folded to one line.
pub fn raise(kind: Kind, message: impl AsRef<str>) -> PyErr {
    let m = one_line(message.as_ref());
    match kind {
        Kind::Other => py::Error::new_err(m),
        Kind::Checkpoint => py::CheckpointError::new_err(m),
        Kind::Audio => py::AudioError::new_err(m),
        Kind::Subnet => py::SubnetError::new_err(m),
        Kind::Device => py::DeviceError::new_err(m),
        Kind::Input => py::InputError::new_err(m),
        Kind::Output => py::OutputError::new_err(m),
        Kind::Usage => py::UsageError::new_err(m),
    }
}

pub fn usage(message: impl AsRef<str>) -> PyErr {
    raise(Kind::Usage, message)
}

/// The kind of an engine error.
pub fn engine_kind(e: &lighthubert::Error) -> Kind {
    use lighthubert::Error as E;
    match e {
        E::Checkpoint(_) => Kind::Checkpoint,
        E::Subnet(_) => Kind::Subnet,
        E::Gpu(_) | E::TooLongForDevice { .. } | E::Unsupported(_) => Kind::Device,
        E::AudioTooShort { .. } | E::NonFiniteAudio { .. } => Kind::Audio,
        E::BadLayerList(_)
        | E::BackwardLayerRange { .. }
        | E::LayerOutOfRange { .. }
        | E::LayerFromEndOutOfRange { .. }
        | E::WeightCount { .. } => Kind::Usage,
    }
}

pub fn corpus_kind(e: &CorpusError) -> Kind {
    match e {
        CorpusError::Io { .. } => Kind::Other,
        CorpusError::Audio(_) => Kind::Audio,
        CorpusError::ListLine { .. } | CorpusError::Input { .. } | CorpusError::DuplicateId { .. } => Kind::Input,
        CorpusError::Output { .. }
        | CorpusError::OutputExists(_)
        | CorpusError::OutputIsInput(_)
        | CorpusError::ConfigMismatch { .. } => Kind::Output,
        CorpusError::Shard(_) | CorpusError::Usage(_) => Kind::Usage,
        CorpusError::Engine { source, .. } => engine_kind(source),
    }
}

pub fn cli_kind(e: &CliError) -> Kind {
    match e {
        CliError::Io { .. } | CliError::Incomplete { .. } | CliError::Search(_) => Kind::Other,
        CliError::Audio(_) => Kind::Audio,
        CliError::Corpus(c) => corpus_kind(c),
        CliError::Checkpoint(_) => Kind::Checkpoint,
        CliError::Model { source, .. } => match engine_kind(source) {
            Kind::Device => Kind::Device,
            _ => Kind::Checkpoint,
        },
        CliError::Subnet { .. } | CliError::Export { .. } => Kind::Subnet,
        CliError::Layers { .. } | CliError::Usage(_) => Kind::Usage,
        CliError::Extract { source, .. } => engine_kind(source),
        CliError::OutputExists(_) | CliError::Output { .. } => Kind::Output,
        CliError::Gpu(_) => Kind::Device,
    }
}

pub fn from_cli(e: CliError) -> PyErr {
    raise(cli_kind(&e), e.to_string())
}

pub fn from_corpus(e: CorpusError) -> PyErr {
    raise(corpus_kind(&e), e.to_string())
}

pub fn from_audio(e: AudioError) -> PyErr {
    raise(Kind::Audio, e.to_string())
}

/// An engine error about `label` (a checkpoint, a waveform).
pub fn from_engine(label: &str, e: lighthubert::Error) -> PyErr {
    raise(engine_kind(&e), format!("{label}: {e}"))
}

/// Runs `work`, turning a panic (a bug of ours) into `lighthubert.Error` instead of pyo3's
/// `PanicException`, which is no `Exception` and would escape `except lighthubert.Error`.
pub fn no_panic<T>(what: &str, work: impl FnOnce() -> pyo3::PyResult<T>) -> pyo3::PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(raise(Kind::Other, format!("{what}: internal error (please report it): {message}")))
    })
}
