//! The GPU runtime's promises: weights go up once, switching subnets uploads nothing and
//! creates no weight buffer, pipelines are compiled once, a forward pass is one submit, and
//! activation buffers are pooled across calls.

use kernels_tests::{fixtures_dir, gpu, random_values};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::{LightHubert, Preset};

#[test]
fn switching_across_50_random_subnets_uploads_no_weights() {
    // A device of its own: the counters must not see other tests' uploads.
    let ctx = std::sync::Arc::new(lighthubert::gpu::GpuContext::new(&lighthubert::gpu::AdapterChoice::from_env()).unwrap());
    let ckpt = Checkpoint::open(fixtures_dir().join("tiny-default.pt")).unwrap_or_else(|e| panic!("{e}"));
    let before_load = (ctx.counters().weight_buffers_created(), ctx.counters().weight_bytes_uploaded());
    let model = LightHubert::load(ctx.clone(), &ckpt).unwrap_or_else(|e| panic!("{e}"));
    let counters = ctx.counters();
    let weight_buffers = counters.weight_buffers_created() - before_load.0;
    let weight_bytes = counters.weight_bytes_uploaded() - before_load.1;
    assert!(weight_buffers > 100, "one buffer per supernet tensor, got {weight_buffers}");
    // Everything inference uses, at full size, in f32: every tensor of the checkpoint, the
    // positional conv's weight_g becoming its per-tap weight-norm scale (as many values). No
    // matrix here needs padding to a multiple of four values.
    let expected: usize = ckpt.tensors().map(|(_, t)| t.numel()).sum::<usize>();
    assert_eq!(weight_bytes, 4 * expected as u64);

    let wave = random_values(42, 8000);
    let first = model.forward(&model.supernet().preset(&Preset::Default), &wave, true).unwrap();
    let pipelines = ctx.pipelines_built();
    let snapshot = (counters.weight_buffers_created(), counters.weight_bytes_uploaded());
    for seed in 0..50 {
        let subnet = model.supernet().preset(&Preset::Random(seed));
        let submissions = counters.submissions();
        let out = model.forward(&subnet, &wave, seed % 2 == 0).unwrap_or_else(|e| panic!("random:{seed}: {e}"));
        assert_eq!(out.states.len(), subnet.layer_num + 1);
        assert!(out.states.iter().flatten().all(|v| v.is_finite()), "random:{seed} produced a non-finite value");
        assert_eq!(counters.submissions() - submissions, 2, "one forward submit and one readback");
    }
    assert_eq!((counters.weight_buffers_created(), counters.weight_bytes_uploaded()), snapshot, "a subnet switch touched weights");
    assert_eq!(ctx.pipelines_built(), pipelines, "pipelines were rebuilt");

    // Nothing leaks from one subnet to the next, even through reused activation buffers: the
    // first result comes back bit for bit, and a repeated shape allocates nothing.
    let (created, reused) = (counters.activation_buffers_created(), counters.activation_buffers_reused());
    let again = model.forward(&model.supernet().preset(&Preset::Default), &wave, true).unwrap();
    assert_eq!(first.states, again.states);
    assert_eq!(counters.activation_buffers_created(), created, "a repeated forward created activation buffers");
    assert!(counters.activation_buffers_reused() > reused);
    assert!(ctx.pooled_bytes() > 0);
    ctx.release_pooled();
    assert_eq!(ctx.pooled_bytes(), 0);
}

#[test]
fn device_errors_come_back_as_errors_and_the_engine_keeps_working() {
    use lighthubert::gpu::GpuError;
    let ctx = gpu();
    let result: Result<(), GpuError> = ctx.scoped(|| {
        let _too_big = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("too big"),
            size: ctx.limits.max_buffer_size.saturating_add(256),
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(())
    });
    assert!(matches!(result, Err(GpuError::Device(_))), "{result:?}");
    // The scope caught it: nothing reached the uncaptured-error handler (which would have
    // panicked under wgpu's default).
    assert!(ctx.take_uncaptured_errors().is_empty());

    let ckpt = Checkpoint::open(fixtures_dir().join("tiny-default.pt")).unwrap();
    let model = LightHubert::load(ctx.clone(), &ckpt).unwrap();
    let subnet = model.supernet().preset(&Preset::Min);
    let out = model.forward(&subnet, &random_values(1, 4000), false).expect("the device still runs");
    assert_eq!(out.frames, (4000 - 400) / 320 + 1);
}

#[test]
fn a_bad_kernel_family_setting_is_a_clear_error() {
    use lighthubert::gpu::{AdapterChoice, GpuContext};
    let choice = AdapterChoice { kernels: Some("fast".into()), ..AdapterChoice::from_env() };
    let err = GpuContext::new(&choice).err().expect("`fast` is not a kernel family");
    let msg = err.to_string();
    assert!(msg.contains("LIGHTHUBERT_KERNELS") && msg.contains("fast") && msg.contains("gpu or cpu"), "{msg}");
}

#[test]
fn an_adapter_is_opened_by_its_listed_index() {
    use lighthubert::gpu::{list_adapters, AdapterChoice, GpuContext, GpuError};
    let base = AdapterChoice { name_filter: None, ..AdapterChoice::from_env() };
    let listed = list_adapters(&base).unwrap();
    assert!(!listed.is_empty());
    // "k: NAME (Backend, DeviceType)"; describe() starts "NAME (Backend, DeviceType, driver".
    let opened = |filter: Option<String>| {
        let ctx = GpuContext::new(&AdapterChoice { name_filter: filter, ..base.clone() }).unwrap_or_else(|e| panic!("{e}"));
        ctx.describe()
    };
    let default = opened(None);
    for (k, line) in listed.iter().enumerate().take(2) {
        let (index, rest) = line.split_once(": ").unwrap();
        assert_eq!(index, k.to_string());
        let described = opened(Some(format!("#{k}")));
        assert!(described.starts_with(rest.trim_end_matches(')')), "{line} vs {described}");
        if k == 0 {
            assert_eq!(described, default, "index 0 is the adapter opened by default");
            assert_eq!(opened(Some("0".into())), default);
        }
    }
    let past = listed.len();
    let err = GpuContext::new(&AdapterChoice { name_filter: Some(past.to_string()), ..base.clone() }).err().unwrap();
    assert!(matches!(err, GpuError::NoAdapterAtIndex { index, count, .. } if index == past && count == past), "{err}");
    assert!(err.to_string().contains(&listed[0]), "{err}");
}

#[test]
fn a_lost_device_is_an_error_that_says_to_rebuild_never_a_panic() {
    use lighthubert::gpu::{AdapterChoice, GpuContext};
    // A device of its own, destroyed as a driver reset would lose it.
    let ctx = std::sync::Arc::new(GpuContext::new(&AdapterChoice::from_env()).unwrap());
    let ckpt = Checkpoint::open(fixtures_dir().join("tiny-default.pt")).unwrap();
    let model = LightHubert::load(ctx.clone(), &ckpt).unwrap();
    let subnet = model.supernet().preset(&Preset::Min);
    let wave = random_values(2, 4000);
    model.forward(&subnet, &wave, false).expect("runs before the loss");
    ctx.device.destroy();
    for _ in 0..2 {
        let err = model.forward(&subnet, &wave, false).expect_err("a lost device cannot run");
        let msg = err.to_string();
        assert!(msg.contains("lost") && msg.contains("rebuild"), "{msg}");
    }
}

/// The GPU GEMM's tile line: measured on the device the GPU kernel family runs on, written to
/// the cache, read back instead of measured again, and measured around a cache file that is
/// not one. Small shapes: on lavapipe the GPU forms are slow.
#[test]
fn gemm_tile_line_is_measured_once_then_read_from_the_cache() {
    use kernels_tests::gpu_other_family;
    use lighthubert::gpu::{KernelFamily, Precision};
    use lighthubert::kernels::linear::tune::{line_from, tune_on};
    let ctx = if gpu().kernel_family == KernelFamily::Gpu { gpu() } else { gpu_other_family() };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("tuning").join("gemm-tuning.json");
    let shapes = [(49, 64, 96), (130, 128, 256), (200, 64, 512)];
    let precision = Precision::default();

    let first = tune_on(&ctx, precision, Some(&cache), &shapes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.timed.len(), shapes.len());
    for t in &first.timed {
        assert!(t.shared64_us > 0.0 && t.shared32_us > 0.0 && t.shared64_us.is_finite() && t.shared32_us.is_finite(), "{t:?}");
    }
    assert_eq!(first.line, line_from(&first.timed));
    assert_eq!(ctx.tile_line(precision), Some(first.line));
    assert!(first.key.contains(&ctx.adapter_info.name), "{}", first.key);
    let text = std::fs::read_to_string(&cache).expect("the tuning is written to the cache");
    assert!(text.contains(&first.key));

    let submissions = ctx.counters().submissions();
    let again = tune_on(&ctx, precision, Some(&cache), &shapes).unwrap();
    assert_eq!(again, first);
    assert_eq!(ctx.counters().submissions(), submissions, "read from the cache, not measured");

    // Other shapes are another tuning: measured, and kept beside the first.
    let other = tune_on(&ctx, precision, Some(&cache), &shapes[..2]).unwrap();
    assert_ne!(other.key, first.key);
    assert!(ctx.counters().submissions() > submissions);
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(text.contains(&first.key) && text.contains(&other.key));

    std::fs::write(&cache, "{ not a tuning").unwrap();
    let submissions = ctx.counters().submissions();
    let remeasured = tune_on(&ctx, precision, Some(&cache), &shapes).unwrap();
    assert!(ctx.counters().submissions() > submissions, "a broken cache is measured around");
    assert_eq!(remeasured.key, first.key);
    assert!(std::fs::read_to_string(&cache).unwrap().contains(&first.key), "and rewritten");
    let leftovers: Vec<_> = std::fs::read_dir(cache.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no partial file left: {leftovers:?}");
}
