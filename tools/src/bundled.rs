//! The demo that ships inside the binary: a tiny checkpoint and a speech clip.

use std::path::Path;

/// `tools/assets/tiny-layernorm-f16.pt`: the official checkpoint format (zip,
/// pickle, float16 storages, `layer_norm` extractor) around a narrow 12-layer supernet with
/// RANDOM weights. It exercises the engine; its features mean nothing.
pub const CHECKPOINT: &[u8] = include_bytes!("../assets/tiny-layernorm-f16.pt");
pub const CHECKPOINT_NAME: &str = "tiny-layernorm-f16.pt";

/// `tools/assets/speech.wav`: 2.83 s of espeak-ng saying "A tiny supernet listens to
/// every word we say.", 16 kHz mono 16-bit.
pub const CLIP: &[u8] = include_bytes!("../assets/speech.wav");
pub const CLIP_NAME: &str = "speech.wav";

/// How errors and metadata name the bundled checkpoint.
pub fn checkpoint_label() -> String {
    format!("bundled demo checkpoint {CHECKPOINT_NAME} (random weights)")
}

/// The name the checkpoint reader's messages use for the bundled file.
pub fn checkpoint_path() -> &'static Path {
    Path::new("<bundled>/tiny-layernorm-f16.pt")
}
