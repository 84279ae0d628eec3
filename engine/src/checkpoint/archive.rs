//! The `torch.save` zip container: finding `<root>/data.pkl` and reading members without
//! trusting any size the archive claims.
//!
//! A member is read through `Read::take(n)` where `n` is what the caller needs (the bytes
//! a storage must hold, or the pickle size cap), so a header claiming gigabytes costs
//! nothing. Decompressed bytes are also counted against a budget proportional to the file
//! size, so a deflate bomb (1000:1) cannot make a small file expand into gigabytes.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use super::CheckpointError;

/// Largest `data.pkl` we accept. The released checkpoints' pickles are tens of kilobytes;
/// the limit bounds the unpickler's memory (a small multiple of this).
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Decompressed bytes allowed per byte of archive, plus a fixed allowance. Float weights
/// barely compress, so a legitimate re-zipped checkpoint stays far below this.
const INFLATE_RATIO: u64 = 16;
const INFLATE_ALLOWANCE: u64 = 64 << 20;

/// Why a storage member could not be returned in full.
pub enum MemberError {
    Missing,
    /// The member holds `have` bytes, fewer than the `need` asked for.
    Short {
        have: u64,
        need: u64,
    },
    Other(CheckpointError),
}

impl From<CheckpointError> for MemberError {
    fn from(e: CheckpointError) -> Self {
        MemberError::Other(e)
    }
}

/// An opened checkpoint archive with its root folder located.
pub struct Archive<R: Read + Seek> {
    zip: ZipArchive<R>,
    path: PathBuf,
    root: String,
    archive_len: u64,
    /// Decompressed bytes we may still produce.
    inflate_left: u64,
}

impl<R: Read + Seek> Archive<R> {
    /// Opens the zip, finds the single `<root>/data.pkl` and checks the byte order.
    pub fn open(mut reader: R, archive_len: u64, path: &Path) -> Result<Self, CheckpointError> {
        let path = path.to_path_buf();
        sniff_zip(&mut reader, &path)?;
        let zip = ZipArchive::new(reader).map_err(|e| damaged(&path, "", e))?;
        let root = find_root(&zip, &path)?;
        let mut archive = Archive {
            zip,
            path,
            root,
            archive_len,
            inflate_left: archive_len
                .saturating_mul(INFLATE_RATIO)
                .saturating_add(INFLATE_ALLOWANCE),
        };
        archive.check_byteorder()?;
        Ok(archive)
    }

    /// The top-level folder name, e.g. `archive` or the file's stem.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The bytes of `data.pkl`, at most [`MAX_PICKLE_BYTES`].
    pub fn data_pkl(&mut self) -> Result<Vec<u8>, CheckpointError> {
        let name = format!("{}/data.pkl", self.root);
        let Some(bytes) = self.read_member(&name, MAX_PICKLE_BYTES + 1)? else {
            return Err(CheckpointError::MissingDataPkl {
                path: self.path.clone(),
            });
        };
        if bytes.len() as u64 > MAX_PICKLE_BYTES {
            return Err(CheckpointError::ResourceLimit {
                path: self.path.clone(),
                what: format!("data.pkl is larger than {MAX_PICKLE_BYTES} bytes"),
            });
        }
        Ok(bytes)
    }

    /// The first `need` bytes of storage member `<root>/data/<key>`.
    pub fn storage(&mut self, key: &str, need: u64) -> Result<Vec<u8>, MemberError> {
        let name = format!("{}/data/{}", self.root, key);
        let Some(bytes) = self.read_member(&name, need)? else {
            return Err(MemberError::Missing);
        };
        let have = bytes.len() as u64;
        if have < need {
            return Err(MemberError::Short { have, need });
        }
        Ok(bytes)
    }

    /// The name of storage member `key`, for messages.
    pub fn storage_member_name(&self, key: &str) -> String {
        format!("{}/data/{}", self.root, key)
    }

    /// Reads up to `need` bytes of `name` (fewer only when the member is shorter);
    /// `None` when there is no such member.
    fn read_member(&mut self, name: &str, need: u64) -> Result<Option<Vec<u8>>, CheckpointError> {
        let path = self.path.clone();
        let archive_len = self.archive_len;
        let inflate_left = self.inflate_left;
        let mut file = match self.zip.by_name(name) {
            Ok(f) => f,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(damaged(&path, name, e)),
        };
        let allowed = need.min(inflate_left);
        // Pre-size only by what the bytes on disk can back; growth past that is paid for
        // by data actually decompressed, never by a claimed size.
        let backed = match file.compression() {
            CompressionMethod::Stored => archive_len,
            _ => file.compressed_size().min(archive_len),
        };
        let capacity = allowed.min(file.size()).min(backed);
        let mut buf = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        (&mut file)
            .take(allowed)
            .read_to_end(&mut buf)
            .map_err(|e| read_error(&path, name, e))?;
        let got = buf.len() as u64;
        if got == allowed && allowed < need {
            return Err(CheckpointError::ResourceLimit {
                path,
                what: format!(
                    "member `{name}` decompresses to more than {INFLATE_RATIO}x the file size \
                     allows (zip bomb?)"
                ),
            });
        }
        if got == need {
            // Reading to the member's end makes the zip reader verify its CRC-32, so a
            // corrupted storage is reported instead of silently loaded. Extra bytes beyond
            // what the tensor needs are ignored.
            let mut probe = [0u8; 1];
            file.read(&mut probe)
                .map_err(|e| read_error(&path, name, e))?;
        }
        self.inflate_left = inflate_left.saturating_sub(got);
        Ok(Some(buf))
    }

    /// torch records `byteorder` since 1.13; storages are only read as little-endian.
    fn check_byteorder(&mut self) -> Result<(), CheckpointError> {
        let name = format!("{}/byteorder", self.root);
        match self.read_member(&name, 16)? {
            None => Ok(()),
            Some(b) if b.as_slice() == b"little" => Ok(()),
            Some(b) => Err(CheckpointError::Structure {
                path: self.path.clone(),
                reason: format!(
                    "storages are stored with byte order {:?}; only \"little\" is read",
                    String::from_utf8_lossy(&b)
                ),
            }),
        }
    }
}

/// Tells "not a zip at all" from "a damaged zip" by the first bytes, which gives users
/// the more useful message (e.g. a legacy pickle-only `torch.save` file).
fn sniff_zip<R: Read + Seek>(reader: &mut R, path: &Path) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        let got = reader.read(&mut head[n..]).map_err(io)?;
        if got == 0 {
            break;
        }
        n += got;
    }
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    let head = &head[..n];
    if head.starts_with(b"PK") {
        return Ok(());
    }
    let reason = if n == 0 {
        "the file is empty".to_string()
    } else if head.first() == Some(&0x80) {
        "it starts like a bare pickle: the legacy (pre-1.6) torch.save format is not read; \
         re-save it with a current torch"
            .to_string()
    } else {
        format!("it starts with bytes {head:02x?}, not a zip signature")
    };
    Err(CheckpointError::NotZip {
        path: path.to_path_buf(),
        reason,
    })
}

/// The one top-level folder holding `data.pkl`.
fn find_root<R: Read + Seek>(zip: &ZipArchive<R>, path: &Path) -> Result<String, CheckpointError> {
    let mut roots: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok())
        .filter_map(|n| {
            let root = n.strip_suffix("/data.pkl")?;
            (!root.is_empty() && !root.contains('/')).then(|| root.to_string())
        })
        .collect();
    roots.sort();
    roots.dedup();
    match roots.len() {
        0 => Err(CheckpointError::MissingDataPkl {
            path: path.to_path_buf(),
        }),
        1 => Ok(roots.swap_remove(0)),
        _ => Err(CheckpointError::Zip {
            path: path.to_path_buf(),
            reason: format!("several top-level folders hold a data.pkl: {roots:?}"),
        }),
    }
}

fn damaged(path: &Path, member: &str, e: ZipError) -> CheckpointError {
    let reason = if member.is_empty() {
        e.to_string()
    } else {
        format!("member `{member}`: {e}")
    };
    CheckpointError::Zip {
        path: path.to_path_buf(),
        reason,
    }
}

/// Data errors while decompressing (bad deflate stream, CRC mismatch, archive cut short)
/// mean a damaged archive; anything else is a genuine I/O failure.
fn read_error(path: &Path, member: &str, e: std::io::Error) -> CheckpointError {
    use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
    match e.kind() {
        InvalidData | InvalidInput | UnexpectedEof => CheckpointError::Zip {
            path: path.to_path_buf(),
            reason: format!("member `{member}`: {e}"),
        },
        _ => CheckpointError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}
