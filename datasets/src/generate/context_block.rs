//! FinLoRA's full-mode XBRL context: every us-gaap fact of one context, serialised the way its
//! `find_elements_by_context_ref` does it (ElementTree, then three regexes).
//!
//! FinLoRA serialises each element with ElementTree, cuts the text to 100 characters, skips
//! strings containing `TextBlock` or `style=`, deletes the 2023 us-gaap namespace declaration and
//! the `contextRef`, replaces every closing tag by `</>`, removes every `name="value"` and
//! collapses whitespace. What survives of the attributes is a residue: `xmlns:us-` for filings on
//! an older us-gaap namespace, and `xmlns: xsi:` for nil facts. The element's tail (the newline
//! after it in the instance) survives as one trailing space, which [`ContextLine::render`] plus
//! the `" \n"` separator of [`crate::xbrl_prompt::build_prompt`] reproduce.

use xbrl::{Document, Fact};

use super::written_text::WrittenText;
use crate::xbrl_prompt::ContextLine;

/// FinLoRA keeps the first 100 characters of each element's text.
const MAX_TEXT_CHARS: usize = 100;
/// The one namespace declaration FinLoRA deletes outright; every other year leaves `xmlns:us-`.
const DELETED_NAMESPACE: &str = "http://fasb.org/us-gaap/2023";

/// The context lines of `context_id`: its us-gaap facts in document order, rendered like FinLoRA.
/// `written` supplies numeric text as filed (`0.90`); FinLoRA's prompts show it that way.
pub fn context_lines(doc: &Document, context_id: &str, written: &WrittenText) -> Vec<ContextLine> {
    doc.facts
        .iter()
        .filter(|fact| fact.context_ref == context_id && fact.concept.is_us_gaap())
        .filter_map(|fact| context_line(fact, written))
        .collect()
}

/// The block between "```xml\n " and "\n ```" of a FinLoRA prompt built from `lines`.
pub fn render_block(lines: &[ContextLine]) -> String {
    lines.iter().map(|line| format!("{} \n", line.render())).collect()
}

/// The context block of a FinLoRA XBRL prompt (what [`render_block`] produces), if the prompt has one.
pub fn finlora_block(prompt: &str) -> Option<&str> {
    const OPEN: &str = "```xml\n ";
    const CLOSE: &str = "\n ```\n\n";
    let start = prompt.find(OPEN)? + OPEN.len();
    let length = prompt[start..].find(CLOSE)?;
    // The block's own last line ends with " \n", the template adds "\n ```".
    Some(&prompt[start..start + length])
}

/// One fact as FinLoRA renders it, or `None` when FinLoRA skips it.
pub fn context_line(fact: &Fact, written: &WrittenText) -> Option<ContextLine> {
    let text: Option<String> = match written.text_of(fact) {
        Some(value) if !fact.nil => {
            let cut: String = value.chars().take(MAX_TEXT_CHARS).collect();
            (!cut.is_empty()).then(|| escape_text(&cut))
        }
        _ => None,
    };
    let serialised_parts =
        [fact.concept.local.as_str(), fact.id.as_deref().unwrap_or(""), text.as_deref().unwrap_or("")];
    if serialised_parts.iter().any(|part| part.contains("TextBlock") || part.contains("style=")) {
        return None;
    }
    let mut residue = Vec::new();
    if fact.concept.namespace != DELETED_NAMESPACE {
        residue.push("xmlns:us-");
    }
    if fact.nil {
        // `xmlns:xsi="..."` and `xsi:nil="true"` lose everything from the word before `=`.
        residue.extend(["xmlns:", "xsi:"]);
    }
    Some(ContextLine {
        concept: fact.concept.prefixed(),
        value: text.map(|text| collapse_whitespace(&remove_attribute_like(&text))),
        residue: residue.join(" "),
    })
}

/// ElementTree's text escaping.
fn escape_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// FinLoRA's `re.sub(r"\w+=\".*?\"", "", ...)` applied to text: a word, `="`, anything up to the
/// next `"` on the same line.
fn remove_attribute_like(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut idx = 0;
    while idx < chars.len() {
        match attribute_like_end(&chars, idx) {
            Some(end) => idx = end,
            None => {
                out.push(chars[idx]);
                idx += 1;
            }
        }
    }
    out
}

/// The end (exclusive) of a `\w+=".*?"` match starting at `start`.
fn attribute_like_end(chars: &[char], start: usize) -> Option<usize> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut idx = start;
    while idx < chars.len() && is_word(chars[idx]) {
        idx += 1;
    }
    if idx == start || chars.get(idx) != Some(&'=') || chars.get(idx + 1) != Some(&'"') {
        return None;
    }
    let value_start = idx + 2;
    let close = chars[value_start..].iter().take_while(|&&c| c != '\n').position(|&c| c == '"')?;
    Some(value_start + close + 1)
}

/// Python's `re.sub(r"\s+", " ", ...)`.
fn collapse_whitespace(text: &str) -> String {
    let is_python_space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if is_python_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use xbrl::{Location, QName};

    fn fact(namespace: &str, local: &str, value: Option<&str>) -> Fact {
        Fact {
            concept: QName::new("us-gaap", namespace, local),
            value: value.map(str::to_string),
            context_ref: "c-1".into(),
            unit_ref: None,
            decimals: None,
            id: Some("f-1".into()),
            nil: value.is_none(),
            location: Location::default(),
            sec: None,
        }
    }

    #[test]
    fn renders_residue_by_namespace_year_and_nil() {
        let old = context_line(
            &fact("http://fasb.org/us-gaap/2022", "Assets", Some("85501000000")),
            &WrittenText::none(),
        );
        assert_eq!(old.map(|l| l.render()).as_deref(), Some("<us-gaap:Assets xmlns:us- >85501000000</>"));
        let new = context_line(&fact(DELETED_NAMESPACE, "Assets", Some("1")), &WrittenText::none());
        assert_eq!(new.map(|l| l.render()).as_deref(), Some("<us-gaap:Assets >1</>"));
        let nil = context_line(&fact("http://fasb.org/us-gaap/2022", "Goodwill", None), &WrittenText::none());
        assert_eq!(nil.map(|l| l.render()).as_deref(), Some("<us-gaap:Goodwill xmlns:us- xmlns: xsi: />"));
    }

    #[test]
    fn cuts_escapes_and_skips_like_finlora() {
        let long = "a & b\n\n c ".repeat(20);
        let line = context_line(&fact(DELETED_NAMESPACE, "Policy", Some(&long)), &WrittenText::none());
        let value = line.and_then(|l| l.value).unwrap_or_default();
        assert!(value.starts_with("a &amp; b c a &amp; b"), "{value}");
        assert!(context_line(&fact(DELETED_NAMESPACE, "LeasesTextBlock", Some("x")), &WrittenText::none())
            .is_none());
        assert!(context_line(
            &fact(DELETED_NAMESPACE, "Note", Some("<p style=\"x\">")),
            &WrittenText::none()
        )
        .is_none());
        assert_eq!(remove_attribute_like("keep a=\"b\" this"), "keep  this");
    }

    #[test]
    fn extracts_the_block_of_a_prompt() {
        let lines = [ContextLine {
            concept: "us-gaap:Assets".into(),
            value: Some("1".into()),
            residue: String::new(),
        }];
        let prompt =
            crate::xbrl_prompt::build_prompt(crate::xbrl_prompt::XbrlQuestionKind::Tag, &lines, "Q?");
        assert_eq!(finlora_block(&prompt), Some("<us-gaap:Assets >1</> \n"));
    }
}
