//! End-to-end tests of the `finagent` binary on the shared filings and the default model.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{finagent, model, shared, stderr, stdout};

use serde_json::Value;

fn facts_held(output: &Output) -> u64 {
    let text = stdout(output);
    let tail = text.rsplit("the index holds ").next().expect("fact count printed");
    tail.split_whitespace().next().and_then(|n| n.parse().ok()).expect("a number of facts")
}

#[test]
fn index_then_ask_with_provenance() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let aapl = shared.join("xbrl/filings/AAPL/2022");
    let first = finagent(home.path(), &["index", aapl.to_str().unwrap()], &[]);
    assert!(first.status.success(), "index failed: {}", stderr(&first));
    // Re-indexing the same filing replaces it instead of duplicating its facts.
    let second = finagent(home.path(), &["index", aapl.to_str().unwrap()], &[]);
    assert!(second.status.success(), "re-index failed: {}", stderr(&second));
    assert_eq!(facts_held(&first), facts_held(&second));
    assert!(facts_held(&first) > 1000);

    let output = finagent(
        home.path(),
        &["ask", "--json", "What was AAPL's 2022 revenue?"],
        &[("FINAGENT_MODEL", &model)],
    );
    assert!(output.status.success(), "ask failed: {}", stderr(&output));
    let answer: Value = serde_json::from_str(&stdout(&output)).expect("ask --json prints one JSON object");
    for key in [
        "answer",
        "value",
        "unit",
        "concept",
        "period",
        "fiscal_year",
        "entity",
        "source",
        "agrees_with_facts",
    ] {
        assert!(answer.get(key).is_some(), "missing key {key} in {answer}");
    }
    assert_eq!(answer["fiscal_year"], 2022);
    assert_eq!(answer["ticker"], "AAPL");
    let top = &answer["retrieved"][0];
    assert_eq!(top["concept"], "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax");
    assert_eq!(top["value"], "394328000000");
    assert_eq!(top["unit"], "USD");
    assert_eq!(top["period"]["start"], "2021-09-26");
    assert_eq!(top["period"]["end"], "2022-09-24");
    // The verdict is consistent with the values: agreement names a retrieved fact, disagreement none.
    let retrieved: Vec<&Value> =
        answer["retrieved"].as_array().unwrap().iter().map(|f| &f["value"]).collect();
    if answer["agrees_with_facts"] == true {
        assert!(retrieved.contains(&&answer["value"]), "{answer}");
    } else {
        assert!(answer["value"].is_null(), "{answer}");
        assert!(answer["answer"].as_str().unwrap().contains("matches none"), "{answer}");
    }
}

#[test]
fn ask_fetches_and_indexes_from_the_mirror() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let mirror = shared.join("xbrl");
    let env = [("FINAGENT_XBRL_MIRROR", mirror.as_path()), ("FINAGENT_MODEL", model.as_path())];
    // NVDA's fiscal 2021 (ended 2021-01-31) is only in companyfacts.
    let output = finagent(home.path(), &["ask", "--json", "What was NVIDIA's 2021 revenue?"], &env);
    assert!(output.status.success(), "ask failed: {}", stderr(&output));
    let answer: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(answer["ticker"], "NVDA");
    let top = &answer["retrieved"][0];
    assert_eq!(top["value"], "16675000000");
    assert_eq!(top["period"]["end"], "2021-01-31");
    assert!(top["accession"].is_string(), "companyfacts facts carry their accession: {top}");

    // The bundled adapter reads the value off the retrieved facts: the answer itself is right.
    assert_eq!(answer["agrees_with_facts"], true, "{answer}");
    assert_eq!(answer["value"], "16675000000", "{answer}");

    for (question, concept, value) in [
        (
            "What was AAPL's 2022 revenue?",
            "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax",
            "394328000000",
        ),
        ("What was AAPL's 2023 net income?", "us-gaap:NetIncomeLoss", "96995000000"),
        ("What were AMZN's 2022 total assets?", "us-gaap:Assets", "462675000000"),
        (
            "What was Boeing's 2023 operating cash flow?",
            "us-gaap:NetCashProvidedByUsedInOperatingActivities",
            "5960000000",
        ),
    ] {
        let output = finagent(home.path(), &["ask", "--json", question], &env);
        assert!(output.status.success(), "{question}: {}", stderr(&output));
        let answer: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(answer["retrieved"][0]["concept"], concept, "{question}");
        assert_eq!(answer["retrieved"][0]["value"], value, "{question}");
        assert_eq!(answer["concept"], concept, "{question}: {answer}");
        assert_eq!(answer["value"], value, "{question}: {answer}");
        assert_eq!(answer["agrees_with_facts"], true, "{question}: {answer}");
    }
}

#[test]
fn ratio_and_change_questions_show_formula_values_and_provenance() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let mirror = shared.join("xbrl");
    let env = [("FINAGENT_XBRL_MIRROR", mirror.as_path()), ("FINAGENT_MODEL", model.as_path())];
    // The JSON `ask --json` prints for `question`, which must succeed.
    let ask_json = |question: &str| -> Value {
        let output = finagent(home.path(), &["ask", "--json", question], &env);
        assert!(output.status.success(), "ask failed: {}", stderr(&output));
        serde_json::from_str(&stdout(&output)).unwrap()
    };

    let answer = ask_json("What was Apple's gross margin in 2022?");
    assert_eq!(answer["kind"], "ratio", "{answer}");
    assert_eq!(answer["formula"], "Gross profit / Revenue × 100");
    assert_eq!(answer["substituted"], "170782000000 / 394328000000 × 100", "{answer}");
    // 170,782 / 394,328 = 43.31 %
    assert_eq!(answer["value"], "43.31", "{answer}");
    assert_eq!(answer["unit"], "%");
    let operands = answer["operands"].as_array().unwrap();
    assert_eq!(operands[0]["concept"], "us-gaap:GrossProfit");
    assert_eq!(operands[1]["concept"], "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax");
    assert!(operands.iter().all(|o| o["source"]["context_id"].is_string()), "{answer}");

    let question = "How much did NVDA's revenue grow from 2021 to 2022?";
    let answer = ask_json(question);
    assert_eq!(answer["kind"], "change", "{answer}");
    // NVDA fiscal 2022 (26,914 M) against fiscal 2021 (16,675 M), from SEC companyfacts.
    assert_eq!(answer["substituted"], "26914000000 - 16675000000", "{answer}");
    assert_eq!(answer["value"], "10239000000", "{answer}");
    assert_eq!(answer["percent_change"], "61.40", "{answer}");
    assert_eq!(answer["operands"][0]["fiscal_year"], 2021);
    assert_eq!(answer["operands"][1]["fiscal_year"], 2022);

    // Amazon files no GrossProfit: its gross margin and gross profit come from revenue and cost
    // of revenue (513,983 M and 288,831 M in FY2022), and the answer says so first.
    let answer = ask_json("What was Amazon's gross margin in 2022?");
    assert_eq!(answer["formula"], "(Revenue - Cost of revenue) / Revenue × 100", "{answer}");
    assert_eq!(answer["substituted"], "(513983000000 - 288831000000) / 513983000000 × 100", "{answer}");
    assert_eq!(answer["value"], "43.81", "{answer}");
    assert!(answer["answer"].as_str().unwrap().starts_with("AMZN files no gross profit"), "{answer}");
    assert!(answer["note"].as_str().unwrap().contains("us-gaap:GrossProfit"), "{answer}");
    let answer = ask_json("What was Amazon's gross profit in 2022?");
    assert_eq!(
        (&answer["metric"], &answer["value"]),
        (&"gross_profit".into(), &"225152000000".into()),
        "{answer}"
    );
    assert_eq!(answer["operands"][1]["concept"], "us-gaap:CostOfGoodsAndServicesSold", "{answer}");

    // "Latest" is the latest fiscal year of the company's indexed annual reports: for AAPL, the
    // latest 10-K fiscal year in SEC companyfacts, read here straight from the JSON.
    let companyfacts: Value = serde_json::from_str(
        &std::fs::read_to_string(mirror.join("companyfacts/CIK0000320193.json")).expect("AAPL companyfacts"),
    )
    .expect("JSON");
    let latest_annual = companyfacts["facts"]
        .as_object()
        .expect("facts")
        .values()
        .flat_map(|concepts| concepts.as_object().expect("concepts").values())
        .flat_map(|concept| concept["units"].as_object().expect("units").values())
        .flat_map(|facts| facts.as_array().expect("facts").iter())
        .filter(|fact| fact["form"].as_str().is_some_and(|form| form.starts_with("10-K")))
        .filter_map(|fact| fact["fy"].as_i64())
        .max()
        .expect("an annual report");
    let answer = ask_json("What was Apple's latest revenue?");
    assert_eq!(answer["fiscal_year"], latest_annual, "{answer}");
    assert_eq!(answer["agrees_with_facts"], true, "{answer}");

    // The effective tax rate: Apple FY2023 16,741 / 113,736 (USD millions); Boeing's pretax
    // loss in FY2023 makes its rate read backwards, and the answer says so.
    let answer = ask_json("What was Apple's effective tax rate in 2023?");
    assert_eq!(
        (&answer["metric"], &answer["value"]),
        (&"effective_tax_rate".into(), &"14.72".into()),
        "{answer}"
    );
    let answer = ask_json("What was Boeing's effective tax rate in 2023?");
    assert_eq!(answer["substituted"], "237000000 / -2005000000 × 100", "{answer}");
    assert!(answer["answer"].as_str().unwrap().contains("is negative, so the ratio's sign"), "{answer}");

    // A comparison answers each company named, in order; a year neither filed is refused for
    // each, naming the company, with a non-zero exit.
    let answers = ask_json("Compare Apple and NVIDIA revenue in 2023");
    let tickers: Vec<&str> =
        answers.as_array().unwrap().iter().map(|a| a["ticker"].as_str().unwrap()).collect();
    assert_eq!(tickers, ["AAPL", "NVDA"], "{answers}");
    // AAPL FY2023 (its 10-K) and NVDA FY2023 (ended 2023-01-29).
    assert_eq!(answers[0]["value"], "383285000000", "{answers}");
    assert_eq!(answers[1]["value"], "26974000000", "{answers}");
    let output = finagent(home.path(), &["ask", "Compare Apple and NVIDIA revenue in 2031"], &env);
    assert!(!output.status.success());
    assert!(stdout(&output).contains("AAPL: no answer") && stdout(&output).contains("NVDA: no answer"));
    assert!(
        stderr(&output).contains("no answer for 2 of the 2 companies named (AAPL, NVDA)"),
        "{}",
        stderr(&output)
    );

    // A derived metric finagent does not compute is said plainly, not guessed.
    let output = finagent(home.path(), &["ask", "What was Apple's EBITDA in 2022?"], &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("does not compute \"ebitda\""), "{}", stderr(&output));
}

#[test]
fn quarters_come_from_indexed_10qs() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let aapl = shared.join("xbrl/filings/AAPL/2023");
    let output = finagent(home.path(), &["index", aapl.to_str().unwrap()], &[]);
    assert!(output.status.success(), "index failed: {}", stderr(&output));
    let env = [("FINAGENT_MODEL", model.as_path())];

    // The 10-Q for the quarter ended 2023-07-01 is Apple's fiscal Q3 2023: its three months, not
    // the nine-month year-to-date column (293,787 M).
    let output = finagent(home.path(), &["ask", "--json", "What was Apple's revenue in Q3 2023?"], &env);
    assert!(output.status.success(), "ask failed: {}", stderr(&output));
    let answer: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(answer["quarter"], 3, "{answer}");
    let top = &answer["retrieved"][0];
    assert_eq!(top["value"], "81797000000", "{answer}");
    assert_eq!(top["period"]["start"], "2023-04-02");
    assert_eq!(top["period"]["end"], "2023-07-01");
    assert_eq!(top["form"], "10-Q");
    assert_eq!(answer["value"], "81797000000", "{answer}");

    let output = finagent(home.path(), &["ask", "What was Apple's revenue in Q2 2023?"], &env);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no 10-Q for AAPL fiscal Q2 2023 is indexed (indexed quarters: Q3 FY2023)"),
        "{}",
        stderr(&output)
    );
    let output = finagent(home.path(), &["ask", "What was Apple's revenue in Q4 2023?"], &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("fourth quarter is not filed on its own"), "{}", stderr(&output));
}

/// A question-set file in a fresh home, answered by `finagent ask --questions` from the shared
/// filings' mirror and the default model.
struct QuestionSet {
    home: tempfile::TempDir,
    mirror: PathBuf,
    model: PathBuf,
    questions: PathBuf,
    out: PathBuf,
}

impl QuestionSet {
    /// `None` where the shared data or the model is absent (outside CI).
    fn new(rows: &str) -> Option<Self> {
        let (Some(shared), Some(model)) = (shared(), model()) else { return None };
        let home = tempfile::tempdir().unwrap();
        let (questions, out) = (home.path().join("questions.jsonl"), home.path().join("answers.jsonl"));
        std::fs::write(&questions, rows).unwrap();
        Some(Self { home, mirror: shared.join("xbrl"), model, questions, out })
    }

    fn ask(&self, extra_args: &[&str]) -> Output {
        let args =
            ["ask", "--questions", self.questions.to_str().unwrap(), "--out", self.out.to_str().unwrap()];
        let env = [("FINAGENT_XBRL_MIRROR", self.mirror.as_path()), ("FINAGENT_MODEL", self.model.as_path())];
        finagent(self.home.path(), &[&args[..], extra_args].concat(), &env)
    }
}

#[test]
fn question_sets_are_scored_with_wrong_and_not_found_apart() {
    let Some(set) = QuestionSet::new(concat!(
        r#"{"id": "right", "question": "What were AMZN's 2022 total assets?", "expected": "462675000000"}"#,
        "\n",
        r#"{"id": "wrong-gold", "question": "What was AAPL's 2022 revenue?", "expected": "1"}"#,
        "\n",
        r#"{"id": "missing", "question": "What was AAPL's 2031 revenue?", "expected": "1"}"#,
        "\n",
    )) else {
        return;
    };
    let output = set.ask(&[]);
    assert!(output.status.success(), "ask --questions failed: {}", stderr(&output));
    assert!(
        stderr(&output).contains("1 correct (33.3%), 1 wrong (33.3%), 1 not found (33.3%)"),
        "{}",
        stderr(&output)
    );
    let records: Vec<Value> = std::fs::read_to_string(&set.out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<&str> = records.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["correct", "wrong", "not_found"]);
    assert!(records[2]["answer"].as_str().unwrap().contains("2031"), "{}", records[2]);

    std::fs::write(&set.questions, "{\"question\": \n").unwrap();
    let output = set.ask(&[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("questions.jsonl:1"), "{}", stderr(&output));
}

#[test]
fn llm_int8_answers_on_request() {
    let Some(set) =
        QuestionSet::new(r#"{"question": "What was AAPL's 2022 revenue?", "expected": "394328000000"}"#)
    else {
        return;
    };
    let output = set.ask(&["--int8-matmul", "llm-int8"]);
    assert!(output.status.success(), "ask --int8-matmul llm-int8 failed: {}", stderr(&output));
    assert!(stderr(&output).contains("8-bit base, LLM.int8): 1 correct"), "{}", stderr(&output));

    let output = set.ask(&["--int8-matmul", "int4"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("int4"), "{}", stderr(&output));
}

#[test]
fn unknown_company_and_year_are_clear_errors() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let mirror = shared.join("xbrl");
    let env = [("FINAGENT_XBRL_MIRROR", mirror.as_path()), ("FINAGENT_MODEL", model.as_path())];
    let output = finagent(home.path(), &["ask", "What was ZZZZ's 2022 revenue?"], &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no company named in"), "{}", stderr(&output));

    let output = finagent(home.path(), &["ask", "What was AAPL's 2031 revenue?"], &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("2031"), "{}", stderr(&output));

    let output = finagent(home.path(), &["ask", "What was AAPL's 2022 favourite colour?"], &env);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("does not know which reported metric"), "{}", stderr(&output));
}

#[test]
fn missing_index_without_a_source_is_an_error() {
    let home = tempfile::tempdir().unwrap();
    let output = finagent(home.path(), &["ask", "What was AAPL's 2022 revenue?"], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("FINAGENT_XBRL_MIRROR"), "{}", stderr(&output));
}

#[test]
fn malformed_filing_leaves_no_index_behind() {
    let home = tempfile::tempdir().unwrap();
    let filings = tempfile::tempdir().unwrap();
    let bad = filings.path().join("bad-20221231_htm.xml");
    std::fs::write(&bad, "<?xml version=\"1.0\"?>\n<xbrli:xbrl xmlns:xbrli=\"http://www.xbrl.org/2003/instance\">\n<unclosed>\n</xbrli:xbrl>\n").unwrap();
    let index_dir = home.path().join("index");
    let output =
        finagent(home.path(), &["index", "--out", index_dir.to_str().unwrap(), bad.to_str().unwrap()], &[]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("bad-20221231_htm.xml") && message.contains("line 4"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    // The index exists but holds nothing: no half-written filing.
    if index_dir.exists() {
        let output = finagent(
            home.path(),
            &["ask", "--index", index_dir.to_str().unwrap(), "What was BAD's 2022 revenue?"],
            &[],
        );
        assert!(!output.status.success());
    }
}

#[test]
fn truncated_model_is_a_clear_error() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let truncated = home.path().join("truncated.gguf");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let aapl = shared.join("xbrl/filings/AAPL/2022");
    assert!(finagent(home.path(), &["index", aapl.to_str().unwrap()], &[]).status.success());
    let output = finagent(
        home.path(),
        &["ask", "--model", truncated.to_str().unwrap(), "What was AAPL's 2022 revenue?"],
        &[],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("truncated.gguf") && message.contains("truncated"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn help_lists_every_command() {
    let home = tempfile::tempdir().unwrap();
    let output = finagent(home.path(), &["--help"], &[]);
    assert!(output.status.success());
    let text = stdout(&output);
    for command in [
        "index",
        "ask",
        "fetch",
        "fetch-model",
        "datasets",
        "train",
        "eval",
        "report",
        "estimate",
        "quantize",
        "serve",
        "tag",
        "bench",
    ] {
        assert!(text.contains(command), "--help lacks {command}: {text}");
    }
}

#[test]
fn datasets_generate_writes_splits_by_filing() {
    let Some(shared) = shared() else { return };
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("generated");
    let filings = shared.join("xbrl/filings");
    let args = [
        "datasets",
        "generate",
        "--filings",
        filings.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tasks",
        "xbrl_values,xbrl_tags",
    ];
    let output = finagent(home.path(), &args, &[]);
    assert!(output.status.success(), "generate failed: {}", stderr(&output));
    let mut filings_by_split: Vec<(String, std::collections::BTreeSet<String>)> = Vec::new();
    for split in ["train", "validation", "test"] {
        let path = out.join("xbrl_values").join(format!("{split}.jsonl"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut docs = std::collections::BTreeSet::new();
        for line in text.lines() {
            let row: Value = serde_json::from_str(line).unwrap();
            let context = row["context"].as_str().unwrap();
            let target = row["target"].as_str().unwrap();
            assert!(
                context.contains(&format!(">{target}</>")),
                "answer {target} is not in its prompt's facts"
            );
            docs.insert(row["doc_path"].as_str().unwrap().to_string());
        }
        filings_by_split.push((split.to_string(), docs));
    }
    assert!(filings_by_split.iter().all(|(_, docs)| !docs.is_empty()), "{filings_by_split:?}");
    for (i, (a, docs_a)) in filings_by_split.iter().enumerate() {
        for (b, docs_b) in &filings_by_split[i + 1..] {
            assert!(docs_a.is_disjoint(docs_b), "a filing is in both {a} and {b}");
        }
    }
    let output =
        finagent(home.path(), &["datasets", "show", "fpb", "--limit", "1"], &[("FINAGENT_SHARED", &shared)]);
    assert!(output.status.success(), "show failed: {}", stderr(&output));
    assert!(stdout(&output).contains("What is the sentiment of this news?"), "{}", stdout(&output));
}

#[test]
fn datasets_stats_reports_labels_and_token_lengths() {
    let (Some(shared), Some(model)) = (shared(), model()) else { return };
    let home = tempfile::tempdir().unwrap();
    let args = ["datasets", "stats", "--tasks", "fpb", "--tokenizer", model.to_str().unwrap()];
    let output = finagent(home.path(), &args, &[("FINAGENT_SHARED", &shared)]);
    assert!(output.status.success(), "stats failed: {}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("fpb test: 1212 rows; negative: 145, neutral: 729, positive: 338"), "{text}");
    assert!(text.contains("prompt tokens p50 "), "{text}");
}
