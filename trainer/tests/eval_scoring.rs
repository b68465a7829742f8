//! The evaluator on the real model and FPB test prompts: label scoring gives each label the
//! summed log-probability of its tokens after the prompt (checked against a plain forward pass)
//! and picks the best, and generated answers do not depend on the batch size.

mod common;

use candle_core::D;
use datasets::{DataDir, Example, LoadConfig, Split, Task};
use trainer::eval::{EvalMode, Evaluator, Prediction, TaskBatch};
use trainer::model::LogitsPositions;

fn fpb_examples(n: usize) -> Option<Vec<Example>> {
    let shared = common::shared_dir()?;
    let loaded =
        DataDir::new(shared.join("data")).load(Task::Fpb, Split::Test, &LoadConfig::default()).ok()?;
    Some(loaded.examples.into_iter().take(n).collect())
}

fn answer(evaluator: &Evaluator<'_>, examples: &[&Example], mode: EvalMode) -> Vec<Prediction> {
    let labels: Vec<String> = ["negative", "neutral", "positive"].map(String::from).to_vec();
    answer_with(evaluator, examples, mode, &labels)
}

fn answer_with(
    evaluator: &Evaluator<'_>,
    examples: &[&Example],
    mode: EvalMode,
    labels: &[String],
) -> Vec<Prediction> {
    let work = TaskBatch {
        task: Task::Fpb,
        examples,
        adapter: None,
        labels,
        max_new_tokens: Task::Fpb.max_new_tokens(),
    };
    let mut predictions = Vec::new();
    evaluator
        .answer(&work, mode, &mut |prediction| {
            predictions.push(prediction);
            Ok(())
        })
        .unwrap();
    predictions.sort_by(|a, b| a.id.cmp(&b.id));
    predictions
}

#[test]
fn label_scores_are_summed_token_log_probabilities() {
    let Some((model, tokenizer)) = common::gguf_model() else { return };
    let Some(examples) = fpb_examples(3) else { return };
    let refs: Vec<&Example> = examples.iter().collect();
    let evaluator = Evaluator { model, tokenizer, router: None, batch_size: 2 };
    let predictions = answer(&evaluator, &refs, EvalMode::Score);
    assert_eq!(predictions.len(), 3);
    for prediction in &predictions {
        let example = examples.iter().find(|example| example.id == prediction.id).unwrap();
        let prompt = tokenizer.encode(&example.prompt, false).unwrap();
        let scores = prediction.label_log_likelihoods.as_ref().unwrap();
        for (label, score) in scores {
            let label_ids = tokenizer.encode(label, false).unwrap();
            let ids = [prompt.as_slice(), label_ids.as_slice()].concat();
            let logits = model.forward_ids(&ids, 0, None, LogitsPositions::All).unwrap();
            let log_probs: Vec<Vec<f32>> =
                candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap().to_vec2().unwrap();
            let expected: f64 = label_ids
                .iter()
                .enumerate()
                .map(|(offset, &token)| f64::from(log_probs[prompt.len() + offset - 1][token as usize]))
                .sum();
            assert!((score - expected).abs() < 1e-3, "{label}: {score} vs {expected}");
        }
        let best = scores.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(label, _)| label.clone());
        assert_eq!(Some(prediction.output.clone()), best);
        assert_eq!(prediction.parsed, best);
    }
}

#[test]
fn mean_label_scores_divide_the_sums_by_the_label_token_counts() {
    let Some((model, tokenizer)) = common::gguf_model() else { return };
    let Some(examples) = fpb_examples(2) else { return };
    let refs: Vec<&Example> = examples.iter().collect();
    let evaluator = Evaluator { model, tokenizer, router: None, batch_size: 2 };
    // Labels of one to several tokens, so that the sum and the mean rank them differently.
    let labels: Vec<String> =
        ["neutral", "positive", "negative outlook for the company", "NotApplicableSentiment"]
            .map(String::from)
            .to_vec();
    let lengths: Vec<usize> =
        labels.iter().map(|label| tokenizer.encode(label, false).unwrap().len()).collect();
    assert!(lengths.iter().any(|&len| len > 2), "{lengths:?}");
    let sums = answer_with(&evaluator, &refs, EvalMode::Score, &labels);
    let means = answer_with(&evaluator, &refs, EvalMode::ScoreMean, &labels);
    for (sum, mean) in sums.iter().zip(&means) {
        assert_eq!(sum.id, mean.id);
        let sum_scores = sum.label_log_likelihoods.as_ref().unwrap();
        let mean_scores = mean.label_log_likelihoods.as_ref().unwrap();
        for (((label, total), (same_label, average)), len) in sum_scores.iter().zip(mean_scores).zip(&lengths)
        {
            assert_eq!(label, same_label);
            assert!((total / *len as f64 - average).abs() < 1e-9, "{label}: {total} / {len} vs {average}");
        }
        let best = mean_scores.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(label, _)| label.clone());
        assert_eq!(Some(mean.output.clone()), best);
    }
}

#[test]
fn calibrated_label_scores_subtract_the_scores_without_the_input() {
    let Some((model, tokenizer)) = common::gguf_model() else { return };
    let Some(examples) = fpb_examples(3) else { return };
    let refs: Vec<&Example> = examples.iter().collect();
    let evaluator = Evaluator { model, tokenizer, router: None, batch_size: 2 };
    let sums = answer(&evaluator, &refs, EvalMode::Score);
    let calibrated = answer(&evaluator, &refs, EvalMode::ScoreCalibrated);
    // The same rows with the sentence cut out of the prompt, scored plainly.
    let blanked: Vec<Example> = examples
        .iter()
        .map(|example| {
            assert!(!example.input.is_empty() && example.prompt.contains(&example.input));
            Example { prompt: example.prompt.replacen(&example.input, "", 1), ..example.clone() }
        })
        .collect();
    let blanked_refs: Vec<&Example> = blanked.iter().collect();
    let nulls = answer(&evaluator, &blanked_refs, EvalMode::Score);
    let mut differs = false;
    for ((sum, calibrated), null) in sums.iter().zip(&calibrated).zip(&nulls) {
        assert_eq!((&sum.id, &sum.id), (&calibrated.id, &null.id));
        let sum_scores = sum.label_log_likelihoods.as_ref().unwrap();
        let null_scores = null.label_log_likelihoods.as_ref().unwrap();
        let calibrated_scores = calibrated.label_log_likelihoods.as_ref().unwrap();
        for ((label, total), ((_, without), (same_label, score))) in
            sum_scores.iter().zip(null_scores.iter().zip(calibrated_scores))
        {
            assert_eq!(label, same_label);
            assert!((total - without - score).abs() < 1e-3, "{label}: {total} - {without} vs {score}");
        }
        let best =
            calibrated_scores.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(label, _)| label.clone());
        assert_eq!(Some(calibrated.output.clone()), best);
        differs |= calibrated_scores.iter().zip(sum_scores).any(|(a, b)| (a.1 - b.1).abs() > 1e-2);
    }
    assert!(differs, "calibration changed no score");
}

#[test]
fn calibration_needs_the_input_inside_the_prompt() {
    let Some((model, tokenizer)) = common::gguf_model() else { return };
    let Some(mut examples) = fpb_examples(1) else { return };
    examples[0].input = "a sentence that is not in the prompt".into();
    let evaluator = Evaluator { model, tokenizer, router: None, batch_size: 1 };
    let labels: Vec<String> = ["negative", "neutral", "positive"].map(String::from).to_vec();
    let refs: Vec<&Example> = examples.iter().collect();
    let work =
        TaskBatch { task: Task::Fpb, examples: &refs, adapter: None, labels: &labels, max_new_tokens: 4 };
    let error = evaluator.answer(&work, EvalMode::ScoreCalibrated, &mut |_| Ok(())).unwrap_err().to_string();
    assert!(error.contains(&examples[0].id) && error.contains("input"), "{error}");
}

#[test]
fn generated_answers_do_not_depend_on_the_batch_size() {
    let Some((model, tokenizer)) = common::gguf_model() else { return };
    let Some(examples) = fpb_examples(4) else { return };
    let refs: Vec<&Example> = examples.iter().collect();
    let one = answer(&Evaluator { model, tokenizer, router: None, batch_size: 1 }, &refs, EvalMode::Generate);
    let four =
        answer(&Evaluator { model, tokenizer, router: None, batch_size: 4 }, &refs, EvalMode::Generate);
    let outputs = |predictions: &[Prediction]| {
        predictions
            .iter()
            .map(|p| (p.id.clone(), p.output.clone(), p.prompt_hash.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(outputs(&one), outputs(&four));
    assert!(four.iter().all(|prediction| prediction.seconds > 0.0));
}
