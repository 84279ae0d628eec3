//! `lighthubert-bench corpus`: a whole corpus through the `lighthubert extract` program against
//! the authors' PyTorch model in a researcher's per-file loop, on the same machine in one run.
//!
//! - `generate`: the deterministic corpus (N WAV files of mixed lengths, slices of the bundled
//!   speech clip).
//! - `ours`: `target/release/lighthubert extract CORPUS --out OUT ...` as a child process, its
//!   `done:` line parsed.
//! - `pytorch`: tools/bench_corpus_pytorch.py as a child process.
//! - `agree`: the two sides' `.npy` files compared, so the timings are of the same computation.
//!
//! Both sides are whole processes, timed from spawn to exit (start-up, checkpoint read, model
//! load, then the corpus), and each reports its own corpus time after the load: throughput and
//! real-time factor come from that, the end-to-end figures from the process wall. Repetitions
//! are interleaved by `stats::time_interleaved` (each round runs both sides, the first side
//! alternating), so a slow spell of the machine lands on both; medians over the rounds.

mod agree;
mod cpu;
mod generate;
mod ours;
mod pytorch;

use std::cell::Cell;
use std::path::{Path, PathBuf};

use lighthubert::gpu::{AdapterChoice, GpuContext};
use serde_json::{Map, Value, json};

use crate::report::{self, Report};
use crate::stats::{self, Stats};
use crate::Res;

#[derive(clap::Args, Debug)]
pub struct CorpusArgs {
    /// Checkpoint (.pt) for both sides; default: the bundled test supernet kernels-tests/fixtures/tiny-default.pt.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Number of audio files in the generated corpus.
    #[arg(long, default_value_t = 40)]
    files: usize,
    /// Shortest file, seconds (lengths are spread evenly from here to --max-seconds).
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
    /// Longest file, seconds.
    #[arg(long, default_value_t = 15.0)]
    max_seconds: f64,
    /// Seed of the corpus (which slices of the speech clip, gains, pauses, file order).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Subnet preset or JSON file, as `lighthubert extract --subnet` takes it.
    #[arg(long, default_value = "default")]
    subnet: String,
    /// `lighthubert extract --batch-size` (the PyTorch loop runs one file at a time).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// `lighthubert extract --weights`: f32 or f16 (PyTorch stays f32).
    #[arg(long, default_value = "f32")]
    weights: String,
    /// Timed rounds (each runs every side once).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Untimed full rounds first.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Skip the priming run: by default each side first runs once, untimed, on two files (the
    /// shortest and the longest), so that one-off costs of a first run on this machine (Mesa's
    /// on-disk shader cache, the checkpoint in the page cache, Python's bytecode cache) do not
    /// land on whichever side runs first.
    #[arg(long)]
    no_prime: bool,
    /// The `lighthubert` program; default: `lighthubert` next to this binary (target/release/).
    #[arg(long)]
    lighthubert: Option<PathBuf>,
    /// The authors' PyTorch model in a per-file loop (tools/bench_corpus_pytorch.py).
    #[command(flatten)]
    pytorch: crate::pytorch::PytorchArgs,
    /// Where the corpus and both sides' outputs go; default: a folder under the system temp dir.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work folder (corpus and features) afterwards.
    #[arg(long)]
    keep: bool,
    /// Where results go.
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

/// One process run of either side.
#[derive(Debug, Clone)]
struct Run {
    side: &'static str,
    /// Process wall, spawn to exit.
    wall: f64,
    /// The side's own time for the corpus, after its model load.
    extraction: f64,
    /// The side's own model-load figure (ours: the weights' upload; PyTorch: torch.load and
    /// building the model), for information: start-up + load is `wall - extraction`.
    load: Option<f64>,
    files: usize,
    audio_seconds: f64,
    /// Which round, and the position in it.
    round: usize,
    order: usize,
    /// CPU time of the child and of everything else meanwhile (Linux).
    cpu: Option<cpu::Usage>,
    detail: Value,
}

/// Medians over the timed runs of one side.
struct Summary {
    extraction: Stats,
    wall: Stats,
    files: usize,
    audio_seconds: f64,
}

impl Summary {
    fn of(runs: &[Run]) -> Summary {
        Summary {
            extraction: Stats::new(runs.iter().map(|r| r.extraction).collect()),
            wall: Stats::new(runs.iter().map(|r| r.wall).collect()),
            files: runs[0].files,
            audio_seconds: runs[0].audio_seconds,
        }
    }
    fn json(&self) -> Value {
        let (e, w) = (self.extraction.median(), self.wall.median());
        json!({
            "files": self.files, "audio_seconds": self.audio_seconds, "runs": self.extraction.ms.len(),
            "extraction_s_median": e, "extraction_s_min": self.extraction.ms[0], "extraction_s_max": self.extraction.ms[self.extraction.ms.len() - 1],
            "wall_s_median": w, "wall_s_min": self.wall.ms[0], "wall_s_max": self.wall.ms[self.wall.ms.len() - 1],
            "startup_load_s_median": w - e,
            "files_per_s": self.files as f64 / e, "audio_s_per_s": self.audio_seconds / e, "rtf": e / self.audio_seconds,
            "files_per_s_end_to_end": self.files as f64 / w, "rtf_end_to_end": w / self.audio_seconds,
        })
    }
}

pub fn run(args: &CorpusArgs, repo: &Path) -> Res<()> {
    let command = crate::command_line();
    let checkpoint = args.checkpoint.clone().unwrap_or_else(|| repo.join("kernels-tests/fixtures/tiny-default.pt")).canonicalize()?;
    let bin = args.lighthubert.clone().unwrap_or_else(ours::default_binary);
    if !bin.is_file() {
        return Err(format!("{}: no such program; build it first: cargo build --release -p lighthubert-tools", bin.display()).into());
    }
    if args.files == 0 || !(args.min_seconds > 0.0 && args.max_seconds >= args.min_seconds) {
        return Err("--files must be at least 1 and 0 < --min-seconds <= --max-seconds".into());
    }

    // The adapter the program will pick (same environment, same AdapterChoice::from_env rule).
    let (device, driver, backend) = {
        let ctx = GpuContext::new(&AdapterChoice::from_env())?;
        let i = &ctx.adapter_info;
        (i.name.clone(), format!("{} {}", i.driver, i.driver_info).trim().to_string(), format!("{:?}", i.backend))
    };

    let work = args.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("lighthubert-bench-corpus-{}", std::process::id())));
    std::fs::create_dir_all(&work)?;
    let speech_path = repo.join("tools/assets/speech.wav");
    let (speech, rate) = generate::read_wav_pcm16(&std::fs::read(&speech_path)?).map_err(|e| format!("{}: {e}", speech_path.display()))?;
    if rate != generate::RATE {
        return Err(format!("{}: {rate} Hz, expected 16 kHz", speech_path.display()).into());
    }
    let corpus_dir = work.join("corpus");
    let corpus = generate::write_corpus(&corpus_dir, &speech, args.files, args.min_seconds, args.max_seconds, args.seed)?;
    let audio_seconds: f64 = corpus.iter().map(generate::Utterance::seconds).sum();
    let stems: Vec<String> = corpus.iter().map(|u| u.path.file_stem().unwrap_or_default().to_string_lossy().into_owned()).collect();
    eprintln!("corpus: {} files, {audio_seconds:.2} s of audio in {}", corpus.len(), corpus_dir.display());

    let subnet_json = ours::subnet_json(&bin, &args.subnet, &checkpoint)?;
    let subnet_path = work.join("subnet.json");
    std::fs::write(&subnet_path, &subnet_json)?;
    let subnet: Value = serde_json::from_str(&subnet_json)?;

    let py = pytorch::PyTorch {
        python: args.pytorch.python.clone(),
        script: repo.join("tools/bench_corpus_pytorch.py"),
        threads: args.pytorch.pytorch_threads,
        device: args.pytorch.pytorch_device.clone(),
    };
    let py_check = if args.pytorch.with_pytorch {
        match py.check() {
            Ok(v) => Some(Ok(v)),
            Err(why) => {
                eprintln!("PyTorch side skipped: {why}");
                Some(Err(why))
            }
        }
    } else {
        None
    };
    let with_py = matches!(py_check, Some(Ok(_)));

    let (date, stamp) = report::now_utc();
    let mut common = Map::new();
    common.insert("impl".into(), "wgpu".into());
    common.insert("device".into(), device.clone().into());
    common.insert("driver".into(), driver.clone().into());
    common.insert("backend".into(), backend.clone().into());
    common.insert("date".into(), stamp.into());
    common.insert("git_commit".into(), report::git_commit(repo).into());
    let modified = report::git_modified(repo);
    if !modified.is_empty() {
        common.insert("git_modified".into(), modified.clone().into());
    }
    common.insert("command".into(), command.clone().into());
    common.insert("checkpoint".into(), checkpoint.display().to_string().into());
    common.insert("cpus".into(), std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0).into());
    let out_dir = args.out_dir.clone().unwrap_or_else(|| repo.join("bench/results"));
    let mut rep = Report::create_stem(&out_dir, &format!("{date}-{}-corpus", report::slug(&device)), common)?;

    // The timed rounds.
    let ours_out = work.join("out-lighthubert");
    let ours_args = ours::extract_args(&corpus_dir, &ours_out, &checkpoint, &args.subnet, args.batch_size, &args.weights);
    let (py_out, py_result) = (work.join("out-pytorch"), work.join("pytorch-result.json"));
    let py_args = py.args(&corpus_dir, &py_out, &checkpoint, &subnet_path, &py_result);
    if !args.no_prime {
        let prime_dir = work.join("prime");
        let _ = std::fs::remove_dir_all(&prime_dir);
        std::fs::create_dir_all(&prime_dir)?;
        let shortest = corpus.iter().min_by_key(|u| u.samples).unwrap();
        let longest = corpus.iter().max_by_key(|u| u.samples).unwrap();
        for u in [shortest, longest] {
            std::fs::copy(&u.path, prime_dir.join(u.path.file_name().unwrap_or_default()))?;
        }
        let out = work.join("prime-out");
        eprintln!("priming both sides on 2 files (untimed)...");
        ours::run(&bin, &ours::extract_args(&prime_dir, &out, &checkpoint, &args.subnet, args.batch_size, &args.weights), &out)?;
        if with_py {
            py.run(&py.args(&prime_dir, &out, &checkpoint, &subnet_path, &py_result), &out, &py_result)?;
        }
        std::fs::remove_dir_all(&out)?;
    }
    let rounds = args.warmup + args.runs.max(1);
    let sides = if with_py { 2 } else { 1 };
    let seq = Cell::new(0usize);
    let next = || {
        let s = seq.get();
        seq.set(s + 1);
        (s / sides, s % sides)
    };
    let (mut ours_runs, mut py_runs) = (Vec::new(), Vec::new());
    let mut run_ours = || -> Res<()> {
        let (round, order) = next();
        let before = cpu::Snapshot::now();
        let (d, wall) = ours::run(&bin, &ours_args, &ours_out)?;
        let cpu = before.zip(cpu::Snapshot::now()).map(|(a, b)| b.since(a));
        eprintln!(
            "round {}/{rounds}: lighthubert {wall:.1} s, corpus {:.1} s (RTF {:.3})",
            round + 1, d.wall_seconds, d.wall_seconds / d.audio_seconds
        );
        ours_runs.push(Run {
            side: "ours",
            wall, extraction: d.wall_seconds, load: d.load_seconds, files: d.extracted, audio_seconds: d.audio_seconds, round, order,
            cpu,
            detail: json!({"adapter": d.adapter}),
        });
        Ok(())
    };
    let mut run_py = || -> Res<()> {
        let (round, order) = next();
        let before = cpu::Snapshot::now();
        let (r, wall) = py.run(&py_args, &py_out, &py_result)?;
        let cpu = before.zip(cpu::Snapshot::now()).map(|(a, b)| b.since(a));
        let loop_s = r["loop_s"].as_f64().unwrap_or(f64::NAN);
        let audio = r["audio_seconds"].as_f64().unwrap_or(f64::NAN);
        eprintln!("round {}/{rounds}: pytorch {wall:.1} s, corpus {loop_s:.1} s (RTF {:.3})", round + 1, loop_s / audio);
        py_runs.push(Run {
            side: "PyTorch",
            wall, extraction: loop_s, load: r["load_s"].as_f64(), files: r["files"].as_u64().unwrap_or(0) as usize, audio_seconds: audio, round, order,
            cpu,
            detail: r,
        });
        Ok(())
    };
    {
        let mut sides_fns: Vec<&mut dyn FnMut() -> Res<()>> = vec![&mut run_ours];
        if with_py {
            sides_fns.push(&mut run_py);
        }
        // Only the schedule is taken from here; each side times its own child process.
        stats::time_interleaved(args.warmup, args.runs, &mut sides_fns)?;
    }

    // Records.
    let py_common = |r: &Run| -> Value {
        json!({
            "impl": "pytorch", "device": r.detail["device_name"], "driver": format!("torch {}", r.detail["torch"].as_str().unwrap_or("?")),
            "backend": format!("pytorch {}, {} threads", r.detail["device"].as_str().unwrap_or("cpu"), r.detail["threads"]),
        })
    };
    let setup = json!({
        "files": corpus.len(), "audio_seconds": audio_seconds, "min_seconds": args.min_seconds, "max_seconds": args.max_seconds,
        "seed": args.seed, "subnet": args.subnet, "subnet_config": subnet, "batch_size": args.batch_size, "weights": args.weights,
        "normalize": true, "runs": args.runs, "warmup": args.warmup, "primed": !args.no_prime, "pytorch_threads": args.pytorch.pytorch_threads,
    });
    for r in ours_runs.iter().chain(&py_runs) {
        let mut v = if r.side == "PyTorch" { py_common(r) } else { json!({}) };
        merge(&mut v, &setup);
        merge(&mut v, &json!({
            "round": r.round, "order": r.order, "warmup_round": r.round < args.warmup, "process_wall_s": r.wall,
            "extraction_s": r.extraction, "startup_load_s": r.wall - r.extraction, "load_s": r.load,
            "files_done": r.files, "audio_seconds_done": r.audio_seconds, "child_cpu_s": r.cpu.map(|u| u.child_s), "others_cpu_s": r.cpu.map(|u| u.others_s),
            "detail": r.detail,
        }));
        rep.record("corpus_run", v)?;
    }
    let timed = |runs: &[Run]| runs.iter().filter(|r| r.round >= args.warmup).cloned().collect::<Vec<_>>();
    let (ours_t, py_t) = (timed(&ours_runs), timed(&py_runs));
    let ours_sum = Summary::of(&ours_t);
    let mut v = ours_sum.json();
    merge(&mut v, &setup);
    rep.record("corpus", v)?;
    let py_sum = (!py_t.is_empty()).then(|| Summary::of(&py_t));
    if let Some(p) = &py_sum {
        let mut v = py_common(&py_t[0]);
        merge(&mut v, &p.json());
        merge(&mut v, &setup);
        rep.record("corpus", v)?;
    }
    let agreement = if with_py { Some(agree::compare(&ours_out, &py_out, &stems)?) } else { None };
    let ratios = py_sum.as_ref().map(|p| {
        let per_round: Vec<f64> = ours_t.iter().zip(&py_t).map(|(o, q)| q.extraction / o.extraction).collect();
        json!({
            "throughput_ours_over_pytorch": p.extraction.median() / ours_sum.extraction.median(),
            "rtf_ours_over_pytorch": ours_sum.extraction.median() / p.extraction.median(),
            "throughput_ours_over_pytorch_per_round": per_round,
            "throughput_ours_over_pytorch_best_runs": p.extraction.ms[0] / ours_sum.extraction.ms[0],
            "end_to_end_wall_ours_over_pytorch": ours_sum.wall.median() / p.wall.median(),
        })
    });
    if let (Some(r), Some(a)) = (&ratios, &agreement) {
        let mut v = r.clone();
        merge(&mut v, &json!({"agreement": a}));
        merge(&mut v, &setup);
        rep.record("corpus_ratio", v)?;
    }
    if let Some(Err(why)) = &py_check {
        rep.record("pytorch_skipped", json!({"reason": why}))?;
    }

    // Markdown.
    let name = checkpoint.file_name().and_then(|s| s.to_str()).unwrap_or("?");
    let adapter = ours_runs.first().and_then(|r| r.detail["adapter"].as_str().map(str::to_string)).unwrap_or_else(|| device.clone());
    let lengths: Vec<f64> = corpus.iter().map(generate::Utterance::seconds).collect();
    rep.line(format!("## Corpus: {} files, {audio_seconds:.1} s of audio, {name}, subnet {}, on {device}", corpus.len(), args.subnet));
    rep.line("");
    rep.line(format!("- command: `{command}`"));
    rep.line(format!(
        "- date {}, commit {}{}; {} timed round(s) after {} warm-up round(s){}, interleaved (each round runs both sides, the first side alternating); medians",
        rep.common["date"].as_str().unwrap_or("?"),
        rep.common["git_commit"].as_str().unwrap_or("?"),
        if modified.is_empty() { String::new() } else { format!(" (working tree differs in {})", modified.join(", ")) },
        args.runs,
        args.warmup,
        if args.no_prime { ", not primed (cold caches on the first run)" } else { " and an untimed priming run of each side on 2 files" }
    ));
    rep.line(format!(
        "- corpus: {} WAV files (16 kHz mono PCM-16) of {:.2}-{:.2} s, slices of tools/assets/speech.wav end to end, seed {}",
        corpus.len(),
        lengths.iter().copied().fold(f64::INFINITY, f64::min),
        lengths.iter().copied().fold(0.0, f64::max),
        args.seed
    ));
    rep.line(format!("- subnet `{}`: `{}`; s3prl normalisation on both sides; every hidden state saved as .npy (f32)", args.subnet, subnet_json));
    rep.line(format!("- device {device}, driver {driver}, backend {backend}"));
    rep.line(format!(
        "- ours: `lighthubert extract CORPUS --out OUT --checkpoint {name} --subnet {} --normalize --batch-size {} --weights {}`; adapter {adapter}",
        args.subnet, args.batch_size, args.weights
    ));
    match (&py_check, py_t.first()) {
        (Some(Ok(_)), Some(r)) => rep.line(format!(
            "- PyTorch: the authors' model (s3prl 0.4.18 sources), `tools/bench_corpus_pytorch.py`: load once, then per file read (soundfile), `extract_features(..., ret_hs=True)`, `np.save`; torch {} on {}, {} thread(s), {} CPUs on the machine",
            r.detail["torch"].as_str().unwrap_or("?"),
            r.detail["device_name"].as_str().unwrap_or("?"),
            r.detail["threads"],
            rep.common["cpus"]
        )),
        (Some(Err(why)), _) => rep.line(format!("- PyTorch side skipped: {why}")),
        _ => rep.line("- PyTorch side not run (`--with-pytorch`)"),
    }
    rep.line("");
    rep.table(&[
        "implementation", "corpus s (median; min-max)", "files/s", "audio s/s", "RTF", "start-up + load s", "total wall s", "files/s incl. load", "RTF incl. load",
    ]);
    let row = |label: &str, s: &Summary, load: Option<f64>| -> Vec<String> {
        let j = s.json();
        let f = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
        vec![
            label.to_string(),
            format!("{:.1} ({:.1}-{:.1})", f("extraction_s_median"), f("extraction_s_min"), f("extraction_s_max")),
            format!("{:.3}", f("files_per_s")),
            format!("{:.2}", f("audio_s_per_s")),
            format!("{:.3}", f("rtf")),
            match load {
                Some(l) => format!("{:.1} (load {l:.1})", f("startup_load_s_median")),
                None => format!("{:.1}", f("startup_load_s_median")),
            },
            format!("{:.1}", f("wall_s_median")),
            format!("{:.3}", f("files_per_s_end_to_end")),
            format!("{:.3}", f("rtf_end_to_end")),
        ]
    };
    let median_of = |runs: &[Run]| -> Option<f64> {
        let v: Vec<f64> = runs.iter().filter_map(|r| r.load).collect();
        (!v.is_empty()).then(|| Stats::new(v).median())
    };
    rep.row(&row(&format!("ours (wgpu, batch {})", args.batch_size), &ours_sum, median_of(&ours_t)));
    if let Some(p) = &py_sum {
        rep.row(&row(&format!("PyTorch ({} threads, per file)", args.pytorch.pytorch_threads), p, median_of(&py_t)));
    }
    rep.line("");
    rep.line(
        "Corpus s: each side's own clock from its first file to its last output written (ours: the `done:` line; PyTorch: the loop). \
         Start-up + load = process wall - corpus s: process start, imports, checkpoint read, model build/upload, GPU set-up \
         (in brackets each side's own load figure: ours the weights' upload, PyTorch torch.load + model build).",
    );
    if let (Some(r), Some(a)) = (&ratios, &agreement) {
        let per: Vec<String> = r["throughput_ours_over_pytorch_per_round"].as_array().into_iter().flatten().map(|x| format!("{:.2}", x.as_f64().unwrap_or(f64::NAN))).collect();
        let t = r["throughput_ours_over_pytorch"].as_f64().unwrap_or(f64::NAN);
        rep.line("");
        rep.line(format!(
            "**Ours / PyTorch**: throughput (files/s, audio s/s) {t:.2} ({}; per round {}; best run against best run {:.2}), RTF {:.2}, end-to-end wall incl. start-up and load {:.2}.",
            if t >= 1.0 { "ours faster" } else { "PyTorch faster" },
            per.join(", "),
            r["throughput_ours_over_pytorch_best_runs"].as_f64().unwrap_or(f64::NAN),
            r["rtf_ours_over_pytorch"].as_f64().unwrap_or(f64::NAN),
            r["end_to_end_wall_ours_over_pytorch"].as_f64().unwrap_or(f64::NAN)
        ));
        rep.line("");
        let differ = a["shapes_differ"].as_array().map(Vec::len).unwrap_or(0);
        rep.line(format!(
            "Outputs compared file by file (last round): {} of {} files have the same shape [states, frames, embed]; worst max abs difference {:.2e} ({}), worst relative L2 {:.2e}, values up to {:.1}.",
            a["files"].as_u64().unwrap_or(0) as usize - differ,
            a["files"],
            a["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
            a["worst_file"].as_str().unwrap_or("-"),
            a["max_rel_l2"].as_f64().unwrap_or(f64::NAN),
            a["max_abs_value"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    rep.line("");
    let mut all: Vec<&Run> = ours_runs.iter().chain(&py_runs).collect();
    all.sort_by_key(|r| (r.round, r.order));
    let order: Vec<String> = all
        .iter()
        .map(|r| {
            let load = match r.cpu {
                Some(u) => format!(" [{:.0}/{:.0}]", u.child_s, u.others_s),
                None => String::new(),
            };
            format!("{}{} {:.1}/{:.1}{load}", if r.round < args.warmup { "(warm-up) " } else { "" }, r.side, r.extraction, r.wall)
        })
        .collect();
    rep.line(format!(
        "Runs in order (corpus s / process s [CPU s of the run / CPU s of other processes meanwhile; {} CPUs]): {}. \
         Other processes' CPU time is what the machine's other users took from the cores during that run.",
        rep.common["cpus"],
        order.join(", ")
    ));

    rep.finish()?;
    println!("{}", rep.md);
    eprintln!("wrote {} and {}", rep.jsonl_path.display(), rep.md_path.display());
    if !args.keep && args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("kept {}", work.display());
    }
    Ok(())
}

/// Adds `extra`'s fields to `v` (both objects).
fn merge(v: &mut Value, extra: &Value) {
    if let (Value::Object(m), Value::Object(x)) = (v, extra) {
        for (k, val) in x {
            m.insert(k.clone(), val.clone());
        }
    }
}
