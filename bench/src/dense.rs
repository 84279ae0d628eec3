//! A dense copy of one subnet: a checkpoint whose tensors are exactly the subnet's slices of
//! the supernet and whose config has the subnet's widths, written in memory in the
//! `torch.save` format and read back with `Checkpoint::from_bytes`. Running it as its max
//! subnet computes the same function as running the subnet from the supernet buffers.

use std::io::{Cursor, Write};
use std::path::Path;

use lighthubert::checkpoint::{Checkpoint, ExtractorMode};
use lighthubert::supernet::SupernetDims;
use lighthubert::Subnet;
use zip::write::{SimpleFileOptions, ZipWriter};

/// Why a subnet has no dense copy (the dense model must be a valid supernet of its own).
pub fn unsupported(subnet: &Subnet) -> Option<String> {
    let layers = subnet.layers();
    let first = layers.first()?;
    if layers.iter().any(|l| l.heads != first.heads || l.ffn != first.ffn) {
        return Some("per-layer widths differ (a dense config has one head count and FFN width)".into());
    }
    if 64 * first.heads != subnet.embed_dim {
        return Some(format!(
            "attention width 64 x {} != embed_dim {} (a checkpoint config needs heads * 64 = embed)",
            first.heads, subnet.embed_dim
        ));
    }
    None
}

/// The supernet FFN unit behind subnet unit `j` (`engine/src/model.rs::ffn_units`).
fn ffn_unit(dims: &SupernetDims, embed: usize, ffn: usize, j: usize) -> usize {
    if ffn == dims.ffn || dims.ffn_chunks == 1 {
        return j;
    }
    let split = (ffn as f64 / (ffn as f64 / embed as f64)) as usize;
    (j / split) * dims.ffn_chunk + j % split
}

struct Tensor {
    key: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// Rows `rows` and columns `cols` of a row-major [_, in_full] matrix.
fn take(values: &[f32], in_full: usize, rows: impl Iterator<Item = usize>, cols: &[usize]) -> Vec<f32> {
    rows.flat_map(|r| cols.iter().map(move |&c| values[r * in_full + c])).collect()
}

/// Builds the dense checkpoint of `subnet` (which must pass [`unsupported`]).
pub fn dense_checkpoint(ckpt: &Checkpoint, dims: &SupernetDims, subnet: &Subnet) -> Result<Checkpoint, Box<dyn std::error::Error>> {
    let e = subnet.embed_dim;
    let choice = subnet.layers()[0];
    let (a, f) = (64 * choice.heads, choice.ffn);
    let (ef, af, ff) = (dims.embed, dims.attention, dims.ffn);
    let prefix = |n: usize| (0..n).collect::<Vec<_>>();
    let units: Vec<usize> = (0..f).map(|j| ffn_unit(dims, e, f, j)).collect();
    let mut out = Vec::new();
    for (key, t) in ckpt.tensors() {
        let v = &t.values;
        let mut push = |shape: Vec<usize>, values: Vec<f32>| out.push(Tensor { key: key.to_string(), shape, values });
        if key.starts_with("feature_extractor.") || key.starts_with("layer_norm.") {
            push(t.shape.clone(), v.clone());
        } else if key == "post_extract_proj.weight" {
            push(vec![e, t.shape[1]], v[..e * t.shape[1]].to_vec());
        } else if key.starts_with("encoder.pos_conv.") {
            continue; // below, from the effective weight
        } else if key.starts_with("encoder.layers.") {
            let name = key.splitn(4, '.').nth(3).unwrap_or("");
            match name {
                "self_attn.q_proj.weight" | "self_attn.k_proj.weight" | "self_attn.v_proj.weight" => {
                    push(vec![a, e], take(v, ef, 0..a, &prefix(e)))
                }
                "self_attn.q_proj.bias" | "self_attn.k_proj.bias" | "self_attn.v_proj.bias" => push(vec![a], v[..a].to_vec()),
                "self_attn.out_proj.weight" => push(vec![e, a], take(v, af, 0..e, &prefix(a))),
                "fc1.weight" => push(vec![f, e], take(v, ef, units.iter().copied(), &prefix(e))),
                "fc1.bias" => push(vec![f], units.iter().map(|&u| v[u]).collect()),
                "fc2.weight" => push(vec![e, f], take(v, ff, 0..e, &units)),
                _ if t.shape == [ef] => push(vec![e], v[..e].to_vec()), // biases and norms
                _ => return Err(format!("dense copy: unexpected tensor {key} {:?}", t.shape).into()),
            }
        } else if t.shape == [ef] {
            push(vec![e], v[..e].to_vec()); // post_extract_proj.bias, encoder.layer_norm.*
        } else {
            return Err(format!("dense copy: unexpected tensor {key} {:?}", t.shape).into());
        }
    }

    // Positional conv: the effective weight g * v / ||v|| of the FULL tensor (norm over dims 0
    // and 1 per tap), sliced to [E, E/groups, K]; stored as v' = slice, g' = ||slice|| so the
    // loader's weight norm gives the slice back.
    let k = dims.pos_conv_kernel;
    let gs_full = ef / dims.pos_conv_groups;
    let gs = e / dims.pos_conv_groups;
    let get = |a: &str, b: &str| ckpt.get(a).or_else(|| ckpt.get(b)).ok_or_else(|| format!("missing {a}"));
    let g = &get("encoder.pos_conv.0.weight_g", "encoder.pos_conv.0.parametrizations.weight.original0")?.values;
    let vfull = &get("encoder.pos_conv.0.weight_v", "encoder.pos_conv.0.parametrizations.weight.original1")?.values;
    let mut norm = vec![0f64; k];
    for (i, x) in vfull.iter().enumerate() {
        norm[i % k] += (*x as f64).powi(2);
    }
    let mut w = Vec::with_capacity(e * gs * k);
    for o in 0..e {
        for c in 0..gs {
            for tap in 0..k {
                let x = vfull[(o * gs_full + c) * k + tap] as f64;
                w.push((g[tap] as f64 * x / norm[tap].sqrt()) as f32);
            }
        }
    }
    let mut g2 = vec![0f64; k];
    for (i, x) in w.iter().enumerate() {
        g2[i % k] += (*x as f64).powi(2);
    }
    out.push(Tensor { key: "encoder.pos_conv.0.weight_g".into(), shape: vec![1, 1, k], values: g2.iter().map(|s| s.sqrt() as f32).collect() });
    out.push(Tensor { key: "encoder.pos_conv.0.weight_v".into(), shape: vec![e, gs, k], values: w });
    let bias = &ckpt.tensor("encoder.pos_conv.0.bias", &[ef])?.values;
    out.push(Tensor { key: "encoder.pos_conv.0.bias".into(), shape: vec![e], values: bias[..e].to_vec() });

    let bytes = torch_save(dims, subnet, a, f, &out)?;
    Ok(Checkpoint::from_bytes(&bytes, Path::new("<dense copy>"))?)
}

/// Protocol-2 pickle opcodes, as `torch.save` writes them.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, c: u8) -> &mut Self {
        self.0.push(c);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn int(&mut self, i: usize) -> &mut Self {
        self.0.push(b'J');
        self.0.extend_from_slice(&(i as i32).to_le_bytes());
        self
    }
    fn float(&mut self, f: f64) -> &mut Self {
        self.0.push(b'G');
        self.0.extend_from_slice(&f.to_be_bytes());
        self
    }
    fn bool(&mut self, b: bool) -> &mut Self {
        self.op(if b { 0x88 } else { 0x89 })
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }
    fn tuple(&mut self, v: &[usize]) -> &mut Self {
        self.op(b'(');
        v.iter().for_each(|&x| {
            self.int(x);
        });
        self.op(b't')
    }
    fn list(&mut self, items: impl IntoIterator<Item = f64>, ints: bool) -> &mut Self {
        self.op(b']');
        for x in items {
            if ints { self.int(x as usize) } else { self.float(x) };
            self.op(b'a');
        }
        self
    }
    fn tensor(&mut self, storage: &str, shape: &[usize]) -> &mut Self {
        let mut strides = vec![1; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        self.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        self.op(b'(').str("storage").global("torch", "FloatStorage").str(storage).str("cpu").int(shape.iter().product()).op(b't');
        self.op(b'Q').int(0).tuple(shape).tuple(&strides);
        self.bool(false).global("collections", "OrderedDict").op(b')').op(b'R');
        self.op(b't').op(b'R')
    }
}

fn torch_save(dims: &SupernetDims, subnet: &Subnet, a: usize, f: usize, tensors: &[Tensor]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let e = subnet.embed_dim;
    let conv = dims.conv_layers.iter().map(|l| format!("[({},{},{})]", l.channels, l.kernel, l.stride)).collect::<Vec<_>>().join(" + ");
    let mut p = Pickle::default();
    p.0.extend_from_slice(&[0x80, 2]);
    p.op(b'}').op(b'(').str("cfg").op(b'}').op(b'(').str("model").op(b'}').op(b'(');
    p.str("_name").str("hubert_pruner");
    p.str("extractor_mode").str(match dims.extractor_mode { ExtractorMode::LayerNorm => "layer_norm", ExtractorMode::Default => "default" });
    p.str("conv_feature_layers").str(&conv);
    p.str("conv_bias").bool(dims.conv_bias);
    p.str("encoder_layers").int(dims.layers);
    p.str("encoder_embed_dim").int(e);
    p.str("encoder_ffn_embed_dim").int(f);
    p.str("encoder_attention_heads").int(a / 64);
    p.str("conv_pos").int(dims.pos_conv_kernel);
    p.str("conv_pos_groups").int(dims.pos_conv_groups);
    p.str("search_space").op(b'}').op(b'(');
    p.str("embed_dim").list([e as f64], true);
    p.str("heads_num").list([(a / 64) as f64], true);
    p.str("ffn_ratio").list([f as f64 / e as f64], false);
    p.str("layer_num").list([subnet.layer_num as f64], true);
    p.op(b'u');
    p.op(b'u').op(b'u'); // end cfg.model, end cfg
    p.str("model").global("collections", "OrderedDict").op(b')').op(b'R').op(b'(');
    for (i, t) in tensors.iter().enumerate() {
        p.str(&t.key).tensor(&i.to_string(), &t.shape);
    }
    p.op(b'u').op(b'u').op(b'.');

    let mut z = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(true);
    z.start_file("dense/data.pkl", opts)?;
    z.write_all(&p.0)?;
    z.start_file("dense/byteorder", opts)?;
    z.write_all(b"little")?;
    for (i, t) in tensors.iter().enumerate() {
        z.start_file(format!("dense/data/{i}"), opts)?;
        z.write_all(&t.values.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())?;
    }
    z.start_file("dense/version", opts)?;
    z.write_all(b"3\n")?;
    Ok(z.finish()?.into_inner())
}
