//! `finagent ask --questions FILE`: a question set answered with one loaded model, scored against
//! each row's expected value. Wrong answers and "not found" answers (no fact retrieved, or the
//! model's answer confirmed by none) are counted apart: a wrong number is worse than none.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context as _, Result};
use serde::{Deserialize, Serialize};

use agent::ask::{latest_fiscal_year, resolve, respond, AdapterChoice, ModelSource};
use agent::companies::Company;
use agent::config::Paths;
use trainer::quantize::{BaseBits, Int8Matmul};

use super::ask::ensure_company_indexed;

#[derive(Debug, Deserialize)]
struct Row {
    #[serde(default)]
    id: Option<String>,
    question: String,
    /// The gold value as a decimal; rows without one are answered but not scored.
    #[serde(default)]
    expected: Option<String>,
}

/// How one answer compares with the expected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Correct,
    Wrong,
    /// No value: nothing retrieved, the model's answer matched no fact, or the question was not
    /// understood.
    NotFound,
    /// Answered, but the row has no expected value.
    Unscored,
}

#[derive(Debug, Serialize)]
struct Record<'a> {
    id: String,
    question: &'a str,
    expected: Option<&'a str>,
    value: Option<String>,
    outcome: Outcome,
    answer: String,
    latency_ms: f64,
}

pub fn run(
    paths: &Paths,
    file: &Path,
    out: Option<&Path>,
    adapter: &AdapterChoice,
    (bits, int8_matmul): (BaseBits, Int8Matmul),
    model: &mut ModelSource,
) -> Result<()> {
    let rows = read_rows(file)?;
    // Load the model before the clock starts: latencies are those of a warm `ask`.
    model()?;
    let mut lines = Vec::with_capacity(rows.len());
    let mut latencies = Vec::with_capacity(rows.len());
    let mut counts = [0usize; 4];
    for (number, row) in rows.iter().enumerate() {
        let started = Instant::now();
        let result = ensure_company_indexed(paths, &row.question).and_then(|(index, companies)| {
            let latest = |company: &Company| latest_fiscal_year(&index, &company.ticker);
            respond(&index, &resolve(&row.question, &companies, &latest)?, model)
        });
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        latencies.push(latency_ms);
        let (value, answer) = match result {
            Ok(response) => (response.value().map(str::to_string), response.sentence().to_string()),
            Err(error) => (None, format!("{error:#}")),
        };
        let outcome = match (&value, row.expected.as_deref()) {
            (None, _) => Outcome::NotFound,
            (Some(_), None) => Outcome::Unscored,
            (Some(value), Some(expected)) if same_number(value, expected) => Outcome::Correct,
            (Some(_), Some(_)) => Outcome::Wrong,
        };
        counts[outcome as usize] += 1;
        let record = Record {
            id: row.id.clone().unwrap_or_else(|| format!("{}", number + 1)),
            question: &row.question,
            expected: row.expected.as_deref(),
            value,
            outcome,
            answer,
            latency_ms,
        };
        lines.push(serde_json::to_string(&record)?);
    }
    write_lines(out, &lines)?;
    let [correct, wrong, not_found, unscored] = counts;
    let scored = correct + wrong + not_found;
    let share = |n: usize| if scored == 0 { 0.0 } else { 100.0 * n as f64 / scored as f64 };
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "{} questions from {} (adapter {}, {bits}-bit base{}): {correct} correct ({:.1}%), {wrong} wrong ({:.1}%), \
         {not_found} not found ({:.1}%){}",
        rows.len(),
        file.display(),
        adapter.describe(),
        if bits == BaseBits::Int8 && int8_matmul == Int8Matmul::LlmInt8 { ", LLM.int8" } else { "" },
        share(correct),
        share(wrong),
        share(not_found),
        if unscored > 0 { format!(", {unscored} without an expected value") } else { String::new() },
    );
    eprintln!(
        "warm latency per question: mean {:.0} ms, median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        latencies.iter().sum::<f64>() / latencies.len() as f64,
        quantile(0.5),
        quantile(0.95),
        quantile(1.0)
    );
    Ok(())
}

fn read_rows(file: &Path) -> Result<Vec<Row>> {
    let reader = BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot open question file {}", file.display()))?,
    );
    let mut rows = Vec::new();
    for (idx, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(&line).with_context(|| {
            format!("{}:{}: not a question row ({{\"question\": ...}})", file.display(), idx + 1)
        })?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(anyhow!("{} holds no questions", file.display()));
    }
    Ok(rows)
}

/// Equal as decimals (`394328000000` and `394328000000.0`; `6.11` and `6.110`).
fn same_number(value: &str, expected: &str) -> bool {
    match (value.trim().parse::<f64>(), expected.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b || (a - b).abs() <= 1e-12 * b.abs().max(1.0),
        _ => value.trim() == expected.trim(),
    }
}

/// Writes the records to `out` through a temporary file renamed into place, or to stdout.
fn write_lines(out: Option<&Path>, lines: &[String]) -> Result<()> {
    let mut text = lines.join("\n");
    text.push('\n');
    match out {
        None => std::io::stdout().write_all(text.as_bytes())?,
        Some(path) => trainer::train::metrics::write_atomically(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_as_decimals() {
        assert!(same_number("394328000000", "394328000000.0"));
        assert!(same_number("6.11", "6.110"));
        assert!(!same_number("6.11", "6.15"));
        assert!(!same_number("394328000000", "394328000001"));
    }
}
