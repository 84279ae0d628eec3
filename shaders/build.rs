//! Embeds every `.wgsl` file beside the manifest as a [`Source`] constant named after it
//! (`linear_tiled.wgsl` becomes `LINEAR_TILED`), and lists them all in `ALL`: a new kernel
//! file needs no entry here, and no file can be missed by the validation tests.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed={dir}");
    println!("cargo:rerun-if-changed=build.rs");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the crate folder is readable")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    names.sort();
    let mut code = String::new();
    for name in &names {
        let stem = name.trim_end_matches(".wgsl");
        assert!(
            stem.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "shaders/{name}: name shader files in snake_case, so each becomes a Rust constant"
        );
        writeln!(
            code,
            "pub const {}: Source = Source {{ name: {name:?}, text: include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/{name}\")) }};",
            stem.to_ascii_uppercase()
        )
        .unwrap();
    }
    let all: Vec<String> = names.iter().map(|n| n.trim_end_matches(".wgsl").to_ascii_uppercase()).collect();
    writeln!(code, "/// Every file, in name order.\npub const ALL: &[Source] = &[{}];", all.join(", ")).unwrap();
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("sources.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
