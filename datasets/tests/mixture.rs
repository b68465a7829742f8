//! Multi-task mixtures: temperature-scaled proportions, caps, determinism, JSON round trip.

use std::collections::BTreeMap;

use datasets::{Example, Mixture, MixtureComponent, Task};

fn pool(task: Task, n_examples: usize) -> Vec<Example> {
    (0..n_examples)
        .map(|idx| Example {
            id: format!("{task}-{idx}"),
            task,
            instruction: String::new(),
            input: format!("input {idx}"),
            prompt: format!("prompt {idx}"),
            target: "x".into(),
            label: None,
            group: idx.to_string(),
            line: idx + 1,
            extra: BTreeMap::new(),
        })
        .collect()
}

fn pools() -> BTreeMap<Task, Vec<Example>> {
    BTreeMap::from([(Task::Fpb, pool(Task::Fpb, 100)), (Task::Headline, pool(Task::Headline, 10_000))])
}

fn mixture(temperature: f64, n_examples: usize) -> Mixture {
    Mixture {
        n_examples: Some(n_examples),
        ..Mixture::uniform(&[Task::Fpb, Task::Headline], temperature, 11)
    }
}

#[test]
fn temperature_flattens_size_proportions() {
    let sizes = BTreeMap::from([(Task::Fpb, 100), (Task::Headline, 10_000)]);
    let proportional = mixture(1.0, 0).probabilities(&sizes).unwrap_or_default();
    assert!((proportional[&Task::Fpb] - 100.0 / 10_100.0).abs() < 1e-12);
    // T = 2: sqrt sizes 10 and 100.
    let flattened = mixture(2.0, 0).probabilities(&sizes).unwrap_or_default();
    assert!((flattened[&Task::Fpb] - 10.0 / 110.0).abs() < 1e-12);
}

#[test]
fn drawn_counts_follow_probabilities() {
    let draw = match mixture(2.0, 22_000).sample(&pools()) {
        Ok(draw) => draw,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(draw.examples.len(), 22_000);
    let fpb_share = draw.counts[&Task::Fpb] as f64 / 22_000.0;
    // Expected 1/11 = 0.0909; binomial standard deviation 0.0019.
    assert!((fpb_share - 1.0 / 11.0).abs() < 0.01, "fpb share {fpb_share}");
    // FPB is drawn 20 times its size: every example about equally often.
    let fpb_distinct: std::collections::HashSet<&str> =
        draw.examples.iter().filter(|e| e.task == Task::Fpb).map(|e| e.id.as_str()).collect();
    assert_eq!(fpb_distinct.len(), 100);
}

#[test]
fn weights_and_caps_shape_the_mixture() {
    let weighted = Mixture {
        components: vec![
            MixtureComponent { task: Task::Fpb, weight: 3.0, cap: None },
            MixtureComponent { task: Task::Headline, weight: 1.0, cap: Some(300) },
        ],
        temperature: 1.0,
        seed: 5,
        n_examples: None,
    };
    let draw = match weighted.sample(&pools()) {
        Ok(draw) => draw,
        Err(error) => panic!("{error}"),
    };
    // Capped sizes 100 and 300, weights 3 and 1: equal shares, 400 draws in all.
    assert!((draw.probabilities[&Task::Fpb] - 0.5).abs() < 1e-12);
    assert_eq!(draw.examples.len(), 400);
    let headline_distinct: std::collections::HashSet<&str> =
        draw.examples.iter().filter(|e| e.task == Task::Headline).map(|e| e.id.as_str()).collect();
    assert!(headline_distinct.len() <= 300);

    let zero_weight = Mixture {
        components: vec![
            MixtureComponent { task: Task::Fpb, weight: 1.0, cap: None },
            MixtureComponent { task: Task::Headline, weight: 0.0, cap: None },
        ],
        n_examples: Some(1_000),
        ..weighted
    };
    let counts = zero_weight.sample(&pools()).map(|draw| draw.counts).unwrap_or_default();
    assert_eq!(counts.get(&Task::Fpb), Some(&1_000));
    assert_eq!(counts.get(&Task::Headline), None);
}

#[test]
fn same_seed_same_draw_and_json_round_trip() {
    let mixture = mixture(1.5, 500);
    let ids = |mixture: &Mixture| -> Vec<String> {
        mixture
            .sample(&pools())
            .map(|draw| draw.examples.into_iter().map(|e| e.id).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids(&mixture), ids(&mixture));
    assert_ne!(ids(&mixture), ids(&Mixture { seed: 12, ..mixture.clone() }));
    let json = mixture.to_json().unwrap_or_default();
    assert_eq!(Mixture::from_json(&json).ok(), Some(mixture.clone()));
    let run_dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let written = mixture.write_json(run_dir.path()).ok().and_then(|path| std::fs::read_to_string(path).ok());
    assert_eq!(written, Some(json));
}

#[test]
fn rejects_bad_configurations() {
    let sizes = BTreeMap::from([(Task::Fpb, 100)]);
    assert!(Mixture::uniform(&[Task::Fpb], 0.0, 1).probabilities(&sizes).is_err());
    assert!(Mixture::uniform(&[Task::Fpb, Task::Fpb], 1.0, 1).probabilities(&sizes).is_err());
    assert!(Mixture::uniform(&[Task::Ner], 1.0, 1).probabilities(&sizes).is_err(), "no pool for ner");
}
