//! Reading audio files into the 16 kHz mono f32 the engine takes.
//!
//! WAV (RIFF) goes through `hound`: integer PCM of 8, 16, 24 or 32 bits and 32-bit float;
//! the WAV encodings hound does not read (64-bit float, A-law, mu-law) and FLAC, Ogg Vorbis
//! and MP3 go through `symphonia`. Several channels are averaged to mono;
//! any other rate is resampled to 16 kHz by [`crate::resample`]. Integer samples are scaled
//! by 1 / 2^(bits - 1), so full scale is [-1, 1) as in torchaudio and soundfile.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

pub mod error;
pub mod resample;

pub use error::AudioError;
use resample::{TARGET_RATE, To16k};

const NOT_AUDIO: &str = "not a readable audio file (expected WAV, FLAC, Ogg Vorbis or MP3)";

/// What a file's header says, read before any decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// e.g. `WAV 24-bit PCM`, `FLAC`, `Ogg Vorbis`, `MP3`.
    pub format: String,
    pub rate: u32,
    pub channels: usize,
    /// Frames (samples per channel) when the header tells.
    pub frames: Option<u64>,
}

impl AudioInfo {
    /// Samples after resampling to 16 kHz, when the header tells the length.
    pub fn frames_16k(&self) -> Option<u64> {
        self.frames.map(|f| (f as u128 * TARGET_RATE as u128 / self.rate.max(1) as u128) as u64)
    }

    pub fn seconds(&self) -> Option<f64> {
        self.frames.map(|f| f as f64 / self.rate.max(1) as f64)
    }
}

/// Decoded audio: mono at the file's own rate.
#[derive(Debug, Clone)]
pub struct MonoAudio {
    pub info: AudioInfo,
    pub samples: Vec<f32>,
}

fn is_wav(head: &[u8]) -> bool {
    head.starts_with(b"RIFF") || head.starts_with(b"RIFX") || head.starts_with(b"RF64")
}

/// Opens `path` and reads its first bytes, with the errors a user should see.
fn sniff(path: &Path) -> Result<Vec<u8>, AudioError> {
    let meta = std::fs::metadata(path).map_err(|e| AudioError::io(path, e))?;
    if meta.is_dir() {
        return Err(AudioError::unreadable(path, "is a directory, not an audio file"));
    }
    if meta.len() == 0 {
        return Err(AudioError::unreadable(path, "empty file (0 bytes)"));
    }
    let mut head = Vec::with_capacity(12);
    File::open(path)
        .map_err(|e| AudioError::io(path, e))?
        .take(12)
        .read_to_end(&mut head)
        .map_err(|e| AudioError::io(path, e))?;
    Ok(head)
}

/// Reads the header only: format, rate, channels and (when known) length.
pub fn probe(path: &Path) -> Result<AudioInfo, AudioError> {
    let head = sniff(path)?;
    let from_symphonia = || -> Result<AudioInfo, AudioError> {
        let (format, track_id) = open_symphonia(path)?;
        symphonia_info(path, format.as_ref(), track_id)
    };
    let info = if is_wav(&head) {
        match hound::WavReader::open(path) {
            Ok(reader) => wav_info(&reader),
            Err(e) if hound_refuses(&e) => from_symphonia().map_err(|_| wav_error(path, e))?,
            Err(e) => return Err(wav_error(path, e)),
        }
    } else {
        from_symphonia()?
    };
    check_info(path, &info)?;
    Ok(info)
}

fn check_info(path: &Path, info: &AudioInfo) -> Result<(), AudioError> {
    if info.rate == 0 {
        return Err(AudioError::unreadable(path, "the header gives a sample rate of 0 Hz"));
    }
    if info.channels == 0 {
        return Err(AudioError::unreadable(path, "the header gives 0 channels"));
    }
    if info.frames == Some(0) {
        return Err(AudioError::unreadable(path, "no audio samples"));
    }
    Ok(())
}

/// Decodes the whole file to mono at its own rate.
pub fn read_mono(path: &Path) -> Result<MonoAudio, AudioError> {
    let head = sniff(path)?;
    let audio = if is_wav(&head) {
        match hound::WavReader::open(path) {
            Ok(reader) => decode_wav(reader).map_err(|e| wav_error(path, e))?,
            Err(e) if hound_refuses(&e) => read_symphonia(path).map_err(|_| wav_error(path, e))?,
            Err(e) => return Err(wav_error(path, e)),
        }
    } else {
        read_symphonia(path)?
    };
    checked(path, audio)
}

/// What every decoded file must be: a sane header, samples, and only finite ones (a float WAV
/// can hold NaN or infinity).
fn checked(path: &Path, audio: MonoAudio) -> Result<MonoAudio, AudioError> {
    check_info(path, &audio.info)?;
    if audio.samples.is_empty() {
        return Err(AudioError::unreadable(path, "no audio samples"));
    }
    if let Some(i) = audio.samples.iter().position(|v| !v.is_finite()) {
        return Err(AudioError::NonFinite { path: path.to_path_buf(), index: i });
    }
    Ok(audio)
}

/// Decodes the whole file and brings it to 16 kHz mono; `min_samples` is the fewest 16 kHz
/// samples the model can take (one frame).
pub fn read_16k(path: &Path, resampler: &mut To16k, min_samples: usize) -> Result<(AudioInfo, Vec<f32>), AudioError> {
    let MonoAudio { info, samples } = read_mono(path)?;
    let wave = resampler.resample(&samples, info.rate).map_err(|e| AudioError::unreadable(path, e.to_string()))?;
    check_length(path, wave.len(), min_samples)?;
    Ok((info, wave))
}

/// The error for audio shorter than one frame of the model.
pub fn check_length(path: &Path, samples_16k: usize, min_samples: usize) -> Result<(), AudioError> {
    if samples_16k < min_samples {
        return Err(AudioError::TooShort { path: path.to_path_buf(), samples: samples_16k, min: min_samples });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// WAV through hound

fn wav_error(path: &Path, e: hound::Error) -> AudioError {
    match e {
        // hound reports a short read as "Failed to read enough bytes." (ErrorKind::Other).
        hound::Error::IoError(io)
            if io.kind() == ErrorKind::UnexpectedEof || io.to_string().contains("enough bytes") =>
        {
            AudioError::unreadable(path, "truncated WAV file (it ends inside the header or the data)")
        }
        hound::Error::IoError(io) => AudioError::io(path, io),
        hound::Error::FormatError(what) => AudioError::unreadable(path, format!("malformed WAV file: {what}")),
        hound::Error::Unsupported => AudioError::unreadable(
            path,
            "unsupported WAV encoding (integer PCM of 8, 16, 24 or 32 bits, or 32-bit float, are read)",
        ),
        other => AudioError::unreadable(path, format!("WAV: {other}")),
    }
}

/// Whether hound turned a WAV file down for its encoding (64-bit float, A-law, mu-law, ...):
/// such files go to symphonia, and hound's message stands if symphonia fails too.
fn hound_refuses(e: &hound::Error) -> bool {
    matches!(e, hound::Error::Unsupported | hound::Error::FormatError(_))
}

fn wav_info<R: Read>(reader: &hound::WavReader<R>) -> AudioInfo {
    let spec = reader.spec();
    let kind = match spec.sample_format {
        hound::SampleFormat::Float => format!("WAV {}-bit float", spec.bits_per_sample),
        hound::SampleFormat::Int => format!("WAV {}-bit PCM", spec.bits_per_sample),
    };
    AudioInfo {
        format: kind,
        rate: spec.sample_rate,
        channels: spec.channels as usize,
        frames: Some(reader.duration() as u64),
    }
}

/// Decodes a WAV file held in memory (`label` names it in errors).
pub fn read_wav_bytes(bytes: &[u8], label: &Path) -> Result<MonoAudio, AudioError> {
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|e| wav_error(label, e))?;
    let audio = decode_wav(reader).map_err(|e| wav_error(label, e))?;
    checked(label, audio)
}

fn decode_wav<R: Read>(mut reader: hound::WavReader<R>) -> Result<MonoAudio, hound::Error> {
    let info = wav_info(&reader);
    let spec = reader.spec();
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float if spec.bits_per_sample == 32 => {
            reader.samples::<f32>().collect::<Result<_, _>>()?
        }
        hound::SampleFormat::Int if (1..=32).contains(&spec.bits_per_sample) => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f64;
            reader.samples::<i32>().map(|s| s.map(|v| (v as f64 * scale) as f32)).collect::<Result<_, _>>()?
        }
        _ => return Err(hound::Error::Unsupported),
    };
    Ok(MonoAudio { samples: downmix(&interleaved, info.channels), info })
}

/// The average of the channels of interleaved frames (a trailing partial frame is dropped).
pub fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    match channels {
        0 => Vec::new(),
        1 => interleaved.to_vec(),
        c => interleaved.chunks_exact(c).map(|f| f.iter().sum::<f32>() / c as f32).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// FLAC, Ogg Vorbis, MP3 through symphonia

fn open_symphonia(path: &Path) -> Result<(Box<dyn FormatReader>, u32), AudioError> {
    let file = File::open(path).map_err(|e| AudioError::io(path, e))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let format = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| match e {
            SymphoniaError::IoError(io) if io.kind() != ErrorKind::UnexpectedEof => AudioError::io(path, io),
            _ => AudioError::unreadable(path, NOT_AUDIO),
        })?;
    let track_id = match format.default_track(TrackType::Audio) {
        Some(t) => t.id,
        None => return Err(AudioError::unreadable(path, "the file holds no audio track")),
    };
    Ok((format, track_id))
}

fn symphonia_info(path: &Path, format: &dyn FormatReader, track_id: u32) -> Result<AudioInfo, AudioError> {
    let track = format
        .tracks()
        .iter()
        .find(|t| t.id == track_id)
        .ok_or_else(|| AudioError::unreadable(path, "the file holds no audio track"))?;
    let params = track.codec_params.as_ref().and_then(|p| p.audio());
    let name = format.format_info().short_name.to_uppercase();
    let codec = params
        .map(|p| {
            symphonia::default::get_codecs().get_audio_decoder(p.codec).map(|d| d.codec.info.short_name.to_string())
        })
        .unwrap_or_default();
    let format_name = match (name.as_str(), codec.as_deref()) {
        ("OGG", Some(c)) => format!("Ogg {}", capitalise(c)),
        ("WAVE", Some(c)) => format!("WAV {c}"),
        (n, _) => n.to_string(),
    };
    let rate = params.and_then(|p| p.sample_rate).unwrap_or(0);
    let channels = params.and_then(|p| p.channels.as_ref()).map(|c| c.count()).unwrap_or(0);
    Ok(AudioInfo { format: format_name, rate, channels, frames: track.num_frames })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn read_symphonia(path: &Path) -> Result<MonoAudio, AudioError> {
    let (mut format, track_id) = open_symphonia(path)?;
    let mut info = symphonia_info(path, format.as_ref(), track_id)?;
    let params = format
        .tracks()
        .iter()
        .find(|t| t.id == track_id)
        .and_then(|t| t.codec_params.as_ref())
        .and_then(|p| p.audio())
        .cloned()
        .ok_or_else(|| AudioError::unreadable(path, "the audio track has no codec parameters"))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| AudioError::unreadable(path, format!("cannot decode this audio: {e}")))?;

    let mut mono = Vec::new();
    let mut scratch: Vec<f32> = Vec::new();
    let mut stream_rate: Option<u32> = None;
    let mut channels = 0usize;
    let mut bad_packets = 0usize;
    let mut good_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // The end of the bytes: whether that is early is judged below, against the header.
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::IoError(e)) => return Err(AudioError::io(path, e)),
            Err(e) => return Err(AudioError::unreadable(path, format!("damaged audio stream: {e}"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(b) => b,
            // One corrupt packet (common in MP3) is skipped, as players do.
            Err(SymphoniaError::DecodeError(_)) => {
                bad_packets += 1;
                continue;
            }
            Err(e) => return Err(AudioError::unreadable(path, format!("decoding failed: {e}"))),
        };
        let spec = buf.spec();
        let rate = spec.rate();
        match stream_rate {
            None => stream_rate = Some(rate),
            Some(r) if r != rate => {
                return Err(AudioError::unreadable(
                    path,
                    format!("the sample rate changes mid-stream ({r} Hz, then {rate} Hz)"),
                ));
            }
            _ => {}
        }
        channels = spec.channels().count();
        buf.copy_to_vec_interleaved(&mut scratch);
        mono.extend(downmix(&scratch, channels));
        good_packets += 1;
    }
    if good_packets == 0 && bad_packets > 0 {
        return Err(AudioError::unreadable(path, format!("all {bad_packets} audio packets are damaged")));
    }
    // A file cut short (a failed copy, a full disk) decodes cleanly up to the cut: only the
    // length its header promised tells. FLAC's STREAMINFO and Ogg's last granule position are
    // exact; MP3 lengths from a Xing/Info header count the encoder's padding, so a decode is
    // never shorter than them unless bytes are missing.
    if let Some(expected) = info.frames {
        let decoded = mono.len() as u64;
        if decoded < expected {
            return Err(AudioError::Truncated { path: path.to_path_buf(), expected, decoded });
        }
    }
    if let Some(r) = stream_rate {
        info.rate = r;
        info.channels = channels;
    }
    info.frames = Some(mono.len() as u64);
    Ok(MonoAudio { info, samples: mono })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages_channels() {
        assert_eq!(downmix(&[1.0, 3.0, -1.0, 1.0, 5.0], 2), vec![2.0, 0.0]);
        assert_eq!(downmix(&[0.5, 0.25], 1), vec![0.5, 0.25]);
    }

    #[test]
    fn reads_every_wav_width() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(u16, hound::SampleFormat, f32); 5] = [
            (8, hound::SampleFormat::Int, 1.0 / 128.0),
            (16, hound::SampleFormat::Int, 1.0 / 32768.0),
            (24, hound::SampleFormat::Int, 1.0 / 8_388_608.0),
            (32, hound::SampleFormat::Int, 1.0 / 2_147_483_648.0),
            (32, hound::SampleFormat::Float, 1e-7),
        ];
        for (bits, fmt, tol) in cases {
            let path = dir.path().join(format!("w{bits}{fmt:?}.wav"));
            let spec = hound::WavSpec { channels: 2, sample_rate: 22_050, bits_per_sample: bits, sample_format: fmt };
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            let full = (1i64 << (bits - 1)) as f64;
            for i in 0..500 {
                let (l, r) = (0.5 * (i as f64 / 500.0), -0.25);
                match fmt {
                    hound::SampleFormat::Float => {
                        w.write_sample(l as f32).unwrap();
                        w.write_sample(r as f32).unwrap();
                    }
                    hound::SampleFormat::Int => {
                        w.write_sample((l * full).round() as i32).unwrap();
                        w.write_sample((r * full).round() as i32).unwrap();
                    }
                }
            }
            w.finalize().unwrap();
            let info = probe(&path).unwrap();
            assert_eq!((info.rate, info.channels, info.frames), (22_050, 2, Some(500)));
            let a = read_mono(&path).unwrap();
            assert_eq!(a.samples.len(), 500);
            for (i, &v) in a.samples.iter().enumerate() {
                let want = (0.5 * (i as f64 / 500.0) - 0.25) / 2.0;
                assert!(
                    (v as f64 - want).abs() <= (tol as f64 * 2.0).max(1e-7),
                    "{bits}-bit {fmt:?} sample {i}: {v} vs {want}"
                );
            }
        }
    }

    /// WAV encodings hound refuses still read, through symphonia (files made by SoX).
    #[test]
    fn reads_wav_encodings_hound_does_not() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("f64.wav", wav_f64()), ("mulaw.wav", wav_mulaw())] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let info = probe(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((info.rate, info.channels), (8_000, 1), "{name}");
            assert!(info.format.starts_with("WAV pcm_"), "{}", info.format);
            let a = read_mono(&path).unwrap();
            assert_eq!(a.samples.len(), 4, "{name}");
            for (v, want) in a.samples.iter().zip([0.0, 0.5, -0.5, 0.25]) {
                assert!((v - want).abs() < 0.02, "{name}: {v} vs {want}");
            }
        }
    }

    fn riff(format_tag: u16, bits: u16, block_align: u16, data: &[u8], extra_fmt: &[u8]) -> Vec<u8> {
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&format_tag.to_le_bytes());
        fmt.extend_from_slice(&1u16.to_le_bytes()); // channels
        fmt.extend_from_slice(&8000u32.to_le_bytes());
        fmt.extend_from_slice(&(8000 * block_align as u32).to_le_bytes());
        fmt.extend_from_slice(&block_align.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes());
        fmt.extend_from_slice(extra_fmt);
        let mut body = b"WAVE".to_vec();
        body.extend_from_slice(b"fmt ");
        body.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        body.extend_from_slice(&fmt);
        if format_tag != 1 {
            body.extend_from_slice(b"fact");
            body.extend_from_slice(&4u32.to_le_bytes());
            body.extend_from_slice(&((data.len() / block_align as usize) as u32).to_le_bytes());
        }
        body.extend_from_slice(b"data");
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn wav_f64() -> Vec<u8> {
        let data: Vec<u8> = [0.0f64, 0.5, -0.5, 0.25].iter().flat_map(|v| v.to_le_bytes()).collect();
        riff(3, 64, 8, &data, &0u16.to_le_bytes())
    }

    fn wav_mulaw() -> Vec<u8> {
        // G.711 mu-law codes of 0, 0.5, -0.5, 0.25.
        riff(7, 8, 1, &[0xFF, 0x8F, 0x0F, 0x9F], &0u16.to_le_bytes())
    }

    /// A compressed file cut short is an error that says so, never shorter audio.
    #[test]
    fn cut_files_are_truncated_not_short() {
        let dir = tempfile::tempdir().unwrap();
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
        for name in ["speech-22k-stereo.flac", "speech-24k.ogg", "speech-44k.mp3"] {
            let whole = std::fs::read(data.join(name)).unwrap();
            assert!(read_mono(&data.join(name)).is_ok(), "{name} whole");
            let cut = dir.path().join(format!("cut-{name}"));
            std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
            match read_mono(&cut) {
                Err(AudioError::Truncated { expected, decoded, .. }) => {
                    assert!(decoded < expected, "{name}: {decoded} of {expected}");
                }
                // symphonia's Ogg reader seeks the last page for the length: without it the file
                // does not open at all.
                Err(AudioError::Unreadable { .. }) if name.ends_with(".ogg") => {}
                other => panic!("{name} cut in half: {:?}", other.map(|a| a.samples.len())),
            }
        }
        let cut = dir.path().join("cut-speech-22k-stereo.flac");
        let e = read_mono(&cut).unwrap_err().to_string();
        assert!(e.contains("cut-speech-22k-stereo.flac") && e.contains("truncated"), "{e}");
    }

    #[test]
    fn names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.wav");
        std::fs::write(&text, "this is not audio at all").unwrap();
        let e = probe(&text).unwrap_err().to_string();
        assert!(e.contains("notes.wav") && e.contains("not a readable audio file"), "{e}");

        let empty = dir.path().join("empty.flac");
        std::fs::write(&empty, b"").unwrap();
        assert!(probe(&empty).unwrap_err().to_string().contains("empty file"));

        let cut = dir.path().join("cut.wav");
        std::fs::write(&cut, b"RIFF\x24\x00\x00\x00WAVEfmt ").unwrap();
        let e = probe(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.wav") && e.contains("truncated"), "{e}");

        let missing = dir.path().join("missing.wav");
        let e = probe(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.wav") && e.contains("No such file"), "{e}");
    }
}
