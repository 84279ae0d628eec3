//! End-to-end tests of [`Checkpoint`] on archives built in memory.

use std::path::Path;

use half::{bf16, f16};
use zip::CompressionMethod::{Deflated, Stored};

use super::test_util::*;
use super::*;

fn open(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::from_bytes(bytes, Path::new("tiny.pt"))
}

fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 * 0.5 - 1.0).collect()
}

/// A small valid checkpoint: f32 weight, a transposed view and an offset view sharing one
/// storage, an f16 and a bf16 tensor, ignored heads whose storages are absent.
fn sample(method: zip::CompressionMethod) -> Vec<u8> {
    let w = TensorSpec::f32("encoder.w", "0", &[2, 3]);
    let mut t = TensorSpec::f32("encoder.wt", "0", &[3, 2]);
    t.strides = vec![1, 3];
    let mut tail = TensorSpec::f32("encoder.tail", "0", &[2]);
    tail.offset = 4;
    tail.storage_numel = 6;
    let mut h = TensorSpec::f32("encoder.h", "1", &[3]);
    h.storage_type = "HalfStorage".into();
    let mut b = TensorSpec::f32("encoder.b", "2", &[2, 2]);
    b.storage_type = "BFloat16Storage".into();
    let mask = TensorSpec::f32("mask_emb", "9", &[4]);
    let head = TensorSpec::f32("final_proj.weight", "8", &[4]);
    let pred = TensorSpec::f32("layer_pred_heads.0.weight", "7", &[4]);
    let pkl = checkpoint_pickle(minimal_cfg, &[w, mask, t, tail, h, b, head, pred]);
    let half: Vec<u8> = [1.5f32, -2.0, 65504.0]
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect();
    let bhalf: Vec<u8> = [0.5f32, -3.0e38, 1.0, 2.0]
        .iter()
        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
        .collect();
    torch_zip(
        "archive",
        &pkl,
        &[("0", f32_bytes(iota(6))), ("1", half), ("2", bhalf)],
        method,
    )
}

#[test]
fn reads_views_and_dtypes_stored_or_deflated() {
    for method in [Stored, Deflated] {
        let c = open(&sample(method)).unwrap();
        assert_eq!(c.config.name, "hubert_pruner");
        assert_eq!(c.task_normalize, Some(false));
        let w = c.tensor("encoder.w", &[2, 3]).unwrap();
        assert_eq!(w.values, iota(6));
        assert_eq!(w.dtype, StoredDtype::F32);
        let t = c.tensor("encoder.wt", &[3, 2]).unwrap();
        assert_eq!(t.values, vec![-1.0, 0.5, -0.5, 1.0, 0.0, 1.5]);
        assert_eq!(
            c.tensor("encoder.tail", &[2]).unwrap().values,
            vec![1.0, 1.5]
        );
        let h = c.tensor("encoder.h", &[3]).unwrap();
        assert_eq!(
            (h.dtype, h.values.clone()),
            (StoredDtype::F16, vec![1.5, -2.0, 65504.0])
        );
        let b = c.tensor("encoder.b", &[2, 2]).unwrap();
        assert_eq!(b.dtype, StoredDtype::BF16);
        assert_eq!(b.values[1], bf16::from_f32(-3.0e38).to_f32());
        assert_eq!(
            c.keys().collect::<Vec<_>>(),
            [
                "encoder.b",
                "encoder.h",
                "encoder.tail",
                "encoder.w",
                "encoder.wt"
            ]
        );
        assert_eq!(
            c.ignored_keys().collect::<Vec<_>>(),
            ["mask_emb", "final_proj.weight", "layer_pred_heads.0.weight"]
        );
        let summary = c.dtype_summary();
        assert_eq!(summary.get(&StoredDtype::F32), Some(&3));
        assert_eq!(summary.get(&StoredDtype::F16), Some(&1));
        assert_eq!(summary.get(&StoredDtype::BF16), Some(&1));
        assert_eq!(c.total_values(), 6 + 6 + 2 + 3 + 4);
    }
}

#[test]
fn tensor_lookup_errors_read_well() {
    let c = open(&sample(Stored)).unwrap();
    let e = c.tensor("encoder.w", &[3, 2]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "tiny.pt: tensor `encoder.w` has shape [2, 3], expected [3, 2]"
    );
    let e = c.tensor("encoder.nope", &[1]).unwrap_err();
    assert!(matches!(&e, CheckpointError::MissingTensor { key, .. } if key == "encoder.nope"));
    assert_eq!(e.to_string(), "tiny.pt: tensor `encoder.nope` is missing");
    assert!(c.optional_tensor("encoder.nope", &[1]).unwrap().is_none());
    assert!(c.optional_tensor("encoder.w", &[6]).is_err());
    assert!(
        c.tensor("mask_emb", &[4]).is_err(),
        "ignored keys are not loaded"
    );
}

#[test]
fn every_truncation_of_the_archive_is_an_error() {
    let full = sample(Stored);
    for n in 0..full.len() {
        let e = open(&full[..n]).expect_err("a truncated archive loaded");
        assert!(
            matches!(
                e,
                CheckpointError::NotZip { .. }
                    | CheckpointError::Zip { .. }
                    | CheckpointError::MissingDataPkl { .. }
            ),
            "prefix {n}: {e}"
        );
    }
}

#[test]
fn every_byte_flip_is_handled() {
    // Damage anywhere (headers, pickle, storages) must give Ok or Err, never a panic.
    let full = sample(Deflated);
    for i in 0..full.len() {
        let mut v = full.clone();
        v[i] ^= 0x5a;
        let _ = open(&v);
    }
}

#[test]
fn not_a_zip() {
    for (bytes, hint) in [
        (&b""[..], "empty"),
        (b"\x80\x02}q\x00.", "legacy"),
        (b"hello world", "zip signature"),
    ] {
        let e = open(bytes).unwrap_err();
        assert!(matches!(e, CheckpointError::NotZip { .. }), "{e}");
        assert!(e.to_string().contains(hint), "{e}");
        assert!(e.to_string().starts_with("tiny.pt: "), "{e}");
    }
}

#[test]
fn archive_layout_errors() {
    let pkl = checkpoint_pickle(minimal_cfg, &[]);
    // no data.pkl at all
    let z = zip_bytes(&[("archive/version".into(), b"3".to_vec())], Stored);
    assert!(matches!(
        open(&z).unwrap_err(),
        CheckpointError::MissingDataPkl { .. }
    ));
    // data.pkl not under a single top-level folder
    let z = zip_bytes(
        &[
            ("data.pkl".into(), pkl.clone()),
            ("a/b/data.pkl".into(), pkl.clone()),
        ],
        Stored,
    );
    assert!(matches!(
        open(&z).unwrap_err(),
        CheckpointError::MissingDataPkl { .. }
    ));
    // two roots
    let z = zip_bytes(
        &[
            ("a/data.pkl".into(), pkl.clone()),
            ("b/data.pkl".into(), pkl.clone()),
        ],
        Stored,
    );
    assert!(matches!(open(&z).unwrap_err(), CheckpointError::Zip { .. }));
    // any root name works, and an empty state dict is fine
    let z = zip_bytes(&[("my checkpoint-1/data.pkl".into(), pkl.clone())], Stored);
    assert_eq!(open(&z).unwrap().keys().count(), 0);
    // big-endian storages are refused
    let z = zip_bytes(
        &[
            ("a/data.pkl".into(), pkl.clone()),
            ("a/byteorder".into(), b"big".to_vec()),
        ],
        Stored,
    );
    assert!(matches!(
        open(&z).unwrap_err(),
        CheckpointError::Structure { .. }
    ));
}

#[test]
fn storage_errors_name_the_tensor() {
    let w = TensorSpec::f32("encoder.w", "0", &[2, 3]);
    let pkl = checkpoint_pickle(minimal_cfg, std::slice::from_ref(&w));
    // missing member
    let e = open(&torch_zip("r", &pkl, &[], Stored)).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::MissingStorage { key, member, .. }
        if key == "encoder.w" && member == "r/data/0"),
        "{e}"
    );
    // member shorter than numel * 4
    let e = open(&torch_zip("r", &pkl, &[("0", f32_bytes(iota(5)))], Stored)).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::StorageTooShort { key, .. } if key == "encoder.w"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("storage shorter than the tensor claims"),
        "{e}"
    );
    // a longer member is fine (only what the storage needs is read)
    assert!(open(&torch_zip("r", &pkl, &[("0", f32_bytes(iota(9)))], Stored)).is_ok());

    // view reaching past the storage's own numel
    let mut v = w.clone();
    v.offset = 1;
    let pkl = checkpoint_pickle(minimal_cfg, &[v]);
    let e = open(&torch_zip("r", &pkl, &[("0", f32_bytes(iota(6)))], Stored)).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::StorageTooShort { key, .. } if key == "encoder.w"),
        "{e}"
    );

    // storages claiming 2^30 (4 GiB), 2^60 and 2^62 (byte count overflows u64) elements
    // in a tiny file: refused without allocating anything like that
    for numel in [1usize << 30, 1 << 60, 1 << 62] {
        let mut v = w.clone();
        v.storage_numel = numel;
        let pkl = checkpoint_pickle(minimal_cfg, &[v]);
        let e = open(&torch_zip("r", &pkl, &[("0", f32_bytes(iota(6)))], Stored)).unwrap_err();
        assert!(matches!(&e, CheckpointError::StorageTooShort { .. }), "{e}");
    }

    // two views disagreeing about one storage
    let mut v = w.clone();
    v.key = "encoder.v".into();
    v.storage_numel = 7;
    let pkl = checkpoint_pickle(minimal_cfg, &[w.clone(), v]);
    let e = open(&torch_zip("r", &pkl, &[("0", f32_bytes(iota(7)))], Stored)).unwrap_err();
    assert!(matches!(e, CheckpointError::Structure { .. }), "{e}");
}

#[test]
fn non_finite_and_unsupported_dtype() {
    let w = TensorSpec::f32("encoder.w", "0", &[3]);
    let pkl = checkpoint_pickle(minimal_cfg, std::slice::from_ref(&w));
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let z = torch_zip("r", &pkl, &[("0", f32_bytes([0.0, bad, 1.0]))], Stored);
        let e = open(&z).unwrap_err();
        assert!(
            matches!(&e, CheckpointError::NonFinite { key, index: 1, .. } if key == "encoder.w"),
            "{e}"
        );
    }
    let mut l = w.clone();
    l.storage_type = "LongStorage".into();
    let pkl = checkpoint_pickle(minimal_cfg, &[l]);
    let z = torch_zip("r", &pkl, &[("0", vec![0; 24])], Stored);
    let e = open(&z).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::UnsupportedDtype { key, dtype, .. }
        if key == "encoder.w" && dtype == "int64"),
        "{e}"
    );
    // The same tensor under an ignored key is skipped, storage unread.
    let mut l2 = TensorSpec::f32("mask_emb", "0", &[3]);
    l2.storage_type = "LongStorage".into();
    let pkl = checkpoint_pickle(minimal_cfg, &[l2]);
    assert!(open(&torch_zip("r", &pkl, &[], Stored)).is_ok());
}

#[test]
fn forbidden_global_inside_an_archive() {
    let dir = std::env::temp_dir().join(format!("ckpt-archive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("marker");
    let cmd = format!("touch {}", marker.display());
    let mut w = PickleWriter::new();
    w.global("posix", "system")
        .str(&cmd)
        .op(0x85)
        .op(b'R')
        .op(b'.');
    let e = open(&torch_zip("r", &w.bytes, &[], Stored)).unwrap_err();
    assert!(matches!(&e, CheckpointError::ForbiddenGlobal { name, .. } if name == "posix.system"));
    assert_eq!(
        e.to_string(),
        "tiny.pt: data.pkl refers to the global `posix.system`, which a checkpoint reader does not accept"
    );
    assert!(!marker.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_errors_name_the_field() {
    let pkl = checkpoint_pickle(
        |w| {
            w.str("_name").str("hubert_pruner");
            w.str("encoder_layers").float(12.0);
        },
        &[],
    );
    let e = open(&torch_zip("r", &pkl, &[], Stored)).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Config { field, .. } if field == "cfg.model.encoder_layers")
    );
    assert_eq!(
        e.to_string(),
        "tiny.pt: config field `cfg.model.encoder_layers`: expected a non-negative int, found float"
    );
    // a checkpoint without cfg
    let mut w = PickleWriter::new();
    w.op(b'}').str("model").op(b'}').op(b's').op(b'.');
    let e = open(&torch_zip("r", &w.bytes, &[], Stored)).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Config { field, .. } if field == "cfg"),
        "{e}"
    );
    // not a dict at all
    let mut w = PickleWriter::new();
    w.op(b'N').op(b'.');
    let e = open(&torch_zip("r", &w.bytes, &[], Stored)).unwrap_err();
    assert!(matches!(e, CheckpointError::Structure { .. }), "{e}");
}

#[test]
fn structure_errors() {
    // a non-tensor state-dict entry
    let mut w = PickleWriter::new();
    w.op(b'}').op(b'(');
    w.str("cfg")
        .op(b'}')
        .str("model")
        .op(b'}')
        .str("_name")
        .str("x")
        .op(b's')
        .op(b's');
    w.str("model").op(b'}').str("encoder.w").int(3).op(b's');
    w.op(b'u').op(b'.');
    let e = open(&torch_zip("r", &w.bytes, &[], Stored)).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Structure { reason, .. } if reason.contains("encoder.w")),
        "{e}"
    );
}

#[test]
fn pickle_errors_carry_the_offset() {
    let mut pkl = checkpoint_pickle(minimal_cfg, &[]);
    let n = pkl.len();
    pkl[n - 1] = 0xfe; // replace STOP
    let e = open(&torch_zip("r", &pkl, &[], Stored)).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Pickle { offset, .. } if *offset == n - 1),
        "{e}"
    );
    assert!(e.to_string().contains("0xfe"), "{e}");
}

#[test]
fn deflate_bomb_is_capped() {
    // 96 MiB of zeros deflate to ~100 KB; the storage claims all of it. The reader must
    // stop at its decompression budget (16x the file + 64 MiB) instead of inflating it.
    let n = 24 << 20;
    let w = TensorSpec::f32("encoder.w", "0", &[n]);
    let pkl = checkpoint_pickle(minimal_cfg, &[w]);
    let z = torch_zip("r", &pkl, &[("0", vec![0u8; n * 4])], Deflated);
    assert!(z.len() < 1 << 20);
    let e = open(&z).unwrap_err();
    assert!(matches!(e, CheckpointError::ResourceLimit { .. }), "{e}");
}

#[test]
fn lying_size_fields_are_not_trusted() {
    // Patch the uncompressed size of every central-directory entry to ~4 GiB.
    let mut z = sample(Stored);
    let mut i = 0;
    while i + 46 <= z.len() {
        if z[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] {
            z[i + 24..i + 28].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
            i += 46;
        } else {
            i += 1;
        }
    }
    // Whatever the zip layer decides, the result is a value or an error, quickly.
    let _ = open(&z);
}

#[test]
fn open_reads_files_and_reports_io_errors() {
    let dir = std::env::temp_dir().join(format!("ckpt-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("sample.pt");
    std::fs::write(&p, sample(Stored)).unwrap();
    let c = Checkpoint::open(&p).unwrap();
    assert_eq!(c.path, p);
    assert_eq!(c.tensor("encoder.w", &[2, 3]).unwrap().values, iota(6));
    let e = Checkpoint::open(dir.join("absent.pt")).unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }));
    assert!(e.to_string().contains("absent.pt"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
