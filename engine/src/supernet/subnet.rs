//! Subnets in the authors' dict format, their validation, and the presets.

use serde::{Deserialize, Serialize};

use super::{LayerWidths, SearchSpace, SubnetError, SupernetDims};

/// Which supernet layers a subnet of a given depth keeps (the reference's `depth_maps`):
/// 12 keeps all, 11 drops layer 12, 10 drops layers 8 and 12 (1-based), and so on.
pub fn kept_layers(layer_num: usize) -> Option<Vec<usize>> {
    let map: [u8; 12] = match layer_num {
        6 => [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0],
        7 => [1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0],
        8 => [1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0],
        9 => [1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0],
        10 => [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0],
        11 => [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0],
        12 => [1; 12],
        _ => return None,
    };
    Some((0..12).filter(|&i| map[i] == 1).collect())
}

/// Which layers of a `supernet_layers`-deep supernet a subnet of `layer_num` layers runs: all
/// of them when the depths agree (an exported subnet is exactly as deep as its subnet), else
/// the depth map of LightHuBERT's 12-layer supernet.
pub fn kept_layers_of(supernet_layers: usize, layer_num: usize) -> Option<Vec<usize>> {
    if layer_num == supernet_layers {
        Some((0..layer_num).collect())
    } else if supernet_layers == 12 {
        kept_layers(layer_num)
    } else {
        None
    }
}

/// A subnet as the authors write it: one list entry per kept layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub atten_dim: Vec<usize>,
    pub embed_dim: usize,
    pub ffn_embed: Vec<usize>,
    pub heads_num: Vec<usize>,
    pub layer_num: usize,
    pub slide_wsz: Vec<serde_json::Value>,
    /// The reference's own default subnets also carry the ratios; accepted and checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ffn_ratio: Option<Vec<f64>>,
}

/// One kept layer of a subnet, resolved against the supernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerChoice {
    /// 0-based index of the supernet layer that runs.
    pub layer: usize,
    pub heads: usize,
    pub ffn: usize,
}

/// The reference computes ffn_embed as `int(ratio * embed_dim)`.
pub fn ffn_width(ratio: f64, embed_dim: usize) -> usize {
    (ratio * embed_dim as f64).floor() as usize
}

impl Subnet {
    /// Builds a subnet from uniform choices.
    pub fn uniform(embed_dim: usize, heads: usize, ffn: usize, layer_num: usize) -> Subnet {
        Subnet {
            atten_dim: vec![64 * heads; layer_num],
            embed_dim,
            ffn_embed: vec![ffn; layer_num],
            heads_num: vec![heads; layer_num],
            layer_num,
            slide_wsz: vec![serde_json::Value::from("global"); layer_num],
            ffn_ratio: None,
        }
    }

    pub fn from_json(text: &str) -> Result<Subnet, SubnetError> {
        serde_json::from_str(text).map_err(|e| SubnetError::Json(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The same layers and widths, whether or not either spells out its FFN ratios.
    pub fn same_layers(&self, other: &Subnet) -> bool {
        (self.embed_dim, self.layer_num, &self.heads_num, &self.atten_dim, &self.ffn_embed, &self.slide_wsz)
            == (other.embed_dim, other.layer_num, &other.heads_num, &other.atten_dim, &other.ffn_embed, &other.slide_wsz)
    }

    /// The kept layers with their widths, after [`Subnet::validate`] has passed; `layer` is
    /// that of a 12-layer supernet ([`super::Supernet::layers`] says which one a given
    /// supernet runs).
    pub fn layers(&self) -> Vec<LayerChoice> {
        self.layers_of(12)
    }

    /// [`Subnet::layers`] in a `supernet_layers`-deep supernet.
    pub fn layers_of(&self, supernet_layers: usize) -> Vec<LayerChoice> {
        kept_layers_of(supernet_layers, self.layer_num)
            .unwrap_or_default()
            .into_iter()
            .zip(self.heads_num.iter().zip(&self.ffn_embed))
            .map(|(layer, (&heads, &ffn))| LayerChoice { layer, heads, ffn })
            .collect()
    }

    /// Checks the subnet against the search space and against the checkpoint's tensors.
    pub fn validate(&self, space: &SearchSpace, dims: &SupernetDims) -> Result<(), SubnetError> {
        let n = self.layer_num;
        if !space.layer_num.contains(&n) {
            return Err(SubnetError::NotInSpace { field: "layer_num".into(), value: n.to_string(), allowed: format!("{:?}", space.layer_num) });
        }
        if kept_layers_of(dims.layers, n).is_none() {
            return Err(SubnetError::Unfit { field: "layer_num".into(), reason: format!("{n} layers cannot be taken from a {}-layer supernet", dims.layers) });
        }
        for (field, len) in [
            ("atten_dim", self.atten_dim.len()),
            ("ffn_embed", self.ffn_embed.len()),
            ("heads_num", self.heads_num.len()),
            ("slide_wsz", self.slide_wsz.len()),
        ] {
            if len != n {
                return Err(SubnetError::ListLength { field: field.into(), len, layer_num: n });
            }
        }
        if let Some(r) = self.ffn_ratio.as_ref().filter(|r| r.len() != n) {
            return Err(SubnetError::ListLength { field: "ffn_ratio".into(), len: r.len(), layer_num: n });
        }
        let e = self.embed_dim;
        if !space.embed_dim.contains(&e) {
            return Err(SubnetError::NotInSpace { field: "embed_dim".into(), value: e.to_string(), allowed: format!("{:?}", space.embed_dim) });
        }
        if e == 0 || e > dims.embed || e > dims.ffn_chunk || !e.is_multiple_of(dims.pos_conv_groups) {
            return Err(SubnetError::Unfit {
                field: "embed_dim".into(),
                reason: format!(
                    "{e} must be a multiple of the positional conv's {} groups and at most the supernet's {}",
                    dims.pos_conv_groups,
                    dims.embed.min(dims.ffn_chunk)
                ),
            });
        }
        for i in 0..n {
            let heads = self.heads_num[i];
            if !space.heads_num.contains(&heads) {
                return Err(SubnetError::NotInSpace { field: format!("heads_num[{i}]"), value: heads.to_string(), allowed: format!("{:?}", space.heads_num) });
            }
            if self.atten_dim[i] != 64 * heads {
                return Err(SubnetError::Inconsistent { field: format!("atten_dim[{i}]"), reason: format!("{} != 64 * heads_num[{i}] = {}", self.atten_dim[i], 64 * heads) });
            }
            let layer = kept_layers_of(dims.layers, n).unwrap_or_default()[i];
            let full = dims.layer_widths.get(layer).copied().unwrap_or(LayerWidths { attention: dims.attention, ffn: dims.ffn });
            if 64 * heads > full.attention {
                return Err(SubnetError::Unfit { field: format!("heads_num[{i}]"), reason: format!("{heads} heads need {} attention channels, the supernet has {}", 64 * heads, full.attention) });
            }
            let ffn = self.ffn_embed[i];
            let ratios: Vec<f64> = space.ffn_ratio.iter().copied().filter(|&r| ffn_width(r, e) == ffn).collect();
            if ratios.is_empty() {
                let allowed: Vec<usize> = space.ffn_ratio.iter().map(|&r| ffn_width(r, e)).collect();
                return Err(SubnetError::NotInSpace { field: format!("ffn_embed[{i}]"), value: ffn.to_string(), allowed: format!("int(ratio * {e}) for ratios {:?}: {allowed:?}", space.ffn_ratio) });
            }
            if let Some(r) = self.ffn_ratio.as_ref().filter(|r| ffn_width(r[i], e) != ffn) {
                return Err(SubnetError::Inconsistent { field: format!("ffn_ratio[{i}]"), reason: format!("int({} * {e}) != ffn_embed[{i}] = {ffn}", r[i]) });
            }
            if ffn > full.ffn || (ffn != full.ffn && ffn.div_ceil(e) > dims.ffn_chunks) {
                return Err(SubnetError::Unfit { field: format!("ffn_embed[{i}]"), reason: format!("{ffn} units do not fit the supernet's {} chunks of {}", dims.ffn_chunks, dims.ffn_chunk) });
            }
            match &self.slide_wsz[i] {
                serde_json::Value::String(s) if s == "global" => {}
                other => return Err(SubnetError::Unsupported { field: format!("slide_wsz[{i}]"), value: other.to_string() }),
            }
        }
        Ok(())
    }
}

/// The named subnets: `default`, `min`, `max` and `random:SEED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preset {
    Default,
    Min,
    Max,
    Random(u64),
}

impl std::str::FromStr for Preset {
    type Err = SubnetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Preset::Default),
            "min" => Ok(Preset::Min),
            "max" => Ok(Preset::Max),
            _ => match s.strip_prefix("random:").map(str::parse::<u64>) {
                Some(Ok(seed)) => Ok(Preset::Random(seed)),
                _ => Err(SubnetError::UnknownPreset(s.to_string())),
            },
        }
    }
}

/// SplitMix64: a tiny, fixed generator, so `random:SEED` names the same subnet on every
/// machine and version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn max_of<T: Copy + PartialOrd>(v: &[T]) -> T {
    v.iter().copied().fold(v[0], |a, b| if b > a { b } else { a })
}

fn min_of<T: Copy + PartialOrd>(v: &[T]) -> T {
    v.iter().copied().fold(v[0], |a, b| if b < a { b } else { a })
}

fn middle(v: &[usize]) -> usize {
    let mut s = v.to_vec();
    s.sort_unstable();
    s[s.len() / 2]
}

impl SearchSpace {
    /// The subnet a preset names in this space. `default` is the authors' default: the middle
    /// width and head count, the largest FFN ratio and depth (small: 384/6/1536/12; base:
    /// 640/10/2560/12).
    pub fn preset(&self, preset: &Preset) -> Subnet {
        let d = max_of(&self.layer_num);
        match preset {
            Preset::Default => {
                let e = middle(&self.embed_dim);
                Subnet::uniform(e, middle(&self.heads_num), ffn_width(max_of(&self.ffn_ratio), e), d)
            }
            Preset::Max => {
                let e = max_of(&self.embed_dim);
                Subnet::uniform(e, max_of(&self.heads_num), ffn_width(max_of(&self.ffn_ratio), e), d)
            }
            Preset::Min => {
                let e = min_of(&self.embed_dim);
                let d = min_of(&self.layer_num);
                Subnet::uniform(e, min_of(&self.heads_num), ffn_width(min_of(&self.ffn_ratio), e), d)
            }
            Preset::Random(seed) => {
                let mut rng = SplitMix64(*seed);
                let d = rng.pick(&self.layer_num);
                let e = rng.pick(&self.embed_dim);
                let mut s = Subnet::uniform(e, 1, 0, d);
                for i in 0..d {
                    s.ffn_embed[i] = ffn_width(rng.pick(&self.ffn_ratio), e);
                    s.heads_num[i] = rng.pick(&self.heads_num);
                    s.atten_dim[i] = 64 * s.heads_num[i];
                }
                s
            }
        }
    }
}
