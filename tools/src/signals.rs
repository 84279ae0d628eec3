//! SIGINT and SIGTERM during a corpus run: the first sets a flag the run checks between
//! batches (it finishes the batch in flight, so every output it leaves is complete and
//! recorded); a second one exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

pub struct Signals {
    /// Set by either signal: stop after the batch in flight.
    pub stop: Arc<AtomicBool>,
    interrupt: Arc<AtomicBool>,
    terminate: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers. Where it cannot (an unusual platform), runs go on without.
    pub fn install() -> Signals {
        let s = Signals {
            stop: Arc::new(AtomicBool::new(false)),
            interrupt: Arc::new(AtomicBool::new(false)),
            terminate: Arc::new(AtomicBool::new(false)),
        };
        for (signal, seen, code) in [(SIGINT, &s.interrupt, 130), (SIGTERM, &s.terminate, 143)] {
            // Registered first, so it sees the flag as the previous signal left it: a second
            // signal exits with the same status the first would have.
            let _ = signal_hook::flag::register_conditional_shutdown(signal, code, s.stop.clone());
            let _ = signal_hook::flag::register(signal, s.stop.clone());
            let _ = signal_hook::flag::register(signal, seen.clone());
        }
        s
    }

    /// The signal that stopped the run, as (name, exit status 128 + number).
    pub fn received(&self) -> Option<(&'static str, u8)> {
        if self.terminate.load(Ordering::Relaxed) {
            Some(("SIGTERM", 143))
        } else if self.interrupt.load(Ordering::Relaxed) || self.stop.load(Ordering::Relaxed) {
            Some(("SIGINT", 130))
        } else {
            None
        }
    }
}
