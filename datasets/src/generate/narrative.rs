//! The numbers tagged inside the running text of an inline XBRL filing: each `ix:nonFraction`
//! outside tables and outside the hidden `ix:header`, with the sentence around it and its text as
//! written, the raw material of FiNER-style questions.
//!
//! xbrl's inline reader keeps facts, not the prose around them, so the `.htm` is walked here a
//! second time. Paragraph-like elements (`p`, `div`, `li`, headings, cells, `br`) end a block of
//! text; sentences are cut inside a block at `.`, `?` or `!` followed by a space and not closing a
//! common abbreviation.

use std::path::Path;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::error::{Error, Result};

const IX_NAMESPACES: [&str; 2] =
    ["http://www.xbrl.org/2013/inlineXBRL", "http://www.xbrl.org/2008/inlineXBRL"];
/// HTML elements whose start or end begins a new block of text.
pub const BLOCK_ELEMENTS: [&str; 16] =
    ["p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "tr", "br", "body"];
/// Words that end with a period without ending the sentence.
const ABBREVIATIONS: [&str; 16] = [
    "inc", "corp", "co", "ltd", "no", "nos", "u.s", "e.g", "i.e", "jr", "mr", "ms", "dr", "vs", "approx",
    "l.p",
];

/// One tagged number in running text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarrativeFact {
    /// The element's `name`, prefixed as written (`us-gaap:DebtInstrumentFaceAmount`).
    pub concept: String,
    pub context_ref: String,
    pub id: Option<String>,
    /// The `format` transform (`ixt:num-dot-decimal`), if any.
    pub format: Option<String>,
    pub scale: i32,
    /// `sign="-"`.
    pub negated: bool,
    /// The number as the reader sees it (`2.5`, `1,250`, `no`), whitespace collapsed.
    pub span: String,
    /// The sentence containing it, whitespace collapsed.
    pub sentence: String,
}

impl NarrativeFact {
    /// The fact value the span stands for: the `format` transform, then `scale` and `sign`, as
    /// the inline reader computes it; `None` when the transform cannot read the span.
    pub fn value(&self) -> Option<String> {
        let canonical = match &self.format {
            Some(format) => xbrl::transform::apply_format(format, &self.span).ok()?,
            None => xbrl::transform::canonical_decimal(&self.span)?,
        };
        Some(xbrl::transform::scale_decimal(&canonical, self.scale, self.negated))
    }
}

/// Reads the narrative facts of the inline XBRL document at `path`.
pub fn read_narrative_facts(path: &Path) -> Result<Vec<NarrativeFact>> {
    let bytes = std::fs::read(path).map_err(|source| Error::io(path, source))?;
    parse_narrative_facts(&bytes).map_err(|message| Error::Html { path: path.to_path_buf(), message })
}

/// A number being read: its attributes and where its text starts in the block.
struct OpenFact {
    fact: NarrativeFact,
    start: usize,
    /// Elements opened inside it and not yet closed.
    depth: usize,
}

/// Text of the current block and the facts found in it (byte ranges into `text`).
#[derive(Default)]
struct Block {
    text: String,
    facts: Vec<(NarrativeFact, usize, usize)>,
}

/// The narrative facts of an inline XBRL document; only XML that cannot be read is an error.
pub fn parse_narrative_facts(html: &[u8]) -> std::result::Result<Vec<NarrativeFact>, String> {
    let text = std::str::from_utf8(html).map_err(|error| format!("not UTF-8: {error}"))?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut found = Vec::new();
    let mut block = Block::default();
    let mut open: Option<OpenFact> = None;
    // Open `table` elements and open `ix:header` elements: text inside either is not prose.
    let (mut n_tables, mut n_headers) = (0usize, 0usize);
    let mut stack: Vec<Kind> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|error| format!("malformed XML at byte {}: {error}", reader.buffer_position()))?;
        match event {
            Event::Start(start) => {
                let kind = classify(&reader, &start);
                if let Some(fact) = open.as_mut() {
                    fact.depth += 1;
                } else if kind == Kind::NonFraction && n_tables == 0 && n_headers == 0 {
                    open =
                        Some(OpenFact { fact: fact_attributes(&start), start: block.text.len(), depth: 0 });
                }
                match kind {
                    Kind::Table => n_tables += 1,
                    Kind::Header => n_headers += 1,
                    Kind::Block if open.is_none() => flush(&mut block, &mut found),
                    _ => {}
                }
                stack.push(kind);
            }
            Event::Empty(start) if classify(&reader, &start) == Kind::Block && open.is_none() => {
                flush(&mut block, &mut found);
            }
            Event::End(_) => {
                let kind = stack.pop().unwrap_or(Kind::Other);
                if let Some(mut fact) = open.take() {
                    if fact.depth == 0 {
                        fact.fact.span = collapse_whitespace(&block.text[fact.start..]);
                        block.facts.push((fact.fact, fact.start, block.text.len()));
                    } else {
                        fact.depth -= 1;
                        open = Some(fact);
                    }
                }
                match kind {
                    Kind::Table => n_tables = n_tables.saturating_sub(1),
                    Kind::Header => n_headers = n_headers.saturating_sub(1),
                    Kind::Block if open.is_none() => flush(&mut block, &mut found),
                    _ => {}
                }
            }
            Event::Text(chunk) if n_headers == 0 => block.text.push_str(&chunk.decode().unwrap_or_default()),
            Event::CData(chunk) if n_headers == 0 => block.text.push_str(&chunk.decode().unwrap_or_default()),
            Event::GeneralRef(reference) if n_headers == 0 => {
                block.text.push_str(&reference_text(&reference))
            }
            Event::Eof => break,
            _ => {}
        }
    }
    flush(&mut block, &mut found);
    Ok(found)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Table,
    Header,
    NonFraction,
    Block,
    Other,
}

fn classify(reader: &NsReader<&[u8]>, start: &BytesStart) -> Kind {
    let (namespace, local) = reader.resolve_element(start.name());
    let local = String::from_utf8_lossy(local.as_ref()).to_ascii_lowercase();
    let in_ix = matches!(namespace, ResolveResult::Bound(ns) if IX_NAMESPACES.iter().any(|ix| ns.as_ref() == ix.as_bytes()));
    match (in_ix, local.as_str()) {
        (true, "nonfraction") => Kind::NonFraction,
        (true, "header") => Kind::Header,
        (true, _) => Kind::Other,
        (false, "table") => Kind::Table,
        (false, name) if BLOCK_ELEMENTS.contains(&name) => Kind::Block,
        _ => Kind::Other,
    }
}

fn fact_attributes(start: &BytesStart) -> NarrativeFact {
    let mut fact = NarrativeFact {
        concept: String::new(),
        context_ref: String::new(),
        id: None,
        format: None,
        scale: 0,
        negated: false,
        span: String::new(),
        sentence: String::new(),
    };
    for attribute in start.attributes().flatten() {
        let value = attribute.unescape_value().map(|v| v.into_owned()).unwrap_or_default();
        match attribute.key.local_name().as_ref() {
            b"name" => fact.concept = value,
            b"contextRef" => fact.context_ref = value,
            b"id" => fact.id = Some(value),
            b"format" => fact.format = Some(value),
            b"scale" => fact.scale = value.trim().parse().unwrap_or(0),
            b"sign" => fact.negated = value.trim() == "-",
            _ => {}
        }
    }
    fact
}

/// Character references, the XML entities and `&nbsp;`; anything else is kept as written.
fn reference_text(reference: &BytesRef) -> String {
    if let Ok(Some(ch)) = reference.resolve_char_ref() {
        return ch.to_string();
    }
    let name = reference.decode().unwrap_or_default();
    match name.as_ref() {
        "amp" => "&".into(),
        "lt" => "<".into(),
        "gt" => ">".into(),
        "quot" => "\"".into(),
        "apos" => "'".into(),
        "nbsp" => "\u{a0}".into(),
        other => format!("&{other};"),
    }
}

/// Ends the current block: every fact in it gets its sentence.
fn flush(block: &mut Block, found: &mut Vec<NarrativeFact>) {
    let text = std::mem::take(&mut block.text);
    for (mut fact, start, end) in block.facts.drain(..) {
        let (from, to) = sentence_bounds(&text, start, end);
        fact.sentence = collapse_whitespace(&text[from..to]);
        if !fact.span.is_empty() && !fact.sentence.is_empty() {
            found.push(fact);
        }
    }
}

/// Byte range of the sentence of `text` that contains `start..end`.
pub fn sentence_bounds(text: &str, start: usize, end: usize) -> (usize, usize) {
    let ends: Vec<usize> = text
        .char_indices()
        .filter(|&(idx, c)| {
            matches!(c, '.' | '?' | '!') && (idx < start || idx >= end) && ends_sentence(text, idx)
        })
        .map(|(idx, _)| idx + 1)
        .collect();
    let from = ends.iter().rev().find(|&&sentence_end| sentence_end <= start).copied().unwrap_or(0);
    let to = ends.iter().find(|&&sentence_end| sentence_end > end).copied().unwrap_or(text.len());
    (from, to)
}

/// Whether the `.`, `?` or `!` at byte `idx` ends a sentence.
fn ends_sentence(text: &str, idx: usize) -> bool {
    let after = &text[idx + 1..];
    let Some(next) = after.chars().next() else { return true };
    if !next.is_whitespace() {
        return false;
    }
    let next_word = after.trim_start().chars().next();
    if next_word.is_some_and(char::is_lowercase) {
        return false;
    }
    let before = &text[..idx];
    let word = before.rsplit(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("");
    let is_initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
    !(is_initial || ABBREVIATIONS.contains(&word.to_lowercase().as_str()))
}

/// HTML's whitespace collapsing, with no-break spaces counted as spaces.
pub fn collapse_whitespace(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c == '\u{a0}')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTML: &str = r#"<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"><body>
<div style="display:none"><ix:header><ix:hidden><ix:nonFraction name="us-gaap:Hidden" contextRef="c-1">9</ix:nonFraction></ix:hidden></ix:header></div>
<div><span>Apple Inc. repaid notes. The notes bear interest at <ix:nonFraction name="us-gaap:DebtInstrumentInterestRateStatedPercentage" contextRef="c-2" id="f-1" format="ixt:num-dot-decimal" scale="-2">2.5</ix:nonFraction>%&#160;per year and mature in 2030. Other text.</span></div>
<table><tr><td><ix:nonFraction name="us-gaap:Revenues" contextRef="c-1" scale="6" format="ixt:num-dot-decimal">1,250</ix:nonFraction></td></tr></table>
<p>Losses were $<ix:nonFraction name="us-gaap:Losses" contextRef="c-1" id="f-3" scale="6" sign="-" format="ixt:num-dot-decimal">1,250</ix:nonFraction> million</p>
</body></html>"#;

    #[test]
    fn finds_running_text_numbers_with_their_sentences() {
        let facts = parse_narrative_facts(HTML.as_bytes()).unwrap_or_default();
        let found: Vec<(&str, &str, &str)> =
            facts.iter().map(|f| (f.concept.as_str(), f.span.as_str(), f.sentence.as_str())).collect();
        assert_eq!(
            found,
            [
                (
                    "us-gaap:DebtInstrumentInterestRateStatedPercentage",
                    "2.5",
                    "The notes bear interest at 2.5% per year and mature in 2030."
                ),
                ("us-gaap:Losses", "1,250", "Losses were $1,250 million"),
            ]
        );
        assert_eq!(facts[0].value().as_deref(), Some("0.025"));
        assert_eq!(facts[1].value().as_deref(), Some("-1250000000"));
    }

    #[test]
    fn malformed_xml_is_an_error() {
        assert!(parse_narrative_facts(b"<html><body><p>x</div></html>").is_err());
    }
}
