//! `--with-pytorch`: runs tools/bench_pytorch.py on the same cases, so the ratios come from one run.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::report::{ms, Report};
use crate::{latency_table, Args, Latency, Res};

/// How to run the authors' PyTorch side by side (both the latency and the corpus benchmark).
#[derive(clap::Args, Debug, Clone)]
pub struct PytorchArgs {
    /// Also time the authors' PyTorch code on the same cases.
    #[arg(long)]
    pub with_pytorch: bool,
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// torch.set_num_threads for the PyTorch side.
    #[arg(long, default_value_t = 2)]
    pub pytorch_threads: usize,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub pytorch_device: String,
    /// PyTorch precisions to time, comma-separated: fp32 (the reference the ratios use), and on
    /// CUDA the reference points tf32 and fp16-autocast.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["fp32".to_string()])]
    pub pytorch_precision: Vec<String>,
}

pub fn compare(args: &Args, repo: &Path, checkpoint: &Path, rows: &[Latency], rep: &mut Report) -> Res<()> {
    let cases: Vec<Value> = rows
        .iter()
        .filter(|l| l.skipped.is_none())
        .map(|l| json!({"subnet": l.subnet.name, "config": l.record["subnet_config"], "seconds": l.seconds}))
        .collect();
    let dir = std::env::temp_dir().join(format!("lighthubert-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cases_path = dir.join("cases.json");
    std::fs::write(&cases_path, serde_json::to_string(&cases)?)?;
    let mut precisions = args.pytorch.pytorch_precision.iter();
    let reference = precisions.next().map_or("fp32", |p| p.as_str());
    let records = match run(args, repo, checkpoint, &cases_path, &dir, reference, rep) {
        Ok(records) => records,
        Err(why) => {
            eprintln!("PyTorch comparison skipped: {why}");
            rep.record("pytorch_skipped", json!({"reason": why.clone()}))?;
            latency_table(rep, rows, None);
            rep.line("");
            rep.line(format!("PyTorch comparison skipped: {why}"));
            return Ok(());
        }
    };
    let matching = |records: &[Value], l: &Latency| {
        records.iter().find(|r| r["subnet"] == l.subnet.name.as_str() && r["seconds"].as_f64() == Some(l.seconds)).cloned()
    };
    let matched: Vec<Option<Value>> = rows.iter().map(|l| matching(&records, l)).collect();
    latency_table(rep, rows, Some(&matched));
    if let Some(r) = records.first() {
        rep.line("");
        rep.line(format!("PyTorch: {} on {}, {}.", r["driver"].as_str().unwrap_or("?"), r["device"].as_str().unwrap_or("?"), r["backend"].as_str().unwrap_or("?")));
    }
    // Reference points in other precisions: medians beside the wgpu f32 ones.
    let others: Vec<(&String, Result<Vec<Value>, String>)> = precisions.map(|p| (p, run(args, repo, checkpoint, &cases_path, &dir, p, rep))).collect();
    if !others.is_empty() {
        rep.line("");
        rep.line(format!("### PyTorch in other precisions (the table above is PyTorch {reference})"));
        rep.line("");
        let mut header = vec!["subnet".to_string(), "audio s".to_string(), "wgpu median ms".to_string()];
        for (p, _) in &others {
            header.extend([format!("PyTorch {p} median ms"), format!("PyTorch {p} / wgpu")]);
        }
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        rep.table(&header);
        for l in rows.iter().filter(|l| l.skipped.is_none()) {
            let ours = l.record["median_ms"].as_f64().unwrap_or(f64::NAN);
            let mut cells = vec![l.subnet.name.clone(), format!("{}", l.seconds), ms(ours)];
            for (_, result) in &others {
                match result.as_ref().ok().and_then(|records| matching(records, l)) {
                    Some(r) => {
                        let theirs = r["median_ms"].as_f64().unwrap_or(f64::NAN);
                        cells.extend([ms(theirs), format!("{:.2}", theirs / ours)]);
                    }
                    None => cells.extend(["-".to_string(), "-".to_string()]),
                }
            }
            rep.row(&cells);
        }
        for (p, result) in &others {
            if let Err(why) = result {
                rep.line("");
                rep.line(format!("PyTorch {p} skipped: {why}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs tools/bench_pytorch.py on the cases in one precision; its records, also kept raw in the
/// report.
fn run(args: &Args, repo: &Path, checkpoint: &Path, cases: &Path, dir: &Path, precision: &str, rep: &mut Report) -> Result<Vec<Value>, String> {
    let out_path = dir.join(format!("pytorch-{precision}.jsonl"));
    eprintln!("running the PyTorch reference ({precision})...");
    let status = Command::new(&args.pytorch.python)
        .current_dir(repo)
        .arg(repo.join("tools/bench_pytorch.py"))
        .arg("--checkpoint").arg(checkpoint)
        .arg("--cases").arg(cases)
        .arg("--out").arg(&out_path)
        .args(["--runs", &args.runs.to_string(), "--warmup", &args.warmup.to_string()])
        .args(["--threads", &args.pytorch.pytorch_threads.to_string(), "--device", &args.pytorch.pytorch_device])
        .args(["--precision", precision])
        .args(["--command", rep.common["command"].as_str().unwrap_or("")])
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(format!("tools/bench_pytorch.py exited with {s} (is torch installed? S3PRL_SRC set?)")),
        Err(e) => return Err(format!("cannot run `{}`: {e}", args.pytorch.python)),
    }
    let text = std::fs::read_to_string(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
    let records: Vec<Value> = text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>().map_err(|e| format!("{}: {e}", out_path.display()))?;
    for r in &records {
        rep.raw(r).map_err(|e| e.to_string())?;
    }
    Ok(records)
}
