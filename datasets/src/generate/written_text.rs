//! Numeric fact text exactly as the filer wrote it (`0.90`, not the canonical `0.9`), read back
//! from the instance document at the fact's line, because FinLoRA's prompts show the raw text.

use std::path::Path;

use xbrl::Fact;

use crate::error::{Error, Result};

/// An instance document's source text, indexed by line.
#[derive(Debug, Clone, Default)]
pub struct WrittenText {
    text: String,
    /// Byte offset of each line's first character; line n (1-based) starts at `line_starts[n - 1]`.
    line_starts: Vec<usize>,
}

impl WrittenText {
    /// No source: numeric facts fall back to their canonical value.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads the instance document at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::io(path, source))?;
        Ok(Self::from_text(text))
    }

    pub fn from_text(text: String) -> Self {
        let line_starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(offset, _)| offset + 1)).collect();
        Self { text, line_starts }
    }

    /// The text of `fact` as written: for numeric facts the characters between its start tag
    /// (which begins on the fact's line) and the next `<`; otherwise the fact's value.
    pub fn text_of<'f>(&'f self, fact: &'f Fact) -> Option<&'f str> {
        let value = fact.value.as_deref()?;
        if !fact.is_numeric() {
            return Some(value);
        }
        self.numeric_text(fact)
            .map(str::trim)
            .filter(|written| written.parse::<f64>().is_ok())
            .or(Some(value))
    }

    fn numeric_text(&self, fact: &Fact) -> Option<&str> {
        let line_idx = usize::try_from(fact.location.line).ok()?.checked_sub(1)?;
        let from = *self.line_starts.get(line_idx)?;
        let rest = &self.text[from..];
        let tag_start = rest.find('<')?;
        let tag_end = tag_start + rest[tag_start..].find('>')?;
        if rest[..tag_end].ends_with('/') {
            return None;
        }
        let text = &rest[tag_end + 1..];
        text.find('<').map(|end| &text[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xbrl::{Location, QName};

    #[test]
    fn reads_trailing_zeros_back_from_the_source() {
        let source = "<xbrl>\n  <us-gaap:Dividends\n    unitRef=\"usd\">0.90</us-gaap:Dividends>\n</xbrl>\n";
        let written = WrittenText::from_text(source.to_string());
        let fact = Fact {
            concept: QName::new("us-gaap", "", "Dividends"),
            value: Some("0.9".into()),
            context_ref: "c".into(),
            unit_ref: Some("usd".into()),
            decimals: Some("INF".into()),
            id: None,
            nil: false,
            location: Location { line: 2 },
            sec: None,
        };
        assert_eq!(written.text_of(&fact), Some("0.90"));
        assert_eq!(WrittenText::none().text_of(&fact), Some("0.9"));
    }
}
