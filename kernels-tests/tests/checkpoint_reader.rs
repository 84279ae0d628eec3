//! The checkpoint reader against real `torch.save` files.
//!
//! The fixtures come from `tools/fixtures/gen_reader_fixtures.py`, whose docstring gives
//! the value formulas recomputed here. Values are compared bit for bit (so `-0.0` and
//! subnormals count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use lighthubert::checkpoint::config::{DEFAULT_CONV_FEATURE_LAYERS, parse_conv_feature_layers};
use lighthubert::checkpoint::{
    Checkpoint, CheckpointError, ConvLayerSpec, ExtractorMode, StoredDtype,
};

/// Records the largest single allocation, to show hostile size fields are not trusted.
struct MaxAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for MaxAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: MaxAlloc = MaxAlloc;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/reader")
        .join(name)
}

fn v32(i: usize) -> f32 {
    ((i as f64) * 0.1 - 1.0 + 1.0 / 3.0) as f32
}

fn h(i: usize) -> f32 {
    match i {
        0 => 65504.0,
        1 => 2f32.powi(-24),
        2 => -0.0,
        _ => (((i % 17) as f64 - 8.0) * 2f64.powi(-((i % 4) as i32))) as f32,
    }
}

fn b(i: usize) -> f32 {
    match i {
        0 => (1.5 * 2f64.powi(127)) as f32,
        1 => 2f64.powi(-133) as f32,
        2 => -0.0,
        _ => (((i % 29) as f64 - 14.0) * 2f64.powi((i % 7) as i32 - 3)) as f32,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check_values(c: &Checkpoint, key: &str, shape: &[usize], dtype: StoredDtype, want: Vec<f32>) {
    let t = c.tensor(key, shape).unwrap();
    assert_eq!(t.dtype, dtype, "{key}");
    assert_eq!(
        bits(&t.values),
        bits(&want),
        "{key}: {:?} != {want:?}",
        t.values
    );
}

fn check_fixture(c: &Checkpoint) {
    use StoredDtype::{BF16, F16, F32};
    check_values(
        c,
        "encoder.f32_weight",
        &[3, 5],
        F32,
        (0..15).map(v32).collect(),
    );
    // [4, 6] base, transposed: out[i][j] = base[j][i].
    let transposed = (0..6)
        .flat_map(|i| (0..4).map(move |j| v32(15 + j * 6 + i)))
        .collect();
    check_values(c, "encoder.transposed", &[6, 4], F32, transposed);
    check_values(c, "encoder.view_a", &[6], F32, (52..58).map(v32).collect());
    check_values(
        c,
        "encoder.view_b",
        &[2, 5],
        F32,
        (60..70).map(v32).collect(),
    );
    check_values(
        c,
        "encoder.f16_weight",
        &[4, 6],
        F16,
        (0..24).map(h).collect(),
    );
    let strided = (0..3)
        .flat_map(|r| (0..3).map(move |c| h((r + 1) * 6 + 2 * c)))
        .collect();
    check_values(c, "encoder.f16_strided", &[3, 3], F16, strided);
    check_values(
        c,
        "encoder.bf16_weight",
        &[2, 3, 4],
        BF16,
        (0..24).map(b).collect(),
    );
    check_values(c, "encoder.scalar", &[], F32, vec![2.5]);
    check_values(c, "encoder.empty", &[0, 3], F32, vec![]);
    check_values(
        c,
        "encoder.param",
        &[2, 2],
        F32,
        (200..204).map(v32).collect(),
    );

    assert_eq!(
        c.keys().collect::<Vec<_>>(),
        [
            "encoder.bf16_weight",
            "encoder.empty",
            "encoder.f16_strided",
            "encoder.f16_weight",
            "encoder.f32_weight",
            "encoder.param",
            "encoder.scalar",
            "encoder.transposed",
            "encoder.view_a",
            "encoder.view_b",
        ]
    );
    // Their storages hold NaN: had the reader touched them, it would have failed.
    let mut ignored: Vec<_> = c.ignored_keys().collect();
    ignored.sort();
    assert_eq!(
        ignored,
        [
            "final_proj.bias",
            "final_proj.weight",
            "label_embs_concat",
            "layer_pred_heads.0.weight",
            "mask_emb",
        ]
    );
    let summary = c.dtype_summary();
    assert_eq!(summary.get(&F32), Some(&7));
    assert_eq!(summary.get(&F16), Some(&2));
    assert_eq!(summary.get(&BF16), Some(&1));

    let cfg = &c.config;
    assert_eq!(cfg.name, "hubert_pruner");
    assert_eq!(
        cfg.pruner_supernet.as_deref(),
        Some("config/Supernet-Small.yaml")
    );
    assert_eq!(cfg.extractor_mode, ExtractorMode::Default);
    let l = |channels, kernel, stride| ConvLayerSpec {
        channels,
        kernel,
        stride,
    };
    assert_eq!(
        cfg.conv_layers,
        [
            l(32, 10, 5),
            l(32, 3, 2),
            l(32, 3, 2),
            l(32, 2, 2),
            l(32, 2, 2)
        ]
    );
    assert!(cfg.conv_bias);
    assert_eq!(cfg.encoder_layers, 4);
    assert_eq!(cfg.encoder_embed_dim, 64);
    assert_eq!(cfg.encoder_ffn_embed_dim, 256);
    assert_eq!(cfg.encoder_attention_heads, 2);
    assert_eq!(cfg.conv_pos, 16);
    assert_eq!(cfg.conv_pos_groups, 4);
    assert!(!cfg.layer_norm_first);
    assert_eq!(
        cfg.pos_conv_depth, 1,
        "missing field takes the authors' default"
    );
    let space = cfg.search_space.as_ref().unwrap();
    assert_eq!(lighthubert::SearchSpace::custom(space).name, "custom");
    assert_eq!(space.embed_dim, [32, 48, 64]);
    assert_eq!(space.heads_num, [1, 2]);
    assert_eq!(space.ffn_ratio, [3.0, 3.5, 4.0]);
    assert_eq!(space.layer_num, [3, 4]);
    assert_eq!(c.task_normalize, Some(true));
}

#[test]
fn stored_fixture_every_value() {
    let c = Checkpoint::open(fixture("dtypes.pt")).unwrap();
    check_fixture(&c);
}

#[test]
fn deflated_fixture_with_another_root() {
    let c = Checkpoint::open(fixture("dtypes_deflated.pt")).unwrap();
    check_fixture(&c);
}

#[test]
fn from_bytes_matches_open() {
    let path = fixture("dtypes.pt");
    let bytes = std::fs::read(&path).unwrap();
    let a = Checkpoint::from_bytes(&bytes, Path::new("mem.pt")).unwrap();
    let b = Checkpoint::open(&path).unwrap();
    assert_eq!(a.config, b.config);
    for (k, t) in a.tensors() {
        assert_eq!(b.get(k), Some(t));
    }
}

#[test]
fn shape_errors_name_file_key_and_shapes() {
    let c = Checkpoint::from_bytes(
        &std::fs::read(fixture("dtypes.pt")).unwrap(),
        Path::new("tiny.pt"),
    )
    .unwrap();
    let e = c.tensor("encoder.f32_weight", &[5, 3]).unwrap_err();
    assert!(matches!(e, CheckpointError::ShapeMismatch { .. }));
    assert_eq!(
        e.to_string(),
        "tiny.pt: tensor `encoder.f32_weight` has shape [3, 5], expected [5, 3]"
    );
}

#[test]
fn released_default_conv_string() {
    let layers = parse_conv_feature_layers(DEFAULT_CONV_FEATURE_LAYERS).unwrap();
    let dims: Vec<_> = layers
        .iter()
        .map(|l| (l.channels, l.kernel, l.stride))
        .collect();
    assert_eq!(
        dims,
        [
            (512, 10, 5),
            (512, 3, 2),
            (512, 3, 2),
            (512, 3, 2),
            (512, 3, 2),
            (512, 2, 2),
            (512, 2, 2)
        ]
    );
    // The receptive field and hop the notes state: 400 samples, 320 per frame.
    let hop: usize = layers.iter().map(|l| l.stride).product();
    let field = layers
        .iter()
        .rev()
        .fold(1, |f, l| (f - 1) * l.stride + l.kernel);
    assert_eq!((field, hop), (400, 320));
}

#[test]
fn damaged_copies_fail_cleanly_without_large_allocations() {
    // Every single-byte corruption of the stored fixture (zip headers, size fields,
    // pickle, storages): an Ok or an Err, never a panic, and never an allocation
    // anywhere near a claimed size.
    let bytes = std::fs::read(fixture("dtypes.pt")).unwrap();
    let mut errors = 0;
    for i in 0..bytes.len() {
        for x in [0xff, 0x80] {
            let mut v = bytes.clone();
            v[i] ^= x;
            errors += Checkpoint::from_bytes(&v, Path::new("bad.pt")).is_err() as usize;
        }
    }
    assert!(errors > 0);
    let largest = LARGEST.load(Ordering::Relaxed);
    // (about 64 KiB in practice)
    assert!(largest < 1 << 20, "an allocation of {largest} bytes");
}
