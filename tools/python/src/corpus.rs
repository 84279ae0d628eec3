//! The corpus pipeline from Python: the command's own planning (inputs, shard, layout,
//! configuration, resume) and run, so a Python run and a `lighthubert extract` run write the
//! same files and each resumes the other. Also the two halves a Ray job splits it into: a
//! driver that plans without a GPU, and workers that write batches of it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lighthubert_corpus::run::StateDir;
use lighthubert_corpus::{Failure, Finished, Inputs, Layout, Progress, Shard, Summary, Utterance};
use lighthubert_tools::cli::{DtypeArg, ExtractArgs, FormatArg, LayoutArg, Math, Weights};
use lighthubert_tools::setup::{load_checkpoint, supernet_of};
use lighthubert_tools::extract::{CorpusRequest, Planned};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::{self, Kind};
use crate::model::{Model, parse_choice};

/// The keywords a corpus run takes, as the command's arguments.
#[derive(Debug, Clone, FromPyObject)]
#[pyo3(from_item_all)]
pub struct RunArgs {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub files_from: Option<PathBuf>,
    pub subnet: String,
    pub layers: String,
    pub normalize: Option<bool>,
    pub layout: String,
    pub format: Option<String>,
    pub dtype: String,
    pub split: Option<String>,
    pub shard: Option<String>,
    pub batch_size: u32,
    pub decode_threads: Option<u32>,
    pub force: bool,
    pub fail_fast: bool,
}

impl RunArgs {
    fn to_extract_args(&self, checkpoint: Option<PathBuf>, weights: Weights, math: Math) -> PyResult<ExtractArgs> {
        if self.batch_size == 0 {
            return Err(errors::usage("batch_size=0: a batch holds at least one file"));
        }
        if self.decode_threads == Some(0) {
            return Err(errors::usage("decode_threads=0: decoding needs at least one thread"));
        }
        Ok(ExtractArgs {
            checkpoint,
            subnet: self.subnet.clone(),
            weights,
            math,
            normalize: self.normalize == Some(true),
            no_normalize: self.normalize == Some(false),
            layers: self.layers.clone(),
            format: self.format.as_deref().map(|f| parse_choice::<FormatArg>("format", f)).transpose()?,
            dtype: parse_choice::<DtypeArg>("dtype", &self.dtype)?,
            layout: parse_choice::<LayoutArg>("layout", &self.layout)?,
            split: self.split.clone(),
            batch_size: self.batch_size,
            shard: self.shard.clone(),
            files_from: self.files_from.clone(),
            force: self.force,
            fail_fast: self.fail_fast,
            decode_threads: self.decode_threads,
            out: Some(self.out.clone()),
            inputs: self.inputs.clone(),
        })
    }
}

/// Reports each file to a Python callable (from the run's writer thread, taking the GIL); the
/// first exception it raises stops the run and is raised when the run has stopped.
struct Callback<'a> {
    callable: Option<Py<PyAny>>,
    out: &'a Path,
    error: Mutex<Option<PyErr>>,
    stop: &'a AtomicBool,
}

impl Callback<'_> {
    fn call(&self, event: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>) {
        let Some(callable) = &self.callable else { return };
        Python::attach(|py| {
            let result = (|| {
                let dict = PyDict::new(py);
                event(&dict)?;
                callable.call1(py, (dict,)).map(drop)
            })();
            if let Err(e) = result {
                self.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                self.stop.store(true, Ordering::SeqCst);
            }
        });
    }
}

impl Progress for Callback<'_> {
    fn finished(&self, done: &Finished<'_>) {
        self.call(|d| {
            d.set_item("id", &done.utterance.id)?;
            d.set_item("path", &done.utterance.path)?;
            d.set_item("output", done.output.strip_prefix(self.out).unwrap_or(done.output))?;
            d.set_item("frames", done.features.frames)?;
            d.set_item("samples", done.samples)?;
            d.set_item("error", py_none(d.py()))
        });
    }

    fn failed(&self, failure: &Failure) {
        self.call(|d| {
            d.set_item("id", &failure.id)?;
            d.set_item("path", &failure.path)?;
            d.set_item("output", py_none(d.py()))?;
            d.set_item("frames", 0)?;
            d.set_item("samples", 0)?;
            d.set_item("error", &failure.reason)
        });
    }
}

fn py_none(py: Python<'_>) -> Bound<'_, PyAny> {
    py.None().into_bound(py)
}

/// Runs `planned` on `model` with the GIL released, checking for Ctrl-C every 100 ms: a
/// KeyboardInterrupt stops the run after the batch in flight (every finished output complete
/// and recorded) and is raised then.
fn run_interruptible(py: Python<'_>, model: &Model, planned: Planned, progress: Option<Py<PyAny>>, out: &Path) -> PyResult<Summary> {
    let stop = AtomicBool::new(false);
    let callback = Callback { callable: progress, out, error: Mutex::new(None), stop: &stop };
    let Planned { plan, subnet, options, .. } = planned;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    // A Receiver is not Sync; the lock lets the GIL-free wait borrow it.
    let done_rx = Mutex::new(done_rx);
    let mut interrupt = None;
    let result = std::thread::scope(|scope| {
        let callback = &callback;
        let (subnet, options, stop) = (&subnet, &options, &stop);
        let lh = &model.model;
        scope.spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan.run(lh, subnet, options, callback, stop)));
            let _ = done_tx.send(result.map_err(|_| ()));
        });
        loop {
            match py.detach(|| done_rx.lock().unwrap_or_else(|p| p.into_inner()).recv_timeout(Duration::from_millis(100))) {
                Ok(Ok(result)) => return result.map_err(errors::from_corpus),
                Ok(Err(())) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(errors::raise(Kind::Other, "the corpus run: internal error (please report it)"));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if interrupt.is_none()
                        && let Err(e) = py.check_signals()
                    {
                        interrupt = Some(e);
                        stop.store(true, Ordering::SeqCst);
                    }
                }
            }
        }
    });
    if let Some(e) = interrupt {
        return Err(e);
    }
    if let Some(e) = callback.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    result
}

fn summary_dict<'py>(py: Python<'py>, s: &Summary, shard: Shard) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("in_shard", s.in_shard)?;
    d.set_item("before", s.before)?;
    d.set_item("extracted", s.extracted)?;
    d.set_item("failures", failures_list(py, &s.failures)?)?;
    d.set_item("audio_seconds", s.audio_seconds)?;
    d.set_item("wall_seconds", s.wall_seconds)?;
    d.set_item("interrupted", s.interrupted)?;
    d.set_item("state_dir", s.state.clone())?;
    d.set_item("failures_file", s.failures_file.clone())?;
    d.set_item("shard", (shard.index, shard.count))?;
    Ok(d)
}

fn failures_list<'py>(py: Python<'py>, failures: &[Failure]) -> PyResult<Bound<'py, PyList>> {
    let items = failures.iter().map(|f| (f.id.clone(), f.path.clone(), f.reason.clone()));
    PyList::new(py, items)
}

impl Model {
    /// `Model._extract_corpus`: the whole pipeline, as `lighthubert extract` runs it.
    pub fn extract_corpus<'py>(&self, py: Python<'py>, args: RunArgs, progress: Option<Py<PyAny>>) -> PyResult<Bound<'py, PyDict>> {
        let extract_args = args.to_extract_args(self.checkpoint.clone(), self.weights, self.math)?;
        let (planned, shard) = py.detach(|| errors::no_panic("extract_corpus", || {
            let request = CorpusRequest::from_args(&extract_args, &args.out).map_err(errors::from_cli)?;
            let planned = request
                .plan(&extract_args, self.supernet(), self.model.task_normalize(), self.precision, || self.checkpoint_id())
                .map_err(errors::from_cli)?;
            Ok::<_, PyErr>((planned, request.shard))
        }))?;
        let summary = run_interruptible(py, self, planned, progress, &args.out)?;
        summary_dict(py, &summary, shard)
    }

    /// One batch of a planned run, for one of several workers (Ray actors) sharing `out`:
    /// `rows` are (id, path) pairs from the driver's plan. Returns one dict per row: id,
    /// output (relative to `out`, or None), frames, samples, error (None, or why it failed).
    pub fn write_batch<'py>(&self, py: Python<'py>, args: RunArgs, rows: Vec<(String, PathBuf)>, worker: String) -> PyResult<Bound<'py, PyList>> {
        let extract_args = args.to_extract_args(self.checkpoint.clone(), self.weights, self.math)?;
        let layout = match parse_choice::<LayoutArg>("layout", &args.layout)? {
            LayoutArg::Files => {
                Layout::Files(extract_args.format.map(Into::into).unwrap_or(lighthubert_corpus::Format::Npy))
            }
            LayoutArg::Fairseq => {
                return Err(errors::usage(
                    "layout='fairseq': one shard is one sequential file; run extract_corpus(shard=...) per worker instead",
                ));
            }
        };
        let utterances: Vec<Utterance> = rows.into_iter().map(|(id, path)| Utterance { id, path, samples: None }).collect();
        let request = CorpusRequest {
            inputs: Inputs { utterances, manifest_stem: None, only_named_files: false },
            shard: Shard::WHOLE,
            layout,
            out: args.out.clone(),
            worker: Some(worker),
        };
        let collect = Py::new(py, RowCollector { rows: Mutex::new(Vec::new()) })?;
        let planned = py.detach(|| {
            errors::no_panic("Extractor", || {
                request
                    .plan(&extract_args, self.supernet(), self.model.task_normalize(), self.precision, || self.checkpoint_id())
                    .map_err(errors::from_cli)
            })
        })?;
        run_interruptible(py, self, planned, Some(collect.clone_ref(py).into_any()), &args.out)?;
        let rows = std::mem::take(&mut *collect.get().rows.lock().unwrap_or_else(|p| p.into_inner()));
        PyList::new(py, rows)
    }
}

/// Collects the per-file dicts of a worker's batch.
#[pyclass(frozen)]
struct RowCollector {
    rows: Mutex<Vec<Py<PyDict>>>,
}

#[pymethods]
impl RowCollector {
    fn __call__(&self, row: Bound<'_, PyDict>) {
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).push(row.unbind());
    }
}

/// A Ray driver's plan: checks the inputs, the checkpoint, the subnet and the output folder as
/// the command does, saves the run's configuration and returns what is still to do, without
/// loading the model onto a GPU.
#[pyfunction]
#[pyo3(signature = (checkpoint, weights, math, args))]
pub fn _plan_corpus<'py>(py: Python<'py>, checkpoint: Option<PathBuf>, weights: &str, math: &str, args: RunArgs) -> PyResult<Bound<'py, PyDict>> {
    let weights: Weights = parse_choice("weights", weights)?;
    let math: Math = parse_choice("math", math)?;
    let extract_args = args.to_extract_args(checkpoint.clone(), weights, math)?;
    let (todo, in_shard, before, state, shard, config) = py.detach(|| errors::no_panic("plan", || {
        let request = CorpusRequest::from_args(&extract_args, &args.out).map_err(errors::from_cli)?;
        if !matches!(request.layout, Layout::Files(_)) {
            return Err(errors::usage(format!(
                "layout={:?}: a Ray run writes one file per utterance (layout='files')",
                args.layout
            )));
        }
        let src = load_checkpoint(checkpoint.as_deref()).map_err(errors::from_cli)?;
        let supernet = supernet_of(&src).map_err(errors::from_cli)?;
        let precision = lighthubert_tools::cli::precision(weights, math);
        let id = || match &checkpoint {
            Some(p) => lighthubert_corpus::run::CheckpointId::of_file(p),
            None => Ok(lighthubert_corpus::run::CheckpointId::of_bytes(
                lighthubert_tools::bundled::CHECKPOINT_NAME,
                lighthubert_tools::bundled::CHECKPOINT,
            )),
        };
        let planned =
            request.plan(&extract_args, &supernet, src.ckpt.task_normalize, precision, id).map_err(errors::from_cli)?;
        let plan = &planned.plan;
        let todo: Vec<(String, PathBuf, Option<u64>)> =
            plan.todo_utterances().map(|u| (u.id.clone(), u.path.clone(), u.samples)).collect();
        let config = serde_json::to_value(plan.config()).unwrap_or_default();
        Ok((todo, plan.in_shard(), plan.before(), plan.state_dir().map(Path::to_path_buf), request.shard, config))
    }))?;
    let d = PyDict::new(py);
    d.set_item("todo", todo)?;
    d.set_item("in_shard", in_shard)?;
    d.set_item("before", before)?;
    d.set_item("state_dir", state)?;
    d.set_item("shard", (shard.index, shard.count))?;
    d.set_item("config", pythonize::pythonize(py, &config).map_err(|e| errors::usage(e.to_string()))?)?;
    Ok(d)
}

/// Saves a Ray run's failures as the command does (`failures-I-of-N.tsv`; none removes the
/// file) and returns the file, or None.
#[pyfunction]
pub fn _record_failures(out: PathBuf, shard: (usize, usize), failures: Vec<(String, PathBuf, String)>) -> PyResult<Option<PathBuf>> {
    let shard: Shard = format!("{}/{}", shard.0, shard.1).parse().map_err(errors::from_corpus)?;
    let state = StateDir::new(&out, shard);
    let failures: Vec<Failure> = failures.into_iter().map(|(id, path, reason)| Failure { id, path, reason }).collect();
    state.write_failures(&failures).map_err(errors::from_corpus)?;
    Ok((!failures.is_empty()).then(|| state.failures_path()))
}

/// Removes the temporary files that a Ray run's workers (named `<prefix>...`) left beside the
/// outputs of `ids` when they were killed; call it when the run has ended. Returns how many.
#[pyfunction]
pub fn _remove_partials(out: PathBuf, ids: Vec<String>, prefix: String) -> PyResult<usize> {
    let dirs: std::collections::BTreeSet<PathBuf> =
        ids.iter().filter_map(|id| out.join(id).parent().map(Path::to_path_buf)).collect();
    lighthubert_corpus::output::remove_partials(dirs.iter().map(PathBuf::as_path), &prefix).map_err(errors::from_corpus)
}
