//! The task registry against the real shared data: row counts equal the SOURCE.md tables,
//! prompts equal FinLoRA's strings, labels follow the selected mappings.

mod common;

use std::collections::BTreeMap;

use datasets::{Example, LoadConfig, NwgiMapping, Split, Task, TfnsLabels, ValidationSplit};

fn load(task: Task, split: Split, config: &LoadConfig) -> Vec<Example> {
    let Some(data) = common::shared_data() else { return Vec::new() };
    match data.load(task, split, config) {
        Ok(loaded) => {
            assert_eq!(loaded.report.n_skipped(), 0, "{task} {split:?} skipped lines");
            loaded.examples
        }
        Err(error) => panic!("{task} {split:?}: {error}"),
    }
}

fn label_counts(examples: &[Example]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for example in examples {
        *counts.entry(example.label.clone().unwrap_or_default()).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(label, count)| (label.to_string(), *count)).collect()
}

#[test]
fn row_counts_match_source_tables() {
    if common::shared_data().is_none() {
        return;
    }
    let config = LoadConfig::default();
    // (task, train file rows, test rows) from each SOURCE.md.
    let expected = [
        (Task::Fpb, Some(3_634), 1_212),
        (Task::FiqaSa, Some(938), 235),
        (Task::Tfns, Some(9_543), 2_388),
        (Task::Nwgi, None, 4_047),
        (Task::Headline, Some(51_366), 12_054),
        (Task::Ner, Some(13_549), 3_502),
        (Task::Finer, Some(1_606), 396),
        (Task::XbrlTags, None, 2_945),
        (Task::XbrlValues, None, 2_515),
        (Task::XbrlFormulaConstruction, Some(3_360), 835),
        (Task::XbrlFormulaCalculation, Some(3_360), 835),
    ];
    for (task, train_rows, test_rows) in expected {
        assert_eq!(load(task, Split::Test, &config).len(), test_rows, "{task} test");
        match train_rows {
            Some(rows) => {
                let n_train = load(task, Split::Train, &config).len();
                let n_validation = load(task, Split::Validation, &config).len();
                assert_eq!(n_train + n_validation, rows, "{task} train + validation");
                assert!(n_validation > 0, "{task} validation is empty");
            }
            None => {
                let data = common::shared_data();
                let result = data.map(|data| data.load(task, Split::Train, &config));
                assert!(
                    matches!(result, Some(Err(datasets::Error::NoSplit { .. }))),
                    "{task} has no train file"
                );
            }
        }
    }
    let with_context = [(Task::XbrlTags, 108), (Task::XbrlValues, 104), (Task::XbrlFormulaCalculation, 104)];
    for (task, rows) in with_context {
        assert_eq!(load(task, Split::TestWithContext, &config).len(), rows, "{task} with XML context");
    }
}

#[test]
fn label_distributions_match_source_tables() {
    if common::shared_data().is_none() {
        return;
    }
    let config = LoadConfig::default();
    let fpb = load(Task::Fpb, Split::Test, &config);
    assert_eq!(label_counts(&fpb), counts(&[("negative", 145), ("neutral", 729), ("positive", 338)]));
    let fiqa = load(Task::FiqaSa, Split::Test, &config);
    assert_eq!(label_counts(&fiqa), counts(&[("negative", 76), ("neutral", 18), ("positive", 141)]));
    let headline = load(Task::Headline, Split::Test, &config);
    assert_eq!(label_counts(&headline), counts(&[("No", 8_017), ("Yes", 4_037)]));
    let ner = load(Task::Ner, Split::Test, &config);
    assert_eq!(label_counts(&ner), counts(&[("location", 510), ("organization", 697), ("person", 2_295)]));
}

#[test]
fn fpb_prompt_equals_finlora_string() {
    let examples = load(Task::Fpb, Split::Test, &LoadConfig::default());
    let Some(first) = examples.first() else { return };
    assert_eq!(first.id, "fpb50-1855");
    assert_eq!(
        first.prompt,
        "Instruction: What is the sentiment of this news? Please choose an answer from {negative/neutral/positive}.\nInput: L&T has also made a commitment to redeem the remaining shares by the end of 2011 .\nAnswer: "
    );
    assert_eq!(first.target, "neutral");
    assert_eq!(first.label.as_deref(), Some("neutral"));
    assert_eq!(Task::Fpb.max_new_tokens(), 10);
}

#[test]
fn fiqa_instruction_follows_format() {
    let examples = load(Task::FiqaSa, Split::Test, &LoadConfig::default());
    for example in &examples {
        let noun =
            if example.extra.get("format").map(String::as_str) == Some("post") { "tweet" } else { "news" };
        assert!(example.prompt.starts_with(&format!("Instruction: What is the sentiment of this {noun}? ")));
    }
}

#[test]
fn tfns_uses_correct_labels_and_keeps_finlora_swap() {
    let correct = load(Task::Tfns, Split::Test, &LoadConfig::default());
    let finlora =
        load(Task::Tfns, Split::Test, &LoadConfig { tfns: TfnsLabels::FinLora, ..LoadConfig::default() });
    if correct.is_empty() {
        return;
    }
    assert_eq!(label_counts(&correct), counts(&[("negative", 347), ("neutral", 1_566), ("positive", 475)]));
    assert_eq!(label_counts(&finlora), counts(&[("negative", 347), ("neutral", 475), ("positive", 1_566)]));
    // Train rows carry no `label_finlora`; FinLoRA's mapping is applied to their integer id.
    let train =
        load(Task::Tfns, Split::Train, &LoadConfig { tfns: TfnsLabels::FinLora, ..LoadConfig::default() });
    let bullish =
        train.iter().find(|example| example.extra.get("label_name").map(String::as_str) == Some("bullish"));
    assert_eq!(bullish.and_then(|example| example.label.as_deref()), Some("neutral"));
}

#[test]
fn nwgi_mappings_change_prompt_target_and_label() {
    let with = |nwgi| load(Task::Nwgi, Split::Test, &LoadConfig { nwgi, ..LoadConfig::default() });
    let seven = with(NwgiMapping::Seven);
    let fingpt = with(NwgiMapping::FinGpt3);
    let finlora = with(NwgiMapping::FinLoraPolarity);
    if seven.is_empty() {
        return;
    }
    assert_eq!(
        label_counts(&seven),
        counts(&[
            ("mildly negative", 534),
            ("mildly positive", 646),
            ("moderately negative", 733),
            ("moderately positive", 1_522),
            ("neutral", 491),
            ("strong negative", 75),
            ("strong positive", 46),
        ])
    );
    assert_eq!(label_counts(&fingpt), counts(&[("negative", 808), ("neutral", 1_671), ("positive", 1_568)]));
    assert_eq!(label_counts(&finlora), counts(&[("negative", 1_342), ("neutral", 491), ("positive", 2_214)]));
    // FinLoRA trains and prompts on the 7 labels but scores polarity.
    assert_eq!(finlora[0].target, "mildly positive");
    assert_eq!(finlora[0].label.as_deref(), Some("positive"));
    assert!(finlora[0].prompt.contains("{strong negative/moderately negative/mildly negative/neutral/mildly positive/moderately positive/strong positive}. \nInput: "));
    assert!(fingpt[0].prompt.contains("{negative/neutral/positive}.\nInput: "));
}

#[test]
fn xbrl_rows_keep_filing_fields_and_context_prompts_stay_verbatim() {
    let tags = load(Task::XbrlTags, Split::Test, &LoadConfig::default());
    let Some(first) = tags.first() else { return };
    assert_eq!(first.target, "us-gaap:StockholdersEquity");
    assert_eq!(first.extra.get("company").map(String::as_str), Some("HD"));
    assert_eq!(first.extra.get("year").map(String::as_str), Some("2023"));
    assert!(first.prompt.ends_with("FY 2023? \nAnswer:"));
    let with_context = load(Task::XbrlValues, Split::TestWithContext, &LoadConfig::default());
    assert_eq!(with_context[0].target, "16116000000");
    assert!(with_context[0].prompt.starts_with("\"You are a knowledgeable XBRL assistant"));
    assert!(with_context[0].prompt.ends_with("\nAnswer:"));
}

#[test]
fn headline_and_ner_keep_row_instructions() {
    let ner = load(Task::Ner, Split::Test, &LoadConfig::default());
    let Some(first) = ner.first() else { return };
    assert!(first.prompt.starts_with(
        "Instruction: What is the entity type of 'EVERGREEN SOLAR' in the input sentence.\nOptions: location, organization, person\nInput: "
    ));
    let finer = load(Task::Finer, Split::Test, &LoadConfig::default());
    assert!(finer[0].prompt.contains("What is best tag for entity \"1.798\""));
    assert_eq!(Task::Finer.max_new_tokens(), 100);
}

#[test]
fn splits_are_deterministic_disjoint_and_grouped() {
    let config =
        LoadConfig { validation: ValidationSplit { fraction: 0.1, seed: 7 }, ..LoadConfig::default() };
    let train = load(Task::Headline, Split::Train, &config);
    let validation = load(Task::Headline, Split::Validation, &config);
    if train.is_empty() {
        return;
    }
    assert_eq!(validation, load(Task::Headline, Split::Validation, &config), "same seed, same split");
    let train_groups: std::collections::HashSet<&str> = train.iter().map(|e| e.group.as_str()).collect();
    assert!(validation.iter().all(|example| !train_groups.contains(example.group.as_str())));
    // 10 % of 8,561 headlines, six questions each.
    assert_eq!(validation.len(), 856 * 6);
    let other_seed = LoadConfig { validation: ValidationSplit { fraction: 0.1, seed: 8 }, ..config };
    assert_ne!(validation, load(Task::Headline, Split::Validation, &other_seed));
}
