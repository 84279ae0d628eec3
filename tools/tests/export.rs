//! `lighthubert export`: the standalone file (every command opens it and gets the supernet's
//! output; `info` says what it is), and `--format hf`: the folder's contents (names, shapes,
//! config, provenance), f16 storage, determinism, and refusals that leave nothing behind. That
//! transformers loads an HF folder and computes our hidden states is checked by
//! `tools/check_hf_export.py` (torch and transformers are not test dependencies; README:
//! Shipping a subnet). kernels-tests/tests/exported.rs holds the exported files to the
//! supernet bit for bit on every end-to-end fixture.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::SafeTensors;

/// A test fixture, or one of the demo assets the program bundles (which double as fixtures).
fn fixture(name: &str) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels-tests/fixtures").join(name);
    if fixtures.exists() { fixtures } else { Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(name) }
}

fn export(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lighthubert"))
        .arg("export")
        .args(args)
        .env("XDG_RUNTIME_DIR", common::runtime_dir_in(dir))
        .output()
        .unwrap()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lighthubert"))
        .args(args)
        .env("XDG_RUNTIME_DIR", common::runtime_dir_in(dir))
        .output()
        .unwrap()
}

fn subnet_json(dir: &Path, checkpoint: &Path, preset: &str) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_lighthubert"))
        .args(["subnet", preset, "--checkpoint"])
        .arg(checkpoint)
        .env("XDG_RUNTIME_DIR", common::runtime_dir_in(dir))
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn an_hf_folder_holds_the_subnet_densely_under_hubertmodels_names() {
    let dir = tempfile::tempdir().unwrap();
    for (ckpt, preset, conv_norms) in [("tiny-default.pt", "max", 1), ("tiny-layernorm-f16.pt", "min", 7)] {
        let checkpoint = fixture(ckpt);
        let out = dir.path().join(format!("{ckpt}-{preset}"));
        let o = export(dir.path(), &["--checkpoint", checkpoint.to_str().unwrap(), "--subnet", preset, "--format", "hf", "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let subnet = subnet_json(dir.path(), &checkpoint, preset);
        let (e, layers) = (subnet["embed_dim"].as_u64().unwrap() as usize, subnet["layer_num"].as_u64().unwrap() as usize);
        let (h, f) = (subnet["heads_num"][0].as_u64().unwrap() as usize, subnet["ffn_embed"][0].as_u64().unwrap() as usize);

        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["model_type"], "hubert");
        assert_eq!(config["hidden_size"], e);
        assert_eq!(config["num_hidden_layers"], layers);
        assert_eq!(config["num_attention_heads"], h);
        assert_eq!(config["intermediate_size"], f);
        assert_eq!(config["feat_extract_norm"], if conv_norms == 1 { "group" } else { "layer" });

        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let shape = |name: &str| st.tensor(name).unwrap_or_else(|_| panic!("{name}")).shape().to_vec();
        assert_eq!(shape("feature_projection.projection.weight")[0], e);
        assert_eq!(shape("encoder.pos_conv_embed.conv.weight_v"), [e, e / 16, 128]);
        assert_eq!(shape("encoder.pos_conv_embed.conv.weight_g"), [1, 1, 128]);
        assert_eq!(shape(&format!("encoder.layers.{}.attention.q_proj.weight", layers - 1)), [64 * h, e]);
        assert_eq!(shape(&format!("encoder.layers.{}.feed_forward.output_dense.weight", layers - 1)), [e, f]);
        assert!(st.tensor(&format!("encoder.layers.{layers}.attention.q_proj.weight")).is_err());
        let norms = st.names().iter().filter(|n| n.starts_with("feature_extractor.") && n.ends_with("layer_norm.weight")).count();
        assert_eq!(norms, conv_norms);
        // The reference's parameter count, to within the feature LayerNorm and conv biases.
        let stored: usize = st.tensors().iter().map(|(_, t)| t.shape().iter().product::<usize>()).sum();
        let file_bytes = bytes.len() as f64;
        assert!((file_bytes - 4.0 * stored as f64).abs() / file_bytes < 0.01, "{file_bytes} bytes for {stored} values");

        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["format"], "pt");
        assert_eq!(meta["lighthubert_checkpoint"], ckpt);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&meta["lighthubert_subnet"]).unwrap(), subnet);

        // The same export again (--force) writes the same bytes; f16 halves them, rounding each value.
        let again = export(dir.path(), &["--checkpoint", checkpoint.to_str().unwrap(), "--subnet", preset, "--format", "hf", "--out", out.to_str().unwrap(), "--force"]);
        assert!(again.status.success());
        assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), bytes);
        let half = dir.path().join(format!("{ckpt}-{preset}-f16"));
        let o = export(dir.path(), &["--checkpoint", checkpoint.to_str().unwrap(), "--subnet", preset, "--format", "hf", "--weights", "f16", "--out", half.to_str().unwrap()]);
        assert!(o.status.success());
        let half_bytes = std::fs::read(half.join("model.safetensors")).unwrap();
        let st16 = SafeTensors::deserialize(&half_bytes).unwrap();
        for (name, t) in st.tensors() {
            let t16 = st16.tensor(&name).unwrap();
            assert_eq!(t16.dtype(), safetensors::Dtype::F16);
            let want: Vec<u16> = t.data().chunks(4).map(|b| half::f16::from_f32(f32::from_le_bytes(b.try_into().unwrap())).to_bits()).collect();
            let got: Vec<u16> = t16.data().chunks(2).map(|b| u16::from_le_bytes(b.try_into().unwrap())).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}

#[test]
fn refusals_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = fixture("tiny-default.pt");
    let ckpt = ckpt.to_str().unwrap();
    // The tiny default subnet is 96 wide with 2 heads of 64: not a HubertModel.
    let out = dir.path().join("default");
    let o = export(dir.path(), &["--checkpoint", ckpt, "--subnet", "default", "--format", "hf", "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--subnet default: transformers' HubertModel cannot express this subnet: 2 heads of 64 make 128"), "{err}");
    assert!(!out.exists());
    // An existing export is kept without --force.
    let out = dir.path().join("max");
    assert!(export(dir.path(), &["--checkpoint", ckpt, "--subnet", "max", "--format", "hf", "--out", out.to_str().unwrap()]).status.success());
    std::fs::write(out.join("config.json"), b"mine").unwrap();
    let o = export(dir.path(), &["--checkpoint", ckpt, "--subnet", "max", "--format", "hf", "--out", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("config.json: already exists; pass --force"));
    assert_eq!(std::fs::read(out.join("config.json")).unwrap(), b"mine");
    // A folder that cannot be made.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for bad in [file.clone(), file.join("sub")] {
        let o = export(dir.path(), &["--checkpoint", ckpt, "--subnet", "max", "--format", "hf", "--out", bad.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.starts_with("error: ") && err.contains("a-file") && err.lines().count() == 1, "{err}");
    }
    assert_eq!(common::files_in(dir.path()).iter().filter(|p| p.to_string_lossy().contains(".partial")).count(), 0);
}

#[test]
fn a_standalone_file_runs_in_every_command_as_its_subnet_of_the_supernet() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ckpt, wav) = (fixture("tiny-layernorm-f16.pt"), fixture("speech.wav"));
    let (ckpt, wav) = (ckpt.to_str().unwrap(), wav.to_str().unwrap());
    let file = d.join("random7.safetensors");
    let file = file.to_str().unwrap();
    let o = export(d, &["--checkpoint", ckpt, "--subnet", "random:7", "--out", file]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("opens wherever a checkpoint does"));

    // extract: the same .npy as the supernet's subnet.
    let (a, b) = (d.join("a.npy"), d.join("b.npy"));
    let o = run(d, &["extract", "--checkpoint", ckpt, "--subnet", "random:7", "--layers", "all", wav, "--out", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(d, &["extract", "--checkpoint", file, "--layers", "all", wav, "--out", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "exported features differ from the supernet's");

    // info: what it is and where it came from.
    let o = run(d, &["info", file]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("exported     one subnet") && text.contains("cut from tiny-layernorm-f16.pt"), "{text}");
    assert!(text.contains("search space exported") && text.contains("every preset"), "{text}");

    // subnet: every preset is the exported one; another subnet is refused, naming the reason.
    let want = subnet_json(d, Path::new(ckpt), "random:7");
    for preset in ["default", "min", "max", "random:1"] {
        let mut got = subnet_json(d, Path::new(file), preset);
        got.as_object_mut().unwrap().remove("ffn_ratio");
        assert_eq!(got, want, "{preset}");
    }
    let other = d.join("max.json");
    std::fs::write(&other, serde_json::to_vec(&subnet_json(d, Path::new(ckpt), "max")).unwrap()).unwrap();
    let o = run(d, &["extract", "--checkpoint", file, "--subnet", other.to_str().unwrap(), wav, "--out", d.join("c.npy").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("one exported subnet") && err.lines().count() == 1, "{err}");

    // profile and search open it too; search has one subnet to measure.
    let o = run(d, &["profile", "--checkpoint", file, wav]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(d, &["search", "--checkpoint", file, "--budget-ms", "100000", "--audio-seconds", "1", "--runs", "1", "--table", d.join("t.json").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("nothing to search"), "{err}");
    let mut chosen: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    chosen.as_object_mut().unwrap().remove("ffn_ratio");
    assert_eq!(chosen, want);
    let o = run(d, &["search", "--checkpoint", file, "--budget-ms", "0.001", "--audio-seconds", "1", "--runs", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("search the checkpoint it was cut from"), "{err}");
}

#[test]
fn standalone_refusals_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ckpt = fixture("tiny-default.pt");
    let ckpt = ckpt.to_str().unwrap();
    let one_line_error = |o: &Output, needle: &str| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.starts_with("error: ") && err.contains(needle) && err.lines().count() == 1, "{err}");
    };
    // A subnet outside the space.
    let bad = d.join("bad.json");
    std::fs::write(&bad, br#"{"atten_dim":[64],"embed_dim":96,"ffn_embed":[1],"heads_num":[1],"layer_num":1,"slide_wsz":["global"]}"#).unwrap();
    let out = d.join("x.safetensors");
    one_line_error(&export(d, &["--checkpoint", ckpt, "--subnet", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]), "layer_num");
    assert!(!out.exists());
    // An existing file is kept without --force; a folder is not a file; a missing folder.
    std::fs::write(&out, b"mine").unwrap();
    one_line_error(&export(d, &["--checkpoint", ckpt, "--out", out.to_str().unwrap()]), "already exists; pass --force");
    assert_eq!(std::fs::read(&out).unwrap(), b"mine");
    one_line_error(&export(d, &["--checkpoint", ckpt, "--out", d.to_str().unwrap()]), "is a folder");
    one_line_error(&export(d, &["--checkpoint", ckpt, "--out", d.join("no/such/x.safetensors").to_str().unwrap()]), "its folder does not exist");
    // An unwritable folder (as root, permissions do not bind: the check is skipped there).
    let ro = d.join("read-only");
    std::fs::create_dir(&ro).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), b"").is_err() {
        one_line_error(&export(d, &["--checkpoint", ckpt, "--out", ro.join("x.safetensors").to_str().unwrap()]), "cannot write in its folder");
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    // --force replaces it with the same bytes every time.
    assert!(export(d, &["--checkpoint", ckpt, "--out", out.to_str().unwrap(), "--force"]).status.success());
    let first = std::fs::read(&out).unwrap();
    assert!(export(d, &["--checkpoint", ckpt, "--out", out.to_str().unwrap(), "--force"]).status.success());
    assert!(std::fs::read(&out).unwrap() == first);
    assert_eq!(common::files_in(d).iter().filter(|p| p.to_string_lossy().contains(".partial") || p.to_string_lossy().contains("write-test")).count(), 0);
}
