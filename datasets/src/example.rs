//! One training or evaluation example and FinLoRA's prompt template.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::task::Task;

/// One row of a task, ready to feed a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    /// The row's own id, or `{file stem}-{line}` where the file has none.
    pub id: String,
    pub task: Task,
    /// The instruction part of the prompt; empty for FinLoRA `{context, target}` rows whose prompt
    /// does not have the `Instruction:` shape.
    pub instruction: String,
    /// The input part of the prompt (sentence, tweet, question).
    pub input: String,
    /// The full text fed to the model.
    pub prompt: String,
    /// What the model is trained to answer.
    pub target: String,
    /// The class scored at evaluation, for classification tasks; pass it (not `target`) to
    /// [`crate::judge`] with the task's labels. Differs from `target` only for
    /// NWGI under [`crate::NwgiMapping::FinLoraPolarity`] (target "mildly positive", label "positive").
    pub label: Option<String>,
    /// Rows sharing a group (one headline's six questions, one sentence's entities, one filing)
    /// always land in the same split.
    pub group: String,
    /// 1-based line of the source file.
    pub line: usize,
    /// Task-specific fields kept from the row (`format`, `entity`, `doc_path`, `label_finlora` ...).
    pub extra: BTreeMap<String, String>,
}

/// FinLoRA / FinGPT's template: `Instruction: {instruction}\nInput: {input}\nAnswer: `.
pub fn finlora_prompt(instruction: &str, input: &str) -> String {
    format!("Instruction: {instruction}\nInput: {input}\nAnswer: ")
}

/// Splits a prompt made by [`finlora_prompt`] back into instruction and input.
pub fn parse_finlora_prompt(prompt: &str) -> Option<(&str, &str)> {
    let body = prompt.strip_prefix("Instruction: ")?.strip_suffix("\nAnswer: ")?;
    body.split_once("\nInput: ")
}

/// FinLoRA v2's XBRL extraction prompt (`data/process_xbrl_extract.py`):
/// `instruction + "\nXML File: " + xml + "\n" + input`. Without the filing's XML (the shared
/// rows do not carry it) the XML part is left out: `instruction + "\n" + input`.
pub fn xbrl_extraction_prompt(instruction: &str, xml: Option<&str>, input: &str) -> String {
    match xml {
        Some(xml) => format!("{instruction}\nXML File: {xml}\n{input}"),
        None => format!("{instruction}\n{input}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_round_trips() {
        let prompt = finlora_prompt("Say it.", "a\nb");
        assert_eq!(prompt, "Instruction: Say it.\nInput: a\nb\nAnswer: ");
        assert_eq!(parse_finlora_prompt(&prompt), Some(("Say it.", "a\nb")));
        assert_eq!(parse_finlora_prompt("free text"), None);
    }

    #[test]
    fn xbrl_prompt_places_xml_between_instruction_and_question() {
        assert_eq!(xbrl_extraction_prompt("I", Some("<x/>"), "Q"), "I\nXML File: <x/>\nQ");
        assert_eq!(xbrl_extraction_prompt("I", None, "Q"), "I\nQ");
    }
}
