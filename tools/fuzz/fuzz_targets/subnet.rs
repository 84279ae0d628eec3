//! Subnet specs (presets and the authors' JSON dict) against the small and base spaces.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lighthubert::checkpoint::Checkpoint;
use lighthubert::Supernet;

/// The narrow test supernet of the fixtures (its own search space in the config).
fn supernet() -> &'static Supernet {
    static S: OnceLock<Supernet> = OnceLock::new();
    S.get_or_init(|| {
        let bytes = include_bytes!("../../../kernels-tests/fixtures/tiny-default.pt");
        let ckpt = Checkpoint::from_bytes(bytes, std::path::Path::new("tiny-default.pt")).expect("fixture reads");
        Supernet::from_config(&ckpt.config).expect("fixture supernet")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(subnet) = supernet().subnet(text) {
        // Anything accepted is valid, counts its parameters and round-trips through JSON.
        supernet().validate(&subnet).expect("an accepted subnet validates");
        let _ = supernet().parameter_count(&subnet);
        let again = supernet().subnet(&subnet.to_json()).expect("its JSON is accepted");
        assert_eq!(again, subnet);
    }
});
