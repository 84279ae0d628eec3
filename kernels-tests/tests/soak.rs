//! Soak: 1000 forwards in one process with random subnets and lengths. Process memory and the
//! activation pool stay flat, buffer creation stops once the pool has seen the shapes, and a
//! repeated input comes back bit for bit throughout. Long (minutes on lavapipe), so opt-in:
//!
//!     cargo test --release -p kernels-tests --test soak -- --ignored --nocapture
//!
//! `LIGHTHUBERT_SOAK_FORWARDS` changes the count. The figures it prints go in closing notes.

use std::time::Instant;

use kernels_tests::{fixtures_dir, gpu, random_values};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::{LightHubert, Preset};

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

#[test]
#[ignore = "long: run with --ignored"]
fn a_thousand_random_forwards_stay_flat_and_repeatable() {
    let forwards: usize = std::env::var("LIGHTHUBERT_SOAK_FORWARDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let ctx = gpu();
    let ckpt = Checkpoint::open(fixtures_dir().join("tiny-default.pt")).unwrap_or_else(|e| panic!("{e}"));
    let model = LightHubert::load(ctx.clone(), &ckpt).unwrap_or_else(|e| panic!("{e}"));
    let counters = ctx.counters();
    let weights_before = counters.weight_bytes_uploaded();
    let reference_subnet = model.supernet().preset(&Preset::Random(7));
    let reference_wave = random_values(7, 20_000);
    let reference = model.forward(&reference_subnet, &reference_wave, true).unwrap();

    // A deterministic stream of (subnet seed, length): SplitMix64.
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let checkpoints = [forwards / 10, forwards / 2, forwards];
    let mut marks = Vec::new();
    let start = Instant::now();
    for i in 1..=forwards {
        let subnet = model.supernet().preset(&Preset::Random(next() % 10_000));
        let len = 400 + (next() % 47_600) as usize; // 1 frame to 3 s
        let wave = random_values(next(), len);
        let out = model.forward(&subnet, &wave, i % 2 == 0).unwrap_or_else(|e| panic!("forward {i}: {e}"));
        assert_eq!(out.states.len(), subnet.layer_num + 1);
        if i % 50 == 0 {
            let again = model.forward(&reference_subnet, &reference_wave, true).unwrap();
            assert_eq!(again.states, reference.states, "forward {i}: the repeated input changed");
        }
        if checkpoints.contains(&i) {
            marks.push((i, rss_bytes(), counters.activation_buffers_created(), ctx.pooled_bytes(), start.elapsed().as_secs_f64()));
        }
    }
    for (i, rss, created, pooled, secs) in &marks {
        eprintln!(
            "after {i} forwards: {secs:.0} s, RSS {:.1} MB, activation buffers created {created}, pooled {:.1} MB",
            *rss as f64 / 1e6,
            *pooled as f64 / 1e6
        );
    }
    assert_eq!(counters.weight_bytes_uploaded(), weights_before, "weights were uploaded again");
    let (first, last) = (marks[0], marks[marks.len() - 1]);
    // Flat: past the first tenth, memory grows by less than 64 MB and the pool stays within its cap.
    assert!(last.1 < first.1 + 64_000_000, "RSS grew from {} to {} bytes", first.1, last.1);
    assert!(last.3 <= 1 << 30, "the pool holds {} bytes", last.3);
}
