//! Collects the text of inline XBRL facts, continuations and footnotes while the document
//! streams past, then turns it into values: continuation chains joined, transforms, scale and
//! sign applied.

use std::collections::{HashMap, HashSet};

use crate::model::{Document, Fact, Footnote, Issue, Location, QName};
use crate::transform::{apply_format, canonical_decimal, scale_decimal};

/// What kind of inline fact a tag is, with the attributes that shape its value.
pub(crate) enum FactKind {
    NonFraction { format: Option<String>, scale: i32, negate: bool },
    NonNumeric { format: Option<String>, continued_at: Option<String> },
}

/// A fact whose text is still being read.
pub(crate) struct PendingFact {
    pub concept: QName,
    pub context_ref: String,
    pub unit_ref: Option<String>,
    pub decimals: Option<String>,
    pub id: Option<String>,
    pub nil: bool,
    pub line: u32,
    pub kind: FactKind,
    pub text: String,
}

enum Target {
    Fact(usize),
    Continuation { id: String, continued_at: Option<String> },
    Footnote(usize),
}

/// An open element whose text content is being gathered. Text inside an `ix:exclude` opened
/// after the collector does not count, so each collector remembers the exclude depth it began at.
struct Collector {
    target: Target,
    text: String,
    exclude_level: u32,
}

#[derive(Default)]
pub(crate) struct InlineFacts {
    facts: Vec<PendingFact>,
    /// Continuation id -> (text, next continuation id).
    continuations: HashMap<String, (String, Option<String>)>,
    footnotes: Vec<Footnote>,
    /// `ix:relationship` fromRefs and toRefs.
    relationships: Vec<(Vec<String>, Vec<String>)>,
    open: Vec<Collector>,
    exclude_depth: u32,
}

impl InlineFacts {
    pub fn is_collecting(&self) -> bool {
        !self.open.is_empty()
    }

    /// Adds text to every open collector not shielded by an `ix:exclude`.
    pub fn push_text(&mut self, text: &str) {
        for collector in self.open.iter_mut().filter(|c| c.exclude_level == self.exclude_depth) {
            collector.text.push_str(text);
        }
    }

    pub fn enter_exclude(&mut self) {
        self.exclude_depth += 1;
    }

    pub fn leave_exclude(&mut self) {
        self.exclude_depth = self.exclude_depth.saturating_sub(1);
    }

    /// Starts a fact; with `has_content` its text is gathered until [`InlineFacts::close`].
    pub fn open_fact(&mut self, fact: PendingFact, has_content: bool) {
        self.facts.push(fact);
        if has_content {
            self.open_collector(Target::Fact(self.facts.len() - 1));
        }
    }

    pub fn open_continuation(&mut self, id: String, continued_at: Option<String>, has_content: bool) {
        if has_content {
            self.open_collector(Target::Continuation { id, continued_at });
        } else {
            self.continuations.insert(id, (String::new(), continued_at));
        }
    }

    pub fn open_footnote(&mut self, id: String, lang: Option<String>, has_content: bool) {
        self.footnotes.push(Footnote { id, lang, text: String::new(), fact_ids: Vec::new() });
        if has_content {
            self.open_collector(Target::Footnote(self.footnotes.len() - 1));
        }
    }

    pub fn add_relationship(&mut self, from_refs: &str, to_refs: &str) {
        let split = |refs: &str| refs.split_whitespace().map(str::to_string).collect();
        self.relationships.push((split(from_refs), split(to_refs)));
    }

    fn open_collector(&mut self, target: Target) {
        self.open.push(Collector { target, text: String::new(), exclude_level: self.exclude_depth });
    }

    /// Ends the innermost open collector, filing its text with its fact, continuation or footnote.
    pub fn close(&mut self) {
        let Some(collector) = self.open.pop() else { return };
        match collector.target {
            Target::Fact(idx) => self.facts[idx].text = collector.text,
            Target::Continuation { id, continued_at } => {
                self.continuations.insert(id, (collector.text, continued_at));
            }
            Target::Footnote(idx) => self.footnotes[idx].text = collector.text.trim().to_string(),
        }
    }

    /// Turns the gathered text into facts and footnotes of `doc`.
    pub fn finish(mut self, doc: &mut Document, issues: &mut Vec<Issue>) {
        let facts = std::mem::take(&mut self.facts);
        doc.facts.reserve(facts.len());
        for mut pending in facts {
            if let FactKind::NonNumeric { continued_at: Some(first), .. } = &pending.kind {
                let first = first.clone();
                self.append_continuations(&mut pending, first, issues);
            }
            doc.facts.push(into_fact(pending, issues));
        }
        for mut footnote in std::mem::take(&mut self.footnotes) {
            for (from_refs, _) in self.relationships.iter().filter(|(_, to)| to.contains(&footnote.id)) {
                for fact_id in from_refs {
                    if !footnote.fact_ids.contains(fact_id) {
                        footnote.fact_ids.push(fact_id.clone());
                    }
                }
            }
            doc.footnotes.push(footnote);
        }
    }

    /// Follows a `continuedAt` chain, appending each continuation's text; a missing link or a
    /// cycle ends the chain with an issue.
    fn append_continuations(&self, fact: &mut PendingFact, first: String, issues: &mut Vec<Issue>) {
        let mut visited = HashSet::new();
        let mut next = Some(first);
        while let Some(id) = next {
            let Some((text, continued_at)) = self.continuations.get(&id) else {
                let message = format!("fact {} continues at {id}, which does not exist", fact.concept);
                issues.push(Issue { line: fact.line, message });
                return;
            };
            if !visited.insert(id.clone()) {
                let message = format!("fact {} has a continuation cycle through {id}", fact.concept);
                issues.push(Issue { line: fact.line, message });
                return;
            }
            fact.text.push_str(text);
            next = continued_at.clone();
        }
    }
}

/// The final value: transform, then scale and sign for numbers; the text itself otherwise.
fn into_fact(pending: PendingFact, issues: &mut Vec<Issue>) -> Fact {
    let PendingFact { concept, context_ref, unit_ref, decimals, id, nil, line, kind, text } = pending;
    let value = if nil {
        None
    } else {
        let mut report = |message: String| issues.push(Issue { line, message });
        Some(match kind {
            FactKind::NonFraction { format, scale, negate } => {
                let number = match &format {
                    Some(format) => apply_format(format, &text),
                    None => {
                        canonical_decimal(&text).ok_or_else(|| format!("{:?} is not a decimal", text.trim()))
                    }
                };
                match number
                    .and_then(|n| canonical_decimal(&n).ok_or_else(|| format!("{n:?} is not a number")))
                {
                    Ok(number) => scale_decimal(&number, scale, negate),
                    Err(reason) => {
                        report(format!("numeric fact {concept} has an unreadable value: {reason}"));
                        text.trim().to_string()
                    }
                }
            }
            FactKind::NonNumeric { format: Some(format), .. } => match apply_format(&format, &text) {
                Ok(value) => value,
                Err(reason) => {
                    report(format!("fact {concept} has an unreadable value: {reason}"));
                    text
                }
            },
            FactKind::NonNumeric { format: None, .. } => text,
        })
    };
    Fact { concept, value, context_ref, unit_ref, decimals, id, nil, location: Location { line }, sec: None }
}
