//! The running text of a filing as sentences with their numeric mentions: inline XBRL (whose own
//! `ix:nonFraction` tags become each mention's gold tag), an XBRL instance (the HTML inside its
//! text block facts), HTML, or plain text.
//!
//! Text is cut into blocks the way `datasets::generate::narrative` cuts an inline filing (the same
//! block elements, the same sentence rule), so a mention's sentence is the sentence the narrative
//! reader reports for the `ix:nonFraction` at the same place, and gold tags are matched on
//! (sentence, span). Tables, scripts, styles and the hidden `ix:header` are not running text.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use anyhow::{Context as _, Result};
use datasets::generate::narrative::{
    collapse_whitespace, parse_narrative_facts, sentence_bounds, BLOCK_ELEMENTS,
};

use super::mentions::{find_mentions, Mention};

/// What kind of file a filing was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    InlineXbrl,
    Instance,
    Html,
    Text,
}

impl InputKind {
    pub fn name(self) -> &'static str {
        match self {
            InputKind::InlineXbrl => "inline XBRL",
            InputKind::Instance => "XBRL instance",
            InputKind::Html => "HTML",
            InputKind::Text => "plain text",
        }
    }
}

/// One numeric mention with its sentence and, for inline XBRL, the filing's own tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceMention {
    pub sentence: String,
    pub mention: Mention,
    /// The `ix:nonFraction` name on this number, prefixed as written (`us-gaap:Revenues`).
    pub gold: Option<String>,
}

/// The mentions of the filing at `path`, in document order, and the kind it was read as.
pub fn read_mentions(path: &Path) -> Result<(InputKind, Vec<SentenceMention>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let kind = detect_kind(path, &text);
    let mentions = match kind {
        InputKind::InlineXbrl => {
            let facts = parse_narrative_facts(&bytes).map_err(|message| {
                anyhow::anyhow!("cannot read {} as inline XBRL: {message}", path.display())
            })?;
            let mut gold: HashMap<(String, String), VecDeque<String>> = HashMap::new();
            for fact in facts {
                gold.entry((fact.sentence, fact.span)).or_default().push_back(fact.concept);
            }
            let mut mentions = block_mentions(&html_blocks(&text));
            for found in &mut mentions {
                let key = (found.sentence.clone(), found.mention.span.clone());
                found.gold = gold.get_mut(&key).and_then(VecDeque::pop_front);
            }
            mentions
        }
        InputKind::Instance => {
            let (document, _issues) = xbrl::instance::parse_instance(&path.display().to_string(), &bytes)
                .with_context(|| format!("cannot read {} as an XBRL instance", path.display()))?;
            let mut blocks = Vec::new();
            for fact in &document.facts {
                if fact.concept.local.ends_with("TextBlock") {
                    if let Some(html) = &fact.value {
                        blocks.extend(html_blocks(html));
                    }
                }
            }
            block_mentions(&blocks)
        }
        InputKind::Html => block_mentions(&html_blocks(&text)),
        InputKind::Text => block_mentions(&text_blocks(&text)),
    };
    Ok((kind, mentions))
}

/// The mentions of a text given in memory (a request body rather than a file), in order: read as
/// HTML when it has markup (a fragment such as `<p>...</p>` is enough), else as plain text.
/// Inline XBRL markup is read as HTML, so its own tags are not gold tags here.
pub fn text_mentions(text: &str) -> (InputKind, Vec<SentenceMention>) {
    if has_markup(text) {
        (InputKind::Html, block_mentions(&html_blocks(text)))
    } else {
        (InputKind::Text, block_mentions(&text_blocks(text)))
    }
}

/// Plain text's blocks are its paragraphs, split at blank lines.
fn text_blocks(text: &str) -> Vec<String> {
    text.split("\n\n").map(str::to_string).collect()
}

/// Whether `text` has an element tag (`<p>`, `</div>`, `<br/>`) or a comment; a bare `<` as in
/// `rates < 5%` is not markup.
fn has_markup(text: &str) -> bool {
    text.match_indices('<').any(|(idx, _)| {
        let rest = &text[idx + 1..];
        let starts_tag = rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!');
        starts_tag && rest.split('<').next().is_some_and(|tag| tag.contains('>'))
    })
}

/// Inline XBRL declares the inline namespace; an instance has an `xbrl` root in the instance
/// namespace; anything with HTML tags is HTML; the rest is text. A `.xml` or `.htm` file that is
/// neither is read as HTML so that malformed markup is not silently taken for prose.
/// Whether the file at `path` is inline XBRL, from its first 20,000 characters.
pub fn is_inline_xbrl(path: &Path) -> Result<bool> {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(20_000);
    std::fs::File::open(path)
        .and_then(|file| file.take(80_000).read_to_end(&mut head))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(detect_kind(path, &String::from_utf8_lossy(&head)) == InputKind::InlineXbrl)
}

fn detect_kind(path: &Path, text: &str) -> InputKind {
    let head: String = text.chars().take(20_000).collect();
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if head.contains("http://www.xbrl.org/2013/inlineXBRL")
        || head.contains("http://www.xbrl.org/2008/inlineXBRL")
    {
        InputKind::InlineXbrl
    } else if head.contains("http://www.xbrl.org/2003/instance") || extension == "xml" {
        InputKind::Instance
    } else if ["htm", "html", "xhtml"].contains(&extension.as_str())
        || head.to_ascii_lowercase().contains("<html")
        || head.to_ascii_lowercase().contains("<p>")
    {
        InputKind::Html
    } else {
        InputKind::Text
    }
}

/// The numeric mentions of each block, each with the sentence around it.
fn block_mentions(blocks: &[String]) -> Vec<SentenceMention> {
    let mut found = Vec::new();
    for block in blocks {
        // Mentions are found in the collapsed sentence, so spans index the sentence written out.
        let mut seen_sentences: Vec<(usize, usize)> = Vec::new();
        for raw in find_mentions(block) {
            let bounds = sentence_bounds(block, raw.start, raw.end);
            if seen_sentences.contains(&bounds) {
                continue;
            }
            seen_sentences.push(bounds);
            let sentence = collapse_whitespace(&block[bounds.0..bounds.1]);
            // A cover-page line (`20549`, `(408) 996-1010`) is not running text.
            let n_words =
                sentence.split_whitespace().filter(|word| word.chars().any(char::is_alphabetic)).count();
            if n_words < MIN_SENTENCE_WORDS {
                continue;
            }
            for mention in find_mentions(&sentence) {
                found.push(SentenceMention { sentence: sentence.clone(), mention, gold: None });
            }
        }
    }
    found
}

/// Sentences with fewer words are headings, addresses or table remnants, not running text.
const MIN_SENTENCE_WORDS: usize = 4;

/// Elements whose content is not running text.
const SKIPPED_ELEMENTS: [&str; 5] = ["table", "script", "style", "head", "title"];

/// The text blocks of an HTML document, entities decoded, read leniently (unclosed `<br>`, stray
/// end tags): malformed inline XBRL is caught by the narrative reader before this runs.
pub fn html_blocks(html: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut block = String::new();
    let mut n_skipped = 0usize;
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        if n_skipped == 0 {
            block.push_str(&decode_entities(&rest[..open]));
        }
        let tag_text = &rest[open..];
        if let Some(comment) = tag_text.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(close) = tag_text.find('>') else {
            rest = "";
            break;
        };
        let inner = &tag_text[1..close];
        rest = &tag_text[close + 1..];
        let is_end = inner.starts_with('/');
        let name: String = inner
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == ':' || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        let is_self_closing = inner.ends_with('/');
        let local = name.rsplit(':').next().unwrap_or("");
        let skipped =
            SKIPPED_ELEMENTS.contains(&name.as_str()) || (name.starts_with("ix") && local == "header");
        if skipped && !is_self_closing {
            if is_end {
                n_skipped = n_skipped.saturating_sub(1);
            } else {
                n_skipped += 1;
            }
        }
        if (skipped || BLOCK_ELEMENTS.contains(&name.as_str())) && !block.trim().is_empty() {
            blocks.push(std::mem::take(&mut block));
        }
    }
    if n_skipped == 0 {
        block.push_str(&decode_entities(rest));
    }
    if !block.trim().is_empty() {
        blocks.push(block);
    }
    blocks
}

/// Character references, the XML entities and `&nbsp;`; anything else is kept as written.
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let name = &after[..semi];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok().and_then(char::from_u32),
                    None => name.strip_prefix('#').and_then(|dec| dec.parse().ok()).and_then(char::from_u32),
                },
            };
            ch.map(|ch| (ch, semi))
        });
        match decoded {
            Some((ch, semi)) => {
                out.push(ch);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INLINE: &str = r#"<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"><body>
<div style="display:none"><ix:header><ix:hidden><ix:nonFraction name="us-gaap:Hidden" contextRef="c-1">9</ix:nonFraction></ix:hidden></ix:header></div>
<div><span>Apple Inc. repaid notes. The notes bear interest at <ix:nonFraction name="us-gaap:DebtInstrumentInterestRateStatedPercentage" contextRef="c-2" scale="-2">2.5</ix:nonFraction>%&#160;per year, on $7 million, and mature in 2030.</span></div>
<table><tr><td>1,250</td></tr></table>
</body></html>"#;

    #[test]
    fn inline_mentions_carry_the_filings_tags() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.htm");
        std::fs::write(&path, INLINE).expect("write");
        let (kind, mentions) = read_mentions(&path).expect("reads");
        assert_eq!(kind, InputKind::InlineXbrl);
        let found: Vec<(&str, Option<&str>)> =
            mentions.iter().map(|m| (m.mention.span.as_str(), m.gold.as_deref())).collect();
        assert_eq!(found, [("2.5", Some("us-gaap:DebtInstrumentInterestRateStatedPercentage")), ("7", None)]);
        assert_eq!(
            mentions[0].sentence,
            "The notes bear interest at 2.5% per year, on $7 million, and mature in 2030."
        );
    }

    #[test]
    fn malformed_inline_xbrl_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("broken.htm");
        std::fs::write(&path, INLINE.replace("</span></div>", "</div>")).expect("write");
        let error = read_mentions(&path).expect_err("malformed");
        assert!(format!("{error:#}").contains("broken.htm"), "{error:#}");
    }

    #[test]
    fn texts_in_memory_are_read_as_html_only_when_they_have_markup() {
        let sentence = "The interest rate swap effectively converts $ 200,000 of variable rate debt to a fixed rate of 1.798 % .";
        let (kind, mentions) = text_mentions(sentence);
        assert_eq!(kind, InputKind::Text);
        let spans: Vec<&str> = mentions.iter().map(|found| found.mention.span.as_str()).collect();
        assert_eq!(spans, ["200,000", "1.798"]);
        assert!(mentions.iter().all(|found| found.sentence == sentence && found.gold.is_none()));

        let (kind, mentions) = text_mentions(
            "<div><p>Revenue rose to $7&nbsp;million in the quarter, up 12% from last year.</p>\
             <table><tr><td>1,250</td></tr></table></div>",
        );
        assert_eq!(kind, InputKind::Html);
        let spans: Vec<&str> = mentions.iter().map(|found| found.mention.span.as_str()).collect();
        assert_eq!(spans, ["7", "12"]);

        let (kind, mentions) = text_mentions("Borrowings at rates < 5% were $ 300 million in total.");
        assert_eq!(kind, InputKind::Text);
        assert_eq!(mentions.len(), 2);
        assert!(text_mentions("No numbers in this sentence at all.").1.is_empty());
    }

    #[test]
    fn html_blocks_skip_tables_and_decode_entities() {
        let blocks = html_blocks("<p>A &amp; B<br>C</p><table><tr><td>9</td></tr></table><p>D&#8217;s</p>");
        assert_eq!(blocks, ["A & B", "C", "D\u{2019}s"]);
    }
}
