//! The error of a setting given a name it does not know (`--weights f8`,
//! `LIGHTHUBERT_KERNELS=npu`): a leaf module, so every layer can name its choices with it.

use thiserror::Error;

/// `what` was given `given`; it takes one of `expected`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} `{given}` (expected {expected})")]
pub struct UnknownChoice {
    pub what: &'static str,
    pub given: String,
    pub expected: &'static str,
}

impl UnknownChoice {
    pub fn new(what: &'static str, given: &str, expected: &'static str) -> Self {
        UnknownChoice { what, given: given.to_string(), expected }
    }
}
