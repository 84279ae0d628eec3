//! Latency-aware search on this device (lavapipe in CI): the table it measures, the exact
//! search over the model, and the winner run for real. One test function runs the timed steps
//! in order, so no other test in this binary competes for the CPU while latencies are measured.

use kernels_tests::{fixtures_dir, gpu};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::search::{self, best_under, measure_ms, pareto_front, probe_audio, LatencyTable, Objective, SearchError, TableKey};
use lighthubert::supernet::parameter_count;
use lighthubert::{Error, LightHubert, Subnet};

const SECONDS: f64 = 1.0;
/// The headroom the search keeps under the budget when it runs the winner, so that this
/// shared machine's noise does not push the test's own re-measurement over.
const MARGIN: f64 = 0.1;

fn model() -> LightHubert {
    let ckpt = Checkpoint::open(fixtures_dir().join("tiny-default.pt")).unwrap_or_else(|e| panic!("{e}"));
    LightHubert::load(gpu(), &ckpt).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn search_meets_its_budget_and_grows_with_it() {
    let model = model();
    let sn = model.supernet().clone();
    let table = LatencyTable::measure(&model, SECONDS, 5).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("table measured in {:.1} s, calibration {:?}", table.measure_seconds, table.calibration);
    for p in &table.points {
        let predicted = table.predict_ms(&p.subnet).unwrap();
        eprintln!("  calibration: embed {} depth {}: measured {:.2} ms, predicted {predicted:.2} ms", p.subnet.embed_dim, p.subnet.layer_num, p.measured_ms);
    }
    // The table covers every layer shape of the space, and saves and loads unchanged.
    for &e in &sn.space.embed_dim {
        for &h in &sn.space.heads_num {
            for &r in &sn.space.ffn_ratio {
                let ms = table.layer_ms(e, h, lighthubert::supernet::ffn_width(r, e)).expect("every layer shape is timed");
                assert!(ms > 0.0 && ms.is_finite());
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.json");
    table.save(&path).unwrap();
    assert_eq!(LatencyTable::load(&path).unwrap(), table);
    assert!(table.check_key(&TableKey::for_model(&model, SECONDS)).is_ok());
    let other = table.check_key(&TableKey::for_model(&model, 2.0)).unwrap_err();
    assert!(other.contains("frames"), "{other}");

    // Over the model: a larger budget never gives a smaller subnet, and each result is the
    // best uniform-or-not subnet the prediction allows.
    let front = pareto_front(&table, &sn, Objective::Params, 24);
    assert!(front.len() >= 3, "a front of {} points", front.len());
    for w in front.windows(2) {
        assert!(w[1].predicted_ms > w[0].predicted_ms && w[1].params > w[0].params, "the front must rise in both");
    }
    for c in &front {
        eprintln!("  front: {:.2} ms  {:.3} M params  embed {} depth {}", c.predicted_ms, c.params as f64 / 1e6, c.subnet.embed_dim, c.subnet.layer_num);
    }
    let (lo, hi) = (front[0].predicted_ms, front.last().unwrap().predicted_ms);
    for objective in [Objective::Params, Objective::Flops] {
        let mut last = 0.0;
        for i in 0..=40 {
            let budget = lo + (hi - lo) * i as f64 / 40.0;
            let c = best_under(&table, &sn, objective, budget).unwrap_or_else(|e| panic!("{budget}: {e}"));
            assert!(c.predicted_ms <= budget * (1.0 + 1e-9), "{budget}: predicted {}", c.predicted_ms);
            sn.validate(&c.subnet).unwrap();
            assert_eq!(c.params, parameter_count(&sn.dims, &c.subnet));
            assert!(c.value(objective) >= last, "budget {budget:.2} ms gave a smaller subnet ({objective:?})");
            last = c.value(objective);
        }
    }
    // Exhaustive check of optimality on the uniform subnets: none within a budget beats the
    // search's answer.
    let budget = 0.5 * (lo + hi);
    let best = best_under(&table, &sn, Objective::Params, budget).unwrap();
    for &e in &sn.space.embed_dim {
        for &d in &sn.space.layer_num {
            for &h in &sn.space.heads_num {
                for &r in &sn.space.ffn_ratio {
                    let s = Subnet::uniform(e, h, lighthubert::supernet::ffn_width(r, e), d);
                    if table.predict_ms(&s).unwrap() <= budget * (1.0 - 2.0 / 4000.0) {
                        assert!(parameter_count(&sn.dims, &s) <= best.params, "uniform {e}/{h}/{r}/{d} beats the search");
                    }
                }
            }
        }
    }

    // For real: the winner runs within the budget, then again when measured here.
    let result = search::search(&model, &table, Objective::Params, budget, MARGIN, 5).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "budget {budget:.2} ms: embed {} depth {}, {:.3} M params, predicted {:.2} ms, measured {:.2} ms, {} tries",
        result.best.subnet.embed_dim,
        result.best.subnet.layer_num,
        result.best.params as f64 / 1e6,
        result.best.predicted_ms,
        result.measured_ms,
        result.tries.len()
    );
    assert!(result.measured_ms <= budget);
    let again = unhurried_ms(&model, &result.best.subnet, SECONDS);
    eprintln!("measured again: {again:.2} ms");
    assert!(again <= budget, "the returned subnet took {again:.2} ms against a {budget:.2} ms budget");
}

#[test]
fn bad_budgets_and_lengths_are_clear_errors() {
    let model = model();
    let sn = model.supernet().clone();
    for seconds in [0.0, -1.0, f64::NAN, 0.01] {
        match LatencyTable::measure(&model, seconds, 1) {
            Err(Error::Search(SearchError::BadSeconds(_))) => {}
            other => panic!("{seconds} s: {:?}", other.map(|_| ())),
        }
    }
    // A table made by hand: no timing needed to check the budget errors.
    let table = LatencyTable {
        key: TableKey::for_model(&model, SECONDS),
        audio_seconds: SECONDS,
        extractor_ms: 10.0,
        embeds: sn
            .space
            .embed_dim
            .iter()
            .map(|&e| lighthubert::search::EmbedCosts {
                embed: e,
                fixed_ms: e as f64 / 64.0,
                attention_ms: sn.space.heads_num.iter().map(|&h| (h, h as f64 * e as f64 / 64.0)).collect(),
                ffn_ms: sn.space.ffn_ratio.iter().map(|&r| (lighthubert::supernet::ffn_width(r, e), r * e as f64 / 64.0)).collect(),
            })
            .collect(),
        calibration: lighthubert::search::Calibration { scale: 1.0, offset_ms: 0.0 },
        points: Vec::new(),
        measure_seconds: 0.0,
    };
    for budget in [0.0, -5.0, f64::NAN, f64::INFINITY] {
        let err = best_under(&table, &sn, Objective::Params, budget).unwrap_err();
        assert!(matches!(err, SearchError::BadBudget(_)), "{budget}: {err}");
        assert!(err.to_string().contains("positive"), "{err}");
    }
    let err = best_under(&table, &sn, Objective::Params, 5.0).unwrap_err();
    assert!(matches!(err, SearchError::BudgetTooSmall { .. }), "{err}");
    assert!(err.to_string().contains("the fastest, embed 64 with 10 layers"), "{err}");
    // With a synthetic table, the largest budget gives the max subnet.
    let max = best_under(&table, &sn, Objective::Params, 1e9).unwrap();
    assert_eq!(max.subnet, sn.preset(&lighthubert::Preset::Max));

    // A damaged table file is named.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{ not json").unwrap();
    let err = LatencyTable::load(&path).unwrap_err();
    assert!(err.to_string().contains("broken.json") && err.to_string().contains("not a latency table"), "{err}");
}

/// The subnet's latency as the search measures it (median of 5 runs), the lowest of three such
/// measurements a third of a second apart: this shared host has slow spells of a second or two
/// (other tenants), which only ever add time, and a re-measurement inside one would fail a
/// subnet the device runs within budget.
fn unhurried_ms(model: &LightHubert, subnet: &Subnet, seconds: f64) -> f64 {
    let wave = probe_audio(seconds);
    (0..3)
        .map(|i| {
            if i > 0 {
                std::thread::sleep(std::time::Duration::from_millis(330));
            }
            measure_ms(model, subnet, &wave, 5).unwrap()
        })
        .fold(f64::INFINITY, f64::min)
}
