//! The LightHuBERT benchmark harness. See bench/README.md.
//!
//! `cargo run --release -p lighthubert-bench -- [--checkpoint FILE] [--seconds 1,4,10,30]
//! [--runs 5] [--with-pytorch] ...` measures latency per (subnet, audio length), the cost of a
//! subnet switch, sliced-vs-dense execution and latency per GFLOP over random subnets, and
//! writes `bench/results/<date>-<device>.{jsonl,md}`.
//!
//! `cargo run --release -p lighthubert-bench -- corpus [--files 40] [--with-pytorch] ...` times a
//! whole corpus through the `lighthubert extract` program against a per-file PyTorch loop (see
//! `corpus`), into `bench/results/<date>-<device>-corpus.{jsonl,md}`.

mod cases;
mod corpus;
mod dense;
mod export;
mod forms;
mod pytorch;
mod report;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::{AdapterChoice, Arithmetic, GpuContext, Precision, WeightPrecision};
use lighthubert::LightHubert;
use serde_json::{json, Value};

use cases::NamedSubnet;
use report::{ms, Report};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser, Debug)]
#[command(
    about = "Benchmarks the LightHuBERT wgpu engine (and, optionally, the authors' PyTorch code)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Without a subcommand: the engine benchmarks (latency, switch, dense, per-GFLOP).
    #[command(flatten)]
    args: Args,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// A generated corpus through the `lighthubert extract` program, against the authors'
    /// PyTorch model in a per-file loop (tools/bench_corpus_pytorch.py): files/s, audio s/s,
    /// real-time factor, wall time with model load.
    Corpus(corpus::CorpusArgs),
    /// Subnets exported as standalone files (`lighthubert export`) against the supernet they
    /// came from: file size, load time, GPU memory, and their features compared bit for bit.
    Export(export::ExportArgs),
    /// Every kernel form the adapter runs, on the shapes of a forward pass (1 to 30 s, base
    /// and small widths), timed side by side: which form wins where on this device.
    Forms(forms::FormsArgs),
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Checkpoint (.pt); default: the bundled test supernet kernels-tests/fixtures/tiny-default.pt.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Subnets as SPACE:PRESET (small|base|ckpt : default|min|max|random:N), comma separated.
    /// Default: small/base presets on a full-size file, the checkpoint's own otherwise.
    #[arg(long, value_delimiter = ',')]
    subnets: Vec<String>,
    /// Audio lengths in seconds.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1.0, 4.0, 10.0, 30.0])]
    seconds: Vec<f64>,
    /// Timed runs per measurement.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Untimed warm-up runs before each measurement.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Random subnets for the latency-per-GFLOP sweep (0 skips it).
    #[arg(long, default_value_t = 10)]
    random: usize,
    /// Audio length of the random sweep, the switch and the dense comparison.
    #[arg(long, default_value_t = 1.0)]
    short_seconds: f64,
    /// Skip the subnet-switch measurement.
    #[arg(long)]
    no_switch: bool,
    /// Skip the sliced-vs-dense comparison.
    #[arg(long)]
    no_dense: bool,
    /// PyTorch side by side (tools/bench_pytorch.py).
    #[command(flatten)]
    pytorch: pytorch::PytorchArgs,
    /// Where results go.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// How the weight matrices are stored on the GPU: f32 or f16.
    #[arg(long, default_value = "f32")]
    weights: WeightPrecision,
    /// Arithmetic of the GEMMs: f32, f16 (SHADER_F16, GPU kernels) or f16-matrix (matrix
    /// units).
    #[arg(long, default_value = "f32")]
    math: Arithmetic,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap_or_else(|_| PathBuf::from(".."))
}

fn main() -> Res<()> {
    let cli = Cli::parse();
    match cli.mode {
        Some(Mode::Corpus(c)) => corpus::run(&c, &repo_root()),
        Some(Mode::Export(e)) => export::run(&e, &repo_root()),
        Some(Mode::Forms(f)) => forms::run(&f, &repo_root()),
        None => engine_benchmarks(&cli.args),
    }
}

/// The command line as run, for the records.
pub(crate) fn command_line() -> String {
    std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect::<Vec<_>>().join(" ")
}

fn engine_benchmarks(args: &Args) -> Res<()> {
    let repo = repo_root();
    let path = args.checkpoint.clone().unwrap_or_else(|| repo.join("kernels-tests/fixtures/tiny-default.pt"));
    let command = command_line();

    let t = Instant::now();
    let mut ckpt = Checkpoint::open(&path)?;
    let read_s = t.elapsed().as_secs_f64();
    let full = ckpt.config.encoder_embed_dim == 768 && ckpt.config.encoder_ffn_embed_dim == 3072;
    let declared = ckpt.config.pruner_supernet.clone();
    if full {
        // Config override: accept both released spaces (see cases::union_space).
        ckpt.config.search_space = Some(cases::union_space().to_stored());
    }
    let ctx = Arc::new(GpuContext::new(&AdapterChoice::from_env())?);
    let t = Instant::now();
    let model = LightHubert::load_with(ctx.clone(), &ckpt, Precision { weights: args.weights, math: args.math })?;
    let load_s = t.elapsed().as_secs_f64();

    let info = &ctx.adapter_info;
    let (date, mut common) = report::provenance(&ctx, &repo, &command);
    common.insert("checkpoint".into(), path.display().to_string().into());
    common.insert("weights".into(), args.weights.name().into());
    common.insert("math".into(), args.math.name().into());
    let out_dir = args.out_dir.clone().unwrap_or_else(|| repo.join("bench/results"));
    let mut rep = Report::create(&out_dir, &date, &info.name, common)?;

    rep.line(format!("## {} on {}", path.file_name().and_then(|s| s.to_str()).unwrap_or("?"), ctx.describe()));
    rep.line(format!("Device: {}.", ctx.capabilities()));
    rep.line("");
    rep.line(format!("- command: `{command}`"));
    rep.line(format!("- date {}, commit {}, {} timed runs after {} warm-up", rep.common["date"], rep.common["git_commit"], args.runs, args.warmup));
    rep.line(format!("- weights stored as {}, {} arithmetic; kernel family {:?}", args.weights.name(), args.math.name(), ctx.kernel_family));
    rep.line(format!(
        "- checkpoint: {} wide, {} FFN, declares {:?}{}; read {:.1} s, uploaded in {:.1} s ({:.0} MB of weights)",
        model.supernet().dims.embed,
        model.supernet().dims.ffn,
        declared,
        if full { " (full size: small AND base presets run on it through a search-space override)" } else { "" },
        read_s,
        load_s,
        ctx.counters().weight_bytes_uploaded() as f64 / 1e6
    ));
    rep.record("load", json!({"read_s": read_s, "upload_s": load_s, "weight_bytes": ctx.counters().weight_bytes_uploaded(), "full_size": full}))?;

    let specs: Vec<String> = if args.subnets.is_empty() {
        cases::default_subnets(full).into_iter().map(String::from).collect()
    } else {
        args.subnets.clone()
    };
    let subnets: Vec<NamedSubnet> = specs.iter().map(|s| cases::named(&model, s)).collect::<Result<_, _>>()?;

    let latency = latency(args, &model, &subnets, &mut rep)?;
    if args.pytorch.with_pytorch {
        pytorch::compare(args, &repo, &path, &latency, &mut rep)?;
    } else {
        latency_table(&mut rep, &latency, None);
    }
    if !args.no_switch && subnets.len() >= 2 {
        switch(args, &model, &subnets[0], &subnets[subnets.len() - 1], &mut rep)?;
    }
    if !args.no_dense {
        dense_vs_sliced(args, &ckpt, &model, &subnets, &mut rep)?;
    }
    if args.random > 0 {
        sweep(args, &model, full, &mut rep)?;
    }
    rep.finish()?;
    println!("{}", rep.md);
    eprintln!("wrote {} and {}", rep.jsonl_path.display(), rep.md_path.display());
    Ok(())
}

/// One latency measurement, or the reason it was skipped.
pub struct Latency {
    pub subnet: NamedSubnet,
    pub seconds: f64,
    pub record: Value,
    pub skipped: Option<String>,
}

fn latency(args: &Args, model: &LightHubert, subnets: &[NamedSubnet], rep: &mut Report) -> Res<Vec<Latency>> {
    let dims = model.supernet().dims.clone();
    let mut out = Vec::new();
    for s in subnets {
        for &seconds in &args.seconds {
            let n = cases::samples(seconds);
            let base = json!({
                "subnet": s.name, "subnet_config": serde_json::from_str::<Value>(&s.subnet.to_json())?,
                "seconds": seconds, "params": model.supernet().parameter_count(&s.subnet),
                "gflop": lighthubert::supernet::forward_flops(&dims, &s.subnet, n) / 1e9,
            });
            if !model.fits(&s.subnet, 1, n) {
                let reason = format!(
                    "model.fits refuses: an activation would exceed the {} MiB binding limit",
                    model.activation_limit() >> 20
                );
                let mut r = base.clone();
                r["skipped"] = reason.clone().into();
                let record = rep.record("latency", r)?;
                out.push(Latency { subnet: s.clone(), seconds, record, skipped: Some(reason) });
                continue;
            }
            let wave = cases::test_signal(n);
            let mut frames = 0;
            let stats = stats::time(args.warmup, args.runs, || cases::forward(model, &s.subnet, &wave).map(|f| frames = f))?;
            let mut r = base.clone();
            r["frames"] = frames.into();
            r["warmup"] = args.warmup.into();
            if let (Value::Object(m), Value::Object(st)) = (&mut r, stats.json()) {
                m.extend(st);
            }
            eprintln!("wgpu {} {seconds} s: median {:.1} ms", s.name, stats.median());
            let record = rep.record("latency", r)?;
            out.push(Latency { subnet: s.clone(), seconds, record, skipped: None });
        }
    }
    Ok(out)
}

/// The latency table; `pytorch` holds the matching PyTorch records (same order) when run.
pub fn latency_table(rep: &mut Report, rows: &[Latency], pytorch: Option<&[Option<Value>]>) {
    rep.line("");
    rep.line("### Latency (one utterance, all hidden states read back)");
    rep.line("");
    let mut header = vec!["subnet", "params (M)", "audio s", "frames", "GFLOP", "wgpu median ms", "p10-p90", "min-max"];
    if pytorch.is_some() {
        header.extend(["PyTorch median ms", "PyTorch p10-p90", "PyTorch / wgpu"]);
    }
    rep.table(&header);
    for (i, l) in rows.iter().enumerate() {
        let r = &l.record;
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let mut cells = vec![
            l.subnet.name.clone(),
            format!("{:.1}", f("params") / 1e6),
            format!("{}", l.seconds),
            r["frames"].as_u64().map(|v| v.to_string()).unwrap_or("-".into()),
            format!("{:.1}", f("gflop")),
        ];
        match &l.skipped {
            Some(why) => cells.extend([format!("skipped: {why}"), "".into(), "".into()]),
            None => cells.extend([ms(f("median_ms")), format!("{}-{}", ms(f("p10_ms")), ms(f("p90_ms"))), format!("{}-{}", ms(f("min_ms")), ms(f("max_ms")))]),
        }
        if let Some(py) = pytorch {
            match py.get(i).and_then(|p| p.as_ref()) {
                Some(p) => {
                    let pm = p["median_ms"].as_f64().unwrap_or(f64::NAN);
                    cells.push(ms(pm));
                    cells.push(format!("{}-{}", ms(p["p10_ms"].as_f64().unwrap_or(f64::NAN)), ms(p["p90_ms"].as_f64().unwrap_or(f64::NAN))));
                    cells.push(if l.skipped.is_none() { format!("{:.2}", pm / f("median_ms")) } else { "-".into() });
                }
                None => cells.extend(["-".into(), "-".into(), "-".into()]),
            }
        }
        rep.row(&cells);
    }
}

/// The cost of switching subnets: pairs of back-to-back forwards, same subnet vs alternating.
fn switch(args: &Args, model: &LightHubert, a: &NamedSubnet, b: &NamedSubnet, rep: &mut Report) -> Res<()> {
    let n = cases::samples(args.short_seconds);
    let wave = cases::test_signal(n);
    if !model.fits(&a.subnet, 1, n) || !model.fits(&b.subnet, 1, n) {
        return Ok(());
    }
    // Choosing a subnet: parse + validate the authors' JSON dict.
    let (ja, jb) = (a.subnet.to_json(), b.subnet.to_json());
    let iters = 2000;
    let t = Instant::now();
    for i in 0..iters {
        std::hint::black_box(model.supernet().subnet(if i % 2 == 0 { &ja } else { &jb })?);
    }
    let choose_us = t.elapsed().as_secs_f64() * 1e6 / iters as f64;

    let counters = model.context().counters();
    let (w0, b0) = (counters.weight_bytes_uploaded(), counters.weight_buffers_created());
    fn pair<'a>(model: &'a LightHubert, x: &'a NamedSubnet, y: &'a NamedSubnet, wave: &'a [f32]) -> impl FnMut() -> lighthubert::Result<()> + 'a {
        move || {
            cases::forward(model, &x.subnet, wave)?;
            cases::forward(model, &y.subnet, wave)?;
            Ok(())
        }
    }
    let (mut run_aa, mut run_bb, mut run_ab) = (pair(model, a, a, &wave), pair(model, b, b, &wave), pair(model, a, b, &wave));
    let mut pairs = stats::time_interleaved(args.warmup, args.runs, &mut [&mut run_aa, &mut run_bb, &mut run_ab])?;
    let (aa, bb, ab) = (pairs.remove(0), pairs.remove(0), pairs.remove(0));
    let (w1, b1) = (counters.weight_bytes_uploaded(), counters.weight_buffers_created());
    let cost = ab.median() - (aa.median() + bb.median()) / 2.0;
    rep.record("switch", json!({
        "a": a.name, "b": b.name, "seconds": args.short_seconds, "choose_validate_us": choose_us,
        "pair_aa": aa.json(), "pair_bb": bb.json(), "pair_ab": ab.json(), "switch_cost_ms": cost,
        "weight_bytes_uploaded_during": w1 - w0, "weight_buffers_created_during": b1 - b0,
    }))?;
    rep.line("");
    rep.line(format!("### Subnet switch ({} <-> {}, {} s audio, pairs of back-to-back forwards)", a.name, b.name, args.short_seconds));
    rep.line("");
    rep.table(&["pair", "median ms", "p10-p90", "min-max"]);
    for (name, s) in [(format!("{0} then {0}", a.name), &aa), (format!("{0} then {0}", b.name), &bb), (format!("{} then {}", a.name, b.name), &ab)] {
        rep.row(&[name, ms(s.median()), format!("{}-{}", ms(s.q(0.1)), ms(s.q(0.9))), format!("{}-{}", ms(s.ms[0]), ms(*s.ms.last().unwrap()))]);
    }
    rep.line("");
    rep.line(format!(
        "Switch cost = median(A,B) - mean(median(A,A), median(B,B)) = {cost:.1} ms (noise level: compare the p10-p90 spreads). \
         Choosing a subnet (`supernet.subnet(json)`: parse + validate) takes {choose_us:.1} us. \
         Weight bytes uploaded during all {} pairs: {}, weight buffers created: {}.",
        3 * (args.runs + args.warmup), w1 - w0, b1 - b0
    ));
    Ok(())
}

/// The same subnet run from the supernet buffers and from a dense copy of its slices.
fn dense_vs_sliced(args: &Args, ckpt: &Checkpoint, model: &LightHubert, subnets: &[NamedSubnet], rep: &mut Report) -> Res<()> {
    let n = cases::samples(args.short_seconds);
    let wave = cases::test_signal(n);
    let dims = &model.supernet().dims;
    rep.line("");
    rep.line(format!("### Sliced vs dense ({} s audio)", args.short_seconds));
    rep.line("");
    rep.table(&["subnet", "sliced median ms", "dense median ms", "dense / sliced", "max abs diff", "max |value|"]);
    for s in subnets {
        if let Some(why) = dense::unsupported(&s.subnet) {
            rep.record("dense", json!({"subnet": s.name, "skipped": why}))?;
            rep.row(&[s.name.clone(), format!("skipped: {why}"), "".into(), "".into(), "".into(), "".into()]);
            continue;
        }
        let dense_ckpt = dense::dense_checkpoint(ckpt, dims, &s.subnet)?;
        let dense_model = LightHubert::load_with(model.context().clone(), &dense_ckpt, model.weight_precision())?;
        drop(dense_ckpt);
        let dense_subnet = dense_model.supernet().preset(&lighthubert::Preset::Max);
        let sliced_out = model.forward(&s.subnet, &wave, true)?;
        let dense_out = dense_model.forward(&dense_subnet, &wave, true)?;
        let mut diff = 0f32;
        let mut peak = 0f32;
        for (x, y) in sliced_out.states.iter().zip(&dense_out.states) {
            for (p, q) in x.iter().zip(y) {
                diff = diff.max((p - q).abs());
                peak = peak.max(p.abs());
            }
        }
        if sliced_out.states.len() != dense_out.states.len() {
            diff = f32::INFINITY;
        }
        let mut run_sliced = || cases::forward(model, &s.subnet, &wave).map(drop);
        let mut run_dense = || cases::forward(&dense_model, &dense_subnet, &wave).map(drop);
        let mut both = stats::time_interleaved(args.warmup, args.runs, &mut [&mut run_sliced, &mut run_dense])?;
        let (sliced, dense) = (both.remove(0), both.remove(0));
        let ratio = dense.median() / sliced.median();
        let ratio_best = dense.ms[0] / sliced.ms[0];
        rep.record("dense", json!({
            "subnet": s.name, "seconds": args.short_seconds, "sliced": sliced.json(), "dense": dense.json(),
            "dense_over_sliced": ratio, "dense_over_sliced_best": ratio_best, "max_abs_diff": diff, "max_abs_value": peak,
        }))?;
        rep.row(&[
            s.name.clone(),
            format!("{} (best {})", ms(sliced.median()), ms(sliced.ms[0])),
            format!("{} (best {})", ms(dense.median()), ms(dense.ms[0])),
            format!("{ratio:.2} (best {ratio_best:.2})"),
            format!("{diff:.2e}"),
            format!("{peak:.1}"),
        ]);
    }
    Ok(())
}

/// Latency per GFLOP across random subnets.
fn sweep(args: &Args, model: &LightHubert, full: bool, rep: &mut Report) -> Res<()> {
    let n = cases::samples(args.short_seconds);
    let wave = cases::test_signal(n);
    let dims = model.supernet().dims.clone();
    rep.line("");
    rep.line(format!("### Latency per GFLOP, {} random subnets ({} s audio)", args.random, args.short_seconds));
    rep.line("");
    rep.table(&["subnet", "embed", "layers", "mean heads", "mean FFN", "GFLOP", "median ms", "ms / GFLOP"]);
    let mut per = Vec::new();
    let named: Vec<NamedSubnet> = (1..=args.random as u64)
        .map(|seed| {
            let space = if !full { "ckpt" } else if seed % 2 == 1 { "small" } else { "base" };
            cases::named(model, &format!("{space}:random:{seed}"))
        })
        .collect::<Result<_, _>>()?;
    // Round robin over the subnets, so drift in the machine's speed cannot pass for a
    // difference between subnets.
    let mut runners: Vec<Box<dyn FnMut() -> lighthubert::Result<()> + '_>> =
        named.iter().map(|s| Box::new(|| cases::forward(model, &s.subnet, &wave).map(drop)) as Box<dyn FnMut() -> _>).collect();
    let mut refs: Vec<&mut dyn FnMut() -> lighthubert::Result<()>> = runners.iter_mut().map(|b| b.as_mut() as &mut dyn FnMut() -> _).collect();
    let timed = stats::time_interleaved(args.warmup, args.runs, &mut refs)?;
    for (s, st) in named.iter().zip(timed) {
        let gflop = lighthubert::supernet::forward_flops(&dims, &s.subnet, n) / 1e9;
        let layers = s.subnet.layers();
        let mh = layers.iter().map(|l| l.heads as f64).sum::<f64>() / layers.len() as f64;
        let mf = layers.iter().map(|l| l.ffn as f64).sum::<f64>() / layers.len() as f64;
        let msg = st.median() / gflop;
        let best = st.ms[0] / gflop;
        per.push((msg, best));
        let mut r = json!({"subnet": s.name, "subnet_config": serde_json::from_str::<Value>(&s.subnet.to_json())?, "seconds": args.short_seconds, "gflop": gflop, "ms_per_gflop": msg, "ms_per_gflop_best": best});
        if let (Value::Object(m), Value::Object(x)) = (&mut r, st.json()) {
            m.extend(x);
        }
        rep.record("per_gflop", r)?;
        rep.row(&[
            s.name.clone(),
            s.subnet.embed_dim.to_string(),
            s.subnet.layer_num.to_string(),
            format!("{mh:.1}"),
            format!("{mf:.0}"),
            format!("{gflop:.2}"),
            format!("{} (best {})", ms(st.median()), ms(st.ms[0])),
            format!("{msg:.1} (best {best:.1})"),
        ]);
    }
    let medians = stats::Stats::new(per.iter().map(|p| p.0).collect());
    let bests = stats::Stats::new(per.iter().map(|p| p.1).collect());
    let spread = |s: &stats::Stats| s.ms[s.ms.len() - 1] / s.ms[0];
    rep.line("");
    rep.line(format!(
        "ms per GFLOP across the sweep, from each subnet's median run: {:.1} to {:.1} (max/min {:.2}); from its best run: {:.1} to {:.1} (max/min {:.2}; effective {:.2} GFLOP/s at the median of the bests). \
         Best runs are the robust figure on a machine whose speed drifts: a slow spell only ever adds time.",
        medians.ms[0], medians.ms[medians.ms.len() - 1], spread(&medians), bests.ms[0], bests.ms[bests.ms.len() - 1], spread(&bests), 1e3 / bests.median()
    ));
    Ok(())
}
