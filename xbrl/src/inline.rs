//! Reads inline XBRL (iXBRL) 10-K documents, the XHTML `.htm` files SEC filers submit, into a
//! [`Document`] with the same values the instance reader gives for the derived `_htm.xml`.
//!
//! One streaming pass: contexts and units in `ix:resources` go through the instance reader's
//! code; fact text is gathered while the HTML streams past (nested facts, `ix:exclude`,
//! `ix:continuation` chains), then transformed, scaled and signed at the end.

use std::path::Path;

use quick_xml::events::{BytesStart, Event};

use crate::error::{Error, Result};
use crate::instance::check_references;
use crate::instance::context::{read_context, read_unit};
use crate::instance::xml::{find_attr, Attr, Cursor, LINK, XBRLI, XLINK, XML, XSI};
use crate::model::{Document, Issue, SourceKind};

#[path = "inline_facts.rs"]
mod facts;

use facts::{FactKind, InlineFacts, PendingFact};

const IX_2013: &str = "http://www.xbrl.org/2013/inlineXBRL";
const IX_2008: &str = "http://www.xbrl.org/2008/inlineXBRL";

/// Scales beyond this are typos, and would build absurdly long numbers.
const MAX_SCALE: i32 = 64;

/// Reads an inline XBRL document from a file.
pub fn read_inline(path: &Path) -> Result<(Document, Vec<Issue>)> {
    let bytes = std::fs::read(path).map_err(|err| Error::io(path, err))?;
    parse_inline(&path.display().to_string(), &bytes)
}

/// What an open element means when its end tag arrives.
#[derive(Clone, Copy)]
enum Open {
    Plain,
    Collector,
    Exclude,
}

/// Parses an inline XBRL document. XML that is not well formed, a root other than `html` or a
/// document without `ix:header` is an error; anything odd inside comes back as an [`Issue`].
pub fn parse_inline(source_name: &str, html: &[u8]) -> Result<(Document, Vec<Issue>)> {
    let mut cursor = Cursor::new(source_name, html)?;
    let mut doc = Document::new(source_name, SourceKind::Inline);
    let mut facts = InlineFacts::default();
    let mut open: Vec<Open> = Vec::with_capacity(64);
    let mut seen_root = false;
    let mut seen_header = false;
    loop {
        match cursor.next()? {
            Event::Start(start) if !seen_root => {
                seen_root = true;
                check_root(&cursor, &start)?;
                doc.namespaces.extend(cursor.namespace_declarations(&start));
                open.push(Open::Plain);
            }
            Event::Start(start) => {
                let opened =
                    start_element(&mut cursor, &mut doc, &mut facts, &start, true, &mut seen_header)?;
                open.extend(opened);
            }
            Event::Empty(start) if !seen_root => {
                check_root(&cursor, &start)?;
                break;
            }
            Event::Empty(start) => {
                start_element(&mut cursor, &mut doc, &mut facts, &start, false, &mut seen_header)?;
            }
            Event::End(_) => match open.pop() {
                Some(Open::Collector) => facts.close(),
                Some(Open::Exclude) => facts.leave_exclude(),
                Some(Open::Plain) | None => {}
            },
            Event::Text(text) if facts.is_collecting() => facts.push_text(&text.decode().unwrap_or_default()),
            Event::CData(text) if facts.is_collecting() => {
                facts.push_text(&text.decode().unwrap_or_default())
            }
            Event::GeneralRef(reference) if facts.is_collecting() => {
                let text = cursor.reference_text(&reference);
                facts.push_text(&text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_header {
        let message = "no ix:header element (plain HTML?)".to_string();
        return Err(Error::WrongDocument {
            source_name: source_name.to_string(),
            expected: "inline XBRL",
            message,
        });
    }
    let mut issues = std::mem::take(&mut cursor.issues);
    facts.finish(&mut doc, &mut issues);
    check_references(&doc, &mut issues);
    Ok((doc, issues))
}

fn check_root(cursor: &Cursor<'_>, start: &BytesStart<'_>) -> Result<()> {
    let (_, local) = cursor.element_name(start.name());
    if local == "html" {
        return Ok(());
    }
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let message = format!("root element is <{name}>, not <html>");
    Err(Error::WrongDocument {
        source_name: cursor.source_name.to_string(),
        expected: "inline XBRL",
        message,
    })
}

/// Handles a start (`has_content`) or empty tag below the root. Returns what to do at its end
/// tag, or `None` when the element was read to its end here (contexts, units, references).
fn start_element<'i>(
    cursor: &mut Cursor<'i>,
    doc: &mut Document,
    facts: &mut InlineFacts,
    start: &BytesStart<'i>,
    has_content: bool,
    seen_header: &mut bool,
) -> Result<Option<Open>> {
    let (namespace, local) = cursor.element_name(start.name());
    let opened = if namespace == IX_2013 || namespace == IX_2008 {
        start_ix_element(cursor, facts, start, local, has_content, seen_header)?
    } else if namespace == XBRLI && has_content && matches!(local, "context" | "unit") {
        if local == "context" {
            doc.contexts.extend(read_context(cursor, start)?.map(|context| (context.id.clone(), context)));
        } else {
            doc.units.extend(read_unit(cursor, start)?.map(|unit| (unit.id.clone(), unit)));
        }
        return Ok(None);
    } else if namespace == LINK && local == "schemaRef" {
        let attrs = cursor.attributes(start)?;
        doc.schema_refs.extend(find_attr(&attrs, XLINK, "href").map(str::to_string));
        if has_content {
            cursor.skip_element()?;
        }
        return Ok(None);
    } else {
        Open::Plain
    };
    Ok(has_content.then_some(opened))
}

fn start_ix_element<'i>(
    cursor: &mut Cursor<'i>,
    facts: &mut InlineFacts,
    start: &BytesStart<'i>,
    local: &str,
    has_content: bool,
    seen_header: &mut bool,
) -> Result<Open> {
    match local {
        "nonFraction" | "nonNumeric" => {
            let attrs = cursor.attributes(start)?;
            if let Some(fact) = pending_fact(cursor, &attrs, local == "nonFraction") {
                facts.open_fact(fact, has_content);
                return Ok(Open::Collector);
            }
        }
        "continuation" => {
            let attrs = cursor.attributes(start)?;
            let Some(id) = find_attr(&attrs, "", "id") else {
                cursor.issue("ix:continuation without an id is ignored".to_string());
                return Ok(Open::Plain);
            };
            let continued_at = find_attr(&attrs, "", "continuedAt").map(str::to_string);
            facts.open_continuation(id.to_string(), continued_at, has_content);
            return Ok(Open::Collector);
        }
        "footnote" => {
            let attrs = cursor.attributes(start)?;
            let id = find_attr(&attrs, "", "id").unwrap_or("").to_string();
            let lang = find_attr(&attrs, XML, "lang").map(str::to_string);
            facts.open_footnote(id, lang, has_content);
            return Ok(Open::Collector);
        }
        "relationship" => {
            let attrs = cursor.attributes(start)?;
            let from_refs = find_attr(&attrs, "", "fromRefs").unwrap_or("");
            facts.add_relationship(from_refs, find_attr(&attrs, "", "toRefs").unwrap_or(""));
        }
        "exclude" if has_content => {
            facts.enter_exclude();
            return Ok(Open::Exclude);
        }
        "header" => *seen_header = true,
        "fraction" | "tuple" => cursor.issue(format!("ix:{local} is not supported; its facts are skipped")),
        _ => {}
    }
    Ok(Open::Plain)
}

/// Reads the attributes of `ix:nonFraction` / `ix:nonNumeric`; a tag without `name` becomes an
/// issue and `None`.
fn pending_fact(cursor: &mut Cursor<'_>, attrs: &[Attr], numeric: bool) -> Option<PendingFact> {
    let line = cursor.line();
    let Some(name) = find_attr(attrs, "", "name") else {
        cursor.issue("inline fact without a name attribute is ignored".to_string());
        return None;
    };
    let concept = cursor.resolve_qname(name);
    let format = find_attr(attrs, "", "format").map(|f| f.trim().to_string());
    let kind = if numeric {
        let scale = match find_attr(attrs, "", "scale").map(|s| s.trim().parse::<i32>()) {
            None => 0,
            Some(Ok(scale)) if scale.abs() <= MAX_SCALE => scale,
            Some(_) => {
                let written = find_attr(attrs, "", "scale").unwrap_or("");
                cursor.issue(format!("fact {concept} has an unusable scale {written:?}; 0 used"));
                0
            }
        };
        let negate = find_attr(attrs, "", "sign").is_some_and(|sign| sign.trim() == "-");
        FactKind::NonFraction { format, scale, negate }
    } else {
        let continued_at = find_attr(attrs, "", "continuedAt").map(str::to_string);
        FactKind::NonNumeric { format, continued_at }
    };
    Some(PendingFact {
        concept,
        context_ref: find_attr(attrs, "", "contextRef").unwrap_or("").to_string(),
        unit_ref: find_attr(attrs, "", "unitRef").map(str::to_string),
        decimals: find_attr(attrs, "", "decimals").map(str::to_string),
        id: find_attr(attrs, "", "id").map(str::to_string),
        nil: find_attr(attrs, XSI, "nil").is_some_and(|v| matches!(v.trim(), "true" | "1")),
        line,
        kind,
        text: String::new(),
    })
}
