//! AdamW against torch.optim.AdamW (fixture from scripts/gen_adamw_fixture.py), and its state
//! round trip.

use serde_json::Value;
use trainer::dist::single::SingleProcess;
use trainer::optim::{AdamW, AdamWConfig, Optimizer};

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/adamw_torch.json");
    let text = std::fs::read_to_string(path).expect("fixture adamw_torch.json is readable");
    serde_json::from_str(&text).expect("fixture is json")
}

fn f32s(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("array of bit patterns")
        .iter()
        .map(|bits| f32::from_bits(bits.as_u64().unwrap() as u32))
        .collect()
}

fn buffers(value: &Value) -> Vec<Vec<f32>> {
    value.as_array().expect("array of buffers").iter().map(f32s).collect()
}

#[test]
fn adamw_matches_torch_bit_for_bit() {
    let fixture = fixture();
    let config = AdamWConfig {
        beta1: fixture["beta1"].as_f64().unwrap(),
        beta2: fixture["beta2"].as_f64().unwrap(),
        eps: fixture["eps"].as_f64().unwrap(),
        weight_decay: fixture["weight_decay"].as_f64().unwrap(),
    };
    assert_eq!(config, AdamWConfig::default(), "the fixture uses torch's defaults");
    let lrs = f32s(&fixture["lrs_f32_bits"]);
    let mut params = buffers(&fixture["initial_params_bits"]);
    let grads = fixture["grads_bits"].as_array().unwrap();
    let expected = fixture["expected_params_bits"].as_array().unwrap();
    assert!(lrs.len() >= 5 && grads.len() == lrs.len() && expected.len() == lrs.len());

    let mut optimizer = AdamW::new(config);
    let mut comm = SingleProcess::new();
    let mut max_abs_diff = 0.0f32;
    let mut n_mismatched = 0usize;
    for (step, lr) in lrs.iter().enumerate() {
        optimizer.step(&mut params, &buffers(&grads[step]), *lr, &mut comm).unwrap();
        for (ours, theirs) in params.iter().zip(buffers(&expected[step])) {
            for (a, b) in ours.iter().zip(&theirs) {
                max_abs_diff = max_abs_diff.max((a - b).abs());
                n_mismatched += usize::from(a.to_bits() != b.to_bits());
            }
        }
    }
    println!("adamw vs torch: max abs diff {max_abs_diff:e}, {n_mismatched} values differ in bits");
    assert_eq!(n_mismatched, 0, "max abs diff {max_abs_diff:e}");
}

#[test]
fn state_round_trip_continues_bitwise() {
    let lens = [7usize, 3];
    let grad_at = |step: usize| -> Vec<Vec<f32>> {
        lens.iter()
            .map(|&len| (0..len).map(|j| ((step * 31 + j * 7) % 13) as f32 * 0.1 - 0.6).collect())
            .collect()
    };
    let initial: Vec<Vec<f32>> =
        lens.iter().map(|&len| (0..len).map(|j| j as f32 * 0.25 - 0.5).collect()).collect();
    let mut comm = SingleProcess::new();

    let mut straight = AdamW::new(AdamWConfig::default());
    let mut straight_params = initial.clone();
    for step in 0..6 {
        straight.step(&mut straight_params, &grad_at(step), 0.01, &mut comm).unwrap();
    }

    let mut first = AdamW::new(AdamWConfig::default());
    let mut resumed_params = initial;
    for step in 0..3 {
        first.step(&mut resumed_params, &grad_at(step), 0.01, &mut comm).unwrap();
    }
    let state = first.state();
    let mut second = AdamW::new(AdamWConfig::default());
    second.load_state(state, &lens).unwrap();
    for step in 3..6 {
        second.step(&mut resumed_params, &grad_at(step), 0.01, &mut comm).unwrap();
    }
    assert_eq!(second.steps_taken(), 6);
    assert_eq!(straight_params, resumed_params);
}

#[test]
fn load_state_names_the_mismatch() {
    let mut comm = SingleProcess::new();
    let mut optimizer = AdamW::new(AdamWConfig::default());
    let mut params = vec![vec![1.0f32; 4], vec![2.0; 2]];
    optimizer.step(&mut params, &[vec![0.1; 4], vec![0.2; 2]], 0.01, &mut comm).unwrap();
    let state = optimizer.state();

    let wrong_size = AdamW::new(AdamWConfig::default()).load_state(state.clone(), &[4, 3]).unwrap_err();
    assert!(wrong_size.to_string().contains("exp_avg.1 has 2 values, expected 3"), "{wrong_size}");
    let too_few = AdamW::new(AdamWConfig::default()).load_state(state.clone(), &[4]).unwrap_err();
    assert!(too_few.to_string().contains("lacks"), "{too_few}");
    let mut other = state;
    other.kind = "zero_one_adam".to_string();
    let wrong_kind = AdamW::new(AdamWConfig::default()).load_state(other, &[4, 2]).unwrap_err();
    assert!(wrong_kind.to_string().contains("zero_one_adam"), "{wrong_kind}");

    let bad_grads = optimizer.step(&mut params, &[vec![0.1; 4]], 0.01, &mut comm).unwrap_err();
    assert!(bad_grads.to_string().contains("gradient lengths [4]"), "{bad_grads}");
}
