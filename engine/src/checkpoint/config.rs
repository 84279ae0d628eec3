//! The model configuration stored in `cfg['model']`, with the authors' defaults
//! (`LightHuBERTConfig` in `lighthubert.py`) for missing fields.
//!
//! Field types are checked strictly: a wrong type is an error naming the field, because a
//! silently coerced architecture value would load weights into the wrong shapes.

use super::pickle::PyValue;

/// The authors' default for `conv_feature_layers`.
pub const DEFAULT_CONV_FEATURE_LAYERS: &str = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2";

/// Most conv blocks a `conv_feature_layers` expression may expand to (the real one has 7).
const MAX_CONV_LAYERS: usize = 1024;

/// A config problem: the dotted field (`cfg.model.encoder_layers`) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// Normalisation inside the conv feature extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractorMode {
    /// GroupNorm in the first block only (`"default"`).
    Default,
    /// LayerNorm in every block (`"layer_norm"`; also the meaning of a missing field).
    LayerNorm,
}

/// One block of the conv feature extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvLayerSpec {
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl ConvLayerSpec {
    /// Frames this block makes from `len` input frames (samples, for the first block):
    /// (len - kernel) / stride + 1, or 0 when `len` is shorter than the kernel.
    pub fn out_len(&self, len: usize) -> usize {
        len.checked_sub(self.kernel).map_or(0, |d| d / self.stride + 1)
    }
}

/// A search space stored with a checkpoint (`cfg.model.search_space`, our extension), as
/// plain lists: the supernet module turns it into a `SearchSpace`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSpace {
    pub embed_dim: Vec<usize>,
    pub heads_num: Vec<usize>,
    pub ffn_ratio: Vec<f64>,
    pub layer_num: Vec<usize>,
}

/// The architecture fields inference needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// `cfg.model._name`, e.g. `hubert_pruner` or `student_hubert`.
    pub name: String,
    /// `cfg.model.pruner_supernet`, a path ending in `Supernet-Small.yaml` / `-Base.yaml`.
    pub pruner_supernet: Option<String>,
    /// Our extension: `cfg.model.search_space`, a space stored with the checkpoint.
    pub search_space: Option<StoredSpace>,
    pub extractor_mode: ExtractorMode,
    pub conv_layers: Vec<ConvLayerSpec>,
    pub conv_bias: bool,
    pub encoder_layers: usize,
    pub encoder_embed_dim: usize,
    pub encoder_ffn_embed_dim: usize,
    pub encoder_attention_heads: usize,
    pub conv_pos: usize,
    pub conv_pos_groups: usize,
    pub layer_norm_first: bool,
    pub pos_conv_depth: usize,
    /// Set for an exported subnet file (`lighthubert export`): the one subnet its dense
    /// tensors hold, as the authors' JSON (the supernet module parses and checks it). The
    /// encoder widths above are then that subnet's (the widest layer's).
    pub exported_subnet: Option<String>,
}

/// Reads `cfg['model']` (`model` is that dict; `prefix` is its dotted name for messages).
pub fn parse_model_config(model: &PyValue, prefix: &str) -> Result<ModelConfig, ConfigError> {
    if !matches!(model, PyValue::Dict(_)) {
        return Err(ConfigError::new(
            prefix,
            format!("expected a dict, found {}", model.type_name()),
        ));
    }
    let f = Fields {
        dict: model,
        prefix,
    };

    let name = match f.get("_name") {
        Some(PyValue::Str(s)) => s.clone(),
        Some(v) => return Err(f.wrong("_name", "a str", v)),
        None => return Err(ConfigError::new(&f.path("_name"), "missing")),
    };
    let extractor_mode = match f.opt_str("extractor_mode")?.as_deref() {
        None | Some("layer_norm") => ExtractorMode::LayerNorm,
        Some("default") => ExtractorMode::Default,
        Some(other) => {
            return Err(ConfigError::new(
                &f.path("extractor_mode"),
                format!("unknown mode {other:?} (expected \"default\" or \"layer_norm\")"),
            ));
        }
    };
    let conv_field = f.path("conv_feature_layers");
    let conv_layers = match f.opt_str("conv_feature_layers")? {
        Some(s) => parse_conv_feature_layers(&s)
            .map_err(|reason| ConfigError::new(&conv_field, format!("{reason} in {s:?}")))?,
        None => parse_conv_feature_layers(DEFAULT_CONV_FEATURE_LAYERS)
            .map_err(|reason| ConfigError::new(&conv_field, reason.to_string()))?,
    };

    Ok(ModelConfig {
        name,
        pruner_supernet: f.opt_str("pruner_supernet")?,
        search_space: f.search_space()?,
        extractor_mode,
        conv_layers,
        conv_bias: f.bool_or("conv_bias", false)?,
        encoder_layers: f.usize_or("encoder_layers", 12)?,
        encoder_embed_dim: f.usize_or("encoder_embed_dim", 768)?,
        encoder_ffn_embed_dim: f.usize_or("encoder_ffn_embed_dim", 3072)?,
        encoder_attention_heads: f.usize_or("encoder_attention_heads", 12)?,
        conv_pos: f.usize_or("conv_pos", 128)?,
        conv_pos_groups: f.usize_or("conv_pos_groups", 16)?,
        layer_norm_first: f.bool_or("layer_norm_first", false)?,
        pos_conv_depth: f.usize_or("pos_conv_depth", 1)?,
        exported_subnet: None,
    })
}

/// `cfg['task']['normalize']` when present (`task` is `cfg['task']`, or `None`).
pub fn parse_task_normalize(
    task: Option<&PyValue>,
    prefix: &str,
) -> Result<Option<bool>, ConfigError> {
    match task {
        None | Some(PyValue::None) => Ok(None),
        Some(t @ PyValue::Dict(_)) => {
            let f = Fields { dict: t, prefix };
            match f.get("normalize") {
                None | Some(PyValue::None) => Ok(None),
                Some(PyValue::Bool(b)) => Ok(Some(*b)),
                Some(v) => Err(f.wrong("normalize", "a bool", v)),
            }
        }
        Some(v) => Err(ConfigError::new(
            prefix,
            format!("expected a dict, found {}", v.type_name()),
        )),
    }
}

/// Typed access to one config dict. A field set to `None` counts as missing, as it does
/// for the authors' code paths that test the value.
struct Fields<'a> {
    dict: &'a PyValue,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    fn path(&self, key: &str) -> String {
        format!("{}.{}", self.prefix, key)
    }

    fn get(&self, key: &str) -> Option<&'a PyValue> {
        self.dict.get(key).filter(|v| !matches!(v, PyValue::None))
    }

    fn wrong(&self, key: &str, expected: &str, found: &PyValue) -> ConfigError {
        ConfigError::new(
            &self.path(key),
            format!("expected {expected}, found {}", found.type_name()),
        )
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(PyValue::Str(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(key, "a str", v)),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(PyValue::Bool(b)) => Ok(*b),
            Some(v) => Err(self.wrong(key, "a bool", v)),
        }
    }

    fn usize_or(&self, key: &str, default: usize) -> Result<usize, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => as_usize(v).ok_or_else(|| self.wrong(key, "a non-negative int", v)),
        }
    }

    fn search_space(&self) -> Result<Option<StoredSpace>, ConfigError> {
        let Some(space) = self.get("search_space") else {
            return Ok(None);
        };
        let prefix = self.path("search_space");
        if !matches!(space, PyValue::Dict(_)) {
            return Err(self.wrong("search_space", "a dict", space));
        }
        let f = Fields {
            dict: space,
            prefix: &prefix,
        };
        let ints = |key: &str| -> Result<Vec<usize>, ConfigError> {
            f.list(key, "a list of non-negative ints", as_usize)
        };
        Ok(Some(StoredSpace {
            embed_dim: ints("embed_dim")?,
            heads_num: ints("heads_num")?,
            ffn_ratio: f.list("ffn_ratio", "a list of numbers", as_f64)?,
            layer_num: ints("layer_num")?,
        }))
    }

    /// A required non-empty list (or tuple) whose items `item` converts.
    fn list<T>(
        &self,
        key: &str,
        expected: &str,
        item: impl Fn(&PyValue) -> Option<T>,
    ) -> Result<Vec<T>, ConfigError> {
        let items = match self.get(key) {
            None => return Err(ConfigError::new(&self.path(key), "missing")),
            Some(PyValue::List(v) | PyValue::Tuple(v)) => v,
            Some(v) => return Err(self.wrong(key, expected, v)),
        };
        if items.is_empty() {
            return Err(ConfigError::new(&self.path(key), "empty list"));
        }
        items
            .iter()
            .map(|v| {
                item(v).ok_or_else(|| {
                    ConfigError::new(
                        &self.path(key),
                        format!(
                            "expected {expected}, found an item of type {}",
                            v.type_name()
                        ),
                    )
                })
            })
            .collect()
    }
}

fn as_usize(v: &PyValue) -> Option<usize> {
    match v {
        PyValue::Int(i) => usize::try_from(*i).ok(),
        _ => None,
    }
}

fn as_f64(v: &PyValue) -> Option<f64> {
    match v {
        PyValue::Int(i) => Some(*i as f64),
        PyValue::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    }
}

/// Parses the Python-literal `conv_feature_layers`, e.g.
/// `"[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"`, without evaluating anything.
///
/// Grammar (whitespace anywhere between tokens):
/// ```text
/// expr  := term ('+' term)*
/// term  := (INT '*')* list ('*' INT)*
/// list  := '[' (tuple (',' tuple)* ','?)? ']'
/// tuple := '(' INT ',' INT ',' INT ','? ')'
/// ```
pub fn parse_conv_feature_layers(s: &str) -> Result<Vec<ConvLayerSpec>, ConvLayersError> {
    let mut p = ConvParser {
        s: s.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        let term = p.term()?;
        if out.len() + term.len() > MAX_CONV_LAYERS {
            return Err(ConvLayersError::TooMany);
        }
        out.extend(term);
        p.skip_ws();
        match p.peek() {
            Some(b'+') => p.pos += 1,
            None => break,
            Some(c) => return Err(p.unexpected(c)),
        }
    }
    if out.is_empty() {
        return Err(ConvLayersError::NoLayers);
    }
    Ok(out)
}

/// Why a `conv_feature_layers` string does not parse; positions count bytes from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvLayersError {
    #[error("more than {MAX_CONV_LAYERS} layers")]
    TooMany,
    #[error("no layers")]
    NoLayers,
    #[error("{}unexpected {found:?} at position {at}", expected_prefix(expected))]
    Unexpected { expected: Option<Token>, found: char, at: usize },
    #[error("expected {expected}, found the end")]
    End { expected: Token },
    #[error("integer at position {at} is too large")]
    TooLarge { at: usize },
    #[error("layer ({}, {}, {}) at position {at} has a zero size", layer.channels, layer.kernel, layer.stride)]
    ZeroSize { layer: ConvLayerSpec, at: usize },
}

/// What the parser expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Char(char),
    Integer,
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Char(c) => write!(f, "{c:?}"),
            Token::Integer => f.write_str("an integer"),
        }
    }
}

fn expected_prefix(expected: &Option<Token>) -> String {
    expected.map(|t| format!("expected {t}, ")).unwrap_or_default()
}

struct ConvParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl ConvParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn unexpected(&self, c: u8) -> ConvLayersError {
        ConvLayersError::Unexpected { expected: None, found: c as char, at: self.pos }
    }

    /// `expected` was wanted here: what was found instead.
    fn wanted(&self, expected: Token) -> ConvLayersError {
        match self.peek() {
            Some(c) => ConvLayersError::Unexpected { expected: Some(expected), found: c as char, at: self.pos },
            None => ConvLayersError::End { expected },
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ConvLayersError> {
        self.skip_ws();
        match self.peek() {
            Some(x) if x == c => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(self.wanted(Token::Char(c as char))),
        }
    }

    /// Consumes `c` if it is the next token.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn int(&mut self) -> Result<usize, ConvLayersError> {
        self.skip_ws();
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = self.s.get(start..self.pos).unwrap_or_default();
        if digits.is_empty() {
            return Err(self.wanted(Token::Integer));
        }
        std::str::from_utf8(digits).ok().and_then(|d| d.parse::<usize>().ok()).ok_or(ConvLayersError::TooLarge { at: start })
    }

    fn term(&mut self) -> Result<Vec<ConvLayerSpec>, ConvLayersError> {
        let mut repeat = 1usize;
        self.skip_ws();
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            repeat = repeat.saturating_mul(self.int()?);
            self.expect(b'*')?;
            self.skip_ws();
        }
        let list = self.list()?;
        while self.eat(b'*') {
            repeat = repeat.saturating_mul(self.int()?);
        }
        let total = list.len().saturating_mul(repeat);
        if total > MAX_CONV_LAYERS {
            return Err(ConvLayersError::TooMany);
        }
        let mut out = Vec::with_capacity(total);
        for _ in 0..repeat {
            out.extend_from_slice(&list);
        }
        Ok(out)
    }

    fn list(&mut self) -> Result<Vec<ConvLayerSpec>, ConvLayersError> {
        self.expect(b'[')?;
        let mut out = Vec::new();
        if self.eat(b']') {
            return Ok(out);
        }
        loop {
            if out.len() >= MAX_CONV_LAYERS {
                return Err(ConvLayersError::TooMany);
            }
            out.push(self.tuple()?);
            if self.eat(b']') {
                return Ok(out);
            }
            self.expect(b',')?;
            if self.eat(b']') {
                return Ok(out);
            }
        }
    }

    fn tuple(&mut self) -> Result<ConvLayerSpec, ConvLayersError> {
        let at = self.pos;
        self.expect(b'(')?;
        let channels = self.int()?;
        self.expect(b',')?;
        let kernel = self.int()?;
        self.expect(b',')?;
        let stride = self.int()?;
        self.eat(b',');
        self.expect(b')')?;
        let layer = ConvLayerSpec { channels, kernel, stride };
        if channels == 0 || kernel == 0 || stride == 0 {
            return Err(ConvLayersError::ZeroSize { layer, at });
        }
        Ok(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(channels: usize, kernel: usize, stride: usize) -> ConvLayerSpec {
        ConvLayerSpec {
            channels,
            kernel,
            stride,
        }
    }

    fn released_layers() -> Vec<ConvLayerSpec> {
        let mut v = vec![spec(512, 10, 5)];
        v.extend([spec(512, 3, 2); 4]);
        v.extend([spec(512, 2, 2); 2]);
        v
    }

    #[test]
    fn released_default_string() {
        assert_eq!(
            parse_conv_feature_layers(DEFAULT_CONV_FEATURE_LAYERS).unwrap(),
            released_layers()
        );
    }

    #[test]
    fn spacing_and_forms() {
        let s = "  [ ( 512 , 10 , 5 ) ]+4*[(512,3,2),]\n+ 2 * [(512,2,2,)] ";
        assert_eq!(parse_conv_feature_layers(s).unwrap(), released_layers());
        assert_eq!(
            parse_conv_feature_layers("[(1,2,3),(4,5,6)]*2").unwrap(),
            vec![spec(1, 2, 3), spec(4, 5, 6), spec(1, 2, 3), spec(4, 5, 6)]
        );
        assert_eq!(
            parse_conv_feature_layers("[] + [(1,1,1)] * 0 + [(2,2,2)]").unwrap(),
            vec![spec(2, 2, 2)]
        );
    }

    #[test]
    fn refuses_anything_else() {
        for s in [
            "",
            "[]",
            "__import__('os').system('true')",
            "[(512,10,5)] * 4 * 9999999999999999999999",
            "[(512,10,5)] * 100000",
            "[(512,10)]",
            "[(512,10,5,1)]",
            "[(512,10,-5)]",
            "[(512,10,5)] - [(1,1,1)]",
            "[(512,10,5)] +",
            "[(512,10,5.0)]",
            "[(0,10,5)]",
            "[(512,10,5)] [(1,1,1)]",
            "[(512,10,5)",
            "[(512,10,5)] * 2 ** 3",
        ] {
            assert!(parse_conv_feature_layers(s).is_err(), "{s:?}");
        }
    }

    fn d(pairs: Vec<(&str, PyValue)>) -> PyValue {
        PyValue::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (PyValue::Str(k.into()), v))
                .collect(),
        )
    }

    fn s(x: &str) -> PyValue {
        PyValue::Str(x.into())
    }

    #[test]
    fn defaults_follow_the_authors() {
        let c = parse_model_config(&d(vec![("_name", s("student_hubert"))]), "cfg.model").unwrap();
        assert_eq!(c.name, "student_hubert");
        assert_eq!(c.pruner_supernet, None);
        assert_eq!(c.search_space, None);
        assert_eq!(c.extractor_mode, ExtractorMode::LayerNorm);
        assert_eq!(c.conv_layers, released_layers());
        assert!(!c.conv_bias && !c.layer_norm_first);
        assert_eq!(
            (
                c.encoder_layers,
                c.encoder_embed_dim,
                c.encoder_ffn_embed_dim,
                c.encoder_attention_heads
            ),
            (12, 768, 3072, 12)
        );
        assert_eq!(
            (c.conv_pos, c.conv_pos_groups, c.pos_conv_depth),
            (128, 16, 1)
        );
    }

    #[test]
    fn fields_and_search_space() {
        let cfg = d(vec![
            ("_name", s("hubert_pruner")),
            ("pruner_supernet", s("/x/Supernet-Small.yaml")),
            ("extractor_mode", s("default")),
            ("conv_feature_layers", s("[(64,10,5)] + [(64,3,2)]")),
            ("conv_bias", PyValue::Bool(true)),
            ("encoder_layers", PyValue::Int(4)),
            ("dropout", PyValue::Float(0.1)),
            (
                "search_space",
                d(vec![
                    (
                        "embed_dim",
                        PyValue::List(vec![PyValue::Int(64), PyValue::Int(96)]),
                    ),
                    ("heads_num", PyValue::Tuple(vec![PyValue::Int(1)])),
                    (
                        "ffn_ratio",
                        PyValue::List(vec![PyValue::Int(3), PyValue::Float(3.5)]),
                    ),
                    ("layer_num", PyValue::List(vec![PyValue::Int(4)])),
                ]),
            ),
        ]);
        let c = parse_model_config(&cfg, "cfg.model").unwrap();
        assert_eq!(c.extractor_mode, ExtractorMode::Default);
        assert_eq!(c.conv_layers, vec![spec(64, 10, 5), spec(64, 3, 2)]);
        assert!(c.conv_bias);
        assert_eq!(c.encoder_layers, 4);
        assert_eq!(c.pruner_supernet.as_deref(), Some("/x/Supernet-Small.yaml"));
        let sp = c.search_space.unwrap();
        assert_eq!(sp.embed_dim, vec![64, 96]);
        assert_eq!(sp.heads_num, vec![1]);
        assert_eq!(sp.ffn_ratio, vec![3.0, 3.5]);
        assert_eq!(sp.layer_num, vec![4]);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let cases = [
            (
                vec![("encoder_layers", PyValue::Float(12.0))],
                "cfg.model.encoder_layers",
            ),
            (
                vec![("encoder_layers", PyValue::Bool(true))],
                "cfg.model.encoder_layers",
            ),
            (vec![("conv_pos", PyValue::Int(-1))], "cfg.model.conv_pos"),
            (vec![("conv_bias", PyValue::Int(1))], "cfg.model.conv_bias"),
            (
                vec![("extractor_mode", s("group_norm"))],
                "cfg.model.extractor_mode",
            ),
            (
                vec![("conv_feature_layers", s("[(1,2)]"))],
                "cfg.model.conv_feature_layers",
            ),
            (
                vec![("conv_feature_layers", PyValue::Int(3))],
                "cfg.model.conv_feature_layers",
            ),
            (
                vec![("pruner_supernet", PyValue::Int(3))],
                "cfg.model.pruner_supernet",
            ),
            (
                vec![("search_space", PyValue::List(vec![]))],
                "cfg.model.search_space",
            ),
            (
                vec![(
                    "search_space",
                    d(vec![("embed_dim", PyValue::List(vec![s("x")]))]),
                )],
                "cfg.model.search_space.embed_dim",
            ),
            (
                vec![(
                    "search_space",
                    d(vec![
                        ("embed_dim", PyValue::List(vec![PyValue::Int(1)])),
                        ("heads_num", PyValue::List(vec![PyValue::Int(1)])),
                        ("ffn_ratio", PyValue::List(vec![PyValue::Int(1)])),
                    ]),
                )],
                "cfg.model.search_space.layer_num",
            ),
        ];
        for (mut fields, field) in cases {
            fields.push(("_name", s("hubert_pruner")));
            let err = parse_model_config(&d(fields), "cfg.model").unwrap_err();
            assert_eq!(err.field, field, "{err:?}");
        }
        let err = parse_model_config(&d(vec![]), "cfg.model").unwrap_err();
        assert_eq!(err.field, "cfg.model._name");
        assert_eq!(
            parse_model_config(&PyValue::None, "cfg.model")
                .unwrap_err()
                .field,
            "cfg.model"
        );
    }

    #[test]
    fn task_normalize() {
        assert_eq!(parse_task_normalize(None, "cfg.task").unwrap(), None);
        assert_eq!(
            parse_task_normalize(Some(&d(vec![])), "cfg.task").unwrap(),
            None
        );
        let t = d(vec![("normalize", PyValue::Bool(true))]);
        assert_eq!(
            parse_task_normalize(Some(&t), "cfg.task").unwrap(),
            Some(true)
        );
        let t = d(vec![("normalize", PyValue::Int(1))]);
        assert_eq!(
            parse_task_normalize(Some(&t), "cfg.task")
                .unwrap_err()
                .field,
            "cfg.task.normalize"
        );
    }
}
