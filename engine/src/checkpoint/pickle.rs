//! A restricted unpickler for `data.pkl`.
//!
//! Python's `pickle` is a small stack machine whose GLOBAL/REDUCE opcodes can call any
//! importable function, which is why loading an untrusted `.pt` with Python is code
//! execution. This VM never calls anything: a GLOBAL is looked up in a fixed allow-list
//! and becomes an inert tag, and REDUCE/NEWOBJ/BUILD only combine a recognised tag with
//! arguments of the expected shape into plain data ([`PyValue`]). Anything else is an error.
//!
//! Objects live in an arena and the stack/memo hold arena ids, because pickles share
//! mutable containers through the memo (a dict is memoised empty, then filled by
//! SETITEMS). The arena grows by at most one object per opcode, so its size is bounded by
//! the input length. The final tree is materialised with a depth limit (cycles and deep
//! nesting fail) and a node/byte budget proportional to the input (memo sharing cannot
//! blow up into an exponential tree).
//!
//! Memory: each opcode adds at most one 32-byte arena object and one 4-byte id, so a
//! hostile pickle costs at most about 40x its size, and never more than [`MAX_OBJECTS`]
//! objects (~150 MB) whatever its size; the materialised result is capped at twice the
//! input in nodes and in string bytes.

use std::collections::HashMap;

use super::StoredDtype;

/// Most items on the VM stack at once. Real checkpoints stay below a few thousand
/// (the pickler batches SETITEMS by 1000).
const MAX_STACK: usize = 1 << 20;
/// Most open MARKs at once (nesting of tuples/lists being built).
const MAX_MARKS: usize = 1 << 16;
/// Most objects one pickle may create. A real checkpoint's pickle creates about 15 per
/// tensor (a few thousand for the released files, with optimizer state tens of thousands).
pub const MAX_OBJECTS: usize = 1 << 22;
/// Most memo entries.
const MAX_MEMO: usize = 1 << 22;
/// Deepest nesting of containers in the result; also what stops reference cycles.
pub const MAX_DEPTH: usize = 256;
/// Most dimensions of a tensor.
const MAX_RANK: usize = 64;

/// The element type a storage-type global names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDtype {
    Supported(StoredDtype),
    /// A real torch storage type we do not read (e.g. `torch.LongStorage` holding an
    /// optimizer step counter). Recognised as an inert tag so files with such tensors in
    /// ignored parts still load; a tensor of this kind that is needed is an error later.
    Unsupported(&'static str),
}

/// A tensor as the pickle describes it: a strided view into a storage member.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// Name of the storage member, `<root>/data/<storage_key>`.
    pub storage_key: String,
    pub dtype: StorageDtype,
    /// Number of elements the persistent id claims the storage holds.
    pub storage_numel: usize,
    /// Element offset of the view into the storage.
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

/// Plain data decoded from a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond i64, as little-endian two's-complement bytes (e.g. a 64-bit seed).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<PyValue>),
    Tuple(Vec<PyValue>),
    /// Insertion-ordered, duplicate keys resolved as Python does (last value, first position).
    Dict(Vec<(PyValue, PyValue)>),
    Set(Vec<PyValue>),
    Tensor(TensorRef),
}

impl PyValue {
    /// Value of string key `key` when `self` is a dict.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(items) => items.iter().find_map(|(k, v)| match k {
                PyValue::Str(s) if s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Python's name for the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            PyValue::None => "None",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) | PyValue::BigInt(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Str(_) => "str",
            PyValue::Bytes(_) => "bytes",
            PyValue::List(_) => "list",
            PyValue::Tuple(_) => "tuple",
            PyValue::Dict(_) => "dict",
            PyValue::Set(_) => "set",
            PyValue::Tensor(_) => "tensor",
        }
    }
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum PickleError {
    /// `name` is `module.qualname`.
    ForbiddenGlobal {
        name: String,
    },
    Malformed {
        offset: usize,
        reason: String,
    },
}

/// Decodes a whole pickle into plain data.
pub fn load(data: &[u8]) -> Result<PyValue, PickleError> {
    let mut vm = Vm::new(data);
    let root = vm.run()?;
    let mut budget = Budget::for_input(data.len());
    vm.materialize(root, 0, &mut budget)
}

/// The globals a checkpoint may name, as tags. Nothing here is ever called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(StorageDtype),
}

/// The allow-list. Storage types are data-type tags: the only thing they can do in this
/// VM is sit inside a persistent id.
fn resolve_global(module: &str, name: &str) -> Result<Global, PickleError> {
    use StorageDtype::{Supported, Unsupported};
    let g = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch", "FloatStorage") => Global::Storage(Supported(StoredDtype::F32)),
        ("torch", "HalfStorage") => Global::Storage(Supported(StoredDtype::F16)),
        ("torch", "BFloat16Storage") => Global::Storage(Supported(StoredDtype::BF16)),
        ("torch", "DoubleStorage") => Global::Storage(Unsupported("float64")),
        ("torch", "LongStorage") => Global::Storage(Unsupported("int64")),
        ("torch", "IntStorage") => Global::Storage(Unsupported("int32")),
        ("torch", "ShortStorage") => Global::Storage(Unsupported("int16")),
        ("torch", "CharStorage") => Global::Storage(Unsupported("int8")),
        ("torch", "ByteStorage") => Global::Storage(Unsupported("uint8")),
        ("torch", "BoolStorage") => Global::Storage(Unsupported("bool")),
        _ => {
            return Err(PickleError::ForbiddenGlobal {
                name: format!("{module}.{name}"),
            });
        }
    };
    Ok(g)
}

type Id = u32;

/// A storage produced by BINPERSID.
#[derive(Debug)]
struct StorageObj {
    key: String,
    dtype: StorageDtype,
    numel: usize,
}

/// An arena object. Containers refer to other objects by id so that mutation through a
/// memoised reference is seen by every holder, as in Python.
#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Box<[u8]>),
    Float(f64),
    Str(Box<str>),
    Bytes(Box<[u8]>),
    List(Vec<Id>),
    Tuple(Box<[Id]>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global(Global),
    Storage(Box<StorageObj>),
    Tensor(Box<TensorRef>),
}

/// Caps what materialising the result may produce, so memo sharing (the same list
/// referenced twice at each of n levels) cannot expand into 2^n nodes.
struct Budget {
    nodes: usize,
    bytes: usize,
}

impl Budget {
    /// Without sharing, every node costs at least one opcode byte and every string byte
    /// is in the input, so twice the input length leaves room for modest legitimate sharing.
    fn for_input(len: usize) -> Self {
        let cap = len.saturating_mul(2).saturating_add(1024);
        Budget {
            nodes: cap,
            bytes: cap,
        }
    }
}

mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being executed, for error messages.
    op_at: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    /// Stack lengths at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl<'a> Vm<'a> {
    fn new(data: &'a [u8]) -> Self {
        Vm {
            data,
            pos: 0,
            op_at: 0,
            objs: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn err<T>(&self, reason: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError::Malformed {
            offset: self.op_at,
            reason: reason.into(),
        })
    }

    // ---- reading the byte stream ----

    /// The next `n` bytes; a length larger than what is left is an error before any
    /// allocation, which is what makes huge claimed lengths harmless.
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let left = self.data.len() - self.pos;
        if n > left {
            return self.err(format!(
                "claims {n} bytes but only {left} remain (truncated or corrupt pickle)"
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let b = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, PickleError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A length field turned into usize (it is checked against the input by `bytes`).
    fn len_u64(&self, n: u64) -> Result<usize, PickleError> {
        match usize::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => self.err(format!("length {n} does not fit in memory")),
        }
    }

    fn len_i32(&self, n: i32) -> Result<usize, PickleError> {
        match usize::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => self.err(format!("negative length {n}")),
        }
    }

    /// A text argument of the protocol-0 opcodes, up to (not including) the newline.
    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("text argument without a newline (truncated pickle)");
        };
        self.pos += n + 1;
        match std::str::from_utf8(&rest[..n]) {
            Ok(s) => Ok(s),
            Err(_) => self.err("text argument is not UTF-8"),
        }
    }

    fn utf8(&self, b: &[u8]) -> Result<Box<str>, PickleError> {
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.into()),
            Err(_) => self.err("string is not valid UTF-8"),
        }
    }

    // ---- the stack, marks and arena ----

    /// Stack items below the innermost MARK are not poppable, as in CPython.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn alloc(&mut self, o: Obj) -> Result<Id, PickleError> {
        if self.objs.len() >= MAX_OBJECTS {
            return self.err(format!("more than {MAX_OBJECTS} objects"));
        }
        match Id::try_from(self.objs.len()) {
            Ok(id) => {
                self.objs.push(o);
                Ok(id)
            }
            Err(_) => self.err("too many objects"),
        }
    }

    fn push_id(&mut self, id: Id) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return self.err(format!("stack deeper than {MAX_STACK}"));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push(&mut self, o: Obj) -> Result<(), PickleError> {
        let id = self.alloc(o)?;
        self.push_id(id)
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        if self.stack.len() <= self.fence() {
            return self.err("stack underflow");
        }
        match self.stack.pop() {
            Some(id) => Ok(id),
            None => self.err("stack underflow"),
        }
    }

    fn top(&self) -> Result<Id, PickleError> {
        if self.stack.len() <= self.fence() {
            return self.err("stack underflow");
        }
        match self.stack.last() {
            Some(&id) => Ok(id),
            None => self.err("stack underflow"),
        }
    }

    /// Items pushed since the innermost MARK, which is closed.
    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let Some(m) = self.marks.pop() else {
            return self.err("no MARK to close");
        };
        // `pop` never goes below a fence, so `m <= len` holds; `min` keeps this total.
        let m = m.min(self.stack.len());
        Ok(self.stack.split_off(m))
    }

    fn obj(&self, id: Id) -> Result<&Obj, PickleError> {
        match self.objs.get(id as usize) {
            Some(o) => Ok(o),
            None => self.err("dangling object id"),
        }
    }

    fn obj_mut(&mut self, id: Id) -> Result<&mut Obj, PickleError> {
        if (id as usize) < self.objs.len() {
            Ok(&mut self.objs[id as usize])
        } else {
            self.err("dangling object id")
        }
    }

    fn memo_put(&mut self, idx: u32) -> Result<(), PickleError> {
        let id = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&idx) {
            return self.err(format!("more than {MAX_MEMO} memo entries"));
        }
        self.memo.insert(idx, id);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> Result<(), PickleError> {
        match self.memo.get(&idx) {
            Some(&id) => self.push_id(id),
            None => self.err(format!("memo entry {idx} was never stored")),
        }
    }

    fn int_of(&self, id: Id, what: &str) -> Result<i64, PickleError> {
        match self.obj(id)? {
            Obj::Int(i) => Ok(*i),
            Obj::Bool(b) => Ok(i64::from(*b)),
            _ => self.err(format!("{what} is not an int")),
        }
    }

    fn usize_of(&self, id: Id, what: &str) -> Result<usize, PickleError> {
        let i = self.int_of(id, what)?;
        match usize::try_from(i) {
            Ok(u) => Ok(u),
            Err(_) => self.err(format!("{what} is negative ({i})")),
        }
    }

    fn tuple_of(&self, id: Id, what: &str) -> Result<Vec<Id>, PickleError> {
        match self.obj(id)? {
            Obj::Tuple(t) => Ok(t.to_vec()),
            _ => self.err(format!("{what} is not a tuple")),
        }
    }

    fn str_of(&self, id: Id, what: &str) -> Result<String, PickleError> {
        match self.obj(id)? {
            Obj::Str(s) => Ok(s.to_string()),
            _ => self.err(format!("{what} is not a str")),
        }
    }

    fn usize_tuple(&self, id: Id, what: &str) -> Result<Vec<usize>, PickleError> {
        let items = self.tuple_of(id, what)?;
        if items.len() > MAX_RANK {
            return self.err(format!("{what} has {} dimensions", items.len()));
        }
        items.iter().map(|&i| self.usize_of(i, what)).collect()
    }

    // ---- the interpreter ----

    /// Runs until STOP and returns the id of the result.
    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            self.op_at = self.pos;
            let code = match self.data.get(self.pos) {
                Some(&c) => c,
                None => return self.err("pickle ends without STOP (truncated)"),
            };
            self.pos += 1;
            if code == op::STOP {
                return self.pop();
            }
            self.step(code)?;
        }
    }

    fn step(&mut self, code: u8) -> Result<(), PickleError> {
        match code {
            op::PROTO => {
                let v = self.u8()?;
                if v > 5 {
                    return self.err(format!("pickle protocol {v} is newer than 5"));
                }
            }
            op::FRAME => {
                // Frames only group opcodes for buffered reading; the content that follows
                // is ordinary opcodes, so a valid length is all we check.
                let n = self.u64()?;
                let left = (self.data.len() - self.pos) as u64;
                if n > left {
                    return self.err(format!("frame of {n} bytes but only {left} remain"));
                }
            }
            op::MARK => {
                if self.marks.len() >= MAX_MARKS {
                    return self.err(format!("more than {MAX_MARKS} nested MARKs"));
                }
                self.marks.push(self.stack.len());
            }
            op::POP => {
                // CPython: POP right after MARK discards the mark.
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let id = self.top()?;
                self.push_id(id)?;
            }
            op::NONE => self.push(Obj::None)?,
            op::NEWTRUE => self.push(Obj::Bool(true))?,
            op::NEWFALSE => self.push(Obj::Bool(false))?,
            op::INT => {
                let s = self.line()?;
                let o = match s {
                    "00" => Obj::Bool(false),
                    "01" => Obj::Bool(true),
                    _ => match s.trim().parse::<i64>() {
                        Ok(i) => Obj::Int(i),
                        Err(_) => return self.err(format!("INT argument {s:?} is not an i64")),
                    },
                };
                self.push(o)?;
            }
            op::LONG => {
                let s = self.line()?;
                let t = s.trim().trim_end_matches('L');
                match t.parse::<i64>() {
                    Ok(i) => self.push(Obj::Int(i))?,
                    Err(_) => return self.err(format!("LONG argument {s:?} is not an i64")),
                }
            }
            op::BININT => {
                let v = self.i32()?;
                self.push(Obj::Int(i64::from(v)))?;
            }
            op::BININT1 => {
                let v = self.u8()?;
                self.push(Obj::Int(i64::from(v)))?;
            }
            op::BININT2 => {
                let v = self.u16()?;
                self.push(Obj::Int(i64::from(v)))?;
            }
            op::LONG1 => {
                let n = usize::from(self.u8()?);
                let b = self.bytes(n)?;
                self.push(decode_long(b))?;
            }
            op::LONG4 => {
                let n = self.i32()?;
                let n = self.len_i32(n)?;
                let b = self.bytes(n)?;
                self.push(decode_long(b))?;
            }
            op::FLOAT => {
                let s = self.line()?;
                match s.trim().parse::<f64>() {
                    Ok(f) => self.push(Obj::Float(f))?,
                    Err(_) => return self.err(format!("FLOAT argument {s:?} is not a number")),
                }
            }
            op::BINFLOAT => {
                // The one big-endian field of the format.
                let f = f64::from_be_bytes(self.array()?);
                self.push(Obj::Float(f))?;
            }
            op::SHORT_BINUNICODE | op::SHORT_BINSTRING => {
                let n = usize::from(self.u8()?);
                let s = self.bytes(n)?;
                let s = self.utf8(s)?;
                self.push(Obj::Str(s))?;
            }
            op::BINUNICODE => {
                let n = self.u32()?;
                let n = self.len_u64(u64::from(n))?;
                let s = self.bytes(n)?;
                let s = self.utf8(s)?;
                self.push(Obj::Str(s))?;
            }
            op::BINSTRING => {
                // Python 2 `str`; torch.load decodes it as UTF-8.
                let n = self.i32()?;
                let n = self.len_i32(n)?;
                let s = self.bytes(n)?;
                let s = self.utf8(s)?;
                self.push(Obj::Str(s))?;
            }
            op::BINUNICODE8 => {
                let n = self.u64()?;
                let n = self.len_u64(n)?;
                let s = self.bytes(n)?;
                let s = self.utf8(s)?;
                self.push(Obj::Str(s))?;
            }
            op::SHORT_BINBYTES => {
                let n = usize::from(self.u8()?);
                let b = self.bytes(n)?;
                self.push(Obj::Bytes(b.into()))?;
            }
            op::BINBYTES => {
                let n = self.u32()?;
                let n = self.len_u64(u64::from(n))?;
                let b = self.bytes(n)?;
                self.push(Obj::Bytes(b.into()))?;
            }
            op::BINBYTES8 => {
                let n = self.u64()?;
                let n = self.len_u64(n)?;
                let b = self.bytes(n)?;
                self.push(Obj::Bytes(b.into()))?;
            }
            op::EMPTY_LIST => self.push(Obj::List(Vec::new()))?,
            op::LIST => {
                let items = self.pop_mark()?;
                self.push(Obj::List(items))?;
            }
            op::APPEND => {
                let v = self.pop()?;
                let l = self.top()?;
                self.extend_list(l, &[v])?;
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                let l = self.top()?;
                self.extend_list(l, &items)?;
            }
            op::EMPTY_TUPLE => self.push(Obj::Tuple(Box::new([])))?,
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(Obj::Tuple(items.into()))?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(code - op::TUPLE1) + 1;
                let mut items = vec![0; n];
                for slot in items.iter_mut().rev() {
                    *slot = self.pop()?;
                }
                self.push(Obj::Tuple(items.into()))?;
            }
            op::EMPTY_DICT => self.push(Obj::Dict(Vec::new()))?,
            op::DICT => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(&items)?;
                self.push(Obj::Dict(pairs))?;
            }
            op::SETITEM => {
                let v = self.pop()?;
                let k = self.pop()?;
                let d = self.top()?;
                self.extend_dict(d, &[(k, v)])?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(&items)?;
                let d = self.top()?;
                self.extend_dict(d, &pairs)?;
            }
            op::EMPTY_SET => self.push(Obj::Set(Vec::new()))?,
            op::ADDITEMS => {
                let items = self.pop_mark()?;
                let s = self.top()?;
                match self.obj_mut(s)? {
                    Obj::Set(v) => v.extend_from_slice(&items),
                    _ => return self.err("ADDITEMS target is not a set"),
                }
            }
            op::FROZENSET => {
                let items = self.pop_mark()?;
                self.push(Obj::Set(items))?;
            }
            op::PUT => {
                let s = self.line()?;
                match s.trim().parse::<u32>() {
                    Ok(i) => self.memo_put(i)?,
                    Err(_) => return self.err(format!("PUT index {s:?} is not a memo index")),
                }
            }
            op::BINPUT => {
                let i = self.u8()?;
                self.memo_put(u32::from(i))?;
            }
            op::LONG_BINPUT => {
                let i = self.u32()?;
                self.memo_put(i)?;
            }
            op::MEMOIZE => {
                let Ok(i) = u32::try_from(self.memo.len()) else {
                    return self.err("memo overflow");
                };
                self.memo_put(i)?;
            }
            op::GET => {
                let s = self.line()?;
                match s.trim().parse::<u32>() {
                    Ok(i) => self.memo_get(i)?,
                    Err(_) => return self.err(format!("GET index {s:?} is not a memo index")),
                }
            }
            op::BINGET => {
                let i = self.u8()?;
                self.memo_get(u32::from(i))?;
            }
            op::LONG_BINGET => {
                let i = self.u32()?;
                self.memo_get(i)?;
            }
            op::GLOBAL => {
                let module = self.line()?;
                let name = self.line()?;
                let g = resolve_global(module, name)?;
                self.push(Obj::Global(g))?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let name = self.str_of(name, "STACK_GLOBAL name")?;
                let module = self.str_of(module, "STACK_GLOBAL module")?;
                let g = resolve_global(&module, &name)?;
                self.push(Obj::Global(g))?;
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let id = self.reduce(callable, args)?;
                self.push_id(id)?;
            }
            op::NEWOBJ => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let args = self.tuple_of(args, "NEWOBJ arguments")?;
                match self.obj(cls)? {
                    Obj::Global(Global::OrderedDict) if args.is_empty() => {
                        self.push(Obj::Dict(Vec::new()))?
                    }
                    _ => return self.err("NEWOBJ is only accepted for OrderedDict()"),
                }
            }
            op::BUILD => {
                // State set on an OrderedDict is its `__dict__`: torch state dicts carry
                // `_metadata` there (module versions), which inference does not need.
                let _state = self.pop()?;
                let target = self.top()?;
                match self.obj(target)? {
                    Obj::Dict(_) => {}
                    _ => return self.err("BUILD is only accepted on an OrderedDict"),
                }
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let storage = self.persistent_storage(pid)?;
                self.push(Obj::Storage(Box::new(storage)))?;
            }
            other => {
                return self.err(format!("unsupported opcode 0x{other:02x}"));
            }
        }
        Ok(())
    }

    fn extend_list(&mut self, list: Id, items: &[Id]) -> Result<(), PickleError> {
        match self.obj_mut(list)? {
            Obj::List(v) => {
                v.extend_from_slice(items);
                Ok(())
            }
            _ => self.err("APPEND target is not a list"),
        }
    }

    fn extend_dict(&mut self, dict: Id, pairs: &[(Id, Id)]) -> Result<(), PickleError> {
        match self.obj_mut(dict)? {
            Obj::Dict(v) => {
                v.extend_from_slice(pairs);
                Ok(())
            }
            _ => self.err("SETITEM target is not a dict"),
        }
    }

    fn pairs(&self, items: &[Id]) -> Result<Vec<(Id, Id)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err("odd number of items for a dict");
        }
        Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }

    /// `callable(*args)` for the allow-listed callables, built from data, never called.
    fn reduce(&mut self, callable: Id, args: Id) -> Result<Id, PickleError> {
        let args = self.tuple_of(args, "REDUCE arguments")?;
        let Obj::Global(g) = self.obj(callable)? else {
            return self.err("REDUCE on something that is not a recognised global");
        };
        match *g {
            Global::OrderedDict => {
                let pairs = match args.as_slice() {
                    [] => Vec::new(),
                    [items] => self.pairs_from_sequence(*items)?,
                    _ => return self.err("OrderedDict takes at most one argument"),
                };
                self.alloc(Obj::Dict(pairs))
            }
            Global::RebuildTensorV2 => self.rebuild_tensor(&args),
            Global::RebuildParameter => match args.as_slice() {
                [data, _requires_grad, _hooks] => match self.obj(*data)? {
                    Obj::Tensor(_) => Ok(*data),
                    _ => self.err("_rebuild_parameter of something that is not a tensor"),
                },
                _ => self.err("_rebuild_parameter takes 3 arguments"),
            },
            Global::Storage(_) => self.err("a storage type cannot be called"),
        }
    }

    /// `OrderedDict([(k, v), ...])`.
    fn pairs_from_sequence(&self, id: Id) -> Result<Vec<(Id, Id)>, PickleError> {
        let items: &[Id] = match self.obj(id)? {
            Obj::List(v) => v,
            Obj::Tuple(v) => v,
            _ => return self.err("OrderedDict argument is not a list of pairs"),
        };
        let mut pairs = Vec::with_capacity(items.len());
        for &p in items {
            let kv: &[Id] = match self.obj(p)? {
                Obj::Tuple(kv) => kv,
                Obj::List(kv) => kv,
                _ => &[],
            };
            match kv {
                [k, v] => pairs.push((*k, *v)),
                _ => return self.err("OrderedDict argument item is not a pair"),
            }
        }
        Ok(pairs)
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])`.
    fn rebuild_tensor(&mut self, args: &[Id]) -> Result<Id, PickleError> {
        if !(args.len() == 6 || args.len() == 7) {
            return self.err(format!(
                "_rebuild_tensor_v2 takes 6 or 7 arguments, got {}",
                args.len()
            ));
        }
        let (storage_key, dtype, storage_numel) = match self.obj(args[0])? {
            Obj::Storage(s) => (s.key.clone(), s.dtype, s.numel),
            _ => return self.err("_rebuild_tensor_v2: first argument is not a storage"),
        };
        let offset = self.usize_of(args[1], "tensor storage_offset")?;
        let shape = self.usize_tuple(args[2], "tensor size")?;
        let strides = self.usize_tuple(args[3], "tensor stride")?;
        if shape.len() != strides.len() {
            return self.err(format!(
                "tensor size has {} dimensions but stride has {}",
                shape.len(),
                strides.len()
            ));
        }
        match self.obj(args[4])? {
            Obj::Bool(_) => {}
            _ => return self.err("_rebuild_tensor_v2: requires_grad is not a bool"),
        }
        // backward_hooks (an empty OrderedDict) and metadata carry nothing we use.
        self.alloc(Obj::Tensor(Box::new(TensorRef {
            storage_key,
            dtype,
            storage_numel,
            offset,
            shape,
            strides,
        })))
    }

    /// `('storage', <StorageType>, key, location, numel)`.
    fn persistent_storage(&self, pid: Id) -> Result<StorageObj, PickleError> {
        let items = self.tuple_of(pid, "persistent id")?;
        let [tag, ty, key, location, numel] = items.as_slice() else {
            return self.err(format!(
                "persistent id has {} fields, expected 5 ('storage', type, key, location, numel)",
                items.len()
            ));
        };
        if self.str_of(*tag, "persistent id tag")? != "storage" {
            return self.err("persistent id is not a 'storage' record");
        }
        let dtype = match self.obj(*ty)? {
            Obj::Global(Global::Storage(d)) => *d,
            _ => return self.err("persistent id does not name a storage type"),
        };
        let key = self.str_of(*key, "storage key")?;
        let _location = self.str_of(*location, "storage location")?;
        let numel = self.usize_of(*numel, "storage numel")?;
        Ok(StorageObj { key, dtype, numel })
    }

    // ---- materialising the result ----

    fn materialize(&self, id: Id, depth: usize, b: &mut Budget) -> Result<PyValue, PickleError> {
        if depth > MAX_DEPTH {
            return self.err(format!(
                "objects nested deeper than {MAX_DEPTH} (or a reference cycle)"
            ));
        }
        if b.nodes == 0 {
            return self.err("result larger than the input can justify (shared references)");
        }
        b.nodes -= 1;
        let spend = |b: &mut Budget, n: usize| -> Result<(), PickleError> {
            if n > b.bytes {
                return self.err("result larger than the input can justify (shared references)");
            }
            b.bytes -= n;
            Ok(())
        };
        let v = match self.obj(id)? {
            Obj::None => PyValue::None,
            Obj::Bool(x) => PyValue::Bool(*x),
            Obj::Int(i) => PyValue::Int(*i),
            Obj::Float(f) => PyValue::Float(*f),
            Obj::BigInt(bytes) => {
                spend(b, bytes.len())?;
                PyValue::BigInt(bytes.to_vec())
            }
            Obj::Str(s) => {
                spend(b, s.len())?;
                PyValue::Str(s.to_string())
            }
            Obj::Bytes(bytes) => {
                spend(b, bytes.len())?;
                PyValue::Bytes(bytes.to_vec())
            }
            Obj::Tensor(t) => {
                spend(b, t.storage_key.len())?;
                PyValue::Tensor((**t).clone())
            }
            Obj::List(items) => PyValue::List(self.materialize_all(items, depth, b)?),
            Obj::Tuple(items) => PyValue::Tuple(self.materialize_all(items, depth, b)?),
            Obj::Set(items) => PyValue::Set(self.materialize_all(items, depth, b)?),
            Obj::Dict(pairs) => {
                let mut out: Vec<(PyValue, PyValue)> = Vec::new();
                let mut index: HashMap<KeyRepr, usize> = HashMap::new();
                for &(k, v) in pairs {
                    let k = self.materialize(k, depth + 1, b)?;
                    let v = self.materialize(v, depth + 1, b)?;
                    let Some(repr) = key_repr(&k, 0) else {
                        return self.err(format!("unhashable dict key of type {}", k.type_name()));
                    };
                    match index.get(&repr).and_then(|&i| out.get_mut(i)) {
                        Some(slot) => slot.1 = v,
                        None => {
                            index.insert(repr, out.len());
                            out.push((k, v));
                        }
                    }
                }
                PyValue::Dict(out)
            }
            Obj::Global(_) => return self.err("a bare global is not data"),
            Obj::Storage(_) => return self.err("a bare storage is not data"),
        };
        Ok(v)
    }

    fn materialize_all(
        &self,
        items: &[Id],
        depth: usize,
        b: &mut Budget,
    ) -> Result<Vec<PyValue>, PickleError> {
        items
            .iter()
            .map(|&i| self.materialize(i, depth + 1, b))
            .collect()
    }
}

/// Little-endian two's-complement integer of LONG1/LONG4.
fn decode_long(b: &[u8]) -> Obj {
    if b.is_empty() {
        return Obj::Int(0);
    }
    let negative = b[b.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0x00 };
    // It fits in i64 when every byte past the 8th is sign extension of the 8th.
    let fits =
        b.len() <= 8 || (b[8..].iter().all(|&x| x == fill) && ((b[7] & 0x80 != 0) == negative));
    if !fits {
        return Obj::BigInt(b.into());
    }
    let mut buf = [fill; 8];
    let n = b.len().min(8);
    buf[..n].copy_from_slice(&b[..n]);
    Obj::Int(i64::from_le_bytes(buf))
}

/// Hashable identity of a dict key, following Python's equality where it matters
/// (`True == 1`, `1.0 == 1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyRepr {
    None,
    Int(i64),
    Big(Vec<u8>),
    Float(u64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<KeyRepr>),
}

fn key_repr(v: &PyValue, depth: usize) -> Option<KeyRepr> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match v {
        PyValue::None => KeyRepr::None,
        PyValue::Bool(b) => KeyRepr::Int(i64::from(*b)),
        PyValue::Int(i) => KeyRepr::Int(*i),
        PyValue::BigInt(b) => KeyRepr::Big(b.clone()),
        PyValue::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 9.0e18 {
                KeyRepr::Int(*f as i64)
            } else {
                KeyRepr::Float(f.to_bits())
            }
        }
        PyValue::Str(s) => KeyRepr::Str(s.clone()),
        PyValue::Bytes(b) => KeyRepr::Bytes(b.clone()),
        PyValue::Tuple(items) => KeyRepr::Tuple(
            items
                .iter()
                .map(|i| key_repr(i, depth + 1))
                .collect::<Option<Vec<_>>>()?,
        ),
        PyValue::List(_) | PyValue::Dict(_) | PyValue::Set(_) | PyValue::Tensor(_) => return None,
    })
}

#[cfg(test)]
#[path = "pickle_tests.rs"]
mod tests;
