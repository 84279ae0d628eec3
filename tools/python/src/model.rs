//! `lighthubert.Model`: a checkpoint loaded onto the GPU once, any of its subnets run on
//! waveforms from Python with the GIL released while the GPU works.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use clap::ValueEnum;
use lighthubert::gpu::{AdapterChoice, GpuContext, Precision};
use lighthubert::model::min_samples;
use lighthubert::supernet::Supernet;
use lighthubert::{ExtractOptions, LayerSelection, LightHubert, Preset};
use lighthubert_corpus::CorpusError;
use lighthubert_corpus::run::CheckpointId;
use lighthubert_tools::bundled;
use lighthubert_tools::cli::{Math, Weights};
use lighthubert_tools::setup::{frame_rate, load_checkpoint, supernet_of};
use numpy::{PyArray3, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::json;

use crate::corpus::RunArgs;
use crate::errors::{self, Kind};
use crate::subnet::{self, PySubnet};
use crate::waves;

#[pyclass(frozen, module = "lighthubert._lighthubert", name = "Model")]
pub struct Model {
    pub(crate) model: LightHubert,
    /// The file, or None for the bundled demo checkpoint.
    pub(crate) checkpoint: Option<PathBuf>,
    pub(crate) label: String,
    pub(crate) precision: Precision,
    pub(crate) weights: Weights,
    pub(crate) math: Math,
    info: serde_json::Value,
    /// The checkpoint's name, size and SHA-256, hashed at the first corpus run.
    checkpoint_id: OnceLock<CheckpointId>,
}

/// The keyword `what` as the command takes the same option (`weights`, `math`, `dtype`,
/// `layout`, `format`): one of its names, any case; anything else is a `UsageError` listing them.
pub fn parse_choice<T: ValueEnum>(what: &str, value: &str) -> PyResult<T> {
    T::from_str(value, true).map_err(|_| {
        let valid: Vec<String> =
            T::value_variants().iter().filter_map(|v| v.to_possible_value()).map(|p| p.get_name().to_string()).collect();
        errors::usage(format!("{what}={value:?}: expected one of {}", valid.join(", ")))
    })
}

impl Model {
    pub fn supernet(&self) -> &Supernet {
        self.model.supernet()
    }

    /// The checkpoint's identity as a corpus run records it (hashed once).
    pub fn checkpoint_id(&self) -> Result<CheckpointId, CorpusError> {
        if let Some(id) = self.checkpoint_id.get() {
            return Ok(id.clone());
        }
        let id = match &self.checkpoint {
            Some(p) => CheckpointId::of_file(p)?,
            None => CheckpointId::of_bytes(bundled::CHECKPOINT_NAME, bundled::CHECKPOINT),
        };
        Ok(self.checkpoint_id.get_or_init(|| id).clone())
    }

    fn resolve_subnet(&self, spec: &str) -> PyResult<PySubnet> {
        let s = subnet::resolve(self.supernet(), spec)?;
        Ok(PySubnet::new(self.supernet(), s))
    }

    /// The extraction shared by `extract` and `__call__`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        waves: Vec<PyReadonlyArray1<'_, f32>>,
        subnet: &PySubnet,
        layers: &str,
        normalize: Option<bool>,
        sample_rate: u32,
        batch_size: usize,
    ) -> PyResult<Vec<lighthubert::Features>> {
        if batch_size == 0 {
            return Err(errors::usage("batch_size=0: a batch holds at least one waveform"));
        }
        let selection: LayerSelection =
            layers.parse().map_err(|e| errors::usage(format!("layers={layers:?}: {e}")))?;
        // Copied while the GIL is held: the arrays belong to Python, the GPU work does not.
        let waves: Vec<Vec<f32>> = waves
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.as_slice().map(<[f32]>::to_vec).map_err(|_| errors::usage(format!("waveform {i}: not a contiguous array")))
            })
            .collect::<PyResult<_>>()?;
        let subnet = subnet.subnet.clone();
        let options = ExtractOptions { normalize, layers: selection };
        py.detach(|| {
            errors::no_panic("extract", || {
                let waves = waves::prepare(&self.model, waves, sample_rate)?;
                waves::extract(&self.model, &subnet, &waves, &options, batch_size)
            })
        })
    }
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (checkpoint=None, *, weights="f32", math="f32", adapter=None, backend=None))]
    fn new(
        py: Python<'_>,
        checkpoint: Option<PathBuf>,
        weights: &str,
        math: &str,
        adapter: Option<String>,
        backend: Option<String>,
    ) -> PyResult<Model> {
        let weights: Weights = parse_choice("weights", weights)?;
        let math: Math = parse_choice("math", math)?;
        let precision = lighthubert_tools::cli::precision(weights, math);
        py.detach(move || errors::no_panic("Model", || {
            let src = load_checkpoint(checkpoint.as_deref()).map_err(errors::from_cli)?;
            let supernet = supernet_of(&src).map_err(errors::from_cli)?;
            let env = AdapterChoice::from_env();
            let choice = match backend {
                Some(b) => AdapterChoice { params: env.params, tune: env.tune, ..AdapterChoice::from_settings(Some(b), adapter.or(env.name_filter), env.kernels) },
                None => AdapterChoice { name_filter: adapter.or(env.name_filter), ..env },
            };
            let ctx = Arc::new(GpuContext::new(&choice).map_err(|e| errors::raise(Kind::Device, format!("GPU: {e}")))?);
            let model = LightHubert::load_with(ctx.clone(), &src.ckpt, precision)
                .map_err(|e| errors::from_cli(lighthubert_tools::CliError::model(&src.label, e)))?;
            let size = checkpoint.as_deref().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len());
            let info = describe(&src, &supernet, &model, size);
            Ok(Model {
                model,
                checkpoint,
                label: src.label,
                precision,
                weights,
                math,
                info,
                checkpoint_id: OnceLock::new(),
            })
        }))
    }

    /// The checkpoint, its supernet, search space and presets (with parameter counts), and
    /// the adapter and precision it runs with, as a dict.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pythonize::pythonize(py, &self.info).map_err(|e| errors::raise(Kind::Other, e.to_string()))
    }

    /// The checkpoint file, or None for the bundled demo checkpoint.
    #[getter]
    fn checkpoint(&self) -> Option<PathBuf> {
        self.checkpoint.clone()
    }

    #[getter]
    fn adapter(&self) -> String {
        self.model.context().describe()
    }

    /// Whether `extract` normalises waveforms when not told: the checkpoint's
    /// `cfg.task.normalize`, else False.
    #[getter]
    fn default_normalize(&self) -> bool {
        self.model.default_normalize()
    }

    /// Samples at 16 kHz of one frame: the shortest waveform the model takes.
    #[getter]
    fn min_samples(&self) -> usize {
        min_samples(&self.supernet().dims)
    }

    /// A subnet of this model: a preset (`default`, `min`, `max`, `random:SEED`), a JSON file
    /// in the authors' format, or the authors' dict as JSON text.
    fn subnet(&self, spec: &str) -> PyResult<PySubnet> {
        errors::no_panic("subnet", || self.resolve_subnet(spec))
    }

    /// See `lighthubert.Model.extract`.
    #[pyo3(signature = (waves, subnet, layers, normalize, sample_rate, batch_size))]
    #[allow(clippy::too_many_arguments)]
    fn _extract<'py>(
        &self,
        py: Python<'py>,
        waves: Vec<PyReadonlyArray1<'py, f32>>,
        subnet: PyRef<'py, PySubnet>,
        layers: &str,
        normalize: Option<bool>,
        sample_rate: u32,
        batch_size: usize,
    ) -> PyResult<Vec<Bound<'py, PyArray3<f32>>>> {
        let features = self.run(py, waves, &subnet, layers, normalize, sample_rate, batch_size)?;
        features.into_iter().map(|f| waves::stacked(py, f)).collect()
    }

    /// See `lighthubert.Model.__call__`.
    #[pyo3(signature = (waves, subnet, layers, normalize, sample_rate, batch_size))]
    #[allow(clippy::too_many_arguments)]
    fn _padded<'py>(
        &self,
        py: Python<'py>,
        waves: Vec<PyReadonlyArray1<'py, f32>>,
        subnet: PyRef<'py, PySubnet>,
        layers: &str,
        normalize: Option<bool>,
        sample_rate: u32,
        batch_size: usize,
    ) -> PyResult<waves::Padded<'py>> {
        let features = self.run(py, waves, &subnet, layers, normalize, sample_rate, batch_size)?;
        waves::padded(py, features)
    }

    /// See `lighthubert.Model.extract_corpus`.
    #[pyo3(signature = (args, progress=None))]
    fn _extract_corpus<'py>(&self, py: Python<'py>, args: RunArgs, progress: Option<Py<PyAny>>) -> PyResult<Bound<'py, PyDict>> {
        self.extract_corpus(py, args, progress)
    }

    /// See `lighthubert.ray.Extractor`.
    fn _write_batch<'py>(&self, py: Python<'py>, args: RunArgs, rows: Vec<(String, PathBuf)>, worker: String) -> PyResult<Bound<'py, PyList>> {
        self.write_batch(py, args, rows, worker)
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({}, weights={}, math={}, adapter={})",
            self.label,
            self.precision.weights.name(),
            self.precision.math.name(),
            self.model.context().describe()
        )
    }
}

/// `Model.info`.
fn describe(src: &lighthubert_tools::setup::Source, supernet: &Supernet, model: &LightHubert, size: Option<u64>) -> serde_json::Value {
    let d = &supernet.dims;
    let presets: serde_json::Map<String, serde_json::Value> = [("default", Preset::Default), ("min", Preset::Min), ("max", Preset::Max)]
        .into_iter()
        .map(|(name, p)| {
            let s = supernet.preset(&p);
            (name.to_string(), json!({ "subnet": s, "parameters": supernet.parameter_count(&s) }))
        })
        .collect();
    let mode = match d.extractor_mode {
        lighthubert::checkpoint::ExtractorMode::Default => "default",
        lighthubert::checkpoint::ExtractorMode::LayerNorm => "layer_norm",
    };
    json!({
        "checkpoint": {
            "path": src.label,
            "bundled": src.bundled,
            "size": size,
            "model": src.ckpt.config.name,
            "normalize": src.ckpt.task_normalize,
            // An exported subnet file: the checkpoint it was cut from (None for a checkpoint).
            "origin": src.ckpt.origin,
        },
        "exported_subnet": supernet.exported,
        "config": {
            "extractor_mode": mode,
            "conv_layers": d.conv_layers.iter().map(|l| [l.channels, l.kernel, l.stride]).collect::<Vec<_>>(),
            "conv_bias": d.conv_bias,
            "embed_dim": d.embed,
            "attention_dim": d.attention,
            "ffn_embed_dim": d.ffn,
            "layers": d.layers,
            "pos_conv_kernel": d.pos_conv_kernel,
            "pos_conv_groups": d.pos_conv_groups,
            "frame_rate": frame_rate(supernet).parse::<f64>().unwrap_or(0.0),
            "sample_rate": 16000,
            "min_samples": min_samples(d),
        },
        "search_space": supernet.space,
        "default_preset": format!("{:?}", supernet.default_preset).to_lowercase(),
        "presets": presets,
        "adapter": model.context().describe(),
        "weights": model.weight_precision().name(),
        "math": model.precision().math.name(),
    })
}
