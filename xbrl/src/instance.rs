//! Reads XBRL 2.1 instance documents (`*_htm.xml`) into a [`Document`], streaming with
//! quick-xml: facts, contexts, units, footnotes, schema references and root namespaces.

use std::path::Path;

use quick_xml::events::{BytesStart, Event};

use crate::error::{Error, Result};
use crate::model::{Document, Fact, Footnote, Issue, Location, QName, SourceKind};
use crate::transform::canonical_decimal;

#[path = "instance_context.rs"]
pub(crate) mod context;
#[path = "instance_xml.rs"]
pub(crate) mod xml;

use xml::{find_attr, Cursor, LINK, XBRLI, XLINK, XML, XSI};

/// Reads an instance document from a file.
pub fn read_instance(path: &Path) -> Result<(Document, Vec<Issue>)> {
    let bytes = std::fs::read(path).map_err(|err| Error::io(path, err))?;
    parse_instance(&path.display().to_string(), &bytes)
}

/// Parses an instance document. Only XML that is not well formed, or a root other than
/// `xbrli:xbrl`, is an error; anything odd inside comes back as an [`Issue`].
pub fn parse_instance(source_name: &str, xml: &[u8]) -> Result<(Document, Vec<Issue>)> {
    let mut cursor = Cursor::new(source_name, xml)?;
    let mut doc = Document::new(source_name, SourceKind::Instance);
    let mut seen_root = false;
    loop {
        let event = cursor.next()?;
        let (start, is_empty) = match event {
            Event::Start(start) => (start, false),
            Event::Empty(start) => (start, true),
            Event::Eof => break,
            _ => continue,
        };
        if !seen_root {
            seen_root = true;
            check_root(&cursor, &start)?;
            doc.namespaces.extend(cursor.namespace_declarations(&start));
            continue;
        }
        read_child(&mut cursor, &mut doc, &start, is_empty)?;
    }
    if !seen_root {
        return Err(wrong_document(source_name, "the document has no root element".to_string()));
    }
    check_references(&doc, &mut cursor.issues);
    Ok((doc, cursor.issues))
}

fn wrong_document(source_name: &str, message: String) -> Error {
    Error::WrongDocument { source_name: source_name.to_string(), expected: "an XBRL instance", message }
}

fn check_root(cursor: &Cursor<'_>, start: &BytesStart<'_>) -> Result<()> {
    let (namespace, local) = cursor.element_name(start.name());
    if namespace == XBRLI && local == "xbrl" {
        return Ok(());
    }
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    Err(wrong_document(cursor.source_name, format!("root element is <{name}> in namespace {namespace:?}")))
}

/// Handles one element below the root: a context, unit, footnote link or schema reference, a
/// fact, or a tuple, whose children are facts read on later turns of the main loop.
fn read_child<'i>(
    cursor: &mut Cursor<'i>,
    doc: &mut Document,
    start: &BytesStart<'i>,
    is_empty: bool,
) -> Result<()> {
    let (namespace, local) = cursor.element_name(start.name());
    let in_xbrli = namespace == XBRLI;
    let in_link = namespace == LINK;
    match local {
        "context" if in_xbrli && !is_empty => doc
            .contexts
            .extend(context::read_context(cursor, start)?.map(|context| (context.id.clone(), context))),
        "unit" if in_xbrli && !is_empty => {
            doc.units.extend(context::read_unit(cursor, start)?.map(|unit| (unit.id.clone(), unit)))
        }
        "footnoteLink" if in_link && !is_empty => read_footnote_link(cursor, doc)?,
        "schemaRef" if in_link => {
            let attrs = cursor.attributes(start)?;
            doc.schema_refs.extend(find_attr(&attrs, XLINK, "href").map(str::to_string));
            if !is_empty {
                cursor.skip_element()?;
            }
        }
        _ if in_xbrli || in_link => {
            if !is_empty {
                cursor.skip_element()?;
            }
        }
        _ => {
            let concept = element_qname(cursor, start);
            let attrs = cursor.attributes(start)?;
            if find_attr(&attrs, "", "contextRef").is_some() {
                let fact = read_fact(cursor, concept, &attrs, is_empty)?;
                doc.facts.push(fact);
            }
        }
    }
    Ok(())
}

/// The QName of an element, with the conventional prefix for well-known namespaces.
fn element_qname(cursor: &Cursor<'_>, start: &BytesStart<'_>) -> QName {
    let name = start.name();
    let (namespace, local) = cursor.element_name(name);
    let written_prefix = name.prefix().map(|p| String::from_utf8_lossy(p.as_ref()).into_owned());
    let prefix =
        xml::conventional_prefix(namespace).map(str::to_string).or(written_prefix).unwrap_or_default();
    QName::new(prefix, namespace, local)
}

fn read_fact<'i>(
    cursor: &mut Cursor<'i>,
    concept: QName,
    attrs: &[xml::Attr],
    is_empty: bool,
) -> Result<Fact> {
    let line = cursor.line();
    let text = if is_empty { String::new() } else { cursor.read_text()? };
    let nil = find_attr(attrs, XSI, "nil").is_some_and(|v| matches!(v.trim(), "true" | "1"));
    let unit_ref = find_attr(attrs, "", "unitRef").map(str::to_string);
    let value = if nil {
        None
    } else if unit_ref.is_some() {
        match canonical_decimal(&text) {
            Some(value) => Some(value),
            None => {
                cursor.issues.push(Issue {
                    line,
                    message: format!(
                        "numeric fact {concept} has a value that is not a decimal: {:?}",
                        text.trim()
                    ),
                });
                Some(text.trim().to_string())
            }
        }
    } else {
        Some(text)
    };
    Ok(Fact {
        concept,
        value,
        context_ref: find_attr(attrs, "", "contextRef").unwrap_or("").to_string(),
        unit_ref,
        decimals: find_attr(attrs, "", "decimals").map(str::to_string),
        id: find_attr(attrs, "", "id").map(str::to_string),
        nil,
        location: Location { line },
        sec: None,
    })
}

/// Reads a `link:footnoteLink`: locators name facts by `#id`, arcs join locator labels to
/// footnote labels.
fn read_footnote_link(cursor: &mut Cursor<'_>, doc: &mut Document) -> Result<()> {
    let mut locators: Vec<(String, String)> = Vec::new();
    let mut arcs: Vec<(String, String)> = Vec::new();
    let mut footnotes: Vec<(String, Footnote)> = Vec::new();
    let mut depth = 0usize;
    loop {
        let (start, is_empty) = match cursor.next()? {
            Event::Start(start) => (start, false),
            Event::Empty(start) => (start, true),
            Event::End(_) if depth == 0 => break,
            Event::End(_) => {
                depth -= 1;
                continue;
            }
            Event::Eof => return Err(cursor.unexpected_eof()),
            _ => continue,
        };
        let (_, local) = cursor.element_name(start.name());
        let attrs = cursor.attributes(&start)?;
        let label = find_attr(&attrs, XLINK, "label").unwrap_or("").to_string();
        match local {
            "loc" => {
                let href = find_attr(&attrs, XLINK, "href").unwrap_or("");
                let fact_id = href.rsplit_once('#').map_or(href, |(_, fragment)| fragment);
                locators.push((label, fact_id.to_string()));
            }
            "footnoteArc" => {
                let from = find_attr(&attrs, XLINK, "from").unwrap_or("").to_string();
                let to = find_attr(&attrs, XLINK, "to").unwrap_or("").to_string();
                arcs.push((from, to));
            }
            "footnote" => {
                let text = if is_empty { String::new() } else { cursor.read_text()? };
                let id = find_attr(&attrs, "", "id").map_or_else(|| label.clone(), str::to_string);
                let lang = find_attr(&attrs, XML, "lang").map(str::to_string);
                footnotes.push((
                    label,
                    Footnote { id, lang, text: text.trim().to_string(), fact_ids: Vec::new() },
                ));
                continue;
            }
            _ => {}
        }
        if !is_empty {
            depth += 1;
        }
    }
    for (label, mut footnote) in footnotes {
        for (from, _) in arcs.iter().filter(|(_, to)| *to == label) {
            for (_, fact_id) in locators.iter().filter(|(loc_label, _)| loc_label == from) {
                if !footnote.fact_ids.contains(fact_id) {
                    footnote.fact_ids.push(fact_id.clone());
                }
            }
        }
        doc.footnotes.push(footnote);
    }
    Ok(())
}

/// Reports facts whose context or unit the document does not define; the facts are kept.
pub(crate) fn check_references(doc: &Document, issues: &mut Vec<Issue>) {
    for fact in &doc.facts {
        let line = fact.location.line;
        if !doc.contexts.contains_key(&fact.context_ref) {
            let message = format!("fact {} refers to unknown context {}", fact.concept, fact.context_ref);
            issues.push(Issue { line, message });
        }
        if let Some(unit_ref) = fact.unit_ref.as_ref().filter(|id| !doc.units.contains_key(*id)) {
            issues.push(Issue {
                line,
                message: format!("fact {} refers to unknown unit {unit_ref}", fact.concept),
            });
        }
    }
}
