//! Every WGSL module, as the engine composes it, parses and validates with naga. No GPU needed.

use lighthubert::gpu::{Kernel, SHADER_FILES};

#[test]
fn every_shader_file_parses_and_validates() {
    for file in SHADER_FILES {
        let source = file.composed();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{} does not parse:\n{}", file.name, e.emit_to_string(&source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{} does not validate:\n{}", file.name, e.emit_to_string(&source)));
    }
}

#[test]
fn every_file_in_shaders_is_compiled_by_the_engine() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
    for entry in std::fs::read_dir(&dir).expect("shaders/ exists") {
        let name = entry.expect("readable entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".wgsl") {
            assert!(
                SHADER_FILES.iter().any(|f| f.name == name),
                "shaders/{name} is not listed in SHADER_FILES, so nothing validates it"
            );
        }
    }
}

#[test]
fn every_kernel_entry_point_exists_in_its_module() {
    for kernel in Kernel::ALL {
        let source = kernel.file().composed();
        let module = naga::front::wgsl::parse_str(&source).expect("parses");
        assert!(
            module.entry_points.iter().any(|e| e.name == kernel.entry_point()),
            "{:?}: no entry point {} in {}",
            kernel,
            kernel.entry_point(),
            kernel.file().name
        );
    }
}
