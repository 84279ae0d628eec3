//! The `lighthubert` program as a library: the binary in `bin/lighthubert.rs` only parses the
//! command line and prints errors.
//!
//! [`audio`] reads WAV/FLAC/Ogg Vorbis/MP3 into mono, [`resample`] brings it to 16 kHz,
//! [`output`] plans and atomically writes `.npy` ([`npy`]) and `.safetensors` files, and
//! [`commands`] runs `extract`, `info`, `subnet` and the bundled demo ([`bundled`]), and
//! [`profile`] times every dispatch of a forward pass, [`search`] finds the subnet that fits
//! a latency budget on this device and [`plot`] draws its charts; [`demo`] is the
//! `lighthubert-demo` program.

pub mod audio;
pub mod bundled;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod error;
pub mod npy;
pub mod output;
pub mod plot;
pub mod profile;
pub mod resample;
pub mod search;

pub use error::CliError;
