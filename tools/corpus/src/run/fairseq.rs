//! The fairseq layout: what `dump_hubert_feature.py` writes, so `learn_kmeans.py` and
//! `dump_km_label.py` read it unchanged. Shard I of N of split S is
//! `S_I_N.npy` (one [sum of frames, dim] array, utterances appended in manifest order) and
//! `S_I_N.len` (each utterance's frame count, one per line).
//!
//! While a shard runs, both live as `*.partial` files whose `.npy` header is rewritten in
//! place as rows are appended (it has a fixed length, so the data never moves). The index is
//! the commit record: a rerun cuts both files back to what the index lists and goes on from
//! there. The final names appear, by rename, only when the shard is complete.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::state::IndexEntry;
use crate::error::CorpusError;
use crate::npy::{self, Dtype, GROWABLE_HEADER_LEN};
use crate::shard::Shard;

/// The shard's two final file names.
pub fn shard_files(out: &Path, split: &str, shard: Shard) -> (PathBuf, PathBuf) {
    let stem = format!("{split}_{}_{}", shard.index, shard.count);
    (out.join(format!("{stem}.npy")), out.join(format!("{stem}.len")))
}

fn partial(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

pub struct FairseqShard {
    npy_path: PathBuf,
    len_path: PathBuf,
    npy: File,
    len: File,
    dtype: Dtype,
    dim: usize,
    rows: u64,
}

impl FairseqShard {
    /// Opens shard files to append after `committed` (the index entries of this shard, in
    /// order), cutting off anything written after the last of them. Returns the shard and how
    /// many of `committed` its files still hold (all of them, unless the files were lost).
    pub fn open(
        out: &Path,
        split: &str,
        shard: Shard,
        dtype: Dtype,
        dim: usize,
        committed: &[IndexEntry],
    ) -> Result<(FairseqShard, usize), CorpusError> {
        let (npy_path, len_path) = shard_files(out, split, shard);
        let (npy_partial, len_partial) = (partial(&npy_path), partial(&len_path));
        let rows: u64 = committed.iter().map(|e| e.frames).sum();
        let expected = GROWABLE_HEADER_LEN as u64 + rows * (dim * dtype.bytes()) as u64;
        let resumable = !committed.is_empty()
            && std::fs::metadata(&npy_partial).is_ok_and(|m| m.len() >= expected)
            && read_lens(&len_partial).is_ok_and(|l| l.len() >= committed.len())
            && header_matches(&npy_partial, dtype, dim);
        let open = |p: &Path, truncate: bool| {
            OpenOptions::new().read(true).write(true).create(true).truncate(truncate).open(p).map_err(|e| CorpusError::io(p, e))
        };
        let (npy, len, kept, rows) = if resumable {
            let npy = open(&npy_partial, false)?;
            npy.set_len(expected).map_err(|e| CorpusError::io(&npy_partial, e))?;
            let mut len = open(&len_partial, true)?;
            let text: String = committed.iter().map(|e| format!("{}\n", e.frames)).collect();
            len.write_all(text.as_bytes()).map_err(|e| CorpusError::io(&len_partial, e))?;
            (npy, len, committed.len(), rows)
        } else {
            (open(&npy_partial, true)?, open(&len_partial, true)?, 0, 0)
        };
        let mut shard = FairseqShard { npy_path, len_path, npy, len, dtype, dim, rows };
        shard.write_header()?;
        shard.npy.seek(SeekFrom::End(0)).map_err(|e| CorpusError::io(&npy_partial, e))?;
        Ok((shard, kept))
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn write_header(&mut self) -> Result<(), CorpusError> {
        let p = partial(&self.npy_path);
        let header = npy::growable_header(self.dtype, self.rows as usize, self.dim);
        self.npy.seek(SeekFrom::Start(0)).map_err(|e| CorpusError::io(&p, e))?;
        self.npy.write_all(&header).map_err(|e| CorpusError::io(&p, e))?;
        self.npy.seek(SeekFrom::End(0)).map_err(|e| CorpusError::io(&p, e))?;
        Ok(())
    }

    /// Appends one utterance's [frames, dim] state; returns its first row.
    pub fn append(&mut self, state: &[f32], frames: usize) -> Result<u64, CorpusError> {
        let p = partial(&self.npy_path);
        if state.len() != frames * self.dim {
            return Err(CorpusError::output(&p, format!("{} values for {frames} frames of width {}", state.len(), self.dim)));
        }
        let mut bytes = Vec::new();
        self.dtype.encode(state, &mut bytes);
        self.npy.write_all(&bytes).map_err(|e| CorpusError::io(&p, e))?;
        let lp = partial(&self.len_path);
        self.len.write_all(format!("{frames}\n").as_bytes()).map_err(|e| CorpusError::io(&lp, e))?;
        let row = self.rows;
        self.rows += frames as u64;
        Ok(row)
    }

    /// Makes what was appended durable and readable (the header counts the rows) before the
    /// index records it.
    pub fn commit(&mut self) -> Result<(), CorpusError> {
        self.write_header()?;
        self.npy.sync_data().map_err(|e| CorpusError::io(partial(&self.npy_path), e))?;
        self.len.sync_data().map_err(|e| CorpusError::io(partial(&self.len_path), e))
    }

    /// Commits and gives both files their final names.
    pub fn finish(mut self) -> Result<(), CorpusError> {
        self.commit()?;
        for p in [&self.npy_path, &self.len_path] {
            std::fs::rename(partial(p), p).map_err(|e| CorpusError::io(p, e))?;
        }
        Ok(())
    }
}

fn read_lens(path: &Path) -> std::io::Result<Vec<u64>> {
    std::io::BufReader::new(File::open(path)?)
        .lines()
        .map(|l| l.and_then(|l| l.trim().parse().map_err(std::io::Error::other)))
        .collect()
}

fn header_matches(path: &Path, dtype: Dtype, dim: usize) -> bool {
    let mut head = vec![0u8; GROWABLE_HEADER_LEN];
    let ok = File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok();
    let want = npy::growable_header(dtype, 0, dim);
    // Same magic, dtype and width; the row count is rewritten anyway.
    ok && head[..10] == want[..10] && std::str::from_utf8(&head[10..]).is_ok_and(|h| {
        h.contains(&format!("'descr': '{}'", if dtype == Dtype::F32 { "<f4" } else { "<f2" })) && h.contains(&format!(", {dim}), }}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, frames: u64, row: u64) -> IndexEntry {
        IndexEntry { id: id.into(), source: id.into(), samples: 0, frames, output: String::new(), row: Some(row) }
    }

    #[test]
    fn appends_resumes_and_finishes() {
        let d = tempfile::tempdir().unwrap();
        let shard = Shard { index: 1, count: 2 };
        let (mut s, kept) = FairseqShard::open(d.path(), "dev", shard, Dtype::F32, 2, &[]).unwrap();
        assert_eq!(kept, 0);
        assert_eq!(s.append(&[1.0, 2.0, 3.0, 4.0], 2).unwrap(), 0);
        s.commit().unwrap();
        assert_eq!(s.append(&[5.0, 6.0], 1).unwrap(), 2);
        s.commit().unwrap();
        // Appended but never committed in the index: a rerun cuts it off.
        s.append(&[7.0, 8.0], 1).unwrap();
        drop(s);
        let committed = [entry("a", 2, 0), entry("b", 1, 2)];
        let (mut s, kept) = FairseqShard::open(d.path(), "dev", shard, Dtype::F32, 2, &committed).unwrap();
        assert_eq!((kept, s.rows()), (2, 3));
        s.append(&[9.0, 10.0], 1).unwrap();
        s.finish().unwrap();
        let (npy, len) = shard_files(d.path(), "dev", shard);
        assert_eq!(npy.file_name().unwrap(), "dev_1_2.npy");
        let (shape, values) = npy::read_f32(&std::fs::read(&npy).unwrap()).unwrap();
        assert_eq!(shape, vec![4, 2]);
        assert_eq!(values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0, 10.0]);
        assert_eq!(std::fs::read_to_string(len).unwrap(), "2\n1\n1\n");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2, "no partial files left");
    }
}
