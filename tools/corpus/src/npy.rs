//! NumPy's `.npy` format, version 1.0, little-endian float32 or float16, C order.
//!
//! Layout: the magic `\x93NUMPY`, version bytes 1 0, a little-endian u16 header length, then
//! an ASCII Python dict literal padded with spaces and ended by `\n` so that the data starts
//! at a multiple of 64 bytes, then the raw values.

use std::io::{self, Write};

const MAGIC: &[u8] = b"\x93NUMPY";
/// numpy aligns the data to 64 bytes (the format requires 16).
const ALIGN: usize = 64;

/// The shape as a Python tuple literal: `()`, `(3,)`, `(2, 3, 4)`.
fn shape_literal(shape: &[usize]) -> String {
    match shape {
        [] => "()".into(),
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// How feature values are stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    /// Half the disk; features keep about 3 significant digits (rounded to nearest even).
    F16,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }

    fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::F16 => "<f2",
        }
    }

    /// Appends `values` to `out` in this dtype, little-endian.
    pub fn encode(self, values: &[f32], out: &mut Vec<u8>) {
        out.reserve(values.len() * self.bytes());
        match self {
            Dtype::F32 => values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Dtype::F16 => values.iter().for_each(|v| out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
        }
    }
}

fn dict(dtype: Dtype, shape: &[usize]) -> String {
    format!("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", dtype.descr(), shape_literal(shape))
}

fn preamble(dict: &str, total: usize) -> Vec<u8> {
    let header_len = total - MAGIC.len() - 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // A header longer than 65535 bytes would need version 2.0; shapes never get near that.
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// The preamble of a `<f4` array of `shape`: magic, version, length and padded dict.
pub fn header(shape: &[usize]) -> Vec<u8> {
    header_of(Dtype::F32, shape)
}

/// The preamble of an array of `dtype` and `shape`, as numpy writes it.
pub fn header_of(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let dict = dict(dtype, shape);
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    preamble(&dict, unpadded.div_ceil(ALIGN) * ALIGN)
}

/// Bytes of [`growable_header`]: room for any 2-D shape whose sizes fit in 20 digits.
pub const GROWABLE_HEADER_LEN: usize = 128;

/// A preamble of fixed length [`GROWABLE_HEADER_LEN`] for an array that grows along its first
/// axis: rewriting it in place with a larger row count never moves the data.
pub fn growable_header(dtype: Dtype, rows: usize, cols: usize) -> Vec<u8> {
    preamble(&dict(dtype, &[rows, cols]), GROWABLE_HEADER_LEN)
}

/// Writes one float32 array of `shape` whose values are the concatenation of `parts`.
pub fn write_f32<W: Write>(w: W, shape: &[usize], parts: &[&[f32]]) -> io::Result<()> {
    write(w, Dtype::F32, shape, parts)
}

/// Writes one array of `dtype` and `shape` whose values are the concatenation of `parts`.
pub fn write<W: Write>(mut w: W, dtype: Dtype, shape: &[usize], parts: &[&[f32]]) -> io::Result<()> {
    let count: usize = shape.iter().product();
    let have: usize = parts.iter().map(|p| p.len()).sum();
    if count != have {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("npy shape {shape:?} holds {count} values, {have} given"),
        ));
    }
    w.write_all(&header_of(dtype, shape))?;
    let mut buf = Vec::with_capacity(64 * 1024);
    for part in parts {
        for chunk in part.chunks(16 * 1024) {
            buf.clear();
            dtype.encode(chunk, &mut buf);
            w.write_all(&buf)?;
        }
    }
    w.flush()
}

/// Reads back a float32 array (any v1.0/2.0 `<f4` C-order file): shape and values.
pub fn read_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    match read(bytes)? {
        (Dtype::F32, shape, values) => Ok((shape, values)),
        (Dtype::F16, ..) => Err("a float16 array, not float32".into()),
    }
}

/// Reads back what [`write`] writes (any v1.0/2.0 `<f4` or `<f2` C-order file): its dtype,
/// shape and values (float16 widened to f32, exactly).
pub fn read(bytes: &[u8]) -> Result<(Dtype, Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not an .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let dict = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated .npy header")?;
    let dtype = if dict.contains("'descr': '<f4'") {
        Dtype::F32
    } else if dict.contains("'descr': '<f2'") {
        Dtype::F16
    } else {
        return Err(format!("not a little-endian float32 or float16 array: {dict}"));
    };
    if !dict.contains("'fortran_order': False") {
        return Err(format!("not a C-order array: {dict}"));
    }
    let shape_text =
        dict.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or("no shape in the .npy header")?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape {shape_text}")))
        .collect::<Result<Vec<_>, _>>()?;
    let data = &bytes[start + header_len..];
    let count: usize = shape.iter().product();
    if data.len() != count * dtype.bytes() {
        return Err(format!("{} data bytes for shape {shape:?}", data.len()));
    }
    let values = match dtype {
        Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
    };
    Ok((dtype, shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_numpy() {
        // np.save(f, np.zeros((2, 3, 4), '<f4')) writes exactly this 128-byte preamble.
        let h = header(&[2, 3, 4]);
        assert_eq!(h.len(), 128);
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]), 118);
        let dict = std::str::from_utf8(&h[10..]).unwrap();
        assert!(dict.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }"));
        assert!(dict.ends_with(" \n"));
        assert_eq!(dict.trim_end().len(), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }".len());
    }

    #[test]
    fn shapes_of_every_rank() {
        assert_eq!(shape_literal(&[]), "()");
        assert_eq!(shape_literal(&[5]), "(5,)");
        assert_eq!(shape_literal(&[1, 2]), "(1, 2)");
        for shape in [vec![], vec![7], vec![3, 5], vec![13, 1000, 768]] {
            assert_eq!(header(&shape).len() % 64, 0, "{shape:?}");
        }
    }

    #[test]
    fn writes_and_reads_back() {
        let a = [1.0f32, -2.5, 3.25];
        let b = [f32::MIN_POSITIVE, 1e30, -0.0];
        let mut out = Vec::new();
        write_f32(&mut out, &[2, 1, 3], &[&a, &b]).unwrap();
        assert_eq!(out.len(), 128 + 24);
        // The data is the values in order, little-endian.
        assert_eq!(&out[128..132], &1.0f32.to_le_bytes());
        let (shape, values) = read_f32(&out).unwrap();
        assert_eq!(shape, vec![2, 1, 3]);
        assert_eq!(
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            a.iter().chain(&b).map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn float16_and_growable_headers() {
        let mut out = Vec::new();
        write(&mut out, Dtype::F16, &[3], &[&[1.0, -0.5, 65504.0]]).unwrap();
        assert!(std::str::from_utf8(&out[10..64]).unwrap().contains("'descr': '<f2'"));
        assert_eq!(out.len(), 128 + 6);
        assert_eq!(read(&out).unwrap(), (Dtype::F16, vec![3], vec![1.0, -0.5, 65504.0]));
        for rows in [0, 7, usize::MAX / 4] {
            let h = growable_header(Dtype::F32, rows, 768);
            assert_eq!(h.len(), GROWABLE_HEADER_LEN);
            assert!(std::str::from_utf8(&h[10..]).unwrap().contains(&format!("({rows}, 768)")));
        }
    }

    #[test]
    fn refuses_a_shape_that_does_not_match() {
        let mut out = Vec::new();
        assert!(write_f32(&mut out, &[2, 2], &[&[1.0, 2.0, 3.0]]).is_err());
        assert!(out.is_empty());
    }
}
