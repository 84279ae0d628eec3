//! The feature-extraction API: batches of waveforms in, chosen hidden states out.

use crate::error::{Error, Result};
use crate::model::LightHubert;
use crate::supernet::Subnet;

/// Which hidden states to return. Index 0 is the post_extract_proj output, index i >= 1 the
/// output of the i-th kept layer.
///
/// The text form ([`FromStr`](std::str::FromStr)) is `all`, or a comma-separated list whose
/// items are an index (`4`), an index counted from the end (`-1` is the last hidden state,
/// `-2` the one before), `last` (the same as `-1`) or an inclusive range of indices (`3-6`).
/// A list of plain indices parses to [`LayerSelection::Indices`]; one that needs the subnet's
/// depth to mean anything parses to [`LayerSelection::Items`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayerSelection {
    #[default]
    All,
    Indices(Vec<usize>),
    /// Items resolved against the subnet's state count, in the order written.
    Items(Vec<LayerItem>),
}

/// One item of a layer list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerItem {
    /// A hidden state counted from the start (0 is the post_extract_proj output).
    Index(usize),
    /// A hidden state counted from the end: 1 is the last (`-1`, `last`), 2 the one before.
    FromEnd(usize),
    /// Every index from the first to the second, both included (`3-6`); start <= end.
    Range(usize, usize),
}

/// Digits only: `usize::from_str` would also take `+4`, which is no form we document.
fn parse_count(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl LayerItem {
    fn parse(item: &str, spec: &str) -> Result<Self> {
        let bad = || Error::BadLayerList(spec.to_string());
        let item = item.trim();
        if item.eq_ignore_ascii_case("last") {
            return Ok(LayerItem::FromEnd(1));
        }
        if let Some(count) = item.strip_prefix('-') {
            // `-0` would read as the first state to some and the last to others: refuse it.
            return parse_count(count).filter(|&k| k > 0).map(LayerItem::FromEnd).ok_or_else(bad);
        }
        if let Some((a, b)) = item.split_once('-') {
            let (start, end) = parse_count(a.trim()).zip(parse_count(b.trim())).ok_or_else(bad)?;
            if start > end {
                return Err(Error::BackwardLayerRange { spec: spec.to_string(), start, end });
            }
            return Ok(LayerItem::Range(start, end));
        }
        parse_count(item).map(LayerItem::Index).ok_or_else(bad)
    }
}

impl std::str::FromStr for LayerSelection {
    type Err = Error;
    /// `all`, or a comma-separated list of indices (`0,4,12`), indices from the end (`-1`,
    /// `last`) and inclusive ranges (`3-6`).
    fn from_str(s: &str) -> Result<Self> {
        if s.trim().eq_ignore_ascii_case("all") {
            return Ok(LayerSelection::All);
        }
        let items = s.split(',').map(|p| LayerItem::parse(p, s)).collect::<Result<Vec<_>>>()?;
        // Plain indices keep the form callers have always built and compared against.
        let plain: Option<Vec<usize>> = items
            .iter()
            .map(|i| match i {
                LayerItem::Index(i) => Some(*i),
                _ => None,
            })
            .collect();
        Ok(match plain {
            Some(indices) => LayerSelection::Indices(indices),
            None => LayerSelection::Items(items),
        })
    }
}

impl LayerSelection {
    /// The indices this selection names for a subnet with `states` hidden states, in the
    /// order written (a range in ascending order).
    pub fn resolve(&self, states: usize) -> Result<Vec<usize>> {
        let check = |index: usize| {
            if index < states { Ok(index) } else { Err(Error::LayerOutOfRange { index, available: states }) }
        };
        match self {
            LayerSelection::All => Ok((0..states).collect()),
            LayerSelection::Indices(v) => v.iter().map(|&i| check(i)).collect(),
            LayerSelection::Items(items) => {
                let mut out = Vec::new();
                for item in items {
                    match *item {
                        LayerItem::Index(i) => out.push(check(i)?),
                        LayerItem::FromEnd(k) => match states.checked_sub(k) {
                            Some(i) => out.push(i),
                            None => return Err(Error::LayerFromEndOutOfRange { from_end: k, available: states }),
                        },
                        // Checking the end first keeps a huge range from being expanded.
                        LayerItem::Range(start, end) => {
                            check(end)?;
                            out.extend(start..=end);
                        }
                    }
                }
                Ok(out)
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
    /// `sum_i weights[i] * states[i]`, the layer mix downstream tasks apply ([frames, embed]).
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
            for mut h in self.forward_batch(subnet, group, normalize)? {
                // Each state moves out at its last mention: only a state named twice is copied.
                let states = (0..indices.len())
                    .map(|k| {
                        let i = indices[k];
                        if indices[k + 1..].contains(&i) { h.states[i].clone() } else { std::mem::take(&mut h.states[i]) }
                    })
                    .collect();
                out.push(Features { frames: h.frames, embed: h.embed, layer_indices: indices.clone(), states });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<LayerSelection> {
        s.parse()
    }

    #[test]
    fn plain_indices_keep_the_indices_form() {
        assert_eq!(parse("0,4,12").unwrap(), LayerSelection::Indices(vec![0, 4, 12]));
        assert_eq!(parse(" 3 , 1 ").unwrap(), LayerSelection::Indices(vec![3, 1]));
        assert_eq!(parse("all").unwrap(), LayerSelection::All);
        assert_eq!(parse(" ALL ").unwrap(), LayerSelection::All);
    }

    #[test]
    fn every_item_form_resolves_in_the_order_written() {
        // 13 states: indices 0 to 12.
        let cases: &[(&str, &[usize])] = &[
            ("-1", &[12]),
            ("last", &[12]),
            ("-2,-13", &[11, 0]),
            ("3-6", &[3, 4, 5, 6]),
            ("5-5", &[5]),
            ("0,last,3-4,-3", &[0, 12, 3, 4, 10]),
            (" 10 - 12 , 0 ", &[10, 11, 12, 0]),
            ("all", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
        ];
        for (spec, want) in cases {
            assert_eq!(parse(spec).unwrap().resolve(13).unwrap(), *want, "{spec}");
        }
        assert_eq!(
            parse("-1,3-4").unwrap(),
            LayerSelection::Items(vec![LayerItem::FromEnd(1), LayerItem::Range(3, 4)])
        );
    }

    #[test]
    fn malformed_lists_are_refused() {
        for spec in ["", ",", "1,", "1,x", "-0", "--1", "+4", "3-", "-3-5", "3--1", "1-2-3", "last,all", "first", "1.5"] {
            assert!(matches!(parse(spec), Err(Error::BadLayerList(s)) if s == spec), "{spec}");
        }
        match parse("0,6-3") {
            Err(e @ Error::BackwardLayerRange { start: 6, end: 3, .. }) => {
                assert_eq!(e.to_string(), "layer list `0,6-3`: the range 6-3 runs backwards (write 3-6)")
            }
            other => panic!("{other:?}"),
        }
        let message = parse("x").unwrap_err().to_string();
        for form in ["`all`", "`last`", "0,4,12", "-1", "3-6"] {
            assert!(message.contains(form), "{message}");
        }
    }

    #[test]
    fn missing_states_are_refused_with_both_ways_of_counting() {
        let e = parse("-14").unwrap().resolve(13).unwrap_err();
        assert!(matches!(e, Error::LayerFromEndOutOfRange { from_end: 14, available: 13 }));
        assert_eq!(e.to_string(), "hidden state -14 does not exist: this subnet has 13 (0 to 12, or -13 to -1)");
        let e = parse("13").unwrap().resolve(13).unwrap_err();
        assert!(matches!(e, Error::LayerOutOfRange { index: 13, available: 13 }));
        assert_eq!(e.to_string(), "hidden state 13 does not exist: this subnet has 13 (0 to 12, or -13 to -1)");
        // A range reports its end, without being expanded first.
        let e = parse("2-18446744073709551615").unwrap().resolve(13).unwrap_err();
        assert!(matches!(e, Error::LayerOutOfRange { index: usize::MAX, available: 13 }));
        assert!(parse("last").unwrap().resolve(0).unwrap_err().to_string().ends_with("has 0 (none)"));
        assert!(LayerSelection::Indices(vec![0, 3]).resolve(3).is_err());
        assert_eq!(LayerSelection::Indices(vec![0, 3]).resolve(4).unwrap(), [0, 3]);
    }
}
