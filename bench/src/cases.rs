//! What is measured: the subnets, the audio, and one timed forward pass.

use lighthubert::{LightHubert, Preset, SearchSpace, Subnet};

/// A named subnet: `small:default`, `base:max`, `ckpt:min`, `random:3`...
#[derive(Debug, Clone)]
pub struct NamedSubnet {
    pub name: String,
    pub subnet: Subnet,
}

/// Both released spaces in one: the override the harness installs on a full-size checkpoint
/// so that `forward_batch`'s validation accepts small AND base subnets (their widths all fit a
/// 768-wide supernet; only the space membership check would refuse the other space).
pub fn union_space() -> SearchSpace {
    let (s, b) = (SearchSpace::small(), SearchSpace::base());
    let merge = |x: &[usize], y: &[usize]| {
        let mut v: Vec<usize> = x.iter().chain(y).copied().collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut ratios: Vec<f64> = s.ffn_ratio.iter().chain(&b.ffn_ratio).copied().collect();
    ratios.sort_by(f64::total_cmp);
    ratios.dedup();
    SearchSpace {
        name: "small+base".into(),
        embed_dim: merge(&s.embed_dim, &b.embed_dim),
        heads_num: merge(&s.heads_num, &b.heads_num),
        ffn_ratio: ratios,
        layer_num: merge(&s.layer_num, &b.layer_num),
    }
}

/// Resolves `SPACE:PRESET` (SPACE = small | base | ckpt; PRESET = default | min | max | random:N).
pub fn named(model: &LightHubert, spec: &str) -> Result<NamedSubnet, String> {
    let (space, preset) = spec.split_once(':').ok_or_else(|| format!("subnet `{spec}`: expected SPACE:PRESET"))?;
    let preset: Preset = preset.parse().map_err(|e| format!("{e}"))?;
    let subnet = match space {
        "small" => SearchSpace::small().preset(&preset),
        "base" => SearchSpace::base().preset(&preset),
        "ckpt" => model.supernet().preset(&preset),
        other => return Err(format!("unknown space `{other}` (small, base or ckpt)")),
    };
    model.supernet().validate(&subnet).map_err(|e| format!("subnet `{spec}`: {e}"))?;
    Ok(NamedSubnet { name: spec.to_string(), subnet })
}

/// The default subnets: both released spaces on a full-size file, else the checkpoint's own.
pub fn default_subnets(full: bool) -> Vec<&'static str> {
    if full {
        vec!["small:default", "small:min", "base:default", "base:max"]
    } else {
        vec!["ckpt:default", "ckpt:min", "ckpt:max"]
    }
}

/// The deterministic test signal, mirrored bit for bit by tools/bench_pytorch.py.
pub fn test_signal(samples: usize) -> Vec<f32> {
    (0..samples)
        .map(|i| {
            let i = i as f64;
            (0.3 * (0.013 * i).sin() + 0.1 * (0.0031 * i + 0.5).sin()) as f32
        })
        .collect()
}

pub fn samples(seconds: f64) -> usize {
    (seconds * 16_000.0).round() as usize
}

/// One forward pass as a user runs it: s3prl normalisation on, every hidden state read back.
pub fn forward(model: &LightHubert, subnet: &Subnet, wave: &[f32]) -> lighthubert::Result<usize> {
    Ok(model.forward_batch(subnet, &[wave], true)?[0].frames)
}
