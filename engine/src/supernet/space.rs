//! Search spaces: the choices a subnet may take for each dimension.

use serde::{Deserialize, Serialize};

/// The choices of one once-for-all search space, in the authors' vocabulary.
///
/// `heads_num` counts 64-wide heads; `ffn_ratio` multiplies the subnet's embed_dim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// Human name: `small`, `base`, or `custom` for a space stored in the checkpoint.
    pub name: String,
    pub embed_dim: Vec<usize>,
    pub heads_num: Vec<usize>,
    pub ffn_ratio: Vec<f64>,
    pub layer_num: Vec<usize>,
}

impl SearchSpace {
    /// The space of `lighthubert_small.pt` (`Supernet-Small.yaml`).
    pub fn small() -> Self {
        SearchSpace {
            name: "small".into(),
            embed_dim: vec![256, 384, 512],
            heads_num: vec![4, 6, 8],
            ffn_ratio: vec![3.0, 3.5, 4.0],
            layer_num: vec![10, 11, 12],
        }
    }

    /// The space of `lighthubert_base.pt` and `lighthubert_stage1.pt` (`Supernet-Base.yaml`).
    pub fn base() -> Self {
        SearchSpace {
            name: "base".into(),
            embed_dim: vec![512, 640, 768],
            heads_num: vec![8, 10, 12],
            ffn_ratio: vec![3.5, 4.0],
            layer_num: vec![12],
        }
    }
}
