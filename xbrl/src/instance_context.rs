//! Reads `xbrli:context` and `xbrli:unit` elements, for instance documents and for the
//! `ix:resources` of inline XBRL alike.

use quick_xml::events::{BytesStart, Event};

use super::xml::{find_attr, Cursor, XBRLDI};
use crate::date::Date;
use crate::error::Result;
use crate::model::{Context, Dimension, DimensionContainer, DimensionValue, Entity, Period, Unit};

/// Reads a context whose start tag was the last event. A context without a usable id, entity or
/// period becomes an issue and `None`; the facts that refer to it are then reported too.
pub(crate) fn read_context<'i>(cursor: &mut Cursor<'i>, start: &BytesStart<'i>) -> Result<Option<Context>> {
    let line = cursor.line();
    let attrs = cursor.attributes(start)?;
    let id = find_attr(&attrs, "", "id").unwrap_or("").to_string();
    let mut entity: Option<Entity> = None;
    let (mut instant, mut start_date, mut end_date, mut forever) = (None, None, None, false);
    let mut dimensions = Vec::new();
    let mut container = None;
    let mut depth = 0usize;
    loop {
        match cursor.next()? {
            Event::Start(element) => {
                let (namespace, local) = cursor.element_name(element.name());
                let is_xbrldi = namespace == XBRLDI;
                match local {
                    "identifier" => {
                        let attrs = cursor.attributes(&element)?;
                        let scheme = find_attr(&attrs, "", "scheme").unwrap_or("").to_string();
                        let identifier = cursor.read_text()?.trim().to_string();
                        entity = Some(Entity { scheme, identifier });
                    }
                    "instant" | "startDate" | "endDate" => {
                        let text = cursor.read_text()?;
                        let date = parse_date(cursor, &id, local, &text);
                        match local {
                            "instant" => instant = date,
                            "startDate" => start_date = date,
                            _ => end_date = date,
                        }
                    }
                    "segment" => {
                        container = Some(DimensionContainer::Segment);
                        depth += 1;
                    }
                    "scenario" => {
                        container = Some(DimensionContainer::Scenario);
                        depth += 1;
                    }
                    "explicitMember" | "typedMember" if is_xbrldi || namespace.is_empty() => {
                        let dimension = read_member(cursor, &element, local, container)?;
                        dimensions.extend(dimension);
                    }
                    _ => depth += 1,
                }
            }
            Event::Empty(element) => {
                let (_, local) = cursor.element_name(element.name());
                match local {
                    "forever" => forever = true,
                    "typedMember" | "explicitMember" => {
                        cursor.issue(format!("context {id} has an empty {local}"));
                    }
                    _ => {}
                }
            }
            Event::End(_) if depth == 0 => break,
            Event::End(element) => {
                depth -= 1;
                let (_, local) = cursor.element_name(element.name());
                if matches!(local, "segment" | "scenario") {
                    container = None;
                }
            }
            Event::Eof => return Err(cursor.unexpected_eof()),
            _ => {}
        }
    }
    let problem =
        |what: &str| format!("context {id:?} (line {line}) {what}; facts using it are kept without it");
    if id.is_empty() {
        cursor.issue(problem("has no id"));
        return Ok(None);
    }
    let Some(entity) = entity else {
        cursor.issue(problem("has no entity identifier"));
        return Ok(None);
    };
    let period = match (instant, start_date, end_date, forever) {
        (Some(date), _, _, _) => Period::Instant(date),
        (None, Some(start), Some(end), _) => Period::Duration { start, end },
        (None, _, _, true) => Period::Forever,
        _ => {
            cursor.issue(problem("has no readable period"));
            return Ok(None);
        }
    };
    dimensions.sort();
    Ok(Some(Context { id, entity, period, dimensions }))
}

fn parse_date(cursor: &mut Cursor<'_>, context_id: &str, element: &str, text: &str) -> Option<Date> {
    match text.parse::<Date>() {
        Ok(date) => Some(date),
        Err(err) => {
            cursor.issue(format!("context {context_id} has an unreadable {element}: {err}"));
            None
        }
    }
}

/// Reads one `xbrldi:explicitMember` (QName content) or `xbrldi:typedMember` (XML content).
fn read_member<'i>(
    cursor: &mut Cursor<'i>,
    element: &BytesStart<'i>,
    local: &str,
    container: Option<DimensionContainer>,
) -> Result<Option<Dimension>> {
    let attrs = cursor.attributes(element)?;
    let axis = find_attr(&attrs, "", "dimension").map(|text| cursor.resolve_qname(text).prefixed());
    let value = if local == "explicitMember" {
        let text = cursor.read_text()?;
        DimensionValue::Explicit(cursor.resolve_qname(&text).prefixed())
    } else {
        DimensionValue::Typed(cursor.read_inner_xml()?.to_string())
    };
    let (Some(axis), Some(container)) = (axis, container) else {
        cursor.issue(format!("{local} outside segment or scenario, or without a dimension, is ignored"));
        return Ok(None);
    };
    Ok(Some(Dimension { axis, value, container }))
}

/// Reads a unit whose start tag was the last event: measures, or a `divide` of two measure lists.
pub(crate) fn read_unit<'i>(cursor: &mut Cursor<'i>, start: &BytesStart<'i>) -> Result<Option<Unit>> {
    let line = cursor.line();
    let attrs = cursor.attributes(start)?;
    let id = find_attr(&attrs, "", "id").unwrap_or("").to_string();
    let (mut numerator, mut denominator) = (Vec::new(), Vec::new());
    let mut in_denominator = false;
    let mut depth = 0usize;
    loop {
        match cursor.next()? {
            Event::Start(element) => {
                let (_, local) = cursor.element_name(element.name());
                match local {
                    "measure" => {
                        let text = cursor.read_text()?;
                        let measure = cursor.resolve_qname(&text).prefixed();
                        if in_denominator {
                            denominator.push(measure);
                        } else {
                            numerator.push(measure);
                        }
                    }
                    "unitDenominator" => {
                        in_denominator = true;
                        depth += 1;
                    }
                    _ => depth += 1,
                }
            }
            Event::End(_) if depth == 0 => break,
            Event::End(element) => {
                depth -= 1;
                let (_, local) = cursor.element_name(element.name());
                if local == "unitDenominator" {
                    in_denominator = false;
                }
            }
            Event::Eof => return Err(cursor.unexpected_eof()),
            _ => {}
        }
    }
    if id.is_empty() || numerator.is_empty() {
        cursor.issue(format!("unit {id:?} (line {line}) has no id or no measure; facts using it are kept"));
        return Ok(None);
    }
    Ok(Some(Unit { id, numerator, denominator }))
}
