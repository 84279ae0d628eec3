//! What a run reads: audio files named directly, folders searched for audio, and file lists or
//! fairseq manifests (`--files-from`), each utterance with an id that names its output.
//!
//! An id is the output's path without the extension, `/`-separated:
//! - under a folder or a manifest, the path relative to that root;
//! - in a plain list, the path relative to the deepest folder all listed files share;
//! - for files named directly, the stem (or, when two share a stem, the path relative to the
//!   deepest folder they all share, so `spk1/a.wav spk2/a.wav` gives `spk1/a` and `spk2/a`).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Component, Path, PathBuf};

use crate::error::CorpusError;

/// Extensions a folder search takes as audio (case-insensitive).
pub const AUDIO_EXTENSIONS: [&str; 6] = ["wav", "wave", "flac", "ogg", "oga", "mp3"];

/// One input of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    /// The output's path without its extension, relative to the output folder.
    pub id: String,
    /// Where to read the audio.
    pub path: PathBuf,
    /// Samples, as a manifest states them (fairseq manifests are 16 kHz).
    pub samples: Option<u64>,
}

/// Every input of a run, in input order.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub utterances: Vec<Utterance>,
    /// The manifest's file stem (`train` for `train.tsv`): the fairseq layout's split name.
    pub manifest_stem: Option<String>,
    /// Whether every input is a file named directly (the form `--out FILE.npy` takes).
    pub only_named_files: bool,
}

/// Gathers `paths` (audio files and folders) and the list `files_from` (a file, or `-` for
/// standard input), in that order. Ids must be unique across all of them.
pub fn gather(paths: &[PathBuf], files_from: Option<&Path>) -> Result<Inputs, CorpusError> {
    let mut inputs = Inputs { only_named_files: files_from.is_none(), ..Default::default() };
    let mut named = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| CorpusError::io(p, e))?;
        if meta.is_dir() {
            inputs.only_named_files = false;
            flush_named(&mut named, &mut inputs.utterances)?;
            inputs.utterances.extend(search_folder(p)?);
        } else {
            named.push(p.clone());
        }
    }
    flush_named(&mut named, &mut inputs.utterances)?;
    if let Some(list) = files_from {
        let (utterances, stem) = read_list(list)?;
        inputs.utterances.extend(utterances);
        inputs.manifest_stem = stem;
    }
    check_unique(&inputs.utterances)?;
    Ok(inputs)
}

/// Files named directly: ids are their stems, unless two share one.
fn flush_named(named: &mut Vec<PathBuf>, out: &mut Vec<Utterance>) -> Result<(), CorpusError> {
    if named.is_empty() {
        return Ok(());
    }
    let mut stems = Vec::with_capacity(named.len());
    for p in named.iter() {
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CorpusError::input(p, "has no file name (in UTF-8) to name its output after"))?;
        stems.push(stem.to_string());
    }
    let mut seen = HashMap::new();
    let unique = stems.iter().all(|s| seen.insert(s.as_str(), ()).is_none());
    if unique {
        out.extend(named.drain(..).zip(stems).map(|(path, id)| Utterance { id, path, samples: None }));
    } else {
        out.extend(relative_to_common_folder(named.iter().map(|p| (p.clone(), 0)), "INPUT")?);
        named.clear();
    }
    Ok(())
}

/// Every audio file under `root`, in sorted order of their relative paths. Names starting with
/// a dot (hidden files, macOS `._x.wav` resource forks) are skipped; symbolic links to files
/// are followed, links to folders are not (a link loop would never end).
pub fn search_folder(root: &Path) -> Result<Vec<Utterance>, CorpusError> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| CorpusError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| CorpusError::io(&dir, e))?;
            let name = entry.file_name();
            let Some(name_str) = name.to_str() else {
                return Err(CorpusError::input(entry.path(), "a file name that is not UTF-8 cannot name an output"));
            };
            if name_str.starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(|e| CorpusError::io(entry.path(), e))?;
            if kind.is_dir() {
                stack.push(rel.join(&name));
            } else if has_audio_extension(Path::new(&name)) && (kind.is_file() || entry.path().is_file()) {
                found.push(rel.join(&name));
            }
        }
    }
    let mut found: Vec<(String, PathBuf)> = found.into_iter().map(|rel| (slash_path(&rel), rel)).collect();
    found.sort();
    Ok(found
        .into_iter()
        .map(|(_, rel)| Utterance { id: slash_path(&rel.with_extension("")), path: root.join(rel), samples: None })
        .collect())
}

pub fn has_audio_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.iter().any(|a| a.eq_ignore_ascii_case(e)))
}

/// Reads a file list or a fairseq manifest (`-`: standard input). Returns the utterances and,
/// for a manifest, its stem.
pub fn read_list(list: &Path) -> Result<(Vec<Utterance>, Option<String>), CorpusError> {
    let lines: Vec<String> = if list.as_os_str() == "-" {
        std::io::stdin().lock().lines().collect::<Result<_, _>>().map_err(|e| CorpusError::io("<stdin>", e))?
    } else {
        let file = std::fs::File::open(list).map_err(|e| CorpusError::io(list, e))?;
        std::io::BufReader::new(file).lines().collect::<Result<_, _>>().map_err(|e| CorpusError::io(list, e))?
    };
    let label = if list.as_os_str() == "-" { PathBuf::from("<stdin>") } else { list.to_path_buf() };
    parse_list(&label, &lines)
}

fn is_manifest(lines: &[String]) -> bool {
    let mut it = lines.iter().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty());
    match (it.next(), it.next()) {
        (Some(first), second) => Path::new(first).is_dir() && second.is_none_or(|l| l.contains('\t')),
        _ => false,
    }
}

/// [`read_list`] on lines already read; `label` names the list in errors.
pub fn parse_list(label: &Path, lines: &[String]) -> Result<(Vec<Utterance>, Option<String>), CorpusError> {
    let numbered = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.is_empty());
    if is_manifest(lines) {
        let mut numbered = numbered;
        let root = PathBuf::from(numbered.next().map(|(_, l)| l).unwrap_or_default());
        let mut out = Vec::new();
        for (line, text) in numbered {
            let bad = |reason: &str| CorpusError::ListLine { path: label.to_path_buf(), line, reason: reason.to_string() };
            let (rel, samples) = text.split_once('\t').ok_or_else(|| bad("expected relative/path<TAB>num_samples"))?;
            let samples: u64 = samples
                .split('\t')
                .next()
                .unwrap_or_default()
                .trim()
                .parse()
                .map_err(|_| bad("the sample count is not a whole number"))?;
            let rel = Path::new(rel);
            if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(bad("the path must be relative to the manifest's root, without `..`"));
            }
            out.push(Utterance { id: slash_path(&rel.with_extension("")), path: root.join(rel), samples: Some(samples) });
        }
        let stem = label.file_stem().and_then(|s| s.to_str()).filter(|_| label.as_os_str() != "<stdin>");
        return Ok((out, stem.map(str::to_string)));
    }
    let files: Vec<(PathBuf, usize)> = numbered.map(|(line, l)| (PathBuf::from(l), line)).collect();
    for (p, line) in &files {
        if p.is_dir() {
            return Err(CorpusError::ListLine {
                path: label.to_path_buf(),
                line: *line,
                reason: format!(
                    "{} is a folder; a file list names audio files (pass a folder as INPUT, or write a fairseq manifest: its first line is the root folder)",
                    p.display()
                ),
            });
        }
    }
    Ok((relative_to_common_folder(files.into_iter(), &label.display().to_string())?, None))
}

/// Ids relative to the deepest folder all `files` share (lexically, from the working folder).
fn relative_to_common_folder(
    files: impl Iterator<Item = (PathBuf, usize)>,
    what: &str,
) -> Result<Vec<Utterance>, CorpusError> {
    let cwd = std::env::current_dir().map_err(|e| CorpusError::io(".", e))?;
    let files: Vec<(PathBuf, PathBuf)> = files.map(|(p, _)| (lexical_absolute(&cwd, &p), p)).collect();
    let mut common: Option<PathBuf> = None;
    for (abs, given) in &files {
        let parent = abs.parent().ok_or_else(|| CorpusError::input(given, "is not a file"))?;
        common = Some(match common {
            None => parent.to_path_buf(),
            Some(c) => c.components().zip(parent.components()).take_while(|(a, b)| a == b).map(|(a, _)| a).collect(),
        });
    }
    let common = common.unwrap_or_default();
    files
        .into_iter()
        .map(|(abs, given)| {
            let rel = abs.strip_prefix(&common).unwrap_or(&abs);
            if rel.file_stem().is_none_or(|s| s.is_empty()) {
                return Err(CorpusError::input(&given, format!("has no file name to name its output after ({what})")));
            }
            if rel.to_str().is_none() {
                return Err(CorpusError::input(&given, "a file name that is not UTF-8 cannot name an output"));
            }
            Ok(Utterance { id: slash_path(&rel.with_extension("")), path: given, samples: None })
        })
        .collect()
}

/// `base.join(p)` with `.` and `..` resolved by name, touching no file system.
fn lexical_absolute(base: &Path, p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(p).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A relative path with `/` separators on every platform.
fn slash_path(p: &Path) -> String {
    p.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn check_unique(utterances: &[Utterance]) -> Result<(), CorpusError> {
    let mut seen: HashMap<&str, &Path> = HashMap::with_capacity(utterances.len());
    for u in utterances {
        if let Some(first) = seen.insert(&u.id, &u.path) {
            return Err(CorpusError::DuplicateId { id: u.id.clone(), first: first.to_path_buf(), second: u.path.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    fn ids(u: &[Utterance]) -> Vec<&str> {
        u.iter().map(|u| u.id.as_str()).collect()
    }

    #[test]
    fn folders_are_searched_in_sorted_order() {
        let d = tempfile::tempdir().unwrap();
        for f in ["b/2.flac", "b/10.wav", "a.WAV", "b/c/x.mp3", "notes.txt", ".hidden.wav", "b/._2.flac"] {
            touch(&d.path().join(f));
        }
        let found = search_folder(d.path()).unwrap();
        assert_eq!(ids(&found), ["a", "b/10", "b/2", "b/c/x"]);
        assert_eq!(found[1].path, d.path().join("b/10.wav"));
    }

    #[test]
    fn named_files_use_stems_unless_two_share_one() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("spk1/a.wav"), d.path().join("spk2/a.wav"));
        touch(&a);
        touch(&b);
        let one = gather(std::slice::from_ref(&a), None).unwrap();
        assert_eq!(ids(&one.utterances), ["a"]);
        assert!(one.only_named_files);
        let both = gather(&[a.clone(), b.clone()], None).unwrap();
        assert_eq!(ids(&both.utterances), ["spk1/a", "spk2/a"]);
        // The same file twice is two inputs with one id.
        assert!(matches!(gather(&[a.clone(), a.clone()], None), Err(CorpusError::DuplicateId { .. })));
    }

    #[test]
    fn manifests_and_plain_lists() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("LibriSpeech");
        let tsv = d.path().join("dev-clean.tsv");
        std::fs::write(&tsv, format!("{}\n84/121123/84-0000.flac\t36000\n84/121123/84-0001.flac\t20560\n", root.display())).unwrap();
        // Without its root folder it is no manifest (a plain list names files, not folders).
        assert_eq!(read_list(&tsv).unwrap().1, None);
        std::fs::create_dir_all(&root).unwrap();
        let (u, stem) = read_list(&tsv).unwrap();
        assert_eq!(stem.as_deref(), Some("dev-clean"));
        assert_eq!(ids(&u), ["84/121123/84-0000", "84/121123/84-0001"]);
        assert_eq!(u[0].path, root.join("84/121123/84-0000.flac"));
        assert_eq!(u[1].samples, Some(20560));

        let bad = d.path().join("bad.tsv");
        std::fs::write(&bad, format!("{}\nx.wav\t12\n../y.wav\t3\n", root.display())).unwrap();
        let e = read_list(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.tsv:3:") && e.contains(".."), "{e}");

        let list = d.path().join("list.txt");
        std::fs::write(&list, format!("{0}/s1/u.wav\n{0}/s2/deep/u.wav\r\n\n", d.path().display())).unwrap();
        let (u, stem) = read_list(&list).unwrap();
        assert_eq!((ids(&u), stem), (vec!["s1/u", "s2/deep/u"], None));
    }
}
