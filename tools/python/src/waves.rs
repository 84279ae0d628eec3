//! Waveforms in, features out: checks and resamples what Python hands over, runs it in
//! length-sorted batches, and turns the features into NumPy arrays without copying them again.

use std::path::Path;

use lighthubert::model::min_samples;
use lighthubert::{ExtractOptions, Features, LightHubert, Subnet};
use lighthubert_corpus::audio::check_length;
use lighthubert_corpus::audio::resample::{TARGET_RATE, To16k};
use numpy::ndarray::{Array1, Array3};
use numpy::{IntoPyArray, PyArray1, PyArray3};
use pyo3::prelude::*;

use crate::errors::{self, Kind};

/// Each waveform at 16 kHz, checked as the command checks a file: finite samples, at least one
/// frame. Waveform `i` is named `waveform i` in errors.
pub fn prepare(model: &LightHubert, waves: Vec<Vec<f32>>, sample_rate: u32) -> PyResult<Vec<Vec<f32>>> {
    if sample_rate == 0 {
        return Err(errors::usage("sample_rate=0: a sample rate is a positive number of Hz"));
    }
    let min = min_samples(&model.supernet().dims);
    let mut resampler = To16k::new();
    waves
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let label = format!("waveform {i}");
            if let Some(j) = w.iter().position(|v| !v.is_finite()) {
                return Err(errors::raise(Kind::Audio, format!("{label}: sample {j} is not a finite number")));
            }
            let w = if sample_rate == TARGET_RATE {
                w
            } else {
                resampler.resample(&w, sample_rate).map_err(|e| errors::usage(format!("{label}: {e}")))?
            };
            check_length(Path::new(&label), w.len(), min).map_err(errors::from_audio)?;
            Ok(w)
        })
        .collect()
}

/// Runs `waves` in batches of `batch_size` similar lengths (results do not depend on the
/// batching) and returns their features in input order.
pub fn extract(
    model: &LightHubert,
    subnet: &Subnet,
    waves: &[Vec<f32>],
    options: &ExtractOptions,
    batch_size: usize,
) -> PyResult<Vec<Features>> {
    let mut order: Vec<usize> = (0..waves.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(waves[i].len()));
    let mut out: Vec<Option<Features>> = (0..waves.len()).map(|_| None).collect();
    for batch in order.chunks(batch_size.max(1)) {
        let refs: Vec<&[f32]> = batch.iter().map(|&i| waves[i].as_slice()).collect();
        let label = match batch {
            [i] => format!("waveform {i}"),
            _ => format!("waveforms {}", batch.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")),
        };
        let features = model.extract(subnet, &refs, options).map_err(|e| errors::from_engine(&label, e))?;
        for (&i, f) in batch.iter().zip(features) {
            out[i] = Some(f);
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// One utterance's states as one [S, T, E] array. With one state the engine's buffer becomes
/// the array; with several they are laid end to end once.
pub fn stacked(py: Python<'_>, mut f: Features) -> PyResult<Bound<'_, PyArray3<f32>>> {
    let (s, t, e) = (f.states.len(), f.frames, f.embed);
    let data = if s == 1 { f.states.pop().unwrap_or_default() } else { f.states.concat() };
    let array = Array3::from_shape_vec((s, t, e), data).map_err(|err| errors::raise(Kind::Other, err.to_string()))?;
    Ok(array.into_pyarray(py))
}

/// One zero-padded [B, T_max, E] array per state, and each utterance's frames.
pub type Padded<'py> = (Vec<Bound<'py, PyArray3<f32>>>, Bound<'py, PyArray1<i64>>);

/// s3prl's batch: one zero-padded [B, T_max, E] array per state, and each utterance's frames.
pub fn padded(py: Python<'_>, features: Vec<Features>) -> PyResult<Padded<'_>> {
    let b = features.len();
    let t_max = features.iter().map(|f| f.frames).max().unwrap_or(0);
    let e = features.first().map(|f| f.embed).unwrap_or(0);
    let s = features.first().map(|f| f.states.len()).unwrap_or(0);
    let lengths = Array1::from_iter(features.iter().map(|f| f.frames as i64)).into_pyarray(py);
    let mut states = Vec::with_capacity(s);
    for k in 0..s {
        let mut data = vec![0f32; b * t_max * e];
        for (i, f) in features.iter().enumerate() {
            let start = i * t_max * e;
            data[start..start + f.frames * e].copy_from_slice(&f.states[k]);
        }
        let array = Array3::from_shape_vec((b, t_max, e), data).map_err(|err| errors::raise(Kind::Other, err.to_string()))?;
        states.push(array.into_pyarray(py));
    }
    Ok((states, lengths))
}
