//! Audio files and adapters, as the command sees them.

use std::path::PathBuf;

use lighthubert::gpu::AdapterChoice;
use lighthubert_corpus::audio::read_16k;
use lighthubert_corpus::audio::resample::To16k;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

use crate::errors::{self, Kind};

/// Reads an audio file as the command does (WAV, FLAC, Ogg Vorbis, MP3; channels averaged;
/// resampled to 16 kHz) and returns its float32 samples.
#[pyfunction]
pub fn load_audio(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyArray1<f32>>> {
    let wave = py.detach(|| {
        errors::no_panic("load_audio", || read_16k(&path, &mut To16k::new(), 0).map(|(_, w)| w).map_err(errors::from_audio))
    })?;
    Ok(wave.into_pyarray(py))
}

/// The adapters wgpu finds, numbered as `LIGHTHUBERT_ADAPTER=N` and `Model(adapter="N")` count
/// them, for the backends `WGPU_BACKEND` (or `backend`) allows.
#[pyfunction]
#[pyo3(signature = (backend=None))]
pub fn list_adapters(py: Python<'_>, backend: Option<String>) -> PyResult<Vec<String>> {
    let env = AdapterChoice::from_env();
    let choice = match backend {
        Some(b) => AdapterChoice { params: env.params, tune: env.tune, ..AdapterChoice::from_settings(Some(b), env.name_filter, env.kernels) },
        None => env,
    };
    py.detach(|| lighthubert::gpu::list_adapters(&choice)).map_err(|e| errors::raise(Kind::Device, format!("GPU: {e}")))
}
