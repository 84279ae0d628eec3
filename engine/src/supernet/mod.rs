//! Search spaces and subnets of the LightHuBERT supernet.

pub mod space;

pub use space::SearchSpace;
