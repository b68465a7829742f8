//! End-to-end tests of `finagent tag`: JSON lines proposed with the model for an inline filing,
//! `--score` against the filing's own tags, cross-validated FiNER rows and the tag adapter's
//! training rows, a file without numbers, and malformed input.

mod common;

use std::path::Path;

use common::{finagent, model, shared, stderr, stdout};
use serde_json::Value;

const FILING: &str = "xbrl/filings/AAPL/2023/aapl-20230930.htm";

/// `correct/scored` from the accuracy line `tag` prints with `--score`.
fn accuracy(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|line| line.starts_with("accuracy "))
        .unwrap_or_else(|| panic!("no accuracy in {stderr}"));
    let fraction = line.split_whitespace().nth(1).expect("accuracy n/m");
    let (correct, scored) = fraction.split_once('/').expect("n/m");
    (correct.parse().expect("n"), scored.parse().expect("m"))
}

#[test]
fn proposes_tags_with_the_model_as_json_lines() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().expect("temp home");
    let filing = shared.join(FILING);
    let args = ["tag", filing.to_str().expect("utf-8 path"), "--limit", "3", "--rescore"];
    let output = finagent(home.path(), &args, &[("FINAGENT_MODEL", &model), ("FINAGENT_SHARED", &shared)]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let lines: Vec<Value> =
        stdout(&output).lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 3, "{}", stdout(&output));
    for line in &lines {
        let sentence = line["sentence"].as_str().expect("sentence");
        let (start, end) =
            (line["start"].as_u64().expect("start") as usize, line["end"].as_u64().expect("end") as usize);
        assert_eq!(sentence.get(start..end), line["span"].as_str(), "{line}");
        assert!(line["value"].is_string(), "{line}");
        assert!(!line["tag"].as_str().expect("tag").is_empty(), "{line}");
        let confidence = line["confidence"].as_f64().expect("confidence");
        assert!(confidence > 0.0 && confidence <= 1.0, "{line}");
        let candidates = line["candidates"].as_array().expect("candidates");
        assert_eq!(candidates.len(), 2, "{line}");
        for candidate in candidates {
            assert!(candidate["confidence"].as_f64().expect("confidence") <= confidence, "{line}");
            assert_ne!(candidate["tag"], line["tag"], "{line}");
        }
        assert!(line.get("gold").is_none(), "gold shown without --score: {line}");
    }
}

#[test]
fn score_reports_accuracy_against_the_filings_own_tags() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().expect("temp home");
    let filing = shared.join(FILING);
    let out = home.path().join("tags.jsonl");
    let args =
        ["tag", filing.to_str().expect("utf-8 path"), "--score", "--out", out.to_str().expect("utf-8")];
    let output = finagent(home.path(), &args, &[("FINAGENT_SHARED", &shared)]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert!(stdout(&output).is_empty(), "lines went to --out, not stdout");
    let (correct, scored) = accuracy(&stderr(&output));
    assert!(scored >= 10 && correct > 0 && correct <= scored, "{}", stderr(&output));
    let text = std::fs::read_to_string(&out).expect("output written");
    let golds: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter_map(|line| line.get("gold").cloned())
        .collect();
    assert!(golds.len() as u64 >= scored, "{} gold tags for {scored} scored", golds.len());
    assert!(golds.iter().all(|gold| gold.as_str().is_some_and(|tag| tag.contains(':'))));
    // Without filings to learn from there is no estimate of whether a number gets tagged.
    assert!(!text.contains("\"taggable\""), "taggable without --learn-from");
}

/// AAPL's FY2021 10-K tagged on its own, and learning also from the company's two earlier
/// 10-Ks' tags: the earlier filings must teach the ranking Apple's phrasing (docs/tag.md has the
/// figures: 21/44 and 41/44).
#[test]
fn earlier_filings_teach_the_ranking_a_companys_phrasing() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().expect("temp home");
    let filings = shared.join("xbrl/filings/AAPL");
    let filing = filings.join("2021/aapl-20210925.htm");
    let filing = filing.to_str().expect("utf-8 path");
    let earlier = [filings.join("2019/a10-k20199282019.htm"), filings.join("2020/aapl-20200926.htm")];
    let env = [("FINAGENT_SHARED", shared.as_path())];
    let alone = finagent(home.path(), &["tag", filing, "--score", "--out", "/dev/null"], &env);
    assert!(alone.status.success(), "stderr: {}", stderr(&alone));
    let mut args = vec!["tag", filing, "--score", "--out", "/dev/null"];
    for path in &earlier {
        args.extend(["--learn-from", path.to_str().expect("utf-8")]);
    }
    let taught = finagent(home.path(), &args, &env);
    assert!(taught.status.success(), "stderr: {}", stderr(&taught));
    let ((correct_alone, scored), (correct_taught, scored_taught)) =
        (accuracy(&stderr(&alone)), accuracy(&stderr(&taught)));
    assert_eq!(scored, scored_taught);
    assert!(
        correct_taught >= correct_alone + scored / 4,
        "{correct_taught}/{scored} taught vs {correct_alone}/{scored} alone: {}",
        stderr(&taught)
    );
    assert!(stderr(&taught).contains("a10-k20199282019.htm"), "{}", stderr(&taught));
    // The earlier filings also tell which numbers get tagged at all: better than calling every
    // number untagged, the larger class (docs/tag.md: 94.9% against 67.7%).
    let line = stderr(&taught)
        .lines()
        .find(|line| line.starts_with("taggable >= 0.5"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no taggable line in {}", stderr(&taught)));
    let numbers: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|word| word.trim_end_matches('.').parse().ok())
        .collect();
    let (accuracy, total, n_tagged) = (numbers[1], numbers[4], numbers[5]);
    let majority = 100.0 * (total - n_tagged).max(n_tagged) / total;
    assert!(accuracy > majority + 10.0, "{line}");

    // A folder teaches every inline filing in it but the one being tagged.
    let args =
        ["tag", filing, "--score", "--learn-from", filings.to_str().expect("utf-8"), "--out", "/dev/null"];
    let folder = finagent(home.path(), &args, &env);
    assert!(folder.status.success(), "stderr: {}", stderr(&folder));
    assert!(stderr(&folder).contains("not learning from") && stderr(&folder).contains("aapl-2023"));

    // The filing itself named outright, or a filing without tags of its own, is refused by name
    // and leaves no output behind.
    let out = home.path().join("tags.jsonl");
    let instance = filings.join("2022/aapl-20220924_htm.xml");
    for (learn_from, named) in
        [(filing, "aapl-20210925.htm"), (instance.to_str().expect("utf-8"), "aapl-20220924_htm.xml")]
    {
        let args = ["tag", filing, "--learn-from", learn_from, "--out", out.to_str().expect("utf-8")];
        let refused = finagent(home.path(), &args, &env);
        let message = stderr(&refused);
        assert!(
            !refused.status.success() && message.contains(named) && !message.contains("panicked"),
            "{message}"
        );
        assert!(!out.exists(), "a refused run left {}", out.display());
    }
}

#[test]
fn folds_propose_each_finer_row_from_the_other_folds_and_write_training_rows() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().expect("temp home");
    let train = std::fs::read_to_string(shared.join("data/finer/train.jsonl")).expect("FiNER train");
    let rows_path = home.path().join("rows.jsonl");
    let n_rows = 400;
    std::fs::write(&rows_path, train.lines().take(n_rows).collect::<Vec<_>>().join("\n")).expect("write");
    let (out, rerank) = (home.path().join("tags.jsonl"), home.path().join("rerank.jsonl"));
    let args = [
        "tag",
        "--finer",
        rows_path.to_str().expect("utf-8"),
        "--folds",
        "4",
        "--out",
        out.to_str().expect("utf-8"),
        "--rerank-rows",
        rerank.to_str().expect("utf-8"),
    ];
    let output = finagent(home.path(), &args, &[("FINAGENT_SHARED", &shared)]);
    let message = stderr(&output);
    assert!(output.status.success(), "stderr: {message}");
    // Every row is proposed by exactly one fold, whose ranking learned from all the other rows.
    let folds: Vec<(usize, usize)> = message
        .lines()
        .filter(|line| line.starts_with("fold "))
        .map(|line| {
            let numbers: Vec<usize> = line.split_whitespace().filter_map(|word| word.parse().ok()).collect();
            (numbers[0], numbers[1])
        })
        .collect();
    assert_eq!(folds.len(), 4, "{message}");
    assert_eq!(folds.iter().map(|&(_, proposed)| proposed).sum::<usize>(), n_rows, "{message}");
    assert!(
        folds.iter().all(|&(learned, proposed)| learned + proposed == n_rows && proposed > 0),
        "{message}"
    );
    let (correct, scored) = accuracy(&message);
    assert_eq!(scored, n_rows as u64);
    assert!(correct > scored / 4 && correct < scored, "{message}");

    let lines: Vec<Value> = std::fs::read_to_string(&rerank)
        .expect("training rows written")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert!(lines.len() as u64 >= correct && lines.len() < n_rows, "{} training rows", lines.len());
    for line in &lines {
        let (context, target) =
            (line["context"].as_str().expect("context"), line["target"].as_str().expect("tag"));
        let options = context
            .split_once("tags options: ")
            .and_then(|(_, rest)| rest.split_once(". What is best tag"))
            .map(|(options, _)| options.split(", ").collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no option list in {context}"));
        assert_eq!(options.len(), 5, "{context}");
        assert!(options.contains(&target), "{target} is not among {options:?}");
        assert!(context.contains("\nInput: "), "{context}");
    }
    // The examples a ranking learns from never include the rows it proposes for.
    let args = [
        "tag",
        "--finer",
        rows_path.to_str().expect("utf-8"),
        "--folds",
        "4",
        "--examples",
        rows_path.to_str().expect("utf-8"),
    ];
    let output = finagent(home.path(), &args, &[("FINAGENT_SHARED", &shared)]);
    assert!(!output.status.success() && stderr(&output).contains("--examples"), "{}", stderr(&output));
}

#[test]
fn text_without_numbers_is_a_valid_answer() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().expect("temp home");
    let path = home.path().join("plain.txt");
    std::fs::write(&path, "The company sells phones.\n\nIt also sells services to customers.\n")
        .expect("write");
    let output =
        finagent(home.path(), &["tag", path.to_str().expect("utf-8")], &[("FINAGENT_SHARED", &shared)]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert!(stdout(&output).is_empty());
    assert!(stderr(&output).contains("no numeric mentions"), "{}", stderr(&output));
}

fn assert_bad_input(home: &Path, shared: &Path, path: &Path) {
    let out = home.join("tags.jsonl");
    let args = ["tag", path.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8")];
    let output = finagent(home, &args, &[("FINAGENT_SHARED", shared)]);
    let message = stderr(&output);
    assert!(!output.status.success(), "{message}");
    let name = path.file_name().and_then(|n| n.to_str()).expect("file name");
    assert!(message.contains(name), "message does not name {name}: {message}");
    assert!(!message.contains("panicked"), "{message}");
    assert!(!out.exists(), "a failed run left {}", out.display());
}

#[test]
fn malformed_or_missing_input_is_an_error_naming_the_file() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().expect("temp home");
    let inline = home.path().join("broken-20231231.htm");
    std::fs::write(
        &inline,
        r#"<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"><body><p>Revenue was $5 million.</div></body></html>"#,
    )
    .expect("write");
    assert_bad_input(home.path(), &shared, &inline);
    let instance = home.path().join("broken_htm.xml");
    std::fs::write(&instance, "<xbrli:xbrl xmlns:xbrli=\"http://www.xbrl.org/2003/instance\"><a></b>")
        .expect("write");
    assert_bad_input(home.path(), &shared, &instance);
    assert_bad_input(home.path(), &shared, &home.path().join("missing.htm"));
}

#[test]
fn model_options_without_rescore_are_refused() {
    let home = tempfile::tempdir().expect("temp home");
    let path = home.path().join("plain.txt");
    std::fs::write(&path, "Revenue was $ 5.2 million .\n").expect("write");
    for extra in [["--adapter", "runs/x/adapter"], ["--bits", "8"], ["--model-weight", "0.5"]] {
        let mut args = vec!["tag", path.to_str().expect("utf-8")];
        args.extend(extra);
        let output = finagent(home.path(), &args, &[]);
        assert!(!output.status.success(), "{extra:?} accepted without --rescore");
        assert!(stderr(&output).contains("--rescore"), "{extra:?}: {}", stderr(&output));
    }
}

/// The temperature flattens or sharpens the confidences without changing a single proposal, and
/// a run scored against gold tags reports how well its confidences fit.
#[test]
fn temperature_moves_confidences_but_not_tags() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().expect("temp home");
    let test_rows = shared.join("data/finer/test.jsonl");
    let run = |temperature: &str| {
        let args = [
            "tag",
            "--finer",
            test_rows.to_str().expect("utf-8"),
            "--limit",
            "40",
            "--temperature",
            temperature,
        ];
        let output = finagent(home.path(), &args, &[("FINAGENT_SHARED", &shared)]);
        assert!(output.status.success(), "stderr: {}", stderr(&output));
        assert!(stderr(&output).contains("expected calibration error"), "{}", stderr(&output));
        stdout(&output)
            .lines()
            .map(|line| {
                let line: Value = serde_json::from_str(line).expect("a JSON line");
                (
                    line["tag"].as_str().expect("tag").to_string(),
                    line["confidence"].as_f64().expect("confidence"),
                )
            })
            .collect::<Vec<_>>()
    };
    let (sharp, flat) = (run("1"), run("3"));
    assert_eq!(sharp.len(), 40);
    for ((sharp_tag, sharp_confidence), (flat_tag, flat_confidence)) in sharp.iter().zip(&flat) {
        assert_eq!(sharp_tag, flat_tag);
        assert!(flat_confidence <= sharp_confidence, "{flat_confidence} > {sharp_confidence}");
    }
    assert!(sharp.iter().zip(&flat).any(|((_, sharp), (_, flat))| flat < sharp));
    for bad in ["0", "-1", "NaN", "warm"] {
        let output = finagent(home.path(), &["tag", "--finer", "rows.jsonl", "--temperature", bad], &[]);
        assert!(!output.status.success() && stderr(&output).contains(bad), "{bad}: {}", stderr(&output));
    }
}
