//! Builders for hand-made checkpoints in unit tests: a minimal protocol-2 pickler that
//! writes what `torch.save` writes, and a zip writer.

use std::io::{Cursor, Write};

use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

/// One `_rebuild_tensor_v2` record.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    pub key: String,
    pub storage_key: String,
    /// e.g. `FloatStorage`.
    pub storage_type: String,
    pub storage_numel: usize,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

impl TensorSpec {
    /// A contiguous float32 tensor with its own storage named `storage_key`.
    pub fn f32(key: &str, storage_key: &str, shape: &[usize]) -> Self {
        let mut strides = vec![1; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        TensorSpec {
            key: key.into(),
            storage_key: storage_key.into(),
            storage_type: "FloatStorage".into(),
            storage_numel: shape.iter().product(),
            offset: 0,
            shape: shape.to_vec(),
            strides,
        }
    }
}

/// Appends protocol-2 opcodes.
pub struct PickleWriter {
    pub bytes: Vec<u8>,
}

impl PickleWriter {
    pub fn new() -> Self {
        PickleWriter {
            bytes: vec![0x80, 2],
        }
    }

    pub fn op(&mut self, code: u8) -> &mut Self {
        self.bytes.push(code);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes.push(b'X');
        self.bytes
            .extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(s.as_bytes());
        self
    }

    /// BININT when it fits, else an 8-byte LONG1 (as the pickler does for big ints).
    pub fn int(&mut self, i: i64) -> &mut Self {
        match i32::try_from(i) {
            Ok(i) => {
                self.bytes.push(b'J');
                self.bytes.extend_from_slice(&i.to_le_bytes());
            }
            Err(_) => {
                self.bytes.extend_from_slice(&[0x8a, 8]);
                self.bytes.extend_from_slice(&i.to_le_bytes());
            }
        }
        self
    }

    pub fn float(&mut self, f: f64) -> &mut Self {
        self.bytes.push(b'G');
        self.bytes.extend_from_slice(&f.to_be_bytes());
        self
    }

    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.op(if b { 0x88 } else { 0x89 })
    }

    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.bytes.push(b'c');
        self.bytes
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }

    pub fn int_tuple(&mut self, v: &[usize]) -> &mut Self {
        self.op(b'(');
        for &x in v {
            self.int(x as i64);
        }
        self.op(b't')
    }

    pub fn tensor(&mut self, t: &TensorSpec) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        self.op(b'(')
            .str("storage")
            .global("torch", &t.storage_type);
        self.str(&t.storage_key)
            .str("cpu")
            .int(t.storage_numel as i64)
            .op(b't');
        self.op(b'Q')
            .int(t.offset as i64)
            .int_tuple(&t.shape)
            .int_tuple(&t.strides);
        self.bool(false)
            .global("collections", "OrderedDict")
            .op(b')')
            .op(b'R');
        self.op(b't').op(b'R')
    }
}

/// `{'cfg': {'model': {<cfg_model>}, 'task': {'normalize': False}}, 'model':
/// OrderedDict(<tensors>), 'optimizer_history': [...]}` as `torch.save` would pickle it.
/// `cfg_model` writes key/value pairs.
pub fn checkpoint_pickle(
    cfg_model: impl FnOnce(&mut PickleWriter),
    tensors: &[TensorSpec],
) -> Vec<u8> {
    let mut w = PickleWriter::new();
    w.op(b'}').op(b'(');
    w.str("cfg").op(b'}').op(b'(');
    w.str("model").op(b'}').op(b'(');
    cfg_model(&mut w);
    w.op(b'u');
    w.str("task").op(b'}').str("normalize").bool(false).op(b's');
    w.op(b'u');
    w.str("model")
        .global("collections", "OrderedDict")
        .op(b')')
        .op(b'R')
        .op(b'(');
    for t in tensors {
        w.str(&t.key).tensor(t);
    }
    w.op(b'u');
    w.str("optimizer_history")
        .op(b']')
        .str("criterion_name")
        .op(b'a');
    w.op(b'u').op(b'.');
    w.bytes
}

/// The default `cfg.model` pairs: just `_name`.
pub fn minimal_cfg(w: &mut PickleWriter) {
    w.str("_name").str("hubert_pruner");
}

/// A zip with the given members, all with `method`.
pub fn zip_bytes(members: &[(String, Vec<u8>)], method: CompressionMethod) -> Vec<u8> {
    let mut z = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(method)
        .large_file(false);
    for (name, data) in members {
        z.start_file(name.as_str(), opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// A `torch.save`-like archive under `root/`: `data.pkl`, `byteorder` and storages.
pub fn torch_zip(
    root: &str,
    pkl: &[u8],
    storages: &[(&str, Vec<u8>)],
    method: CompressionMethod,
) -> Vec<u8> {
    let mut members = vec![
        (format!("{root}/data.pkl"), pkl.to_vec()),
        (format!("{root}/byteorder"), b"little".to_vec()),
    ];
    for (k, v) in storages {
        members.push((format!("{root}/data/{k}"), v.clone()));
    }
    members.push((format!("{root}/version"), b"3\n".to_vec()));
    zip_bytes(&members, method)
}

pub fn f32_bytes(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(f32::to_le_bytes).collect()
}
