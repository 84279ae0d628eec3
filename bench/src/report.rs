//! Results: one JSON object per measurement (JSON lines) with the run's provenance, and a
//! Markdown summary, under `bench/results/<date>-<device>.{jsonl,md}`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

pub struct Report {
    /// Fields every record carries: device, driver, backend, date, git commit, command.
    pub common: Map<String, Value>,
    jsonl: File,
    pub jsonl_path: PathBuf,
    pub md_path: PathBuf,
    pub md: String,
}

impl Report {
    pub fn create(dir: &Path, date: &str, device: &str, common: Map<String, Value>) -> std::io::Result<Report> {
        Report::create_stem(dir, &format!("{date}-{}", slug(device)), common)
    }

    /// As `create`, with the file names' stem given (`<date>-<device>-corpus`).
    pub fn create_stem(dir: &Path, stem: &str, common: Map<String, Value>) -> std::io::Result<Report> {
        fs::create_dir_all(dir)?;
        let jsonl_path = dir.join(format!("{stem}.jsonl"));
        let md_path = dir.join(format!("{stem}.md"));
        let jsonl = OpenOptions::new().create(true).append(true).open(&jsonl_path)?;
        Ok(Report { common, jsonl, jsonl_path, md_path, md: String::new() })
    }

    /// Appends one measurement (the common fields first, then `fields`) and returns it.
    pub fn record(&mut self, kind: &str, fields: Value) -> std::io::Result<Value> {
        let mut obj = self.common.clone();
        obj.insert("kind".into(), kind.into());
        if let Value::Object(m) = fields {
            obj.extend(m);
        }
        let v = Value::Object(obj);
        writeln!(self.jsonl, "{v}")?;
        self.jsonl.flush()?;
        Ok(v)
    }

    /// Appends an already complete record (from tools/bench_pytorch.py).
    pub fn raw(&mut self, v: &Value) -> std::io::Result<()> {
        writeln!(self.jsonl, "{v}")?;
        self.jsonl.flush()
    }

    pub fn line(&mut self, s: impl AsRef<str>) {
        self.md.push_str(s.as_ref());
        self.md.push('\n');
    }

    pub fn table(&mut self, header: &[&str]) {
        self.line(format!("| {} |", header.join(" | ")));
        self.line(format!("|{}|", header.iter().map(|_| "---").collect::<Vec<_>>().join("|")));
    }

    pub fn row(&mut self, cells: &[String]) {
        self.line(format!("| {} |", cells.join(" | ")));
    }

    /// Appends this run's section to the Markdown file (several runs a day share one file).
    pub fn finish(&self) -> std::io::Result<()> {
        let mut f = OpenOptions::new().create(true).append(true).open(&self.md_path)?;
        writeln!(f, "{}", self.md)
    }
}

pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(40).collect::<String>().trim_end_matches('-').to_string()
}

/// (YYYY-MM-DD, ISO 8601 UTC timestamp) from the system clock.
pub fn now_utc() -> (String, String) {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}-{m:02}-{d:02}");
    let ts = format!("{date}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60);
    (date, ts)
}

pub fn git_commit(repo: &Path) -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Tracked files that differ from HEAD (`git status --porcelain`, untracked files left out):
/// a binary built from this tree may hold changes the commit does not.
pub fn git_modified(repo: &Path) -> Vec<String> {
    std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(repo)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.get(3..)).map(str::to_string).collect())
        .unwrap_or_default()
}

pub fn ms(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// The date (YYYY-MM-DD) and the fields every record of an engine run carries: the adapter,
/// driver and backend, the time, the commit and the command line.
pub fn provenance(ctx: &lighthubert::gpu::GpuContext, repo: &Path, command: &str) -> (String, Map<String, Value>) {
    let info = &ctx.adapter_info;
    let (date, stamp) = now_utc();
    let mut common = Map::new();
    common.insert("impl".into(), "wgpu".into());
    common.insert("device".into(), info.name.clone().into());
    common.insert("driver".into(), format!("{} {}", info.driver, info.driver_info).trim().into());
    common.insert("backend".into(), format!("{:?}", info.backend).into());
    common.insert("date".into(), stamp.into());
    common.insert("git_commit".into(), git_commit(repo).into());
    common.insert("command".into(), command.into());
    (date, common)
}
