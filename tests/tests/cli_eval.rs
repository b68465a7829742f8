//! `finagent eval` and `finagent report` end to end on the default model with a few FPB test
//! examples: predictions logs and run.json, resuming after a torn log, refusing an existing
//! output folder and a task without a test split, and the report's tables and charts.

mod common;

use std::path::Path;

use common::{finagent, model, shared, stderr, stdout};

fn eval_args<'a>(out: &'a str, model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args =
        vec!["eval", "--tasks", "fpb", "--limit", "3", "--batch-size", "2", "--model", model, "--out", out];
    args.extend_from_slice(extra);
    args
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn eval_logs_predictions_resumes_and_reports() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let data = shared.join("data");
    let env = [("FINAGENT_DATA", data.as_path())];
    let model = model.to_str().unwrap().to_string();
    let run_dir = home.path().join("base8");
    let out = run_dir.to_str().unwrap().to_string();

    let output =
        finagent(home.path(), &eval_args(&out, &model, &["--mode", "generate,score", "--json"]), &env);
    assert!(output.status.success(), "eval failed: {}", stderr(&output));
    let run: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(run["bits"], 8);
    assert_eq!(run["name"], "base8");
    assert!(run["peak_rss_bytes"].as_u64().is_some_and(|bytes| bytes > 1 << 20));
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for result in results {
        assert_eq!(result["n_examples"], 3);
        assert!(result["accuracy_strict"].as_f64().is_some_and(|acc| (0.0..=1.0).contains(&acc)));
        let confusion = &result["confusion"]["counts"];
        let total: u64 = confusion
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap())
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(total, 3);
    }
    assert_eq!(results[1]["unparseable_share"], 0.0, "scoring always names a label");
    let generated = run_dir.join("fpb.generate.jsonl");
    let first = lines(&generated);
    assert_eq!(first.len(), 3);
    assert!(first
        .iter()
        .all(|line| line["id"].is_string() && line["prompt_hash"].as_str().is_some_and(|h| h.len() == 16)));

    // An existing output folder is refused without --resume.
    let again = finagent(home.path(), &eval_args(&out, &model, &[]), &env);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists") && stderr(&again).contains("--resume"),
        "{}",
        stderr(&again)
    );

    // Tear the log after the first line, as a kill mid-write would, and resume: only the missing
    // examples are redone, and they come out as before.
    let text = std::fs::read_to_string(&generated).unwrap();
    let first_line_end = text.find('\n').unwrap() + 1;
    std::fs::write(&generated, format!("{}{{\"id\":\"torn", &text[..first_line_end])).unwrap();
    let resumed =
        finagent(home.path(), &eval_args(&out, &model, &["--mode", "generate,score", "--resume"]), &env);
    assert!(resumed.status.success(), "resume failed: {}", stderr(&resumed));
    assert!(stderr(&resumed).contains("2 examples to answer, 1 already done"), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("0 examples to answer, 3 already done"), "{}", stderr(&resumed));
    let after = lines(&generated);
    assert_eq!(after.len(), 3);
    let outputs = |values: &[serde_json::Value]| {
        let mut pairs: Vec<(String, String)> =
            values.iter().map(|v| (v["id"].to_string(), v["output"].to_string())).collect();
        pairs.sort();
        pairs
    };
    assert_eq!(outputs(&after), outputs(&first));

    let report_dir = home.path().join("report");
    let report = finagent(home.path(), &["report", &out, "--out", report_dir.to_str().unwrap()], &[]);
    assert!(report.status.success(), "report failed: {}", stderr(&report));
    let table3 = std::fs::read_to_string(report_dir.join("table3.md")).unwrap();
    assert!(
        table3.contains("| fpb |") && table3.contains("base8 Acc") && table3.contains("base8 (score) F1"),
        "{table3}"
    );
    let csv = std::fs::read_to_string(report_dir.join("table45.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(std::fs::read_to_string(report_dir.join("accuracy.svg")).unwrap().starts_with("<svg"));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let data = shared.join("data");
    let env = [("FINAGENT_DATA", data.as_path())];
    let model = model.to_str().unwrap().to_string();
    let out = home.path().join("run");
    let out = out.to_str().unwrap();

    let no_split =
        finagent(home.path(), &["eval", "--tasks", "finer_tagging", "--model", &model, "--out", out], &env);
    assert!(!no_split.status.success());
    assert!(stderr(&no_split).contains("finer_tagging"), "{}", stderr(&no_split));

    let score_free_text = finagent(
        home.path(),
        &["eval", "--tasks", "xbrl_values", "--mode", "score", "--model", &model, "--out", out],
        &env,
    );
    assert!(stderr(&score_free_text).contains("closed label set"), "{}", stderr(&score_free_text));

    let unrouted = finagent(
        home.path(),
        &["eval", "--tasks", "fpb", "--adapter", &format!("ner={out}"), "--model", &model, "--out", out],
        &env,
    );
    assert!(!unrouted.status.success());
    assert!(stderr(&unrouted).contains("adapter"), "{}", stderr(&unrouted));
}

#[test]
fn label_mappings_are_selectable_and_recorded_for_resume() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let data = shared.join("data");
    let env = [("FINAGENT_DATA", data.as_path())];
    let model = model.to_str().unwrap().to_string();
    let out = home.path().join("tfns");
    let out = out.to_str().unwrap();
    let base = [
        "eval",
        "--tasks",
        "tfns,nwgi",
        "--limit",
        "2",
        "--batch-size",
        "2",
        "--model",
        &model,
        "--out",
        out,
    ];
    let mut finlora = base.to_vec();
    finlora.extend(["--tfns", "finlora", "--nwgi", "seven", "--json"]);
    let output = finagent(home.path(), &finlora, &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let run: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let nwgi = run["results"].as_array().unwrap().iter().find(|result| result["task"] == "nwgi").unwrap();
    let classes = nwgi["per_class"].as_array().unwrap().len();
    assert_eq!(classes, 7, "--nwgi seven scores all seven labels: {nwgi}");
    let settings = std::fs::read_to_string(Path::new(out).join("settings.json")).unwrap();
    assert!(settings.contains("\"fin_lora\"") && settings.contains("\"seven\""), "{settings}");

    // Resuming with other mappings is refused; a bad value is named.
    let mut other = base.to_vec();
    other.push("--resume");
    let output = finagent(home.path(), &other, &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--tfns"), "{}", stderr(&output));
    let mut bogus = base.to_vec();
    bogus.extend(["--nwgi", "bogus"]);
    let output = finagent(home.path(), &bogus, &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("bogus"), "{}", stderr(&output));
}

#[test]
fn generation_budgets_can_be_overridden_and_are_recorded_for_resume() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let data = shared.join("data");
    let env = [("FINAGENT_DATA", data.as_path())];
    let model = model.to_str().unwrap().to_string();
    let out = home.path().join("budget");
    let out = out.to_str().unwrap();

    for bad in ["fpb=0", "bogus=3", "many"] {
        let output = finagent(home.path(), &eval_args(out, &model, &["--max-new-tokens", bad]), &env);
        assert!(!output.status.success());
        assert!(stderr(&output).contains(bad), "{bad}: {}", stderr(&output));
        assert!(!Path::new(out).exists(), "{bad} left an output folder");
    }

    let output = finagent(home.path(), &eval_args(out, &model, &["--max-new-tokens", "fpb=1"]), &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let predictions = lines(&Path::new(out).join("fpb.generate.jsonl"));
    assert_eq!(predictions.len(), 3);
    for prediction in &predictions {
        let text = prediction["output"].as_str().unwrap();
        assert!(text.split_whitespace().count() <= 1, "one new token at most: {text:?}");
    }
    let settings = std::fs::read_to_string(Path::new(out).join("settings.json")).unwrap();
    assert!(settings.contains("max_new_tokens") && settings.contains("\"fpb\": 1"), "{settings}");

    // Resuming with FinLoRA's budgets would mix two budgets in one log: refused.
    let output = finagent(home.path(), &eval_args(out, &model, &["--resume"]), &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--max-new-tokens"), "{}", stderr(&output));
}

#[test]
fn llm_int8_is_recorded_for_resume() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let data = shared.join("data");
    let env = [("FINAGENT_DATA", data.as_path())];
    let model = model.to_str().unwrap().to_string();
    let out = home.path().join("llm");
    let out = out.to_str().unwrap();

    let output = finagent(home.path(), &eval_args(out, &model, &["--int8-matmul", "llm-int8"]), &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let settings = std::fs::read_to_string(Path::new(out).join("settings.json")).unwrap();
    assert!(settings.contains("\"int8_matmul\": \"llm-int8\""), "{settings}");
    assert_eq!(lines(&Path::new(out).join("fpb.generate.jsonl")).len(), 3);

    // Resuming without the flag would mix two forwards in one log: refused.
    let output = finagent(home.path(), &eval_args(out, &model, &["--resume"]), &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--int8-matmul"), "{}", stderr(&output));
    let output =
        finagent(home.path(), &eval_args(out, &model, &["--resume", "--int8-matmul", "llm-int8"]), &env);
    assert!(output.status.success(), "{}", stderr(&output));
}
