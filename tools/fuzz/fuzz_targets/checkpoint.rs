//! The checkpoint reader on arbitrary bytes: zip, pickle, storages, config. Any input must give
//! a checkpoint or an error, never a panic, a hang or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lighthubert::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(ckpt) = Checkpoint::from_bytes(data, std::path::Path::new("fuzz.pt")) {
        // Whatever parsed must also describe itself and build a supernet or refuse to.
        let _ = ckpt.dtype_summary();
        let _ = lighthubert::Supernet::from_config(&ckpt.config);
    }
});
