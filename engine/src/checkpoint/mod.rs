//! Reader for the released `.pt` checkpoints (placeholder, being written).
