//! Turning a strided view into a storage into a contiguous row-major `Vec<f32>`.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use super::pickle::TensorRef;

/// Element type of a storage, as recorded in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoredDtype {
    F32,
    F16,
    BF16,
}

impl StoredDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StoredDtype::F32 => 4,
            StoredDtype::F16 | StoredDtype::BF16 => 2,
        }
    }

    /// torch's name for it.
    pub fn name(self) -> &'static str {
        match self {
            StoredDtype::F32 => "float32",
            StoredDtype::F16 => "float16",
            StoredDtype::BF16 => "bfloat16",
        }
    }
}

impl std::fmt::Display for StoredDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor, widened to f32 (exactly: every f16 and bf16 value is an f32 value).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorData {
    pub shape: Vec<usize>,
    /// The type the checkpoint stored it in.
    pub dtype: StoredDtype,
    /// Row-major, `shape.iter().product()` values.
    pub values: Vec<f32>,
}

impl TensorData {
    pub fn numel(&self) -> usize {
        self.values.len()
    }
}

/// Why a view could not be materialised.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewError {
    /// The view reaches outside the storage, or its size overflows.
    OutOfBounds(String),
    NonFinite {
        index: usize,
        value: f32,
    },
}

/// Number of elements of `shape`, `None` on overflow.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Materialises `t` from the bytes of its storage (`raw` holds at least
/// `t.storage_numel * dtype.size()` bytes; the caller checked that against the member).
pub fn materialize(t: &TensorRef, dtype: StoredDtype, raw: &[u8]) -> Result<Vec<f32>, ViewError> {
    if t.shape.len() != t.strides.len() {
        return Err(ViewError::OutOfBounds(format!(
            "size {:?} and stride {:?} differ in rank",
            t.shape, t.strides
        )));
    }
    let Some(n) = numel(&t.shape) else {
        return Err(ViewError::OutOfBounds(format!(
            "size {:?} overflows",
            t.shape
        )));
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    let last = last_index(t).ok_or_else(|| {
        ViewError::OutOfBounds(format!(
            "offset {} with size {:?} and stride {:?} overflows",
            t.offset, t.shape, t.strides
        ))
    })?;
    let es = dtype.size();
    let have = raw.len() / es;
    if last >= t.storage_numel || last >= have {
        return Err(ViewError::OutOfBounds(format!(
            "offset {} with size {:?} and stride {:?} reaches element {last}, but the storage \
             holds {} elements",
            t.offset,
            t.shape,
            t.strides,
            t.storage_numel.min(have)
        )));
    }
    let values = if is_contiguous(&t.shape, &t.strides) {
        // One slice: the common case, and all of the released checkpoints.
        let start = t.offset * es;
        let bytes = raw
            .get(start..start + n * es)
            .ok_or_else(|| ViewError::OutOfBounds("view outside storage".into()))?;
        decode(dtype, bytes)
    } else {
        gather(t, dtype, raw, n)?
    };
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ViewError::NonFinite { index, value });
    }
    Ok(values)
}

/// The storage index of the view's last element, with checked arithmetic.
/// Only meaningful for a non-empty view.
fn last_index(t: &TensorRef) -> Option<usize> {
    t.shape
        .iter()
        .zip(&t.strides)
        .try_fold(t.offset, |acc, (&d, &s)| {
            acc.checked_add(d.checked_sub(1)?.checked_mul(s)?)
        })
}

/// Row-major layout, ignoring the stride of size-1 dimensions (torch leaves it arbitrary).
fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// Little-endian values of `dtype`, widened to f32.
pub(crate) fn decode(dtype: StoredDtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        StoredDtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        StoredDtype::F16 => {
            // The slice conversion uses the CPU's F16C instructions where it has them.
            let halves: Vec<f16> = bytes.chunks_exact(2).map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]]))).collect();
            let mut out = vec![0f32; halves.len()];
            halves.convert_to_f32_slice(&mut out);
            out
        }
        StoredDtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
    }
}

fn decode_one(raw: &[u8], index: usize, dtype: StoredDtype) -> Option<f32> {
    let es = dtype.size();
    let start = index.checked_mul(es)?;
    let b = raw.get(start..start.checked_add(es)?)?;
    Some(match dtype {
        StoredDtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        StoredDtype::F16 => f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        StoredDtype::BF16 => bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
    })
}

/// Walks the view in row-major order with an odometer over the multi-index.
/// `last_index` was checked, so every position visited lies inside the storage and
/// no intermediate sum overflows (all terms are at most that index plus one stride).
fn gather(t: &TensorRef, dtype: StoredDtype, raw: &[u8], n: usize) -> Result<Vec<f32>, ViewError> {
    let rank = t.shape.len();
    let mut idx = vec![0usize; rank];
    let mut pos = t.offset;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let v = decode_one(raw, pos, dtype)
            .ok_or_else(|| ViewError::OutOfBounds(format!("element {pos} outside storage")))?;
        out.push(v);
        for d in (0..rank).rev() {
            idx[d] += 1;
            if idx[d] < t.shape[d] {
                pos += t.strides[d];
                break;
            }
            // Wrap this digit: undo its (shape - 1) steps.
            pos -= (t.shape[d] - 1) * t.strides[d];
            idx[d] = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::pickle::StorageDtype;

    fn view(numel: usize, offset: usize, shape: &[usize], strides: &[usize]) -> TensorRef {
        TensorRef {
            storage_key: "0".into(),
            dtype: StorageDtype::Supported(StoredDtype::F32),
            storage_numel: numel,
            offset,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
        }
    }

    fn f32_storage(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    #[test]
    fn contiguous_with_offset() {
        let raw = f32_storage(10);
        let v = materialize(&view(10, 3, &[2, 2], &[2, 1]), StoredDtype::F32, &raw).unwrap();
        assert_eq!(v, vec![3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn transposed_view() {
        // base [2, 3] = [[0,1,2],[3,4,5]]; its transpose is [3, 2] with strides (1, 3).
        let raw = f32_storage(6);
        let v = materialize(&view(6, 0, &[3, 2], &[1, 3]), StoredDtype::F32, &raw).unwrap();
        assert_eq!(v, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn broadcast_stride_zero_and_size_one_dims() {
        let raw = f32_storage(3);
        let v = materialize(&view(3, 1, &[2, 1, 2], &[0, 99, 1]), StoredDtype::F32, &raw).unwrap();
        assert_eq!(v, vec![1.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn scalar_and_empty() {
        let raw = f32_storage(4);
        assert_eq!(
            materialize(&view(4, 2, &[], &[]), StoredDtype::F32, &raw).unwrap(),
            vec![2.0]
        );
        assert!(
            materialize(&view(4, 9, &[0, 5], &[5, 1]), StoredDtype::F32, &raw)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn out_of_bounds_and_overflow() {
        let raw = f32_storage(6);
        for t in [
            view(6, 1, &[2, 3], &[3, 1]),
            view(6, 0, &[3, 2], &[1, 4]),
            view(6, usize::MAX, &[1], &[1]),
            view(6, 0, &[usize::MAX, 2], &[usize::MAX, 1]),
            view(6, 0, &[usize::MAX, usize::MAX], &[1, 1]),
            // storage_numel claims more than the bytes hold
            view(100, 0, &[10], &[1]),
            // rank mismatch
            view(6, 0, &[2, 3], &[1]),
        ] {
            assert!(
                matches!(
                    materialize(&t, StoredDtype::F32, &raw),
                    Err(ViewError::OutOfBounds(_))
                ),
                "{t:?}"
            );
        }
    }

    #[test]
    fn half_types_widen_exactly() {
        let vals = [
            0.0f32,
            -1.5,
            65504.0,
            5.960_464_5e-8, /* 2^-24 subnormal */
        ];
        let raw: Vec<u8> = vals
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        let mut t = view(4, 0, &[4], &[1]);
        t.dtype = StorageDtype::Supported(StoredDtype::F16);
        assert_eq!(materialize(&t, StoredDtype::F16, &raw).unwrap(), vals);

        let vals = [1.0f32, -3.0e38, 1.0e-38, 0.007_812_5];
        let raw: Vec<u8> = vals
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect();
        let want: Vec<f32> = vals.iter().map(|&v| bf16::from_f32(v).to_f32()).collect();
        assert_eq!(materialize(&t, StoredDtype::BF16, &raw).unwrap(), want);
    }

    #[test]
    fn non_finite_is_reported_with_its_index() {
        let mut raw = f32_storage(4);
        raw[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        let err = materialize(&view(4, 0, &[2, 2], &[1, 2]), StoredDtype::F32, &raw).unwrap_err();
        // Transposed order: [0, 2, 1, 3] -> the NaN (storage 2) is output element 1.
        assert!(matches!(err, ViewError::NonFinite { index: 1, value } if value.is_nan()));
        let mut raw = f32_storage(2);
        raw[4..8].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
        assert!(matches!(
            materialize(&view(2, 0, &[2], &[1]), StoredDtype::F32, &raw),
            Err(ViewError::NonFinite { index: 1, .. })
        ));
    }
}
