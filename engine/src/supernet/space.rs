//! Search spaces: the choices a subnet may take for each dimension.

use serde::{Deserialize, Serialize};

use super::{ffn_width, Subnet, SubnetError};
use crate::checkpoint::StoredSpace;

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

    /// The smallest space that holds `subnet`: an exported file's. Its FFN ratios are the
    /// subnet's own when it names them, else each width over the embed_dim.
    pub fn holding(subnet: &Subnet) -> Result<Self, SubnetError> {
        let e = subnet.embed_dim.max(1);
        let ratios: Vec<f64> = match &subnet.ffn_ratio {
            Some(r) => r.clone(),
            None => subnet.ffn_embed.iter().map(|&f| f as f64 / e as f64).collect(),
        };
        if ratios.len() != subnet.ffn_embed.len() || ratios.iter().zip(&subnet.ffn_embed).any(|(&r, &f)| ffn_width(r, e) != f) {
            return Err(SubnetError::BadExport(format!("its ffn_ratio {ratios:?} does not give its ffn_embed {:?}", subnet.ffn_embed)));
        }
        let distinct = |mut v: Vec<usize>| {
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut ffn_ratio = ratios;
        ffn_ratio.sort_by(f64::total_cmp);
        ffn_ratio.dedup();
        Ok(SearchSpace {
            name: "exported".into(),
            embed_dim: vec![subnet.embed_dim],
            heads_num: distinct(subnet.heads_num.clone()),
            ffn_ratio,
            layer_num: vec![subnet.layer_num],
        })
    }

    /// A space stored with a checkpoint.
    pub fn custom(stored: &StoredSpace) -> Self {
        SearchSpace {
            name: "custom".into(),
            embed_dim: stored.embed_dim.clone(),
            heads_num: stored.heads_num.clone(),
            ffn_ratio: stored.ffn_ratio.clone(),
            layer_num: stored.layer_num.clone(),
        }
    }

    /// This space as a checkpoint stores it (its name aside).
    pub fn to_stored(&self) -> StoredSpace {
        StoredSpace { embed_dim: self.embed_dim.clone(), heads_num: self.heads_num.clone(), ffn_ratio: self.ffn_ratio.clone(), layer_num: self.layer_num.clone() }
    }
}
