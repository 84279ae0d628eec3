//! Out of memory, provoked for real: with this process's address space capped just above what
//! it already uses, the driver cannot allocate a long forward's buffers. The engine must return
//! an error (never panic or hang), and once memory is available again the same model must run
//! the next request and give bit-identical results. Alone in its test binary because the cap
//! applies to the whole process.
#![cfg(target_os = "linux")]

use kernels_tests::{fixtures_dir, gpu};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::gpu::GpuError;
use lighthubert::LightHubert;

fn virtual_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

fn set_address_space_limit(bytes: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) }, 0);
    limit.rlim_cur = bytes.min(limit.rlim_max);
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
}

#[test]
fn out_of_memory_is_an_error_and_the_next_request_runs() {
    let ckpt = Checkpoint::open(fixtures_dir().join("tiny-default.pt")).unwrap_or_else(|e| panic!("{e}"));
    let ctx = gpu();
    let model = LightHubert::load(ctx.clone(), &ckpt).unwrap_or_else(|e| panic!("{e}"));
    let subnet = model.supernet().preset(&lighthubert::Preset::Default);
    let short: Vec<f32> = (0..16_000).map(|i| 0.3 * (i as f32 * 0.05).sin() + 0.01).collect();
    let long: Vec<f32> = (0..16_000 * 600).map(|i| 0.2 * (i as f32 * 0.0625).sin()).collect();
    let before = model.forward(&subnet, &short, true).unwrap_or_else(|e| panic!("{e}"));
    ctx.release_pooled();

    let unlimited = u64::MAX;
    set_address_space_limit(virtual_bytes() + 64 * 1024 * 1024);
    let failed = model.forward(&subnet, &long, true);
    set_address_space_limit(unlimited);
    let err = failed.expect_err("ten minutes of buffers cannot fit in 64 MiB");
    eprintln!("error: {err}");
    assert!(
        matches!(err, lighthubert::Error::Gpu(GpuError::OutOfMemory { .. }) | lighthubert::Error::Gpu(GpuError::HostOutOfMemory { .. })),
        "expected an out-of-memory error, got: {err}"
    );
    // Out of memory at buffer creation leaves the device usable (see create_buffer_checked).
    ctx.check_not_lost().unwrap_or_else(|e| panic!("the device must survive: {e}"));
    assert_eq!(ctx.pooled_bytes(), 0, "the pool is released after out of memory");

    let after = model.forward(&subnet, &short, true).unwrap_or_else(|e| panic!("the next request must run: {e}"));
    assert_eq!(after.states, before.states, "the model must be unchanged by the failed request");
}
