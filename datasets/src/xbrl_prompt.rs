//! FinLoRA's one-shot XBRL prompt, shared by dataset generation and the agent so that training
//! and inference see the same prompt shape.
//!
//! The text reproduces FinLoRA's `data/process_xbrl_tag.py` byte for byte, including the stray
//! leading double quote and the indentation spaces that are part of its real prompts.

use serde::{Deserialize, Serialize};

/// The XBRL question kinds FinLoRA asks, each with its own one-shot example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XbrlQuestionKind {
    /// "What is the US GAAP XBRL tag for ..." -> `us-gaap:Concept`.
    Tag,
    /// "What is the value of ..." -> the value as filed.
    Value,
    /// "What is the formula for ... formatted with the relevant US GAAP XBRL tags" ->
    /// `(us-gaap:A / us-gaap:B) * 100`.
    FormulaConstruction,
    /// "Can you provide the formula for ..." -> `(a / b) * 100` with values substituted.
    FormulaCalculation,
}

impl XbrlQuestionKind {
    /// FinLoRA's one-shot example question and answer for this kind.
    pub fn example(self) -> (&'static str, &'static str) {
        match self {
            XbrlQuestionKind::Tag => (
                "What is the US GAAP XBRL tag for Cash and Cash Equivalents as reported by Example Company Inc for the Fiscal Year ending in FY 2022",
                "us-gaap:AnExampleTagName",
            ),
            XbrlQuestionKind::Value => (
                "What is the value of Exapmle company's income for the Fiscal year ending in FY 2020?",
                "2540000000",
            ),
            // FinLoRA's (wangd12/XBRL_extraction) example, its missing parenthesis included.
            XbrlQuestionKind::FormulaConstruction => (
                "What is the formula for the Gross Profit Margin of Example Inc, formatted with the relevant US GAAP XBRL tags",
                "us-gaap:ExampleTag / us-gaap:AnotherExampleTag) * 100",
            ),
            XbrlQuestionKind::FormulaCalculation => (
                "Can you provide the formula for Operating Profit Margin from Example Corp for the Fiscal Year ending in FY 2022?",
                "(50000000 / 3590000000) * 100",
            ),
        }
    }
}

/// One fact line of the XBRL context block, as FinLoRA serialises an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextLine {
    /// Prefixed concept, `us-gaap:Assets`.
    pub concept: String,
    /// Element text, already cut to 100 characters when FinLoRA would cut it; `None` for nil facts.
    pub value: Option<String>,
    /// The attribute residue FinLoRA's regex leaves behind (`xmlns:us- ` for pre-2023 filings).
    pub residue: String,
}

impl ContextLine {
    /// `<us-gaap:Assets xmlns:us- >85501000000</>` or `<us-gaap:Foo />` for an element without text.
    pub fn render(&self) -> String {
        let residue =
            if self.residue.is_empty() { String::new() } else { format!(" {}", self.residue.trim_end()) };
        match &self.value {
            Some(text) => format!("<{}{} >{}</>", self.concept, residue, text),
            None => format!("<{}{} />", self.concept, residue),
        }
    }
}

/// The leading instruction block of every FinLoRA XBRL prompt.
const PREAMBLE: &str = "\"You are a knowledgeable XBRL assistant that can answer questions based on XML data. \n             You will be provided with a context extracted from an XBRL file and a question related to it. The example question can help you to learn the format of the answer.\n             Your task is to analyze the XBRL context and provide an accurate and very concise answer to the question, DO NOT output xml, code, explanation or create new question.\n            \nXBRL file:\n ```xml\n ";

/// Longest prompt FinLoRA keeps; longer examples are dropped from its datasets.
pub const MAX_PROMPT_CHARS: usize = 24_000;

/// Builds the prompt: instruction, the XBRL context lines, FinLoRA's one-shot example, the question.
pub fn build_prompt(kind: XbrlQuestionKind, lines: &[ContextLine], question: &str) -> String {
    build_prompt_with_example(lines, kind.example(), question)
}

/// The same prompt with another one-shot example, e.g. a real question about a fact in `lines`.
pub fn build_prompt_with_example(lines: &[ContextLine], example: (&str, &str), question: &str) -> String {
    let (example_question, example_answer) = example;
    let mut context = String::new();
    for line in lines {
        context.push_str(&line.render());
        context.push_str(" \n");
    }
    format!(
        "{PREAMBLE}{context}\n ```\n\n            \nExample question: {example_question}\nExample answer: {example_answer}\n            \nQuestion: {question}\n            \nAnswer:"
    )
}

/// FinLoRA appends this to formula-calculation questions.
pub const FORMULA_SUFFIX: &str = " Answer with a formula substituted with values. ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_finlora_lines() {
        let line = ContextLine {
            concept: "us-gaap:Assets".into(),
            value: Some("85501000000".into()),
            residue: "xmlns:us- ".into(),
        };
        assert_eq!(line.render(), "<us-gaap:Assets xmlns:us- >85501000000</>");
        let bare = ContextLine {
            concept: "us-gaap:Goodwill".into(),
            value: Some("1".into()),
            residue: String::new(),
        };
        assert_eq!(bare.render(), "<us-gaap:Goodwill >1</>");
    }

    #[test]
    fn prompt_ends_with_question_and_answer_cue() {
        let prompt = build_prompt(XbrlQuestionKind::Value, &[], "What is the value of X?");
        assert!(prompt.starts_with("\"You are a knowledgeable XBRL assistant"));
        assert!(prompt.ends_with("Question: What is the value of X?\n            \nAnswer:"));
        assert!(prompt.contains("Example answer: 2540000000\n"));
    }
}
