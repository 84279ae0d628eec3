//! The engine is Send + Sync: several threads extracting at once, each with its own subnet and
//! lengths, get exactly what they get alone.

use std::sync::Arc;

use kernels_tests::{fixtures_dir, gpu, random_values};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::GpuContext;
use lighthubert::{ExtractOptions, LightHubert, Preset, Supernet};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn the_engine_types_are_send_and_sync() {
    assert_send_sync::<LightHubert>();
    assert_send_sync::<GpuContext>();
    assert_send_sync::<Supernet>();
    assert_send_sync::<Checkpoint>();
}

#[test]
fn threads_extracting_at_once_get_their_single_threaded_results() {
    let ckpt = Checkpoint::open(fixtures_dir().join("tiny-default.pt")).unwrap_or_else(|e| panic!("{e}"));
    let model = Arc::new(LightHubert::load(gpu(), &ckpt).unwrap_or_else(|e| panic!("{e}")));
    let presets = [Preset::Default, Preset::Min, Preset::Max, Preset::Random(3), Preset::Random(8)];
    // Each thread: its own subnet and its own three waveforms.
    let jobs: Vec<_> = presets
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let waves: Vec<Vec<f32>> = (0..3).map(|j| random_values(100 + 10 * i as u64 + j, 4000 + 1700 * j as usize + 333 * i)).collect();
            (model.supernet().preset(p), waves)
        })
        .collect();
    let options = ExtractOptions::default();
    let alone: Vec<_> = jobs
        .iter()
        .map(|(subnet, waves)| waves.iter().map(|w| model.extract(subnet, &[w.as_slice()], &options).unwrap().remove(0)).collect::<Vec<_>>())
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(subnet, waves)| {
                let model = model.clone();
                let options = options.clone();
                scope.spawn(move || {
                    // Several rounds, so the threads' forwards overlap and share pooled buffers.
                    (0..3)
                        .map(|_| waves.iter().map(|w| model.extract(subnet, &[w.as_slice()], &options).unwrap().remove(0)).collect::<Vec<_>>())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (t, (h, want)) in handles.into_iter().zip(&alone).enumerate() {
            for (round, got) in h.join().expect("no thread panicked").into_iter().enumerate() {
                for (g, w) in got.iter().zip(want) {
                    assert_eq!(g.states, w.states, "thread {t}, round {round}: differs from its single-threaded run");
                }
            }
        }
    });
}
