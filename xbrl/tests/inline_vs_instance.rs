//! Parity: for every shared filing with both the inline `.htm` and SEC's derived `_htm.xml`
//! instance, both readers must give the same facts and the same contexts.

mod common;
use common::shared_dir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use xbrl::inline::read_inline;
use xbrl::instance::read_instance;
use xbrl::{Document, Fact};

/// `X.htm` files that have an `X_htm.xml` next to them, anywhere under `dir`.
fn filing_pairs(dir: &Path, pairs: &mut Vec<(PathBuf, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            filing_pairs(&path, pairs);
        } else if path.extension().is_some_and(|ext| ext == "htm") {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let instance = path.with_file_name(format!("{stem}_htm.xml"));
            if instance.is_file() {
                pairs.push((path, instance));
            }
        }
    }
}

/// Text with markup removed, entities decoded and whitespace collapsed. The instance stores
/// `escape="true"` text blocks as escaped HTML while the inline reader keeps their text, and
/// whitespace between HTML blocks differs, so text facts are compared in this form.
fn normalized_text(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut in_tag = false;
    for ch in text.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => plain.push(ch),
            _ => {}
        }
    }
    let mut decoded = String::with_capacity(plain.len());
    let mut rest = plain.as_str();
    while let Some(amp) = rest.find('&') {
        decoded.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let entity = after.find(';').filter(|end| *end <= 10).map(|end| &after[..end]);
        let replacement = entity.and_then(|name| match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => {
                let number = name.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse().ok()?,
                };
                char::from_u32(code)
            }
        });
        match (entity, replacement) {
            (Some(name), Some(ch)) => {
                decoded.push(ch);
                rest = &after[name.len() + 1..];
            }
            _ => {
                decoded.push('&');
                rest = after;
            }
        }
    }
    decoded.push_str(rest);
    decoded.split(|ch: char| ch.is_whitespace()).filter(|word| !word.is_empty()).collect::<Vec<_>>().join(" ")
}

type FactKey = (String, String, Option<String>, Option<String>, bool);

fn fact_key(fact: &Fact) -> FactKey {
    let value = match &fact.value {
        Some(value) if !fact.is_numeric() => Some(normalized_text(value)),
        other => other.clone(),
    };
    let concept = format!("{{{}}}{}", fact.concept.namespace, fact.concept.local);
    (concept, fact.context_ref.clone(), fact.unit_ref.clone(), value, fact.nil)
}

fn multiset(doc: &Document) -> BTreeMap<FactKey, usize> {
    let mut counts = BTreeMap::new();
    for fact in &doc.facts {
        *counts.entry(fact_key(fact)).or_insert(0) += 1;
    }
    counts
}

/// Keys with a different count in `left` than in `right`.
fn surplus(left: &BTreeMap<FactKey, usize>, right: &BTreeMap<FactKey, usize>) -> Vec<String> {
    left.iter()
        .filter(|(key, count)| right.get(*key) != Some(count))
        .map(|(key, count)| {
            format!("{count} x {key:?} (other side {})", right.get(key).copied().unwrap_or(0))
        })
        .collect()
}

#[test]
fn inline_and_instance_agree() {
    let Some(shared) = shared_dir() else { return };
    let mut pairs = Vec::new();
    filing_pairs(&shared.join("xbrl/filings"), &mut pairs);
    assert!(!pairs.is_empty(), "no filing has both X.htm and X_htm.xml");
    for (htm, xml) in &pairs {
        let (inline, inline_issues) = read_inline(htm).unwrap_or_else(|err| panic!("{err}"));
        let (instance, instance_issues) = read_instance(xml).unwrap_or_else(|err| panic!("{err}"));
        println!(
            "{}: inline {} facts / {} contexts / {} issues; instance {} facts / {} contexts / {} issues",
            htm.display(),
            inline.facts.len(),
            inline.contexts.len(),
            inline_issues.len(),
            instance.facts.len(),
            instance.contexts.len(),
            instance_issues.len(),
        );
        assert!(inline_issues.is_empty(), "{inline_issues:?}");
        assert!(instance_issues.is_empty(), "{instance_issues:?}");

        let (inline_facts, instance_facts) = (multiset(&inline), multiset(&instance));
        let only_inline = surplus(&inline_facts, &instance_facts);
        let only_instance = surplus(&instance_facts, &inline_facts);
        assert!(
            only_inline.is_empty() && only_instance.is_empty(),
            "{}: facts differ\ninline has:\n  {}\ninstance has:\n  {}",
            htm.display(),
            only_inline.iter().take(15).cloned().collect::<Vec<_>>().join("\n  "),
            only_instance.iter().take(15).cloned().collect::<Vec<_>>().join("\n  "),
        );

        for fact in &inline.facts {
            let (Some(mine), Some(theirs)) = (inline.context_of(fact), instance.context_of(fact)) else {
                panic!("{}: context {} missing", htm.display(), fact.context_ref);
            };
            assert_eq!(
                (&mine.entity, &mine.period, &mine.dimensions),
                (&theirs.entity, &theirs.period, &theirs.dimensions),
                "context {}",
                fact.context_ref
            );
            if let Some(unit_ref) = &fact.unit_ref {
                assert_eq!(inline.units.get(unit_ref), instance.units.get(unit_ref), "unit {unit_ref}");
            }
        }
    }
}
