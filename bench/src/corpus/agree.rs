//! Do both sides compute the same thing? Each file's `.npy` from `lighthubert extract` against
//! the PyTorch loop's: same shape [states, frames, embed], and the worst max-abs and relative-L2
//! differences over the corpus. A timing of two different computations would compare nothing.

use std::path::Path;

use serde_json::{Value, json};

use crate::Res;

/// A float32 little-endian C-order `.npy` (versions 1-3): (shape, values).
pub fn read_npy(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not an .npy file".into());
    }
    let (len, at) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = std::str::from_utf8(bytes.get(at..at + len).ok_or("truncated header")?).map_err(|e| e.to_string())?;
    if !header.contains("'descr': '<f4'") {
        return Err(format!("not little-endian float32: {header}"));
    }
    if header.contains("'fortran_order': True") {
        return Err("Fortran order".into());
    }
    let dims = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or("no shape")?;
    let shape: Vec<usize> = dims.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|_| format!("shape {dims}"))).collect::<Result<_, _>>()?;
    let data = &bytes[at + len..];
    let n: usize = shape.iter().product();
    if data.len() != 4 * n {
        return Err(format!("shape {shape:?} wants {n} values, the file holds {} bytes", data.len()));
    }
    Ok((shape, data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
}

/// Compares `ours/<stem>.npy` with `theirs/<stem>.npy` for every stem.
pub fn compare(ours: &Path, theirs: &Path, stems: &[String]) -> Res<Value> {
    let (mut worst_abs, mut worst_rel, mut peak) = (0f64, 0f64, 0f64);
    let mut shapes_differ = Vec::new();
    let mut worst_file = String::new();
    for stem in stems {
        let (sa, a) = read_npy(&std::fs::read(ours.join(format!("{stem}.npy")))?).map_err(|e| format!("{stem} (ours): {e}"))?;
        let (sb, b) = read_npy(&std::fs::read(theirs.join(format!("{stem}.npy")))?).map_err(|e| format!("{stem} (PyTorch): {e}"))?;
        if sa != sb {
            shapes_differ.push(json!({"file": stem, "ours": sa, "pytorch": sb}));
            continue;
        }
        let (mut d2, mut b2, mut dmax) = (0f64, 0f64, 0f64);
        for (x, y) in a.iter().zip(&b) {
            let d = (*x as f64 - *y as f64).abs();
            d2 += d * d;
            b2 += (*y as f64) * (*y as f64);
            dmax = dmax.max(d);
            peak = peak.max((*y as f64).abs());
        }
        let rel = (d2 / b2.max(1e-30)).sqrt();
        if dmax > worst_abs {
            worst_file = stem.clone();
        }
        worst_abs = worst_abs.max(dmax);
        worst_rel = worst_rel.max(rel);
    }
    Ok(json!({
        "files": stems.len(), "shapes_differ": shapes_differ, "max_abs_diff": worst_abs,
        "max_rel_l2": worst_rel, "worst_file": worst_file, "max_abs_value": peak,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numpy_v1() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for v in 0..6 {
            b.extend_from_slice(&(v as f32).to_le_bytes());
        }
        let (shape, x) = read_npy(&b).unwrap();
        assert_eq!((shape, x), (vec![2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        assert!(read_npy(&b[..b.len() - 1]).is_err());
    }
}
