//! The `lighthubert` program as a library: the binary in `bin/lighthubert.rs` only parses the
//! command line and prints errors.
//!
//! Audio decoding, inputs, shards, resumable runs and output writers live in the
//! `lighthubert-corpus` library (`tools/corpus/`); here [`extract`] turns the command line into
//! a corpus run, [`signals`] stops one cleanly on SIGINT/SIGTERM, [`commands`] sends each
//! command to its module and runs `info` and `subnet`, [`setup`] holds the steps they share
//! (checkpoint, supernet, subnet, GPU), [`summary`] is the demo summary of the bundled
//! checkpoint ([`bundled`]), [`export`] writes a subnet as a model of its own, and
//! [`profile`] times every dispatch of a forward pass, [`search`] finds the subnet that fits
//! a latency budget on this device and [`plot`] draws its charts; [`demo`] is the
//! `lighthubert-demo` program.

pub mod bundled;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod error;
pub mod export;
pub mod extract;
pub mod picture;
pub mod plot;
pub mod profile;
pub mod search;
pub mod setup;
pub mod signals;
pub mod summary;

/// Mesa's Vulkan and GL drivers print `error: XDG_RUNTIME_DIR is invalid or not set in the
/// environment.` when it is missing (a Slurm job, a container, `sudo`), twice per run and
/// indistinguishable from our own errors. Without a usable one, the program points it at a
/// private folder of its own (0700), removed when the returned guard drops. Call it first in
/// `main`, before any thread starts: it changes the process environment.
pub fn ensure_runtime_dir() -> Option<tempfile::TempDir> {
    let usable = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if usable {
        return None;
    }
    let dir = tempfile::Builder::new().prefix("lighthubert-runtime-").tempdir().ok()?;
    // SAFETY: called at the start of `main`, before this process starts any thread, so nothing
    // reads the environment concurrently.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", dir.path()) };
    Some(dir)
}

/// The corpus library's audio, output and run modules, re-exported for the program's callers.
pub use lighthubert_corpus::{audio, npy, output};
pub use lighthubert_corpus::audio::resample;

pub use error::CliError;
