//! FinLoRA's FiNER prompts: the batched four-question form of `data/process_finer.py`, byte for
//! byte, and finagent's single-question form (the one [`crate::Task::Finer`] loads).
//!
//! FinLoRA joins the tag options with `","` in Python `set` order, which changes from run to run
//! and includes an empty tag (its `"-"` label split on `-`); here the options keep the order given
//! (the tag file's) and hold no empty tag. Everything else, including the double spaces, the
//! misspelt "saperated" and the "4" that stays 4 in a shorter last batch, is FinLoRA's text.

use crate::example::finlora_prompt;
use crate::loaders::finer_instruction;

/// Questions per batched prompt, as FinLoRA's `batched_prompt_size`.
pub const FINER_BATCH_SIZE: usize = 4;

/// One question of a batched prompt: `What is best tag for entity "{entity}" in sentence: "{sentence}?"`.
pub fn finer_question(entity: &str, sentence: &str) -> String {
    format!("What is best tag for entity \"{entity}\" in sentence: \"{sentence}?\"")
}

/// FinLoRA's batched FiNER prompt over `questions` (at most [`FINER_BATCH_SIZE`]; the text says 4
/// whatever their number, as FinLoRA's does for its last batch).
pub fn batched_prompt(tags: &[String], questions: &[String]) -> String {
    let numbered: Vec<String> =
        questions.iter().enumerate().map(|(idx, question)| format!("{}. {question}", idx + 1)).collect();
    format!(
        "You are XBRL expert.  Here is a list of US GAAP tags options: {}. Answer the following {FINER_BATCH_SIZE} independent questions by providing only  {FINER_BATCH_SIZE} US GAAP tags answers in the order of the questions. Each answer must be saperated by a comma (,).  Provide nothing else. \n{}\nOutput US GAAP tags:",
        tags.join(","),
        numbered.join("\n")
    )
}

/// The target of a batched prompt: the answers in question order, comma-joined.
pub fn batched_target(answers: &[&str]) -> String {
    answers.join(",")
}

/// The single-question prompt: FinLoRA's tag list and question wording for one entity, in the
/// `Instruction: ... Input: ... Answer: ` template, the sentence as input.
pub fn single_prompt(tags: &[String], entity: &str, sentence: &str) -> String {
    finlora_prompt(&finer_instruction(tags, entity), sentence)
}

/// `(entity, sentence)` of every numbered question of a batched prompt, in order.
pub fn batched_questions(prompt: &str) -> Vec<(String, String)> {
    const OPEN: &str = ". What is best tag for entity \"";
    const MIDDLE: &str = "\" in sentence: \"";
    const CLOSE: &str = "?\"";
    let Some(body) = prompt.split_once(" \n").map(|(_, body)| body) else { return Vec::new() };
    let body = body.strip_suffix("\nOutput US GAAP tags:").unwrap_or(body);
    let mut questions = Vec::new();
    for (idx, line) in body.split('\n').enumerate() {
        let Some(rest) = line.strip_prefix(&format!("{}", idx + 1)).and_then(|rest| rest.strip_prefix(OPEN))
        else {
            continue;
        };
        let Some((entity, sentence)) = rest.split_once(MIDDLE) else { continue };
        questions.push((entity.to_string(), sentence.strip_suffix(CLOSE).unwrap_or(sentence).to_string()));
    }
    questions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_prompt_is_finloras_text() {
        let tags = vec!["A".to_string(), "B".to_string()];
        let questions = vec![finer_question("1.798", "a rate of 1.798 %"), finer_question("5", "five")];
        let prompt = batched_prompt(&tags, &questions);
        assert_eq!(
            prompt,
            "You are XBRL expert.  Here is a list of US GAAP tags options: A,B. Answer the following 4 independent questions by providing only  4 US GAAP tags answers in the order of the questions. Each answer must be saperated by a comma (,).  Provide nothing else. \n1. What is best tag for entity \"1.798\" in sentence: \"a rate of 1.798 %?\"\n2. What is best tag for entity \"5\" in sentence: \"five?\"\nOutput US GAAP tags:"
        );
        assert_eq!(
            batched_questions(&prompt),
            [("1.798".to_string(), "a rate of 1.798 %".to_string()), ("5".to_string(), "five".to_string())]
        );
        assert_eq!(batched_target(&["A", "B"]), "A,B");
    }

    #[test]
    fn single_prompt_uses_the_loaders_instruction() {
        let tags = vec!["A".to_string()];
        assert_eq!(
            single_prompt(&tags, "7", "seven 7"),
            "Instruction: You are XBRL expert. Here is a list of US GAAP tags options: A. What is best tag for entity \"7\" in the input sentence? Provide only the tag.\nInput: seven 7\nAnswer: "
        );
    }
}
