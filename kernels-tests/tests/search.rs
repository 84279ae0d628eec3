//! Latency-aware search on this device (lavapipe in CI): the table it measures, the exact
//! search over the model, and the winner run for real. One test function runs the timed steps
//! in order, so no other test in this binary competes for the CPU while latencies are measured.

use kernels_tests::{fixtures_dir, gpu};
use lighthubert::checkpoint::Checkpoint;
use lighthubert::search::{self, best_under, measure_interleaved_ms, pareto_front, probe_audio, LatencyTable, Objective, SearchError, TableKey, TableMismatch};
use lighthubert::supernet::parameter_count;
use lighthubert::{LightHubert, Subnet};

const SECONDS: f64 = 1.0;
/// The headroom the search keeps under the budget when it runs the winner, so that this
/// shared machine's noise (a third slower for seconds at a time) does not push the test's own
/// re-measurement over.
const MARGIN: f64 = 0.25;

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
    assert!(matches!(other, TableMismatch::Frames { .. }), "{other}");

    // Over the model: a larger budget never gives a smaller subnet, and each result is the
    // best uniform-or-not subnet the prediction allows.
    let front = pareto_front(&table, &sn, Objective::Params, 24);
    assert!(front.len() >= 3, "a front of {} points", front.len());
    assert!(table.calibration.scale > 0.0 && table.calibration.offset_ms >= 0.0, "{:?}", table.calibration);
    assert!(front[0].predicted_ms > 0.0, "the fastest subnet is predicted at {} ms", front[0].predicted_ms);
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
    // A slow spell of this shared host (2x for seconds at a time) can fail every subnet tried
    // in a row; that is the host, not the search, so the search is given three chances, a few
    // seconds apart. Whatever it returns must meet the budget.
    // The run: the budget puts the search's target (budget less the margin) mid-front.
    let budget = 0.5 * (lo + hi) / (1.0 - MARGIN);
    // The machine's speed now, on the smallest subnet, to tell its drift from the search's error.
    let reference = sn.preset(&lighthubert::Preset::Min);
    // (The first measurements of a process run slow; the second round is the machine.)
    unhurried_ms(&model, &[&reference], SECONDS);
    let before = unhurried_ms(&model, &[&reference], SECONDS)[0];
    let mut attempt = 0;
    let result = loop {
        match search::search(&model, &table, Objective::Params, budget, MARGIN, 5) {
            Ok(r) => break r,
            Err(e @ SearchError::NotMetWhenRun { .. }) if attempt < 2 => {
                eprintln!("attempt {attempt}: {e}");
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_secs(3));
            }
            Err(e) => panic!("{e}"),
        }
    };
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
    let [again, after] = unhurried_ms(&model, &[&result.best.subnet, &reference], SECONDS)[..] else { unreachable!() };
    // A machine slower now than before the search scales the re-measurement down: the check
    // is of the search, not of the host's other tenants. A faster one changes nothing (the
    // smallest subnet runs a little faster after a search on lavapipe, for reasons unknown).
    let drift = (after / before).max(1.0);
    eprintln!("measured again: {again:.2} ms; the machine ran the smallest subnet in {before:.2} ms before and {after:.2} ms after (drift {drift:.2})");
    assert!(again / drift <= budget, "the returned subnet took {again:.2} ms ({:.2} ms at the search's machine speed) against a {budget:.2} ms budget", again / drift);
}

#[test]
fn bad_budgets_and_lengths_are_clear_errors() {
    let model = model();
    let sn = model.supernet().clone();
    for seconds in [0.0, -1.0, f64::NAN, 0.01] {
        match LatencyTable::measure(&model, seconds, 1) {
            Err(SearchError::BadSeconds(_)) => {}
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

/// Latencies as the search measures them (median of 5 runs), the lowest of three interleaved
/// rounds: this shared host has slow spells that only ever add time.
fn unhurried_ms(model: &LightHubert, subnets: &[&Subnet], seconds: f64) -> Vec<f64> {
    measure_interleaved_ms(model, subnets, &probe_audio(seconds), 5, 3).unwrap()
}
