//! A corpus run: plan what one shard of the inputs still needs (resuming what an earlier run
//! finished), then decode, extract and write it in a pipeline whose memory stays bounded
//! whatever the corpus size.

pub mod config;
pub mod fairseq;
mod pipeline;
pub mod state;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use lighthubert::{ExtractOptions, Features, LightHubert, Subnet};

pub use config::{CheckpointId, RunConfig};
pub use state::{IndexEntry, STATE_DIR, StateDir};

use crate::error::CorpusError;
use crate::inputs::{Inputs, Utterance};
use crate::npy::Dtype;
use crate::output::Format;
use crate::shard::Shard;

/// Where and how a run writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// `OUT/<id>.<ext>`, one file per utterance, mirroring the inputs' folders; with the run's
    /// configuration, index and failures in `OUT/lighthubert-run/`.
    Files(Format),
    /// One input to one named file, and nothing else.
    File { path: PathBuf, format: Format },
    /// fairseq's feature dump: `OUT/<split>_<I>_<N>.npy` and `.len` per shard (one layer).
    Fairseq { split: String },
}

impl Layout {
    /// How [`RunConfig::layout`] names it.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Files(_) | Layout::File { .. } => "files",
            Layout::Fairseq { .. } => "fairseq",
        }
    }
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The output folder (for [`Layout::File`], unused).
    pub out: PathBuf,
    pub layout: Layout,
    pub dtype: Dtype,
    pub shard: Shard,
    /// Utterances per GPU batch.
    pub batch_size: usize,
    /// Utterances decoded together and sorted by length into batches: padding stays small,
    /// memory holds a few windows of audio at most.
    pub window: usize,
    /// Threads decoding audio while the GPU runs.
    pub decode_threads: usize,
    /// Start over: replace outputs, forget what the index says is done.
    pub force: bool,
    /// Stop at the first file that cannot be used.
    pub fail_fast: bool,
    /// One of several workers sharing this folder that a driver planned for (Ray actors): its
    /// index is `index-<worker>.jsonl`, it skips nothing (the driver already left out what was
    /// done) and it leaves its failures to the driver, which sees every worker's.
    pub worker: Option<String>,
}

impl RunOptions {
    pub fn new(out: impl Into<PathBuf>, layout: Layout) -> RunOptions {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        RunOptions {
            out: out.into(),
            layout,
            dtype: Dtype::F32,
            shard: Shard::WHOLE,
            batch_size: 8,
            window: 64,
            decode_threads: threads.clamp(1, 4),
            force: false,
            fail_fast: false,
            worker: None,
        }
    }
}

/// A file the run could not use, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub id: String,
    pub path: PathBuf,
    pub reason: String,
}

/// What a run reports as it goes; every method is called from the run's writer thread.
pub trait Progress: Sync {
    /// Before any work: the utterances to do now, and how many of the shard were done before.
    fn started(&self, _todo: &[&Utterance], _before: usize) {}
    /// One utterance's output is complete.
    fn finished(&self, _done: &Finished<'_>) {}
    fn failed(&self, _failure: &Failure) {}
}

/// One utterance whose output is complete.
pub struct Finished<'a> {
    pub utterance: &'a Utterance,
    /// What its file's header said.
    pub info: &'a crate::audio::AudioInfo,
    pub features: &'a Features,
    /// Samples at 16 kHz.
    pub samples: usize,
    /// The file it went to (the shard's array in the fairseq layout).
    pub output: &'a Path,
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Utterances in this shard.
    pub in_shard: usize,
    /// Done by earlier runs, skipped.
    pub before: usize,
    /// Extracted by this run.
    pub extracted: usize,
    pub failures: Vec<Failure>,
    /// Seconds of 16 kHz audio extracted by this run.
    pub audio_seconds: f64,
    pub wall_seconds: f64,
    /// Stopped by the cancel flag before the end.
    pub interrupted: bool,
    /// The run's folder of configuration, index and failures (not for [`Layout::File`]).
    pub state: Option<PathBuf>,
    /// Where this shard's failures are listed, when any failed (not for [`Layout::File`]).
    pub failures_file: Option<PathBuf>,
}

impl Summary {
    /// Every utterance of the shard has its output.
    pub fn complete(&self) -> bool {
        self.before + self.extracted == self.in_shard
    }
}

/// One shard of a run, checked and ready: what it writes and what it still has to do.
pub struct Plan {
    options: RunOptions,
    config: RunConfig,
    /// This shard's utterances, in input order.
    utterances: Vec<Utterance>,
    /// Positions in `utterances` still to do, in order.
    todo: Vec<usize>,
    state: Option<StateDir>,
    /// The fairseq layout: this shard's index entries from earlier runs, in order.
    committed: Vec<IndexEntry>,
    /// Whether outputs may replace existing files (ours, or `--force`).
    replace: bool,
    /// The fairseq layout: the shard's final files exist and hold all of it.
    fairseq_complete: bool,
}

impl Plan {
    /// Checks everything that can be checked before the model loads (the output folder is
    /// usable, holds no other run, replaces no input) and reads what earlier runs finished.
    /// Creates the output folder and saves the configuration.
    pub fn new(inputs: &Inputs, config: RunConfig, options: RunOptions) -> Result<Plan, CorpusError> {
        if let Some(w) = &options.worker {
            let plain = !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !plain || !matches!(options.layout, Layout::Files(_)) {
                return Err(CorpusError::Usage(format!(
                    "worker `{w}`: a worker writes the files layout and is named by letters, digits, `-`, `_` and `.`"
                )));
            }
        }
        let range = options.shard.range(inputs.utterances.len());
        let utterances = inputs.utterances[range].to_vec();
        let mut plan = Plan {
            todo: (0..utterances.len()).collect(),
            utterances,
            state: None,
            committed: Vec::new(),
            replace: options.force,
            fairseq_complete: false,
            options,
            config,
        };
        match plan.options.layout.clone() {
            Layout::File { path, .. } => plan.plan_file(inputs, &path)?,
            Layout::Files(format) => plan.plan_files(inputs, format)?,
            Layout::Fairseq { split } => plan.plan_fairseq(inputs, &split)?,
        }
        Ok(plan)
    }

    pub fn in_shard(&self) -> usize {
        self.utterances.len()
    }

    pub fn todo(&self) -> usize {
        self.todo.len()
    }

    pub fn before(&self) -> usize {
        self.utterances.len() - self.todo.len()
    }

    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    pub fn state_dir(&self) -> Option<&Path> {
        self.state.as_ref().map(|s| s.dir.as_path())
    }

    /// Who writes this run's files: the worker, else the shard (`shard-I-of-N`). It names the
    /// temporary files, so what a killed run of the same writer left can be found.
    pub fn writer(&self) -> String {
        match &self.options.worker {
            Some(w) => w.clone(),
            None => format!("shard-{}-of-{}", self.options.shard.index, self.options.shard.count),
        }
    }

    /// The utterances still to do, in input order.
    pub fn todo_utterances(&self) -> impl Iterator<Item = &Utterance> {
        self.todo.iter().map(|&i| &self.utterances[i])
    }

    fn plan_file(&mut self, inputs: &Inputs, path: &Path) -> Result<(), CorpusError> {
        if self.utterances.len() != 1 {
            return Err(CorpusError::output(path, format!("a file holds one utterance; {} inputs need a folder", self.utterances.len())));
        }
        if path.is_dir() {
            return Err(CorpusError::output(path, "is a folder"));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !parent.is_dir() {
            return Err(CorpusError::output(path, format!("folder {} does not exist", parent.display())));
        }
        check_writable(parent)?;
        if path.exists() {
            refuse_inputs(inputs, std::iter::once(path))?;
            if !self.options.force {
                return Err(CorpusError::OutputExists(path.to_path_buf()));
            }
        }
        Ok(())
    }

    /// Creates the output folder, compares or saves the configuration; returns whether the
    /// folder already held this run.
    fn open_state(&mut self) -> Result<bool, CorpusError> {
        let out = self.options.out.clone();
        if out.exists() && !out.is_dir() {
            return Err(CorpusError::output(&out, "exists and is not a folder"));
        }
        std::fs::create_dir_all(&out).map_err(|e| CorpusError::io(&out, e))?;
        check_writable(&out)?;
        let state = StateDir::new(&out, self.options.shard).for_worker(self.options.worker.as_deref());
        let ours = match state.read_config()? {
            Some(saved) => match self.config.difference(&saved) {
                None => true,
                Some((field, ours, theirs)) if !self.options.force => {
                    return Err(CorpusError::ConfigMismatch { path: state.config_path(), field, ours, theirs });
                }
                Some(_) => {
                    // Starting over with other settings: no index of the old run may count.
                    for f in state.all_index_files()? {
                        std::fs::remove_file(&f).map_err(|e| CorpusError::io(&f, e))?;
                    }
                    false
                }
            },
            None => false,
        };
        if self.options.force {
            match std::fs::remove_file(state.index_path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(CorpusError::io(state.index_path(), e)),
                _ => {}
            }
        }
        state.write_config(&self.config, self.options.force)?;
        self.state = Some(state);
        Ok(ours)
    }

    fn plan_files(&mut self, inputs: &Inputs, format: Format) -> Result<(), CorpusError> {
        let outputs = self.utterances.iter().map(|u| self.output_of(u, format)).collect();
        let ours = self.open_state_checked(inputs, outputs)?;
        if self.options.worker.is_none() {
            // A run of this shard killed outright (SIGKILL, a lost node) could not remove the
            // temporary files it was writing; no other writer uses this shard's name.
            let dirs: std::collections::BTreeSet<PathBuf> =
                self.utterances.iter().filter_map(|u| self.output_of(u, format).parent().map(Path::to_path_buf)).collect();
            crate::output::remove_partials(dirs.iter().map(PathBuf::as_path), &format!("{}.", self.writer()))?;
        }
        if ours && !self.options.force && self.options.worker.is_none() {
            let state = self.state.as_ref().expect("state opened");
            let done = state::read_all_indexes(state)?;
            let out = &self.options.out;
            self.todo.retain(|&i| {
                let u = &self.utterances[i];
                !done.get(&u.id).is_some_and(|e| out.join(&e.output).is_file())
            });
        }
        self.replace = true;
        Ok(())
    }

    /// Opens the state folder; before the folder is ours, an existing output is refused
    /// without `--force`, and never may one replace an input.
    fn open_state_checked(&mut self, inputs: &Inputs, outputs: Vec<PathBuf>) -> Result<bool, CorpusError> {
        let existing: Vec<PathBuf> = outputs.into_iter().filter(|p| p.exists()).collect();
        refuse_inputs(inputs, existing.iter().map(PathBuf::as_path))?;
        let state = StateDir::new(&self.options.out, self.options.shard);
        let saved = if self.options.out.is_dir() { state.read_config()? } else { None };
        if let (Some(saved), false) = (&saved, self.options.force)
            && let Some((field, ours, theirs)) = self.config.difference(saved)
        {
            return Err(CorpusError::ConfigMismatch { path: state.config_path(), field, ours, theirs });
        }
        let ours = saved.is_some_and(|s| self.config.difference(&s).is_none());
        if !ours
            && !self.options.force
            && let Some(p) = existing.first()
        {
            return Err(CorpusError::OutputExists(p.clone()));
        }
        self.open_state()
    }

    fn output_of(&self, u: &Utterance, format: Format) -> PathBuf {
        self.options.out.join(format!("{}.{}", u.id, format.extension()))
    }

    fn plan_fairseq(&mut self, inputs: &Inputs, split: &str) -> Result<(), CorpusError> {
        if self.config.layers.len() != 1 {
            return Err(CorpusError::Usage(format!(
                "--layout fairseq writes one layer (fairseq's dump_hubert_feature.py takes one); --layers names {}",
                self.config.layers.len()
            )));
        }
        if split.is_empty() || split.contains(['/', '\\']) {
            return Err(CorpusError::Usage(format!("--split `{split}`: a split name is a plain file-name part, such as train")));
        }
        let (npy, len) = fairseq::shard_files(&self.options.out, split, self.options.shard);
        let finals_exist = npy.exists() || len.exists();
        self.open_state_checked(inputs, vec![npy.clone(), len.clone()])?;
        self.replace = true;
        if self.options.force {
            return Ok(());
        }
        let state = self.state.as_ref().expect("state opened");
        let entries = state::read_index(&state.index_path())?;
        // The index must be a prefix of this shard's order; anything else starts the shard over.
        let prefix = entries.iter().zip(&self.utterances).take_while(|(e, u)| e.id == u.id).count();
        if prefix == entries.len() {
            let complete = prefix == self.utterances.len() && npy.is_file() && len.is_file();
            if complete || !finals_exist {
                self.committed = entries;
                self.todo = (self.committed.len()..self.utterances.len()).collect();
                self.fairseq_complete = complete;
            }
        }
        Ok(())
    }

    /// Runs the plan: decodes on worker threads, extracts on the GPU in length-sorted batches,
    /// writes off the GPU's path. `cancel` (set by a signal handler) stops it after the batch
    /// in flight, with every finished output complete and recorded.
    pub fn run(
        mut self,
        model: &LightHubert,
        subnet: &Subnet,
        options: &ExtractOptions,
        progress: &dyn Progress,
        cancel: &AtomicBool,
    ) -> Result<Summary, CorpusError> {
        let started = std::time::Instant::now();
        let mut fairseq_shard = None;
        if let (Layout::Fairseq { split }, false) = (&self.options.layout, self.fairseq_complete) {
            let (shard, kept) = fairseq::FairseqShard::open(
                &self.options.out,
                split,
                self.options.shard,
                self.options.dtype,
                subnet.embed_dim,
                &self.committed,
            )?;
            let state = self.state.as_ref().expect("fairseq runs have a state folder");
            if kept < self.committed.len() || self.committed.is_empty() {
                self.committed.truncate(kept);
                state::IndexWriter::rewrite(&state.index_path(), &self.committed)?;
                self.todo = (kept..self.utterances.len()).collect();
            }
            fairseq_shard = Some(shard);
        }
        let todo: Vec<&Utterance> = self.todo.iter().map(|&i| &self.utterances[i]).collect();
        progress.started(&todo, self.before());
        let outcome = pipeline::run(&self, model, subnet, options, progress, cancel, fairseq_shard)?;
        if let Some(state) = self.state.as_ref().filter(|_| self.options.worker.is_none()) {
            state.write_failures(&outcome.failures)?;
        }
        Ok(Summary {
            in_shard: self.utterances.len(),
            before: self.before(),
            extracted: outcome.extracted,
            audio_seconds: outcome.audio_seconds,
            wall_seconds: started.elapsed().as_secs_f64(),
            interrupted: outcome.interrupted,
            state: self.state.as_ref().map(|s| s.dir.clone()),
            failures_file: self
                .state
                .as_ref()
                .filter(|_| !outcome.failures.is_empty() && self.options.worker.is_none())
                .map(StateDir::failures_path),
            failures: outcome.failures,
        })
    }
}

/// Fails when the folder does not take a new file (read-only, no permission, full).
fn check_writable(dir: &Path) -> Result<(), CorpusError> {
    tempfile::Builder::new()
        .prefix(".lighthubert-write-test.")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| CorpusError::output(dir, format!("cannot write here: {e}")))
}

/// Refuses when any of `outputs` (existing files) is one of the run's inputs. Outputs are
/// renamed into place, which replaces a symbolic link rather than what it points to, so only
/// the same file under another spelling (`./a.npy`, `x/../a.npy`) can be hit: a file name
/// shared with an input comes first, and only those few paths are canonicalised (a resumed
/// 300k-file run must not resolve every path it already wrote).
fn refuse_inputs<'a>(inputs: &Inputs, outputs: impl Iterator<Item = &'a Path>) -> Result<(), CorpusError> {
    let input_names: HashSet<&std::ffi::OsStr> = inputs.utterances.iter().filter_map(|u| u.path.file_name()).collect();
    let wanted: HashSet<PathBuf> = outputs
        .filter(|p| p.file_name().is_some_and(|n| input_names.contains(n)))
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let names: HashSet<&std::ffi::OsStr> = wanted.iter().filter_map(|p| p.file_name()).collect();
    for u in &inputs.utterances {
        if u.path.file_name().is_some_and(|n| names.contains(n))
            && let Ok(c) = std::fs::canonicalize(&u.path)
            && wanted.contains(&c)
        {
            return Err(CorpusError::OutputIsInput(u.path.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(ids: &[&str]) -> Inputs {
        let utterances = ids.iter().map(|id| Utterance { id: id.to_string(), path: format!("/audio/{id}.wav").into(), samples: None }).collect();
        Inputs { utterances, manifest_stem: None, only_named_files: false }
    }

    #[test]
    fn a_worker_keeps_its_own_index_skips_nothing_and_counts_for_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let config = config::tests::sample();
        let all = inputs(&["a", "b", "c"]);
        // The driver's plan: everything to do, configuration saved.
        let driver = Plan::new(&all, config.clone(), RunOptions::new(&out, Layout::Files(Format::Npy))).unwrap();
        assert_eq!(driver.todo(), 3);
        // A worker records "a" and "b" as done in its own index...
        let mut options = RunOptions::new(&out, Layout::Files(Format::Npy));
        options.worker = Some("ray-x1-host-7-ab".into());
        let worker = Plan::new(&inputs(&["a", "b"]), config.clone(), options.clone()).unwrap();
        let state = worker.state.clone().unwrap();
        assert_eq!(state.index_path(), out.join(STATE_DIR).join("index-ray-x1-host-7-ab.jsonl"));
        let mut ix = state::IndexWriter::open(&state.index_path()).unwrap();
        for id in ["a", "b"] {
            std::fs::write(out.join(format!("{id}.npy")), b"x").unwrap();
            ix.append(&IndexEntry { id: id.into(), source: id.into(), samples: 400, frames: 1, output: format!("{id}.npy"), row: None })
                .unwrap();
        }
        // ...a worker given them again (a retried batch) does them again, since the driver
        // planned it...
        assert_eq!(Plan::new(&inputs(&["a", "b"]), config.clone(), options.clone()).unwrap().todo(), 2);
        // ...and the next whole run, the command's included, counts them as done.
        let next = Plan::new(&all, config.clone(), RunOptions::new(&out, Layout::Files(Format::Npy))).unwrap();
        assert_eq!((next.before(), next.todo()), (2, 1));
        assert_eq!(next.todo_utterances().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["c"]);
        // A worker name is a plain file-name part, and workers write the files layout only.
        for bad in ["", "a/b", "x y"] {
            let mut o = options.clone();
            o.worker = Some(bad.into());
            assert!(matches!(Plan::new(&all, config.clone(), o), Err(CorpusError::Usage(_))), "{bad:?}");
        }
        let mut fairseq = options.clone();
        fairseq.layout = Layout::Fairseq { split: "train".into() };
        assert!(matches!(Plan::new(&all, config, fairseq), Err(CorpusError::Usage(_))));
    }

    #[test]
    fn a_shard_removes_what_its_killed_run_was_writing_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("spk")).unwrap();
        let left = [".a.npy.shard-0-of-1.XYZ.partial", "spk/.b.npy.shard-0-of-1.QRS.partial"];
        let kept = [".a.npy.shard-0-of-10.XYZ.partial", ".a.npy.ray1-h-2-x.Q.partial", "spk/c.npy", ".a.npy.ABC.partial"];
        for name in left.iter().chain(&kept) {
            std::fs::write(out.join(name), b"x").unwrap();
        }
        let plan = Plan::new(&inputs(&["a", "spk/b"]), config::tests::sample(), RunOptions::new(&out, Layout::Files(Format::Npy))).unwrap();
        assert_eq!(plan.writer(), "shard-0-of-1");
        for name in left {
            assert!(!out.join(name).exists(), "{name}");
        }
        for name in kept {
            assert!(out.join(name).exists(), "{name}");
        }
    }
}
