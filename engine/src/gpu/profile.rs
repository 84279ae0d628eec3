//! Per-dispatch timings of a forward pass, summarised per kernel and as a Chrome trace.

use std::collections::BTreeMap;

/// One dispatch's time and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchTiming {
    /// The WGSL entry point.
    pub kernel: &'static str,
    /// Where in the forward pass it ran (`conv 0`, `layer 3`, ...).
    pub label: String,
    /// From the first dispatch's start.
    pub start_ns: f64,
    pub duration_ns: f64,
    pub flops: f64,
    /// Weights and activations read and written.
    pub bytes: f64,
}

/// The timings of one profiled forward pass.
#[derive(Debug, Clone)]
pub struct Profile {
    pub timings: Vec<DispatchTiming>,
    /// True when the device wrote GPU timestamps around each dispatch; false when each
    /// dispatch was timed by wall clock around its own submit (which adds submit latency).
    pub gpu_timestamps: bool,
    /// Wall-clock time of the profiled run, submits and waits included.
    pub wall_ms: f64,
}

/// One kernel's share of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSummary {
    pub kernel: &'static str,
    pub calls: usize,
    pub total_ms: f64,
    pub mean_us: f64,
    /// Fraction of the summed dispatch time.
    pub share: f64,
    pub gflops: f64,
    pub gbytes_per_s: f64,
}

impl Profile {
    /// Summed dispatch time, in milliseconds.
    pub fn total_ms(&self) -> f64 {
        self.timings.iter().map(|t| t.duration_ns).sum::<f64>() / 1e6
    }

    /// One row per kernel, the most expensive first.
    pub fn by_kernel(&self) -> Vec<KernelSummary> {
        let mut groups: BTreeMap<&'static str, (usize, f64, f64, f64)> = BTreeMap::new();
        for t in &self.timings {
            let g = groups.entry(t.kernel).or_default();
            g.0 += 1;
            g.1 += t.duration_ns;
            g.2 += t.flops;
            g.3 += t.bytes;
        }
        let total_ns = self.total_ms() * 1e6;
        let mut rows: Vec<KernelSummary> = groups
            .into_iter()
            .map(|(kernel, (calls, ns, flops, bytes))| {
                let secs = (ns / 1e9).max(1e-12);
                KernelSummary {
                    kernel,
                    calls,
                    total_ms: ns / 1e6,
                    mean_us: ns / 1e3 / calls as f64,
                    share: if total_ns > 0.0 { ns / total_ns } else { 0.0 },
                    gflops: flops / secs / 1e9,
                    gbytes_per_s: bytes / secs / 1e9,
                }
            })
            .collect();
        rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        rows
    }

    /// The per-kernel table as Markdown.
    pub fn table(&self) -> String {
        let mut s = String::from("| kernel | calls | total ms | mean us | share | GFLOP/s | GB/s |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for r in self.by_kernel() {
            s.push_str(&format!(
                "| {} | {} | {:.3} | {:.1} | {:.1}% | {:.2} | {:.2} |\n",
                r.kernel,
                r.calls,
                r.total_ms,
                r.mean_us,
                100.0 * r.share,
                r.gflops,
                r.gbytes_per_s
            ));
        }
        let flops: f64 = self.timings.iter().map(|t| t.flops).sum();
        s.push_str(&format!(
            "| **all** | {} | {:.3} | | 100% | {:.2} | |\n",
            self.timings.len(),
            self.total_ms(),
            flops / (self.total_ms() / 1e3).max(1e-12) / 1e9
        ));
        s
    }

    /// A Chrome trace (the JSON object format) that Perfetto and chrome://tracing open: one
    /// complete event per dispatch, in microseconds, with its cost in `args`.
    pub fn chrome_trace(&self) -> String {
        let events: Vec<serde_json::Value> = self
            .timings
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.kernel,
                    "cat": if t.label.is_empty() { "forward" } else { t.label.as_str() },
                    "ph": "X",
                    "ts": t.start_ns / 1e3,
                    "dur": t.duration_ns / 1e3,
                    "pid": 1,
                    "tid": 1,
                    "args": { "stage": t.label, "flops": t.flops, "bytes": t.bytes },
                })
            })
            .collect();
        serde_json::json!({
            "traceEvents": events,
            "displayTimeUnit": "ms",
            "otherData": { "clock": if self.gpu_timestamps { "gpu timestamps" } else { "wall clock per submit" } },
        })
        .to_string()
    }
}
