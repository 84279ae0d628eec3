//! `lighthubert search`: the subnet that fits a latency budget on this device.

use std::path::Path;

use lighthubert::search::{self, pareto_front, Candidate, LatencyTable, Objective, SearchError, TableKey};
use lighthubert::LightHubert;

use crate::cli::{ObjectiveArg, SearchArgs};
use crate::setup::{load_checkpoint, open_gpu};
use crate::error::CliError;
use crate::plot::{pareto_chart, plot_err, Canvas, Point};

pub fn search(args: SearchArgs) -> Result<(), CliError> {
    // Everything the command line alone can refuse, before any work.
    if !(args.budget_ms.is_finite() && args.budget_ms > 0.0) {
        return Err(SearchError::BadBudget(args.budget_ms).into());
    }
    if !(args.audio_seconds.is_finite() && args.audio_seconds >= 0.025 && args.audio_seconds <= 3600.0) {
        return Err(CliError::Usage(format!("--audio-seconds {}: expected a duration in [0.025, 3600]", args.audio_seconds)));
    }
    if !(0.0..0.5).contains(&args.margin) {
        return Err(CliError::Usage(format!("--margin {}: expected a fraction in [0, 0.5)", args.margin)));
    }
    if let Some(plot) = args.plot.as_ref().filter(|p| p.exists() && !args.force) {
        return Err(CliError::OutputExists(plot.clone()));
    }
    let objective = match args.objective {
        ObjectiveArg::Params => Objective::Params,
        ObjectiveArg::Flops => Objective::Flops,
    };
    let src = load_checkpoint(args.checkpoint.as_deref())?;
    let ctx = open_gpu()?;
    let model = LightHubert::load_with(ctx.clone(), &src.ckpt, crate::cli::precision(args.weights, args.math)).map_err(|e| CliError::model(&src.label, e))?;
    let run_err = |e| match e {
        SearchError::Engine(source) => CliError::Model { label: src.label.clone(), source },
        e => CliError::Search(e),
    };
    if src.bundled {
        eprintln!("NOTE: bundled demo checkpoint (random weights): latencies are real, features are not.");
    }
    eprintln!("adapter    {}", ctx.describe());
    eprintln!("checkpoint {} (search space {:?})", src.label, model.supernet().space.name);

    if let Some(only) = model.supernet().exported.clone() {
        return measure_exported(&model, &only, &args).map_err(run_err);
    }

    let key = TableKey::for_model(&model, args.audio_seconds);
    let table_path = args.table.clone().or_else(|| LatencyTable::default_dir().map(|d| d.join(key.file_name())));
    let table = obtain_table(&model, &key, table_path.as_deref(), args.table.is_some(), &args).map_err(run_err)?;

    let sn = model.supernet();
    let front = pareto_front(&table, sn, objective, 40);
    let result = search::search(&model, &table, objective, args.budget_ms, args.margin, args.runs).map_err(run_err)?;

    // A few front subnets run for real: how good the prediction is across the range.
    let wave = search::probe_audio(table.audio_seconds);
    let mut checked: Vec<(Candidate, f64)> = result.tries.clone();
    if args.check > 0 && !front.is_empty() {
        let picks = args.check.min(front.len());
        for i in 0..picks {
            let c = &front[i * (front.len() - 1) / (picks.max(2) - 1).max(1)];
            if checked.iter().any(|(k, _)| k.subnet == c.subnet) {
                continue;
            }
            let ms = search::measure_ms(&model, &c.subnet, &wave, args.runs).map_err(run_err)?;
            checked.push((c.clone(), ms));
        }
    }

    let unit = |c: &Candidate| match objective {
        Objective::Params => format!("{:>8.3} M params", c.params as f64 / 1e6),
        Objective::Flops => format!("{:>8.3} GFLOP", c.flops / 1e9),
    };
    eprintln!("\nPareto front ({} subnets; {} of audio, predicted):", front.len(), seconds(table.audio_seconds));
    eprintln!("  {:>10}  {:>17}  {:>5}  {:>5}  heads / ffn per layer", "ms", objective_name(objective), "embed", "depth");
    for c in &front {
        eprintln!("  {:>10.2}  {}  {:>5}  {:>5}  {}", c.predicted_ms, unit(c), c.subnet.embed_dim, c.subnet.layer_num, layers(c));
    }
    eprintln!("\nRun end to end (median of {} runs):", args.runs.max(1));
    eprintln!("  {:>10}  {:>10}  {:>7}  {:>17}  {:>5}  {:>5}", "predicted", "measured", "error", objective_name(objective), "embed", "depth");
    for (c, ms) in &checked {
        eprintln!("  {:>10.2}  {:>10.2}  {:>+6.1}%  {}  {:>5}  {:>5}", c.predicted_ms, ms, 100.0 * (c.predicted_ms - ms) / ms, unit(c), c.subnet.embed_dim, c.subnet.layer_num);
    }
    let best = &result.best;
    eprintln!(
        "\nchosen     embed {}, {} layers, {} parameters, {:.3} GFLOP: predicted {:.2} ms, measured {:.2} ms, budget {:.2} ms ({} tr{})",
        best.subnet.embed_dim,
        best.subnet.layer_num,
        best.params,
        best.flops / 1e9,
        best.predicted_ms,
        result.measured_ms,
        args.budget_ms,
        result.tries.len(),
        if result.tries.len() == 1 { "y" } else { "ies" }
    );

    let plot_path = match (&args.plot, &table_path) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(t)) => Some(t.with_extension("pareto.png")),
        (None, None) => None,
    };
    if let Some(path) = plot_path {
        let ours = args.plot.is_none();
        draw(&path, ours || args.force, &front, &checked, best, result.measured_ms, args.budget_ms, objective, &ctx.describe(), table.audio_seconds)?;
        eprintln!("plot       {}", path.display());
    }
    println!("{}", best.subnet.to_json());
    Ok(())
}

/// An exported file's search space holds its one subnet: nothing to choose, only whether it
/// meets the budget, measured end to end.
fn measure_exported(model: &LightHubert, only: &lighthubert::Subnet, args: &SearchArgs) -> Result<(), SearchError> {
    let wave = search::probe_audio(args.audio_seconds);
    let measured_ms = search::measure_ms(model, only, &wave, args.runs)?;
    eprintln!(
        "exported   one subnet, nothing to search: {}, measured {measured_ms:.2} ms (median of {} runs) for {} of audio, budget {:.2} ms",
        crate::setup::subnet_summary(model.supernet(), only),
        args.runs.max(1),
        seconds(args.audio_seconds),
        args.budget_ms
    );
    if measured_ms > args.budget_ms {
        return Err(SearchError::ExportedTooSlow { budget_ms: args.budget_ms, measured_ms });
    }
    println!("{}", only.to_json());
    Ok(())
}

/// The saved table if it matches this device and setting; else a new measurement, saved.
fn obtain_table(model: &LightHubert, key: &TableKey, path: Option<&Path>, given: bool, args: &SearchArgs) -> Result<LatencyTable, SearchError> {
    if let Some(path) = path.filter(|p| p.exists() && !args.remeasure) {
        let table = match LatencyTable::load(path) {
            Ok(t) => t,
            Err(e) if given => return Err(e),
            // Our own cache file, damaged: measure again and replace it.
            Err(_) => return measure_and_save(model, Some(path), args),
        };
        match table.check_key(key) {
            Ok(()) => {
                eprintln!("latency    table from {} (measured in {:.1} s; --remeasure to redo)", path.display(), table.measure_seconds);
                return Ok(table);
            }
            // A file the user named is theirs: say why it does not fit rather than replace it.
            Err(reason) if given => {
                return Err(SearchError::Table { path: path.display().to_string(), reason: format!("{reason}; pass --remeasure to measure this device and replace it, or another --table") })
            }
            Err(_) => {}
        }
    }
    measure_and_save(model, path, args)
}

fn measure_and_save(model: &LightHubert, path: Option<&Path>, args: &SearchArgs) -> Result<LatencyTable, SearchError> {
    eprintln!("latency    measuring this device for {} of audio (once; saved for later searches)...", seconds(args.audio_seconds));
    let table = LatencyTable::measure(model, args.audio_seconds, args.runs)?;
    eprintln!("latency    measured in {:.1} s", table.measure_seconds);
    match path {
        Some(p) => {
            table.save(p)?;
            eprintln!("latency    table saved to {}", p.display());
        }
        None => eprintln!("latency    no cache folder (neither XDG_CACHE_HOME nor HOME is set): the table is not saved; use --table FILE"),
    }
    Ok(table)
}

#[allow(clippy::too_many_arguments)]
fn draw(
    path: &Path,
    force: bool,
    front: &[Candidate],
    checked: &[(Candidate, f64)],
    best: &Candidate,
    best_ms: f64,
    budget_ms: f64,
    objective: Objective,
    device: &str,
    audio_seconds: f64,
) -> Result<(), CliError> {
    let y = |c: &Candidate| match objective {
        Objective::Params => c.params as f64 / 1e6,
        Objective::Flops => c.flops / 1e9,
    };
    let mut canvas = Canvas::new(900, 560);
    {
        let area = canvas.area();
        area.fill(&plotters::style::WHITE).map_err(|e| plot_err(path, e))?;
        let device = device.split(" (").next().unwrap_or(device);
        let title = format!("{} against latency, {} of audio, {device}", objective_name(objective), seconds(audio_seconds));
        let front: Vec<Point> = front.iter().map(|c| Point { ms: c.predicted_ms, y: y(c) }).collect();
        let measured: Vec<Point> = checked.iter().map(|(c, ms)| Point { ms: *ms, y: y(c) }).collect();
        let chosen = Point { ms: best_ms, y: y(best) };
        let y_label = match objective {
            Objective::Params => "parameters, millions",
            Objective::Flops => "GFLOP per forward",
        };
        pareto_chart(&area, &title, y_label, &front, &measured, Some(&chosen), Some(budget_ms)).map_err(|e| plot_err(path, e))?;
        area.present().map_err(|e| plot_err(path, e))?;
    }
    canvas.save(path, force)
}

fn objective_name(o: Objective) -> &'static str {
    match o {
        Objective::Params => "parameters",
        Objective::Flops => "FLOPs",
    }
}

fn seconds(s: f64) -> String {
    format!("{s} s")
}

/// `8x(12/1536) 2x(8/1024)`: how many layers take each (heads / FFN width).
fn layers(c: &Candidate) -> String {
    let mut runs: Vec<((usize, usize), usize)> = Vec::new();
    for (h, f) in c.subnet.heads_num.iter().zip(&c.subnet.ffn_embed) {
        match runs.iter_mut().find(|(k, _)| *k == (*h, *f)) {
            Some((_, n)) => *n += 1,
            None => runs.push(((*h, *f), 1)),
        }
    }
    runs.iter().map(|((h, f), n)| format!("{n}x({h}/{f})")).collect::<Vec<_>>().join(" ")
}
