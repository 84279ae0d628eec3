//! The WAV decoder the command line uses (hound plus our checks) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(audio) = lighthubert_tools::audio::read_wav_bytes(data, std::path::Path::new("fuzz.wav")) {
        assert!(audio.samples.iter().all(|v| v.is_finite()));
    }
});
