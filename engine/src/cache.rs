//! Where the engine keeps what it measured about a device (latency tables, GEMM tuning), so
//! the next run skips the measurement.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// `$XDG_CACHE_HOME/lighthubert`, else `~/.cache/lighthubert`; `None` when neither variable
/// is set (then nothing is kept).
pub fn dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("lighthubert"))
}

/// Writes `bytes` to a file beside `path`, named for this process and moment (processes of one
/// array job may write at once), then renames it over `path`: a reader sees the old file or
/// the new one, never half of one. Creates the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial.{}.{now}", std::process::id()));
    let partial = path.with_file_name(name);
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        n.sort();
        n
    }

    #[test]
    fn atomic_writes_replace_the_file_and_leave_nothing_beside_it() {
        let dir = std::env::temp_dir().join(format!("lighthubert-cache-test-{}", std::process::id()));
        let path = dir.join("sub").join("table.json");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(names(path.parent().unwrap()), ["table.json"]);

        // A rename that cannot happen (a folder is in the way) fails and takes its partial file.
        let blocked = dir.join("sub").join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomically(&blocked, b"x").is_err());
        assert_eq!(names(path.parent().unwrap()), ["blocked", "table.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
