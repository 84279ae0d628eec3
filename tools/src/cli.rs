//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use lighthubert::gpu::{Arithmetic, Precision, WeightPrecision};

/// How the weight matrices are stored on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Weights {
    /// Bit-exact to the checkpoint's f32 values.
    F32,
    /// Half the GPU memory; exact for checkpoints stored in f16, otherwise about 1e-3 relative
    /// error on the hidden states (README: fidelity).
    F16,
}

/// The arithmetic of the GPU kernels' GEMMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Math {
    F32,
    /// f16 products with f32 accumulation, on adapters with SHADER_F16 running the GPU
    /// kernels; about 1e-3 relative error (README: fidelity).
    F16,
    /// f16 products on matrix units (tensor cores) with f32 accumulation, for the GEMMs, on
    /// adapters that offer wgpu's 16x16 f16 cooperative matrices with subgroups of 32
    /// (NVIDIA's Vulkan driver); refused elsewhere.
    #[value(name = "f16-matrix")]
    F16Matrix,
}

/// `--weights` and `--math` together.
pub fn precision(weights: Weights, math: Math) -> Precision {
    Precision {
        weights: match weights {
            Weights::F32 => WeightPrecision::F32,
            Weights::F16 => WeightPrecision::F16,
        },
        math: match math {
            Math::F32 => Arithmetic::F32,
            Math::F16 => Arithmetic::F16,
            Math::F16Matrix => Arithmetic::F16Matrix,
        },
    }
}

/// Run LightHuBERT (the once-for-all HuBERT) subnets on the GPU and extract speech features.
///
/// With no command, runs the bundled demo: a tiny test checkpoint with RANDOM weights on a
/// bundled speech clip (it shows the engine running; its numbers are not speech features).
#[derive(Debug, Parser)]
#[command(name = "lighthubert", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Extract hidden states from audio files into .npy or .safetensors files.
    ///
    /// Audio: WAV (8/16/24/32-bit PCM, 32-bit float), FLAC, Ogg Vorbis, MP3; channels are
    /// averaged, other rates resampled to 16 kHz. With no INPUT and no --out, runs the demo
    /// summary on the bundled clip.
    Extract(ExtractArgs),
    /// Describe a checkpoint: config, search space, preset subnets, stored dtypes.
    Info {
        /// A LightHuBERT checkpoint (.pt), or a subnet `lighthubert export` wrote (.safetensors).
        file: PathBuf,
    },
    /// Print a subnet in the authors' JSON format (use it with `extract --subnet FILE`).
    Subnet(SubnetArgs),
    /// Time every GPU dispatch of one forward pass: a table per kernel (calls, time, share,
    /// GFLOP/s, GB/s) and a Chrome trace that Perfetto opens.
    Profile(ProfileArgs),
    /// Find the subnet with the most parameters (or FLOPs) whose latency on this GPU, for S
    /// seconds of audio, stays within a budget. Prints the subnet as JSON on stdout (use it
    /// with `extract --subnet FILE`) and the Pareto front, predicted against measured, on
    /// stderr, and draws the front as a PNG.
    ///
    /// The first search on a device measures its latency table (per-kernel timings of every
    /// layer shape; seconds to minutes) and saves it; later searches reuse it.
    Search(SearchArgs),
    /// List the GPU adapters this machine offers, numbered as LIGHTHUBERT_ADAPTER=N picks them
    /// (two identical GPUs differ only by their number). Honours WGPU_BACKEND.
    Adapters,
    /// Write one subnet as a model of its own. By default a standalone .safetensors file
    /// holding only that subnet's weights, which every command (and the Python package) opens
    /// wherever it opens a .pt. `--format hf` writes a folder that Hugging Face transformers'
    /// `HubertModel.from_pretrained` loads (config.json, model.safetensors), for subnets it can
    /// express (the same heads and FFN width in every layer, 64 x heads = embed_dim).
    Export(ExportArgs),
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One .safetensors file that lighthubert opens as it opens a checkpoint.
    Subnet,
    /// A folder for transformers' HubertModel: config.json and model.safetensors.
    Hf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// LightHuBERT checkpoint (.pt), or a subnet `lighthubert export` wrote (.safetensors);
    /// without it, the bundled demo checkpoint (random weights).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,

    /// Subnet: default, min, max, random:SEED, or a JSON file in the authors' format.
    #[arg(long, value_name = "PRESET|FILE.json", default_value = "default")]
    pub subnet: String,

    /// The format to write.
    #[arg(long, value_enum, default_value = "subnet")]
    pub format: ExportFormat,

    /// How the weights are stored: f32, or f16 (half the size).
    #[arg(long, value_enum, default_value = "f32")]
    pub weights: Weights,

    /// The file to write (`--format subnet`, e.g. small.safetensors), or the folder
    /// (`--format hf`, created if missing).
    #[arg(long, short, value_name = "FILE|DIR")]
    pub out: PathBuf,

    /// Replace an earlier export's files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// LightHuBERT checkpoint (.pt), or a subnet `lighthubert export` wrote (.safetensors);
    /// without it, the bundled demo checkpoint (random weights).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,

    /// The latency budget for one forward pass, in milliseconds.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub budget_ms: f64,

    /// Seconds of audio the budget is for (attention grows with the square of the length).
    #[arg(long, value_name = "S", default_value_t = 4.0, allow_negative_numbers = true)]
    pub audio_seconds: f64,

    /// What to maximise within the budget.
    #[arg(long, value_enum, default_value = "params")]
    pub objective: ObjectiveArg,

    /// How the weight matrices are stored on the GPU (latency depends on it).
    #[arg(long, value_enum, default_value = "f32")]
    pub weights: Weights,

    /// Arithmetic of the GPU kernels' matrix products.
    #[arg(long, value_enum, default_value = "f32")]
    pub math: Math,

    /// The device's latency table: read from here if it exists and matches this device,
    /// else measured and written here. Default: a file per device and setting under
    /// $XDG_CACHE_HOME/lighthubert/latency (or ~/.cache/...).
    #[arg(long, value_name = "FILE.json")]
    pub table: Option<PathBuf>,

    /// Measure the latency table again even if a saved one matches.
    #[arg(long)]
    pub remeasure: bool,

    /// Timed runs per measurement (the median counts; the table keeps each part's fastest).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub runs: usize,

    /// How far under the budget the chosen subnet must run when measured (a fraction), so
    /// that the next run still meets it.
    #[arg(long, value_name = "F", default_value_t = 0.05)]
    pub margin: f64,

    /// Pareto-front subnets to run end to end besides the chosen one, to show how far the
    /// prediction is from the measurement.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub check: usize,

    /// Draw the Pareto front here (PNG). Default: beside the latency table.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,

    /// Overwrite an existing --plot file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ObjectiveArg {
    Params,
    Flops,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// LightHuBERT checkpoint (.pt), or a subnet `lighthubert export` wrote (.safetensors);
    /// without it, the bundled demo checkpoint (random weights).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,

    /// Subnet: default, min, max, random:SEED, or a JSON file in the authors' format.
    #[arg(long, value_name = "PRESET|FILE.json", default_value = "default")]
    pub subnet: String,

    /// How the weight matrices are stored on the GPU.
    #[arg(long, value_enum, default_value = "f32")]
    pub weights: Weights,

    /// Arithmetic of the GPU kernels' matrix products.
    #[arg(long, value_enum, default_value = "f32")]
    pub math: Math,

    /// Seconds of synthetic audio to run, when no INPUT is given.
    #[arg(long, value_name = "S", default_value_t = 4.0)]
    pub seconds: f64,

    /// Profiled runs after one warm-up; the table shows the run with the median total.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub runs: usize,

    /// Write the Chrome trace (JSON) here.
    #[arg(long, value_name = "FILE.json")]
    pub trace: Option<PathBuf>,

    /// Overwrite an existing trace file.
    #[arg(long)]
    pub force: bool,

    /// An audio file to run instead of synthetic audio.
    pub input: Option<PathBuf>,
}

/// The file format of per-utterance features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// One array [states, frames, embed] (NumPy .npy v1.0).
    Npy,
    /// One [frames, embed] tensor per state, `hidden_state.<index>`, with the run's metadata.
    Safetensors,
}

impl From<FormatArg> for lighthubert_corpus::Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Npy => lighthubert_corpus::Format::Npy,
            FormatArg::Safetensors => lighthubert_corpus::Format::Safetensors,
        }
    }
}

/// How features are stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    F32,
    /// Half the disk (about 3 significant digits).
    F16,
}

impl From<DtypeArg> for lighthubert_corpus::Dtype {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F32 => lighthubert_corpus::Dtype::F32,
            DtypeArg::F16 => lighthubert_corpus::Dtype::F16,
        }
    }
}

/// How outputs are laid out in the --out folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// OUT/<id>.<npy|safetensors>, mirroring the inputs' folders.
    Files,
    /// fairseq's dump_hubert_feature.py: OUT/<split>_<I>_<N>.npy and .len per shard, one
    /// layer, manifest order (its learn_kmeans.py and dump_km_label.py read them unchanged).
    Fairseq,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// LightHuBERT checkpoint (.pt), or a subnet `lighthubert export` wrote (.safetensors);
    /// without it, the bundled demo checkpoint (random weights).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,

    /// Subnet: default, min, max, random:SEED, or a JSON file in the authors' format.
    #[arg(long, value_name = "PRESET|FILE.json", default_value = "default")]
    pub subnet: String,

    /// How the weight matrices are stored on the GPU.
    #[arg(long, value_enum, default_value = "f32")]
    pub weights: Weights,

    /// Arithmetic of the GPU kernels' matrix products.
    #[arg(long, value_enum, default_value = "f32")]
    pub math: Math,

    /// Normalise each waveform (zero mean, unit variance) as s3prl does. Default: the
    /// checkpoint's cfg.task.normalize.
    #[arg(long, conflicts_with = "no_normalize")]
    pub normalize: bool,

    /// Do not normalise the waveform.
    #[arg(long)]
    pub no_normalize: bool,

    /// Hidden states to keep: `all`, `last`, indices such as 0,4,12 (0 = post_extract_proj
    /// output, i = output of the i-th kept layer), negative indices (-1 = the last kept layer)
    /// and ranges such as 3-6.
    #[arg(long, value_name = "all|last|0,4,-1|3-6", default_value = "all", allow_hyphen_values = true)]
    pub layers: String,

    /// Output format; default: the --out file's extension, else npy.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,

    /// How features are stored on disk.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,

    /// How outputs are laid out in the --out folder.
    #[arg(long, value_enum, default_value = "files")]
    pub layout: LayoutArg,

    /// The split name in the fairseq layout's file names; default: the manifest's file stem.
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,

    /// Utterances per GPU batch.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// Run the I-th of N shards (I from 0): contiguous ranges of the input order, split as
    /// fairseq splits a manifest. Default: from a Slurm job array (SLURM_ARRAY_TASK_ID, ..._MIN,
    /// ..._COUNT) or torchrun (RANK, WORLD_SIZE) when set, else the whole input.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,

    /// Read input paths from FILE (`-`: standard input), one per line; a fairseq manifest
    /// (first line a root folder, then relative/path<TAB>num_samples) is recognised.
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,

    /// Start over: replace existing outputs instead of resuming.
    #[arg(long)]
    pub force: bool,

    /// Stop at the first file that cannot be used (default: record it and go on).
    #[arg(long)]
    pub fail_fast: bool,

    /// Threads decoding audio while the GPU runs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub decode_threads: Option<u32>,

    /// Output folder (created if missing; features go to <folder>/<id>.<ext>, mirroring the
    /// inputs' folders), or, for one input, a .npy or .safetensors file.
    #[arg(long, short, value_name = "PATH")]
    pub out: Option<PathBuf>,

    /// Audio files, or folders searched recursively for .wav, .flac, .ogg and .mp3 files.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

impl ExtractArgs {
    pub fn normalize(&self) -> Option<bool> {
        match (self.normalize, self.no_normalize) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }

    /// The arguments of a bare `lighthubert`.
    pub fn demo() -> Self {
        ExtractArgs {
            checkpoint: None,
            subnet: "default".into(),
            weights: Weights::F32,
            math: Math::F32,
            normalize: false,
            no_normalize: false,
            layers: "all".into(),
            format: None,
            dtype: DtypeArg::F32,
            layout: LayoutArg::Files,
            split: None,
            batch_size: 8,
            shard: None,
            files_from: None,
            force: false,
            fail_fast: false,
            decode_threads: None,
            out: None,
            inputs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Space {
    /// lighthubert_small.pt's space (Supernet-Small.yaml).
    Small,
    /// lighthubert_base.pt's and lighthubert_stage1.pt's space (Supernet-Base.yaml).
    Base,
    /// The bundled demo checkpoint's (narrow test) space.
    Demo,
}

#[derive(Debug, Args)]
pub struct SubnetArgs {
    /// default, min, max or random:SEED (or, with --checkpoint, a JSON file to check).
    #[arg(value_name = "PRESET")]
    pub preset: String,

    /// Take the search space (and the `default` rule) from this checkpoint, and validate.
    #[arg(long, value_name = "FILE", conflicts_with = "space")]
    pub checkpoint: Option<PathBuf>,

    /// The search space to draw from when no --checkpoint is given.
    #[arg(long, value_enum, default_value = "small")]
    pub space: Space,

    /// Print the JSON on several indented lines.
    #[arg(long)]
    pub pretty: bool,
}
