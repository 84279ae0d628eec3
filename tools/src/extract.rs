//! `lighthubert extract`: the command line over the corpus library. It picks the inputs,
//! layout and shard from the arguments, loads the model, and reports; the run itself (resume,
//! pipelining, failures, atomic outputs) is `lighthubert_corpus::Plan`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use lighthubert::gpu::Precision;
use lighthubert::supernet::Supernet;
use lighthubert::{ExtractOptions, LayerSelection, LightHubert, Subnet};
use lighthubert_corpus::run::CheckpointId;
use lighthubert_corpus::{
    CorpusError, Failure, Finished, Format, Inputs, Layout, Plan, Progress, RunConfig, RunOptions, Shard, Utterance,
    inputs,
};

use crate::bundled;
use crate::cli::{ExtractArgs, LayoutArg};
use crate::setup::{frame_rate, load_checkpoint, open_gpu, resolve_layers, resolve_subnet, subnet_summary, supernet_of};
use crate::error::CliError;
use crate::signals::Signals;

macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

pub fn extract(args: ExtractArgs) -> Result<(), CliError> {
    if args.inputs.is_empty() && args.files_from.is_none() {
        if let Some(out) = &args.out {
            return Err(CliError::Usage(format!("--out {}: no INPUT audio files or folders given", out.display())));
        }
        return crate::summary::demo(&args);
    }
    let Some(out) = args.out.clone() else {
        let first = args.inputs.first().or(args.files_from.as_ref()).map(|p| p.display().to_string()).unwrap_or_default();
        return Err(CliError::Usage(format!(
            "{first}: where should the features go? pass --out DIR (or --out FILE.npy|FILE.safetensors for one input)"
        )));
    };

    // Everything that can be checked is checked before the model loads: inputs, shard, layout,
    // checkpoint, subnet, layers, the output folder.
    let request = CorpusRequest::from_args(&args, &out)?;
    let src = load_checkpoint(args.checkpoint.as_deref())?;
    let supernet = supernet_of(&src)?;
    let precision = crate::cli::precision(args.weights, args.math);
    let Planned { plan, subnet, options: extract_options, normalize } =
        request.plan(&args, &supernet, src.ckpt.task_normalize, precision, || match &args.checkpoint {
            Some(p) => CheckpointId::of_file(p),
            None => Ok(CheckpointId::of_bytes(bundled::CHECKPOINT_NAME, bundled::CHECKPOINT)),
        })?;
    let (inputs, shard) = (&request.inputs, request.shard);

    if src.bundled {
        say!("NOTE: no --checkpoint: using the {}; these features mean nothing", bundled::checkpoint_label());
    }
    if !shard.is_whole() {
        say!("shard      {shard}: {} of {} inputs", plan.in_shard(), inputs.utterances.len());
    }
    if plan.todo() == 0 {
        say!("nothing to do: all {} file(s) were done before (--force starts over)", plan.in_shard());
        return Ok(());
    }
    let signals = Signals::install();
    let ctx = open_gpu()?;
    let t_load = Instant::now();
    let model = LightHubert::load_with(ctx.clone(), &src.ckpt, precision).map_err(|e| CliError::model(&src.label, e))?;
    let load_time = t_load.elapsed();
    drop(src.ckpt); // the weights live on the GPU now
    say!("checkpoint {}, loaded in {:.2} s", src.label, load_time.as_secs_f64());
    say!("subnet     {}", subnet_summary(&supernet, &subnet));
    say!("adapter    {}", ctx.describe());
    say!("precision  {} weights, {} arithmetic", model.weight_precision().name(), model.precision().math.name());
    say!(
        "normalize  {normalize}; {} file(s) to do ({} done before) in batches of {}",
        plan.todo(),
        plan.before(),
        args.batch_size
    );

    let several = inputs.utterances.len() > 1;
    let reporter = Reporter::new(several);
    let summary = plan.run(&model, &subnet, &extract_options, &reporter, &signals.stop);
    reporter.bar.finish_and_clear();
    let summary = summary?;

    let wall = summary.wall_seconds.max(1e-9);
    let speed = if summary.audio_seconds > 0.0 {
        format!(
            " ({:.1} s of audio per second, real-time factor {:.3})",
            summary.audio_seconds / wall,
            wall / summary.audio_seconds
        )
    } else {
        String::new()
    };
    say!(
        "done: {} file(s) extracted, {} done before, {} failed; {:.2} s of audio in {:.2} s{speed}",
        summary.extracted,
        summary.before,
        summary.failures.len(),
        summary.audio_seconds,
        wall,
    );
    if summary.interrupted {
        let (signal, exit) = signals.received().unwrap_or(("SIGINT", 130));
        return Err(CliError::Incomplete {
            message: format!(
                "interrupted by {signal}: {} of {} file(s) done, every output complete; resume with: {}",
                summary.before + summary.extracted,
                summary.in_shard,
                resume_command()
            ),
            exit,
        });
    }
    if !summary.failures.is_empty() {
        let message = match (several, summary.failures.first()) {
            (false, Some(f)) => format!("{}: {}", f.path.display(), f.reason),
            _ => {
                let listed =
                    summary.failures_file.as_ref().map(|f| format!(" (listed in {})", f.display())).unwrap_or_default();
                format!(
                    "{} of {} file(s) failed{listed}; the others are done, and rerunning the same command tries the failed ones again",
                    summary.failures.len(),
                    summary.in_shard
                )
            }
        };
        return Err(CliError::Incomplete { message, exit: 1 });
    }
    Ok(())
}

/// A corpus run's inputs, shard and layout: what `extract` checks before it reads the
/// checkpoint. The Python package builds one from its keywords, so both write the same files.
pub struct CorpusRequest {
    pub inputs: Inputs,
    pub shard: Shard,
    pub layout: Layout,
    pub out: PathBuf,
    /// One of several workers sharing the folder ([`RunOptions::worker`]).
    pub worker: Option<String>,
}

/// A corpus run checked against the checkpoint and the output folder, ready for a model.
pub struct Planned {
    pub plan: Plan,
    pub subnet: Subnet,
    pub options: ExtractOptions,
    pub normalize: bool,
}

impl CorpusRequest {
    /// Gathers the inputs (refusing none found) and picks the shard and the layout.
    pub fn from_args(args: &ExtractArgs, out: &Path) -> Result<CorpusRequest, CliError> {
        let inputs = inputs::gather(&args.inputs, args.files_from.as_deref())?;
        if inputs.utterances.is_empty() {
            let what = args.inputs.iter().chain(&args.files_from).map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
            return Err(CliError::Usage(format!(
                "{what}: no audio files found (folders are searched for {})",
                inputs::AUDIO_EXTENSIONS.map(|e| format!(".{e}")).join(", ")
            )));
        }
        let shard = shard(args)?;
        let layout = layout(args, &inputs, out)?;
        Ok(CorpusRequest { inputs, shard, layout, out: out.to_path_buf(), worker: None })
    }

    /// Resolves the subnet and layers against `supernet`, builds the run's configuration and
    /// plans the shard (creating the output folder, resuming an earlier run). `checkpoint`
    /// hashes the checkpoint, after every cheaper check has passed.
    pub fn plan(
        &self,
        args: &ExtractArgs,
        supernet: &Supernet,
        task_normalize: Option<bool>,
        precision: Precision,
        checkpoint: impl FnOnce() -> Result<CheckpointId, CorpusError>,
    ) -> Result<Planned, CliError> {
        let subnet = resolve_subnet(supernet, &args.subnet)?;
        let (_, indices) = resolve_layers(&args.layers, &subnet)?;
        let normalize = args.normalize().unwrap_or(task_normalize.unwrap_or(false));
        let format = match &self.layout {
            Layout::Files(f) | Layout::File { format: f, .. } => f.extension(),
            Layout::Fairseq { .. } => "npy",
        };
        let config = RunConfig {
            checkpoint: checkpoint()?,
            subnet: serde_json::to_value(&subnet).unwrap_or_default(),
            layers: indices.clone(),
            normalize,
            weights: precision.weights.name().to_string(),
            math: precision.math.name().to_string(),
            dtype: args.dtype.into(),
            layout: self.layout.name().to_string(),
            format: format.to_string(),
            split: match &self.layout {
                Layout::Fairseq { split } => Some(split.clone()),
                _ => None,
            },
            frame_rate: frame_rate(supernet),
        };
        let mut options = RunOptions::new(&self.out, self.layout.clone());
        options.dtype = args.dtype.into();
        options.shard = self.shard;
        options.batch_size = args.batch_size as usize;
        options.window = options.batch_size * 8;
        if let Some(n) = args.decode_threads {
            options.decode_threads = n as usize;
        }
        options.force = args.force;
        options.fail_fast = args.fail_fast;
        options.worker = self.worker.clone();
        let plan = Plan::new(&self.inputs, config, options)?;
        let options = ExtractOptions { normalize: Some(normalize), layers: LayerSelection::Indices(indices) };
        Ok(Planned { plan, subnet, options, normalize })
    }
}

/// `--shard`, else the job scheduler's, said on stderr, else the whole input.
fn shard(args: &ExtractArgs) -> Result<Shard, CliError> {
    if let Some(s) = &args.shard {
        return Ok(s.parse()?);
    }
    match Shard::from_env()? {
        Some((shard, why)) => {
            eprintln!("note: {why}");
            Ok(shard)
        }
        None => Ok(Shard::WHOLE),
    }
}

/// The layout `--out`, `--layout` and `--format` ask for.
fn layout(args: &ExtractArgs, inputs: &Inputs, out: &Path) -> Result<Layout, CliError> {
    let ext_format = Format::from_path(out);
    let format = args.format.map(Format::from);
    if args.layout == LayoutArg::Fairseq {
        if let Some(f) = format.filter(|&f| f != Format::Npy) {
            return Err(CliError::Usage(format!("--format {}: the fairseq layout writes .npy", f.extension())));
        }
        let split = args.split.clone().or_else(|| inputs.manifest_stem.clone()).ok_or_else(|| {
            CliError::Usage("--layout fairseq: name the split with --split NAME (a fairseq manifest's file stem is the default)".into())
        })?;
        if ext_format.is_some() || (out.exists() && !out.is_dir()) {
            return Err(CliError::output(out, "the fairseq layout writes into a directory"));
        }
        return Ok(Layout::Fairseq { split });
    }
    if args.split.is_some() {
        return Err(CliError::Usage("--split names the split of --layout fairseq".into()));
    }
    let one_file = inputs.only_named_files && inputs.utterances.len() == 1;
    if !out.is_dir() {
        if let Some(ext_format) = ext_format {
            if !one_file {
                return Err(CliError::output(
                    out,
                    format!(
                        "with {} inputs --out must be a directory, not a .{} file",
                        inputs.utterances.len(),
                        out.extension().and_then(|e| e.to_str()).unwrap_or("")
                    ),
                ));
            }
            if let Some(f) = format.filter(|&f| f != ext_format) {
                return Err(CliError::output(
                    out,
                    format!("the extension says {} but --format is {}", ext_format.extension(), f.extension()),
                ));
            }
            return Ok(Layout::File { path: out.to_path_buf(), format: ext_format });
        }
        if let Some(ext) = out.extension().and_then(|e| e.to_str())
            && !out.exists()
        {
            return Err(CliError::output(
                out,
                format!(
                    "unknown extension .{ext}: a file output is .npy or .safetensors, a directory name has no extension (or create the directory first)"
                ),
            ));
        }
    }
    Ok(Layout::Files(format.unwrap_or(Format::Npy)))
}

/// This command line again, without `--force` (that would start over): the resume command.
fn resume_command() -> String {
    let quote = |a: String| {
        if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
            a
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    std::env::args().filter(|a| a != "--force").map(quote).collect::<Vec<_>>().join(" ")
}

/// Progress on stderr (a bar when it is a terminal) and one line per file on stdout.
struct Reporter {
    bar: ProgressBar,
    started: Instant,
    audio_seconds: Mutex<f64>,
    several: bool,
}

impl Reporter {
    fn new(several: bool) -> Reporter {
        let bar = if several && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            if let Ok(style) =
                ProgressStyle::with_template("{elapsed_precise} {bar:30} {pos}/{len} files, {msg}, ETA {eta}")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Reporter { bar, started: Instant::now(), audio_seconds: Mutex::new(0.0), several }
    }
}

impl Progress for Reporter {
    fn started(&self, todo: &[&Utterance], _before: usize) {
        self.bar.set_length(todo.len() as u64);
        self.bar.set_message("0.00 h of audio");
    }

    fn finished(&self, done: &Finished<'_>) {
        let seconds = done.samples as f64 / 16_000.0;
        let total = {
            let mut a = self.audio_seconds.lock().unwrap_or_else(|p| p.into_inner());
            *a += seconds;
            *a
        };
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.inc(1);
        self.bar.set_message(format!("{:.2} h of audio, {:.1} audio-s/s", total / 3600.0, total / elapsed));
        let (info, f) = (done.info, done.features);
        self.bar.suspend(|| {
            say!(
                "{} ({}, {} Hz, {} ch, {seconds:.2} s) -> {} [{} x {} x {}]",
                done.utterance.path.display(),
                info.format,
                info.rate,
                info.channels,
                done.output.display(),
                f.states.len(),
                f.frames,
                f.embed
            )
        });
    }

    fn failed(&self, failure: &Failure) {
        // A one-file run reports its failure once, as the run's error.
        if self.several {
            self.bar.suspend(|| eprintln!("error: {}: {}", failure.path.display(), crate::error::one_line(&failure.reason)));
        }
        self.bar.inc(1);
    }
}

