//! Every kernel the engine dispatches, as its module composes it, parses and validates with
//! naga and reads the parameter block its Rust side writes; every file in `shaders/` is part of
//! one. No GPU needed.

use lighthubert::gpu::sources;

#[test]
fn every_kernel_checks() {
    for kernel in lighthubert::kernels::all() {
        kernel.check().unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn every_file_in_shaders_is_embedded_and_composed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
    let used: std::collections::HashSet<&str> = lighthubert::kernels::all().flat_map(|k| k.files().collect::<Vec<_>>()).collect();
    for entry in std::fs::read_dir(&dir).expect("shaders/ exists") {
        let name = entry.expect("readable entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".wgsl") {
            assert!(sources::ALL.iter().any(|f| f.name == name), "shaders/{name} is not embedded by the shaders crate");
            assert!(used.contains(name.as_str()), "shaders/{name} is composed into no kernel, so nothing validates it");
        }
    }
}
