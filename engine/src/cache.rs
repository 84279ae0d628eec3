//! Where the engine keeps what it measured about a device (latency tables, GEMM tuning), so
//! the next run skips the measurement.

use std::path::PathBuf;

/// `$XDG_CACHE_HOME/lighthubert`, else `~/.cache/lighthubert`; `None` when neither variable
/// is set (then nothing is kept).
pub fn dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("lighthubert"))
}
