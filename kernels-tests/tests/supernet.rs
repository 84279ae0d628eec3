//! Search spaces, presets, validation and parameter counts. No GPU needed.

use lighthubert::checkpoint::{ConvLayerSpec, ExtractorMode, ModelConfig};
use lighthubert::supernet::{SubnetError, Supernet};
use lighthubert::{Preset, SearchSpace, Subnet};

fn released(name: &str, yaml: Option<&str>, mode: ExtractorMode) -> Supernet {
    let mut conv_layers = vec![ConvLayerSpec { channels: 512, kernel: 10, stride: 5 }];
    conv_layers.extend([ConvLayerSpec { channels: 512, kernel: 3, stride: 2 }; 4]);
    conv_layers.extend([ConvLayerSpec { channels: 512, kernel: 2, stride: 2 }; 2]);
    let cfg = ModelConfig {
        name: name.into(),
        pruner_supernet: yaml.map(String::from),
        search_space: None,
        extractor_mode: mode,
        conv_layers,
        conv_bias: false,
        encoder_layers: 12,
        encoder_embed_dim: 768,
        encoder_ffn_embed_dim: 3072,
        encoder_attention_heads: 12,
        conv_pos: 128,
        conv_pos_groups: 16,
        layer_norm_first: false,
        pos_conv_depth: 1,
        exported_subnet: None,
    };
    Supernet::from_config(&cfg).expect("released config is supported")
}

// The reference figures pin the extractor modes: the small file's extractor has a LayerNorm
// in every block, the base file's a single GroupNorm (6,144 parameters fewer).
fn small() -> Supernet {
    released("hubert_pruner", Some("/x/config/Supernet-Small.yaml"), ExtractorMode::LayerNorm)
}

fn base() -> Supernet {
    released("hubert_pruner", Some("/x/config/Supernet-Base.yaml"), ExtractorMode::Default)
}

#[test]
fn parameter_counts_equal_the_reference_figures() {
    let s = small();
    assert_eq!(s.parameter_count(&s.preset(&Preset::Default)), 26_879_744);
    assert_eq!(s.parameter_count(&s.preset(&Preset::Min)), 11_449_088);
    let b = base();
    assert_eq!(b.parameter_count(&b.preset(&Preset::Default)), 66_891_520);
    assert_eq!(b.parameter_count(&b.preset(&Preset::Min)), 41_243_392);
    // The max figure is the stage-1 student's (base space, its max subnet by default), whose
    // extractor has a LayerNorm per block: the same subnet on the base file counts 6,144 fewer.
    let stage1 = released("student_hubert", None, ExtractorMode::LayerNorm);
    assert_eq!(stage1.parameter_count(&stage1.preset(&Preset::Default)), 94_377_728);
    assert_eq!(b.parameter_count(&b.preset(&Preset::Max)), 94_377_728 - 6_144);
}

#[test]
fn presets_are_the_authors_subnets() {
    let s = small().preset(&Preset::Default);
    assert_eq!((s.embed_dim, s.heads_num[0], s.ffn_embed[0], s.layer_num), (384, 6, 1536, 12));
    let m = small().preset(&Preset::Min);
    assert_eq!((m.embed_dim, m.heads_num[0], m.ffn_embed[0], m.layer_num), (256, 4, 768, 10));
    let b = base().preset(&Preset::Default);
    assert_eq!((b.embed_dim, b.heads_num[0], b.ffn_embed[0], b.layer_num), (640, 10, 2560, 12));
    assert_eq!(b.atten_dim, vec![640; 12]);
    // Stage 1 is the student HuBERT: base space, max subnet by default.
    let stage1 = released("student_hubert", None, ExtractorMode::Default);
    let d = stage1.preset(&Preset::Default);
    assert_eq!((d.embed_dim, d.heads_num[0], d.ffn_embed[0], d.layer_num), (768, 12, 3072, 12));
}

#[test]
fn random_presets_are_valid_reproducible_and_varied() {
    for net in [small(), base()] {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..200 {
            let s = net.preset(&Preset::Random(seed));
            net.validate(&s).unwrap_or_else(|e| panic!("random:{seed}: {e}"));
            assert_eq!(s, net.preset(&Preset::Random(seed)));
            seen.insert(s.to_json());
        }
        assert!(seen.len() > 150, "random subnets repeat too often");
    }
    let s = small();
    let r = s.subnet("random:7").unwrap();
    assert!(s.space.layer_num.contains(&r.layer_num));
}

#[test]
fn subnet_json_round_trips_in_the_authors_format() {
    let s = small();
    let json = r#"{"atten_dim":[256,384,512,256,384,512,256,384,512,256],"embed_dim":256,
        "ffn_embed":[768,896,1024,768,896,1024,768,896,1024,768],"heads_num":[4,6,8,4,6,8,4,6,8,4],
        "layer_num":10,"slide_wsz":["global","global","global","global","global","global","global","global","global","global"]}"#;
    let subnet = s.subnet(json).expect("valid");
    assert_eq!(Subnet::from_json(&subnet.to_json()).unwrap(), subnet);
    // The reference's own default dicts carry ffn_ratio too.
    let mut with_ratio = s.preset(&Preset::Default);
    with_ratio.ffn_ratio = Some(vec![4.0; 12]);
    s.validate(&with_ratio).expect("ffn_ratio consistent");
}

fn field_error(net: &Supernet, subnet: &Subnet) -> String {
    match net.validate(subnet) {
        Err(e) => e.to_string(),
        Ok(()) => panic!("{} should be invalid", subnet.to_json()),
    }
}

#[test]
fn invalid_subnets_name_the_offending_field() {
    let net = small();
    let good = net.preset(&Preset::Default);

    let mut s = good.clone();
    s.embed_dim = 320;
    assert!(field_error(&net, &s).contains("`embed_dim` = 320"), "{}", field_error(&net, &s));

    let mut s = good.clone();
    s.heads_num[3] = 7;
    s.atten_dim[3] = 448;
    assert!(field_error(&net, &s).contains("`heads_num[3]` = 7"));

    let mut s = good.clone();
    s.atten_dim[5] = 320;
    assert!(field_error(&net, &s).contains("`atten_dim[5]`"));

    let mut s = good.clone();
    s.ffn_embed[2] = 1000;
    assert!(field_error(&net, &s).contains("`ffn_embed[2]` = 1000"));

    let mut s = good.clone();
    s.ffn_embed.pop();
    assert!(field_error(&net, &s).contains("`ffn_embed` has 11 entries but layer_num is 12"));

    let mut s = good.clone();
    s.layer_num = 9;
    assert!(field_error(&net, &s).contains("`layer_num` = 9"));

    let mut s = good.clone();
    s.slide_wsz[0] = serde_json::json!(32);
    let msg = field_error(&net, &s);
    assert!(msg.contains("`slide_wsz[0]`") && msg.contains("not supported"), "{msg}");

    let mut s = good.clone();
    s.ffn_ratio = Some(vec![3.0; 12]);
    assert!(field_error(&net, &s).contains("`ffn_ratio[0]`"));

    // Base-space widths do not belong to the small space.
    let b = base().preset(&Preset::Default);
    assert!(field_error(&net, &b).contains("`embed_dim` = 640"));
}

#[test]
fn malformed_subnet_specs_are_refused() {
    let net = small();
    assert!(matches!(net.subnet("medium"), Err(SubnetError::UnknownPreset(_))));
    assert!(matches!(net.subnet("random:x"), Err(SubnetError::UnknownPreset(_))));
    let unknown_key = r#"{"atten_dim":[],"embed_dim":256,"ffn_embed":[],"heads_num":[],"layer_num":0,"slide_wsz":[],"depth":3}"#;
    assert!(matches!(net.subnet(unknown_key), Err(SubnetError::Json(m)) if m.contains("depth")));
    let not_int = r#"{"atten_dim":[256],"embed_dim":256.5,"ffn_embed":[768],"heads_num":[4],"layer_num":1,"slide_wsz":["global"]}"#;
    assert!(matches!(net.subnet(not_int), Err(SubnetError::Json(_))));
}

#[test]
fn widths_must_fit_the_checkpoint() {
    // A custom space that claims more than a 128-wide supernet holds.
    let mut cfg_space = SearchSpace::small();
    cfg_space.name = "custom".into();
    let net = Supernet {
        dims: lighthubert::supernet::SupernetDims {
            embed: 128,
            attention: 128,
            ffn: 512,
            ffn_chunks: 4,
            ffn_chunk: 128,
            layer_widths: vec![lighthubert::supernet::LayerWidths { attention: 128, ffn: 512 }; 12],
            ..small().dims
        },
        space: cfg_space,
        default_preset: Preset::Default,
        exported: None,
    };
    let s = net.space.preset(&Preset::Min);
    let msg = field_error(&net, &s);
    assert!(msg.contains("does not fit the checkpoint") && msg.contains("`embed_dim`"), "{msg}");
}

#[test]
fn depth_maps_drop_the_reference_layers() {
    use lighthubert::supernet::kept_layers;
    assert_eq!(kept_layers(12).unwrap(), (0..12).collect::<Vec<_>>());
    assert_eq!(kept_layers(11).unwrap(), (0..11).collect::<Vec<_>>());
    assert_eq!(kept_layers(10).unwrap(), vec![0, 1, 2, 3, 4, 5, 6, 8, 9, 10]);
    assert!(kept_layers(13).is_none());
    // An exported subnet is its own supernet, as deep as itself; a 12-layer one maps depths.
    use lighthubert::supernet::kept_layers_of;
    assert_eq!(kept_layers_of(10, 10).unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(kept_layers_of(12, 10), kept_layers(10));
    assert!(kept_layers_of(11, 10).is_none());
}
