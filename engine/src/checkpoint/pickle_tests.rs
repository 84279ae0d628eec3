//! Unit tests of the restricted unpickler (kept apart so `pickle.rs` reads as the VM).

use super::*;

/// Pickles written by CPython 3.11 `pickle.dumps(base, protocol=p)` for
/// `base = {'a': [1, -2, 3.5, None, True, False, 'ü', (1,), (1, 2), (1, 2, 3), (), 2**40,
///  -2**70, 300, 70000, -1], 'b': {'x': shared, 'y': shared}, 'c': OrderedDict([('k', 1),
///  ('j', 'v')])}` with `shared = ['s', 's']` (so the memo is exercised).
const BASE_P1: &str = "7d71002858010000006171015d7102284b014afeffffff47400c0000000000004e4930310a4930300a5802000000c3bc7103284b01747104284b014b02747105284b014b024b03747106294c313039393531313632373737364c0a4c2d313138303539313632303731373431313330333432344c0a4d2c014a701101004affffffff6558010000006271077d71082858010000007871095d710a28580100000073710b680b65580100000079710c680a75580100000063710d63636f6c6c656374696f6e730a4f726465726564446963740a710e2952710f2858010000006b71104b0158010000006a7111580100000076711275752e";
const BASE_P2: &str = "80027d71002858010000006171015d7102284b014afeffffff47400c0000000000004e88895802000000c3bc71034b018571044b014b028671054b014b024b03877106298a060000000000018a090000000000000000c04d2c014a701101004affffffff6558010000006271077d71082858010000007871095d710a28580100000073710b680b65580100000079710c680a75580100000063710d63636f6c6c656374696f6e730a4f726465726564446963740a710e2952710f2858010000006b71104b0158010000006a7111580100000076711275752e";
const BASE_P4: &str = "800495a9000000000000007d94288c0161945d94284b014afeffffff47400c0000000000004e88898c02c3bc944b0185944b014b0286944b014b024b038794298a060000000000018a090000000000000000c04d2c014a701101004affffffff658c0162947d94288c0178945d94288c017394680b658c017994680a758c0163948c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c016b944b018c016a948c01769475752e";
const BASE_P5: &str = "800595a9000000000000007d94288c0161945d94284b014afeffffff47400c0000000000004e88898c02c3bc944b0185944b014b0286944b014b024b038794298a060000000000018a090000000000000000c04d2c014a701101004affffffff658c0162947d94288c0178945d94288c017394680b658c017994680a758c0163948c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c016b944b018c016a948c01769475752e";
/// `{'bytes': b'\x00\x01', 'set': {7}, 'fs': frozenset([8]), 'big': b'x' * 300}`, protocol 4.
const EXT_P4: &str = "80049560010000000000007d94288c0562797465739443020001948c03736574948f94284b07908c02667394284b0891948c0362696794422c01000078787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787894752e";
/// `data.pkl` of torch 2.x `torch.save({'cfg': {'model': {'_name': 'hubert_pruner'}},
/// 'model': nn.Linear(2, 3).state_dict()})`: persistent ids, `_rebuild_tensor_v2`, and
/// BUILD setting the state dict's `_metadata`.
const TORCH_LINEAR: &str = "80027d710028580300000063666771017d710258050000006d6f64656c71037d710458050000005f6e616d657105580d0000006875626572745f7072756e657271067373680363636f6c6c656374696f6e730a4f726465726564446963740a710729527108285806000000776569676874710963746f7263682e5f7574696c730a5f72656275696c645f74656e736f725f76320a710a2828580700000073746f72616765710b63746f7263680a466c6f617453746f726167650a710c580100000030710d5803000000637075710e4b0674710f514b004b034b028671104b024b01867111896807295271127471135271145804000000626961737115680a2828680b680c5801000000317116680e4b03747117514b004b038571184b018571198968072952711a74711b52711c757d711d58090000005f6d65746164617461711e68072952711f580000000071207d7121580700000076657273696f6e71224b0173737362752e";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn st(s: &str) -> PyValue {
    PyValue::Str(s.into())
}

fn int(i: i64) -> PyValue {
    PyValue::Int(i)
}

fn dict(items: Vec<(&str, PyValue)>) -> PyValue {
    PyValue::Dict(items.into_iter().map(|(k, v)| (st(k), v)).collect())
}

fn malformed(r: Result<PyValue, PickleError>) -> (usize, String) {
    match r {
        Err(PickleError::Malformed { offset, reason }) => (offset, reason),
        other => panic!("expected a malformed-pickle error, got {other:?}"),
    }
}

fn expected_base() -> PyValue {
    // -2**70 as 9 little-endian two's-complement bytes.
    let mut minus_2_70 = vec![0u8; 9];
    minus_2_70[8] = 0xc0;
    dict(vec![
        (
            "a",
            PyValue::List(vec![
                int(1),
                int(-2),
                PyValue::Float(3.5),
                PyValue::None,
                PyValue::Bool(true),
                PyValue::Bool(false),
                st("ü"),
                PyValue::Tuple(vec![int(1)]),
                PyValue::Tuple(vec![int(1), int(2)]),
                PyValue::Tuple(vec![int(1), int(2), int(3)]),
                PyValue::Tuple(vec![]),
                int(1 << 40),
                PyValue::BigInt(minus_2_70),
                int(300),
                int(70000),
                int(-1),
            ]),
        ),
        (
            "b",
            dict(vec![
                ("x", PyValue::List(vec![st("s"), st("s")])),
                ("y", PyValue::List(vec![st("s"), st("s")])),
            ]),
        ),
        ("c", dict(vec![("k", int(1)), ("j", st("v"))])),
    ])
}

#[test]
fn python_pickles_of_every_protocol() {
    for (p, h) in [(2, BASE_P2), (4, BASE_P4), (5, BASE_P5)] {
        assert_eq!(load(&hex(h)).unwrap(), expected_base(), "protocol {p}");
    }
    // Protocol 1 writes bools as INT text and big ints as LONG text; -2**70 does not
    // fit the LONG text parser's i64, which is an error rather than a wrong value.
    let (_, reason) = malformed(load(&hex(BASE_P1)));
    assert!(reason.contains("LONG"), "{reason}");
}

#[test]
fn protocol_4_sets_and_bytes() {
    let v = load(&hex(EXT_P4)).unwrap();
    assert_eq!(v.get("bytes"), Some(&PyValue::Bytes(vec![0, 1])));
    assert_eq!(v.get("set"), Some(&PyValue::Set(vec![int(7)])));
    assert_eq!(v.get("fs"), Some(&PyValue::Set(vec![int(8)])));
    assert_eq!(v.get("big"), Some(&PyValue::Bytes(vec![b'x'; 300])));
}

#[test]
fn torch_state_dict() {
    let v = load(&hex(TORCH_LINEAR)).unwrap();
    let model = v.get("model").unwrap();
    let f32s = StorageDtype::Supported(StoredDtype::F32);
    assert_eq!(
        model.get("weight"),
        Some(&PyValue::Tensor(TensorRef {
            storage_key: "0".into(),
            dtype: f32s,
            storage_numel: 6,
            offset: 0,
            shape: vec![3, 2],
            strides: vec![2, 1],
        }))
    );
    assert_eq!(
        model.get("bias"),
        Some(&PyValue::Tensor(TensorRef {
            storage_key: "1".into(),
            dtype: f32s,
            storage_numel: 3,
            offset: 0,
            shape: vec![3],
            strides: vec![1],
        }))
    );
    assert_eq!(
        v.get("cfg")
            .and_then(|c| c.get("model"))
            .and_then(|m| m.get("_name")),
        Some(&st("hubert_pruner"))
    );
}

#[test]
fn every_truncation_is_an_error() {
    for h in [TORCH_LINEAR, BASE_P2, BASE_P4, EXT_P4] {
        let full = hex(h);
        for n in 0..full.len() {
            assert!(load(&full[..n]).is_err(), "prefix of {n} bytes loaded");
        }
    }
}

#[test]
fn every_single_byte_corruption_is_handled() {
    // Not all corruptions are detectable (a changed digit is still a digit), but
    // none may panic.
    let full = hex(TORCH_LINEAR);
    for i in 0..full.len() {
        for b in [0x00, 0x7f, 0x80, 0xff, full[i] ^ 1] {
            let mut v = full.clone();
            v[i] = b;
            let _ = load(&v);
        }
    }
}

/// `posix.system("touch <marker>")`: CPython's `pickle.loads` of these bytes creates
/// the marker file (checked by `python_would_run_the_payload` below).
fn system_payload(module: &str, marker: &std::path::Path) -> Vec<u8> {
    let cmd = format!("touch {}", marker.display());
    let mut p = vec![0x80, 2, b'c'];
    p.extend_from_slice(module.as_bytes());
    p.extend_from_slice(b"\nsystem\nX");
    p.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
    p.extend_from_slice(cmd.as_bytes());
    p.extend_from_slice(&[op::TUPLE1, op::REDUCE, op::STOP]);
    p
}

fn marker_dir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("ckpt-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn forbidden_globals_are_refused_and_nothing_runs() {
    let dir = marker_dir("forbidden");
    for module in ["posix", "os"] {
        let marker = dir.join(format!("{module}-marker"));
        let err = load(&system_payload(module, &marker)).unwrap_err();
        assert_eq!(
            err,
            PickleError::ForbiddenGlobal {
                name: format!("{module}.system")
            }
        );
        assert!(!marker.exists());
    }
    // STACK_GLOBAL spelling, and lookalikes of allowed names.
    let stack_global = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
    assert_eq!(
        load(stack_global).unwrap_err(),
        PickleError::ForbiddenGlobal {
            name: "builtins.eval".into()
        }
    );
    for (m, n) in [
        ("torch._utils", "_rebuild_tensor"),
        ("torch", "load"),
        ("collections", "OrderedDict.__new__"),
        ("torch.serialization", "FloatStorage"),
    ] {
        let p = format!("c{m}\n{n}\n.");
        assert_eq!(
            load(p.as_bytes()).unwrap_err(),
            PickleError::ForbiddenGlobal {
                name: format!("{m}.{n}")
            }
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Confirms the payload above is live, i.e. that the refusal test is meaningful.
/// Needs `python3`; run with `cargo test -- --ignored`.
#[test]
#[ignore]
fn python_would_run_the_payload() {
    let dir = marker_dir("python");
    let marker = dir.join("marker");
    let payload = system_payload("posix", &marker);
    let pkl = dir.join("payload.pkl");
    std::fs::write(&pkl, &payload).unwrap();
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg("import pickle,sys; pickle.loads(open(sys.argv[1],'rb').read())")
        .arg(&pkl)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(marker.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn huge_claimed_lengths_fail_without_allocating() {
    let cases: Vec<Vec<u8>> = vec![
        b"\x80\x02X\xff\xff\xff\xffabc.".to_vec(), // BINUNICODE 4 GiB
        b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc.".to_vec(), // BINUNICODE8
        b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7fabc.".to_vec(), // BINBYTES8
        b"\x80\x03B\xff\xff\xff\xffabc.".to_vec(), // BINBYTES
        b"\x80\x02\x8b\xff\xff\xff\x7f\x01.".to_vec(), // LONG4 2 GiB
        b"\x80\x02\x8b\xff\xff\xff\xff\x01.".to_vec(), // LONG4 negative
        b"\x80\x02T\x00\x00\x00\x80abc.".to_vec(), // BINSTRING negative
        b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffN.".to_vec(), // FRAME
        b"\x80\x02U\xffab.".to_vec(),              // SHORT_BINSTRING
    ];
    for c in cases {
        malformed(load(&c));
    }
}

#[test]
fn deep_nesting_and_cycles_fail_cleanly() {
    // 100k nested lists built without recursion, then refused at materialisation.
    let n = 100_000;
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(op::EMPTY_LIST, n));
    p.extend(std::iter::repeat_n(op::APPEND, n - 1));
    p.push(op::STOP);
    let (_, reason) = malformed(load(&p));
    assert!(reason.contains("nested"), "{reason}");

    // 100k open MARKs.
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(op::MARK, n));
    p.push(op::STOP);
    malformed(load(&p));

    // A list that contains itself: `l = []; l.append(l)`.
    let p = [0x80, 2, op::EMPTY_LIST, op::DUP, op::APPEND, op::STOP];
    let (_, reason) = malformed(load(&p));
    assert!(reason.contains("cycle"), "{reason}");

    // Exactly at the depth limit still loads.
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(op::EMPTY_LIST, MAX_DEPTH + 1));
    p.extend(std::iter::repeat_n(op::APPEND, MAX_DEPTH));
    p.push(op::STOP);
    assert!(load(&p).is_ok());
}

#[test]
fn object_count_is_capped() {
    // `[[], [], ...]` with MAX_OBJECTS + 1 empty lists, built MARK ... LIST at a time
    // so the stack limit does not stop it first.
    let mut p = vec![0x80, 2, op::EMPTY_LIST];
    let chunk = 1 << 16;
    for _ in 0..=(MAX_OBJECTS / chunk) {
        p.push(op::MARK);
        p.extend(std::iter::repeat_n(op::EMPTY_LIST, chunk));
        p.push(op::APPENDS);
    }
    p.push(op::STOP);
    let (_, reason) = malformed(load(&p));
    assert!(reason.contains("objects"), "{reason}");
}

#[test]
fn shared_references_cannot_expand_exponentially() {
    // x = (); 64 times: x = (x, x). Expanded, 2^64 nodes.
    let mut p = vec![0x80, 2, op::EMPTY_TUPLE];
    for _ in 0..64 {
        p.extend([op::DUP, op::TUPLE2]);
    }
    p.push(op::STOP);
    let (_, reason) = malformed(load(&p));
    assert!(reason.contains("larger than the input"), "{reason}");
    // Modest sharing is fine: 4 levels -> 31 nodes from 11 bytes.
    let mut p = vec![0x80, 2, op::EMPTY_TUPLE];
    for _ in 0..4 {
        p.extend([op::DUP, op::TUPLE2]);
    }
    p.push(op::STOP);
    assert!(load(&p).is_ok());
}

#[test]
fn unknown_opcode_names_byte_and_offset() {
    let (offset, reason) = malformed(load(b"\x80\x02N\xff."));
    assert_eq!(offset, 3);
    assert!(reason.contains("0xff"), "{reason}");
    // Protocol-0 text opcodes we do not speak are refused the same way.
    let (offset, reason) = malformed(load(b"Vabc\n."));
    assert_eq!(offset, 0);
    assert!(reason.contains("0x56"), "{reason}");
    malformed(load(b"\x80\x06N."));
}

#[test]
fn stack_discipline() {
    for p in [
        &b"."[..],                // STOP on an empty stack
        b"\x80\x02(\x85.",        // TUPLE1 cannot reach below a MARK
        b"\x80\x02Nt.",           // TUPLE without MARK
        b"\x80\x02N(Na.",         // APPEND target hidden by a MARK
        b"\x80\x02h\x05.",        // GET of an unset memo slot
        b"\x80\x02Nq\x00(q\x01.", // PUT with nothing above the MARK
        b"\x80\x02KaK\x01a.",     // APPEND to an int
        b"\x80\x02}(K\x01u.",     // odd SETITEMS
        b"\x80\x02]K\x01K\x02s.", // SETITEM on a list
        b"\x80\x02N",             // no STOP
    ] {
        malformed(load(p));
    }
    // POP right after MARK drops the mark (CPython behaviour).
    assert_eq!(load(b"\x80\x02K\x07(0.").unwrap(), int(7));
    assert_eq!(load(b"\x80\x02K\x07N0.").unwrap(), int(7));
    assert_eq!(load(b"\x80\x02(K\x01K\x021K\x03.").unwrap(), int(3));
}

#[test]
fn memo_shares_mutable_containers() {
    // l = []; d = {}; memo[0] = d; d['k'] = 1; l.append(d); l.append(memo[0])
    // -> [{'k': 1}, {'k': 1}]: the memo sees the filled dict.
    let p = b"\x80\x02]}q\x00X\x01\x00\x00\x00kK\x01sah\x00a.";
    assert_eq!(
        load(p).unwrap(),
        PyValue::List(vec![dict(vec![("k", int(1))]), dict(vec![("k", int(1))])])
    );
    // MEMOIZE, LONG_BINPUT/LONG_BINGET and text PUT/GET (the (5,) below the top
    // three is left on the stack, as CPython would).
    let p = b"\x80\x04K\x05\x94\x85h\x00r\x10\x00\x00\x00j\x10\x00\x00\x00p77\ng77\n\x87.";
    assert_eq!(
        load(p).unwrap(),
        PyValue::Tuple(vec![int(5), int(5), int(5)])
    );
}

#[test]
fn dict_duplicate_keys_follow_python() {
    // {'a': 1, 'b': 2, 'a': 3, True: 4, 1: 5} == {'a': 3, 'b': 2, True: 5}
    let p = b"\x80\x02}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02X\x01\x00\x00\x00aK\x03\x88K\x04K\x01K\x05u.";
    assert_eq!(
        load(p).unwrap(),
        PyValue::Dict(vec![
            (st("a"), int(3)),
            (st("b"), int(2)),
            (PyValue::Bool(true), int(5)),
        ])
    );
    // A list key is unhashable, as in Python.
    malformed(load(b"\x80\x02}]K\x01s."));
}

#[test]
fn integers() {
    let long1 = |bytes: &[u8]| {
        let mut p = vec![0x80, 2, op::LONG1, bytes.len() as u8];
        p.extend_from_slice(bytes);
        p.push(op::STOP);
        load(&p).unwrap()
    };
    assert_eq!(long1(&[]), int(0));
    assert_eq!(long1(&[0xff]), int(-1));
    assert_eq!(long1(&[0xff, 0x00]), int(255));
    assert_eq!(long1(&[0, 0, 0, 0, 0, 0, 0, 0x80]), int(i64::MIN));
    assert_eq!(
        long1(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00]),
        int(i64::MAX)
    );
    assert_eq!(long1(&[0xff; 12]), int(-1));
    assert_eq!(
        long1(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0x00]),
        PyValue::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0x00])
    );
    assert_eq!(load(b"I-42\n.").unwrap(), int(-42));
    assert_eq!(load(b"I01\n.").unwrap(), PyValue::Bool(true));
    assert_eq!(load(b"L123L\n.").unwrap(), int(123));
    assert_eq!(load(b"M\x34\x12.").unwrap(), int(0x1234));
    assert_eq!(load(b"F2.5\n.").unwrap(), PyValue::Float(2.5));
    malformed(load(b"Ix\n."));
}

#[test]
fn ordered_dict_forms() {
    let od = "ccollections\nOrderedDict\n";
    // OrderedDict([('a', 1)]) via REDUCE with a list of pairs.
    let mut p = vec![0x80, 2];
    p.extend_from_slice(od.as_bytes());
    p.extend_from_slice(b"]X\x01\x00\x00\x00aK\x01");
    p.extend([op::TUPLE2, op::APPEND, op::TUPLE1, op::REDUCE, op::STOP]);
    assert_eq!(load(&p).unwrap(), dict(vec![("a", int(1))]));
    // NEWOBJ form, then BUILD with a `__dict__` (ignored).
    let mut p = vec![0x80, 2];
    p.extend_from_slice(od.as_bytes());
    p.extend([
        op::EMPTY_TUPLE,
        op::NEWOBJ,
        op::EMPTY_DICT,
        op::BUILD,
        op::STOP,
    ]);
    assert_eq!(load(&p).unwrap(), PyValue::Dict(vec![]));
    // Calling a storage type, BUILD on a list, NEWOBJ with arguments: refused.
    let mut p = b"\x80\x02ctorch\nFloatStorage\n".to_vec();
    p.extend([op::EMPTY_TUPLE, op::REDUCE, op::STOP]);
    malformed(load(&p));
    malformed(load(&[
        0x80,
        2,
        op::EMPTY_LIST,
        op::NONE,
        op::BUILD,
        op::STOP,
    ]));
    let mut p = vec![0x80, 2];
    p.extend_from_slice(od.as_bytes());
    p.extend([op::NONE, op::TUPLE1, op::NEWOBJ, op::STOP]);
    malformed(load(&p));
    // A bare global is not data.
    malformed(load(format!("{od}.").as_bytes()));
}

/// A `_rebuild_tensor_v2(storage '7', 2, size, stride, False, OrderedDict()[, {}])`
/// pickle.
fn tensor_pickle(
    storage_type: &str,
    numel: u8,
    size: &[u8],
    stride: &[u8],
    extra_arg: bool,
) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\n");
    p.extend_from_slice(storage_type.as_bytes());
    p.extend_from_slice(b"\nX\x01\x00\x00\x007X\x03\x00\x00\x00cpuK");
    p.push(numel);
    p.extend_from_slice(b"tQK\x02(");
    for &s in size {
        p.extend([op::BININT1, s]);
    }
    p.extend_from_slice(b"t(");
    for &s in stride {
        p.extend([op::BININT1, s]);
    }
    p.extend_from_slice(b"t\x89ccollections\nOrderedDict\n)R");
    if extra_arg {
        p.push(op::EMPTY_DICT);
    }
    p.extend_from_slice(b"tR.");
    p
}

#[test]
fn tensor_records() {
    let want = |dtype| {
        PyValue::Tensor(TensorRef {
            storage_key: "7".into(),
            dtype,
            storage_numel: 20,
            offset: 2,
            shape: vec![3, 4],
            strides: vec![1, 3],
        })
    };
    for (ty, d) in [
        ("FloatStorage", StorageDtype::Supported(StoredDtype::F32)),
        ("HalfStorage", StorageDtype::Supported(StoredDtype::F16)),
        (
            "BFloat16Storage",
            StorageDtype::Supported(StoredDtype::BF16),
        ),
        ("LongStorage", StorageDtype::Unsupported("int64")),
    ] {
        for extra in [false, true] {
            assert_eq!(
                load(&tensor_pickle(ty, 20, &[3, 4], &[1, 3], extra)).unwrap(),
                want(d)
            );
        }
    }
    // size and stride of different rank
    malformed(load(&tensor_pickle(
        "FloatStorage",
        20,
        &[3, 4],
        &[1],
        false,
    )));
    // _rebuild_parameter(tensor, True, OrderedDict()) is the tensor itself.
    let mut p = b"\x80\x02ctorch._utils\n_rebuild_parameter\n".to_vec();
    let t = tensor_pickle("FloatStorage", 20, &[3, 4], &[1, 3], false);
    p.extend_from_slice(&t[2..t.len() - 1]);
    p.extend_from_slice(b"\x88ccollections\nOrderedDict\n)R\x87R.");
    assert_eq!(
        load(&p).unwrap(),
        want(StorageDtype::Supported(StoredDtype::F32))
    );
}

#[test]
fn malformed_persistent_ids() {
    for pid in [
        &b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu"[..],
        b"(X\x06\x00\x00\x00foobarctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01",
        b"(X\x07\x00\x00\x00storageNX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01",
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nK\x00X\x03\x00\x00\x00cpuK\x01",
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ\xff\xff\xff\xff",
        b"N",
    ] {
        let mut p = vec![0x80, 2];
        p.extend_from_slice(pid);
        if pid.first() == Some(&b'(') {
            p.push(op::TUPLE);
        }
        p.extend([op::BINPERSID, op::STOP]);
        malformed(load(&p));
    }
}
