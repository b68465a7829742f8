//! Answer normalisation in FinLoRA-compatible (v1, v2) and strict modes, including
//! REFERENCE.md's hand-worked examples.

use datasets::metrics::{accuracy, weighted_f1};
use datasets::normalize::{change_target, earliest_label, finlora_entity, finlora_yes_no};
use datasets::{judge, NormalizeMode, Task, NER_LABELS, NWGI_LABELS, SENTIMENT_LABELS};

use NormalizeMode::{FinLoraV1, FinLoraV2, Strict};

fn correct(task: Task, mode: NormalizeMode, labels: &[&str], output: &str, target: &str) -> bool {
    judge(task, mode, labels, output, target).correct
}

#[test]
fn v1_sentiment_follows_change_target() {
    assert_eq!(change_target("Positive outlook"), "positive");
    assert_eq!(change_target("negative, not positive"), "positive", "positive is checked first");
    assert_eq!(change_target("garbage"), "neutral", "anything else counts as neutral");
    assert!(correct(Task::Fpb, FinLoraV1, &[], " I'd say it is neutral", "neutral"));
    assert!(correct(Task::Fpb, FinLoraV1, &[], "", "neutral"), "empty output scores as neutral in v1");
    // NWGI: FinLoRA scores the 7-level target through change_target too (mildly X -> X).
    assert!(correct(Task::Nwgi, FinLoraV1, &[], "positive", "mildly positive"));
    assert!(!correct(Task::Nwgi, FinLoraV1, &[], "neutral", "mildly positive"));
    // Only text before a repeated cue counts, as split("Answer:")[1] on the whole decode.
    assert!(!correct(Task::Tfns, FinLoraV1, &[], "negative\nAnswer: positive", "positive"));
}

#[test]
fn v1_headline_and_ner_rules() {
    assert_eq!(finlora_yes_no("YES."), Some("Yes"));
    assert_eq!(finlora_yes_no("I don't know"), Some("No"), "'no' inside 'know' counts, as in FinLoRA");
    assert_eq!(finlora_yes_no("maybe"), None);
    assert!(correct(Task::Headline, FinLoraV1, &[], "Yes", "Yes"));
    assert!(!correct(Task::Headline, FinLoraV1, &[], "maybe", "No"));
    assert_eq!(finlora_entity("a person"), Some("negative"), "FinLoRA's label-name slip");
    assert!(correct(Task::Ner, FinLoraV1, &[], "person", "person"), "slip applied to both sides");
    assert!(correct(Task::Ner, FinLoraV1, &[], "organization or person", "organization"));
    assert!(!correct(Task::Ner, FinLoraV1, &[], "company", "organization"));
}

#[test]
fn v2_takes_earliest_label_after_last_answer_cue() {
    let labels = SENTIMENT_LABELS;
    assert!(correct(Task::Fpb, FinLoraV2, labels, "Neutral, not positive", "neutral"));
    assert!(correct(Task::Fpb, FinLoraV2, labels, "negative\nAnswer: positive", "positive"));
    let judgement = judge(Task::Fpb, FinLoraV2, labels, "unsure", "positive");
    assert_eq!((judgement.prediction, judgement.correct), (None, false));
    // Substring matching as in FinLoRA: "negatively" names negative.
    assert!(correct(Task::Fpb, FinLoraV2, labels, "negatively", "negative"));
    // Seven labels: the full label starts before the bare polarity inside it.
    assert!(correct(Task::Nwgi, FinLoraV2, NWGI_LABELS, "moderately positive", "moderately positive"));
    assert!(!correct(Task::Nwgi, FinLoraV2, NWGI_LABELS, "mildly positive", "moderately positive"));
    assert_eq!(earliest_label("no, not yes", &["yes", "no"], false), Some("no"));
}

#[test]
fn strict_needs_a_whole_word_label() {
    let labels = SENTIMENT_LABELS;
    assert!(correct(Task::Fpb, Strict, labels, "The sentiment is Negative.", "negative"));
    let judgement = judge(Task::Fpb, Strict, labels, "negatively", "negative");
    assert_eq!((judgement.prediction, judgement.correct), (None, false), "no whole-word label");
    let judgement = judge(Task::Fpb, Strict, labels, "", "neutral");
    assert!(!judgement.correct, "no label is wrong, unlike v1's neutral default");
    assert!(correct(Task::Ner, Strict, NER_LABELS, "person", "person"));
    assert!(correct(Task::Headline, Strict, &["Yes", "No"], "no.", "No"));
    assert!(!correct(Task::Headline, Strict, &["Yes", "No"], "I don't know", "No"));
    assert!(correct(
        Task::Finer,
        Strict,
        &["Revenues", "LongTermDebt"],
        "us-gaap:LongTermDebt",
        "LongTermDebt"
    ));
}

#[test]
fn free_text_rules_per_mode() {
    let formula = "(6226000000 / 38542000000) * 100";
    let output = "Cash flow margin:\n(6226000000 / 38542000000) * 100";
    assert!(correct(Task::XbrlFormulaCalculation, FinLoraV1, &[], output, formula), "last line contains it");
    assert!(!correct(
        Task::XbrlFormulaCalculation,
        FinLoraV1,
        &[],
        "(6226000000 / 38542000000) * 100\nDone",
        formula
    ));
    assert!(correct(Task::XbrlTags, FinLoraV2, &[], "US-GAAP:Assets is the tag", "us-gaap:Assets"));
    assert!(!correct(Task::XbrlTags, Strict, &[], "us-gaap:Assets is the tag", "us-gaap:Assets"));
    assert!(correct(Task::XbrlValues, Strict, &[], "  16116000000.\nmore", "16116000000"));
    assert!(correct(
        Task::XbrlFormulaCalculation,
        Strict,
        &[],
        "(6226000000  /  38542000000) * 100",
        formula
    ));
}

/// REFERENCE.md C4: targets [neg, neg, pos, pos], responses [neg, "The answer is pos", pos, "neg."]
/// under "ground truth contained in response": accuracy 0.50, weighted F1 0.667.
#[test]
fn reference_hand_worked_f1_above_accuracy() {
    let targets = ["neg", "neg", "pos", "pos"];
    let outputs = ["neg", "The answer is pos", "pos", "neg."];
    let judgements: Vec<_> = outputs
        .iter()
        .zip(targets)
        .map(|(output, target)| judge(Task::XbrlValues, FinLoraV2, &[], output, target))
        .collect();
    assert_eq!(accuracy(&judgements), 0.5);
    assert!((weighted_f1(&judgements) - 2.0 / 3.0).abs() < 1e-12);
}

#[test]
fn weighted_f1_matches_sklearn_on_classes() {
    // sklearn f1_score(["a","a","b","c"], ["a","b","b","a"], average="weighted") = 5/12:
    // a: P 1/2 R 1/2, b: P 1/2 R 1, c: 0; weights 2, 1, 1.
    let pairs = [("a", "a"), ("a", "b"), ("b", "b"), ("c", "a")];
    let judgements: Vec<_> = pairs
        .iter()
        .map(|(target, output)| judge(Task::Fpb, Strict, &["a", "b", "c"], output, target))
        .collect();
    assert!((weighted_f1(&judgements) - 5.0 / 12.0).abs() < 1e-12);
}
