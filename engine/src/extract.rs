//! The feature-extraction API: batches of waveforms in, chosen hidden states out.

use crate::error::{Error, Result};
use crate::model::LightHubert;
use crate::supernet::Subnet;

/// Which hidden states to return. Index 0 is the post_extract_proj output, index i >= 1 the
/// output of the i-th kept layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayerSelection {
    #[default]
    All,
    Indices(Vec<usize>),
}

impl std::str::FromStr for LayerSelection {
    type Err = Error;
    /// `all` or a comma-separated list such as `0,4,12`.
    fn from_str(s: &str) -> Result<Self> {
        if s.trim() == "all" {
            return Ok(LayerSelection::All);
        }
        let indices = s
            .split(',')
            .map(|p| p.trim().parse::<usize>().map_err(|_| Error::BadLayerList(s.to_string())))
            .collect::<Result<Vec<_>>>()?;
        if indices.is_empty() {
            return Err(Error::BadLayerList(s.to_string()));
        }
        Ok(LayerSelection::Indices(indices))
    }
}

impl LayerSelection {
    /// The indices this selection names for a subnet with `states` hidden states.
    pub fn resolve(&self, states: usize) -> Result<Vec<usize>> {
        match self {
            LayerSelection::All => Ok((0..states).collect()),
            LayerSelection::Indices(v) => {
                if let Some(&index) = v.iter().find(|&&i| i >= states) {
                    return Err(Error::LayerOutOfRange { index, available: states });
                }
                Ok(v.clone())
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// s3prl's per-utterance waveform normalisation. `None`: the checkpoint's
    /// `cfg.task.normalize` when present, else off.
    pub normalize: Option<bool>,
    pub layers: LayerSelection,
}

/// The features of one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// floor((samples - 400) / 320) + 1 for the released extractor: this utterance's own count.
    pub frames: usize,
    pub embed: usize,
    /// Which hidden state each entry of `states` is.
    pub layer_indices: Vec<usize>,
    /// Each [frames, embed], row-major.
    pub states: Vec<Vec<f32>>,
}

impl Features {
    /// sum_i weights[i] * states[i], the layer mix downstream tasks apply ([frames, embed]).
    pub fn weighted_sum(&self, weights: &[f32]) -> Result<Vec<f32>> {
        if weights.len() != self.states.len() {
            return Err(Error::WeightCount { weights: weights.len(), states: self.states.len() });
        }
        let mut out = vec![0f32; self.frames * self.embed];
        for (w, s) in weights.iter().zip(&self.states) {
            for (o, v) in out.iter_mut().zip(s) {
                *o += w * v;
            }
        }
        Ok(out)
    }
}

impl LightHubert {
    /// The normalisation `extract` applies when the options leave it open.
    pub fn default_normalize(&self) -> bool {
        self.task_normalize().unwrap_or(false)
    }

    /// Runs `subnet` on several waveforms (16 kHz mono) as one padded batch. Each utterance's
    /// features equal what it gives alone: padding never reaches its statistics, its
    /// positional conv or its attention keys.
    pub fn extract(&self, subnet: &Subnet, waveforms: &[&[f32]], options: &ExtractOptions) -> Result<Vec<Features>> {
        if waveforms.is_empty() {
            return Ok(Vec::new());
        }
        self.supernet().validate(subnet)?;
        let indices = options.layers.resolve(subnet.layer_num + 1)?;
        let normalize = options.normalize.unwrap_or_else(|| self.default_normalize());
        let mut out = Vec::with_capacity(waveforms.len());
        for group in self.split_to_fit(subnet, waveforms)? {
            for h in self.forward_batch(subnet, group, normalize)? {
                out.push(Features {
                    frames: h.frames,
                    embed: h.embed,
                    layer_indices: indices.clone(),
                    states: indices.iter().map(|&i| h.states[i].clone()).collect(),
                });
            }
        }
        Ok(out)
    }

    /// Consecutive runs of waveforms whose padded batch fits the device's limits. Results do
    /// not depend on the grouping, since every utterance's features are batch-invariant.
    fn split_to_fit<'w>(&self, subnet: &Subnet, waveforms: &'w [&'w [f32]]) -> Result<Vec<&'w [&'w [f32]]>> {
        let mut groups = Vec::new();
        let mut start = 0;
        while start < waveforms.len() {
            let first = waveforms[start].len();
            if !self.fits(subnet, 1, first) {
                return Err(Error::TooLongForDevice { index: start, samples: first, limit_bytes: self.activation_limit() });
            }
            let mut end = start + 1;
            let mut longest = first;
            while end < waveforms.len() {
                let l = longest.max(waveforms[end].len());
                if !self.fits(subnet, end + 1 - start, l) {
                    break;
                }
                longest = l;
                end += 1;
            }
            groups.push(&waveforms[start..end]);
            start = end;
        }
        Ok(groups)
    }
}
