//! `finagent bench infer` end to end on the default model: one JSON line with positive speeds,
//! and an unsupported base precision is an error that names it.

mod common;

use common::{finagent, model, stderr, stdout};

#[test]
fn bench_infer_prints_one_json_line_with_positive_speeds() {
    let Some(model) = model() else { return };
    let home = tempfile::tempdir().unwrap();
    let model = model.to_str().unwrap();
    let args =
        ["bench", "infer", "--prompt-tokens", "8", "--new-tokens", "2", "--bits", "8", "--model", model];
    let output = finagent(home.path(), &args, &[]);
    assert!(output.status.success(), "bench infer failed: {}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "expected one JSON line, got {text:?}");
    let report: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(report["peer"], "finagent");
    assert_eq!(report["bits"], 8);
    assert_eq!(report["prompt_tokens"], 8);
    for key in ["prefill_tokens_per_sec", "decode_tokens_per_sec", "load_sec"] {
        assert!(report[key].as_f64().is_some_and(|value| value > 0.0), "{key} not positive in {report}");
    }
    assert!(report["peak_rss_mb"].as_u64().is_some_and(|mb| mb > 0), "no peak_rss_mb in {report}");
}

#[test]
fn bench_infer_rejects_three_bits_by_name() {
    let Some(model) = model() else { return };
    let home = tempfile::tempdir().unwrap();
    let args = ["bench", "infer", "--bits", "3", "--model", model.to_str().unwrap()];
    let output = finagent(home.path(), &args, &[]);
    assert!(!output.status.success(), "--bits 3 was accepted: {}", stdout(&output));
    let message = stderr(&output);
    assert!(message.contains("got 3"), "error does not name 3: {message}");
}
