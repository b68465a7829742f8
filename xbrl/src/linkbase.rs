//! Reads label and calculation linkbases (`*_lab.xml`, `*_cal.xml`) into concept-keyed tables.
//!
//! Concepts are named by prefixed QName strings (`us-gaap:Revenues`) taken from the locators'
//! href fragments: both `aapl-20220924.xsd#us-gaap_Revenues` and full taxonomy URLs end in the
//! `<prefix>_<local>` element id that SEC filings use.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::model::Issue;

const LINKBASE_NS: &str = "http://www.xbrl.org/2003/linkbase";
const XLINK_NS: &str = "http://www.w3.org/1999/xlink";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Calculation arcroles: XBRL 2.1 and Calculations 1.1.
pub const SUMMATION_ITEM_ARCROLES: [&str; 2] =
    ["http://www.xbrl.org/2003/arcrole/summation-item", "https://xbrl.org/2023/arcrole/summation-item"];

/// Standard label role URIs.
pub mod label_role {
    pub const STANDARD: &str = "http://www.xbrl.org/2003/role/label";
    pub const TERSE: &str = "http://www.xbrl.org/2003/role/terseLabel";
    pub const VERBOSE: &str = "http://www.xbrl.org/2003/role/verboseLabel";
    pub const TOTAL: &str = "http://www.xbrl.org/2003/role/totalLabel";
    pub const PERIOD_START: &str = "http://www.xbrl.org/2003/role/periodStartLabel";
    pub const PERIOD_END: &str = "http://www.xbrl.org/2003/role/periodEndLabel";
    pub const DOCUMENTATION: &str = "http://www.xbrl.org/2003/role/documentation";
    pub const NEGATED: &str = "http://www.xbrl.org/2009/role/negatedLabel";
    pub const NEGATED_TERSE: &str = "http://www.xbrl.org/2009/role/negatedTerseLabel";
    pub const NEGATED_TOTAL: &str = "http://www.xbrl.org/2009/role/negatedTotalLabel";
}

/// Labels by concept, then role URI, then `xml:lang`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelLinkbase {
    pub labels: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
}

impl LabelLinkbase {
    /// The label of `concept` in `role`, in `lang` or failing that a language it starts with
    /// (`en` finds `en-US`), or failing that any language.
    pub fn label(&self, concept: &str, role: &str, lang: &str) -> Option<&str> {
        let by_lang = self.labels.get(concept)?.get(role)?;
        by_lang
            .get(lang)
            .or_else(|| by_lang.iter().find(|(l, _)| l.starts_with(lang)).map(|(_, text)| text))
            .or_else(|| by_lang.values().next())
            .map(String::as_str)
    }

    /// The standard (`label` role) English label.
    pub fn standard_label(&self, concept: &str) -> Option<&str> {
        self.label(concept, label_role::STANDARD, "en")
    }

    /// Number of concepts with at least one label.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// One summation-item relationship: `parent` = sum of `weight * child` over its children.
#[derive(Debug, Clone, PartialEq)]
pub struct CalculationEdge {
    /// The extended link role (`http://www.apple.com/role/CONSOLIDATEDSTATEMENTSOFOPERATIONS`).
    pub role: String,
    pub parent: String,
    pub child: String,
    pub weight: f64,
    pub order: f64,
}

/// The edges of a calculation linkbase, one per (role, parent, child, weight, order), in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CalculationLinkbase {
    pub edges: Vec<CalculationEdge>,
}

impl CalculationLinkbase {
    /// Role URIs in first-seen order.
    pub fn roles(&self) -> Vec<&str> {
        let mut roles: Vec<&str> = Vec::new();
        for edge in &self.edges {
            if !roles.contains(&edge.role.as_str()) {
                roles.push(&edge.role);
            }
        }
        roles
    }

    /// The edges from `parent` in `role`, by `order`.
    pub fn children(&self, role: &str, parent: &str) -> Vec<&CalculationEdge> {
        let mut children: Vec<&CalculationEdge> =
            self.edges.iter().filter(|e| e.role == role && e.parent == parent).collect();
        children.sort_by(|a, b| a.order.total_cmp(&b.order));
        children
    }
}

/// Reads a label linkbase file.
pub fn read_label_linkbase(path: &Path) -> Result<(LabelLinkbase, Vec<Issue>)> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::io(path, source))?;
    parse_label_linkbase(&path.display().to_string(), &text)
}

/// Parses label linkbase XML; `source_name` names it in errors.
pub fn parse_label_linkbase(source_name: &str, xml: &str) -> Result<(LabelLinkbase, Vec<Issue>)> {
    let doc = parse_linkbase_xml(source_name, xml)?;
    let mut issues = Vec::new();
    let mut linkbase = LabelLinkbase::default();
    for link in doc.root_element().children().filter(|n| is_link_element(n, "labelLink")) {
        let locators = locators(&doc, link, &mut issues);
        let mut resources: HashMap<&str, Vec<(String, String, String)>> = HashMap::new();
        for label in link.children().filter(|n| is_link_element(n, "label")) {
            let Some(xlink_label) = label.attribute((XLINK_NS, "label")) else {
                issues.push(issue_at(&doc, label, "label resource without xlink:label".to_string()));
                continue;
            };
            let role = label.attribute((XLINK_NS, "role")).unwrap_or(label_role::STANDARD);
            let lang = label.attribute((XML_NS, "lang")).unwrap_or("");
            let text: String = label.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect();
            resources.entry(xlink_label).or_default().push((role.to_string(), lang.to_string(), text));
        }
        for arc in link.children().filter(|n| is_link_element(n, "labelArc")) {
            if arc.attribute("use") == Some("prohibited") {
                continue;
            }
            let (Some(from), Some(to)) = (arc.attribute((XLINK_NS, "from")), arc.attribute((XLINK_NS, "to")))
            else {
                issues.push(issue_at(&doc, arc, "label arc without xlink:from or xlink:to".to_string()));
                continue;
            };
            let (Some(concepts), Some(labels)) = (locators.get(from), resources.get(to)) else {
                issues.push(issue_at(&doc, arc, format!("label arc {from} -> {to} has no locator or label")));
                continue;
            };
            for concept in concepts {
                for (role, lang, text) in labels {
                    let by_role = linkbase.labels.entry(concept.clone()).or_default();
                    by_role.entry(role.clone()).or_default().insert(lang.clone(), text.clone());
                }
            }
        }
    }
    Ok((linkbase, issues))
}

/// Reads a calculation linkbase file.
pub fn read_calculation_linkbase(path: &Path) -> Result<(CalculationLinkbase, Vec<Issue>)> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::io(path, source))?;
    parse_calculation_linkbase(&path.display().to_string(), &text)
}

/// Parses calculation linkbase XML. Equivalent arcs (same role, parent, child, weight and order)
/// count once; among them the highest `priority` wins, and a prohibiting arc wins a tie, removing
/// the edge.
pub fn parse_calculation_linkbase(source_name: &str, xml: &str) -> Result<(CalculationLinkbase, Vec<Issue>)> {
    let doc = parse_linkbase_xml(source_name, xml)?;
    let mut issues = Vec::new();
    // Equivalent arcs share one entry: (edge, highest priority seen, prohibited at that priority).
    let mut arcs: Vec<(CalculationEdge, i64, bool)> = Vec::new();
    let mut by_key: HashMap<(String, String, String, u64, u64), usize> = HashMap::new();
    for link in doc.root_element().children().filter(|n| is_link_element(n, "calculationLink")) {
        let role = link.attribute((XLINK_NS, "role")).unwrap_or("http://www.xbrl.org/2003/role/link");
        let locators = locators(&doc, link, &mut issues);
        for arc in link.children().filter(|n| is_link_element(n, "calculationArc")) {
            let arcrole = arc.attribute((XLINK_NS, "arcrole")).unwrap_or("");
            if !SUMMATION_ITEM_ARCROLES.contains(&arcrole) {
                issues.push(issue_at(&doc, arc, format!("calculation arc with arcrole {arcrole:?} ignored")));
                continue;
            }
            let (Some(from), Some(to)) = (arc.attribute((XLINK_NS, "from")), arc.attribute((XLINK_NS, "to")))
            else {
                issues.push(issue_at(
                    &doc,
                    arc,
                    "calculation arc without xlink:from or xlink:to".to_string(),
                ));
                continue;
            };
            let Some(weight) = arc.attribute("weight").and_then(|w| w.trim().parse::<f64>().ok()) else {
                let weight = arc.attribute("weight").unwrap_or("");
                issues.push(issue_at(
                    &doc,
                    arc,
                    format!("calculation arc {from} -> {to} has weight {weight:?}"),
                ));
                continue;
            };
            let order = arc.attribute("order").and_then(|o| o.trim().parse::<f64>().ok()).unwrap_or(1.0);
            let priority = arc.attribute("priority").and_then(|p| p.trim().parse::<i64>().ok()).unwrap_or(0);
            let prohibited = arc.attribute("use") == Some("prohibited");
            let (Some(parents), Some(children)) = (locators.get(from), locators.get(to)) else {
                issues.push(issue_at(&doc, arc, format!("calculation arc {from} -> {to} has no locator")));
                continue;
            };
            for parent in parents {
                for child in children {
                    let key =
                        (role.to_string(), parent.clone(), child.clone(), weight.to_bits(), order.to_bits());
                    let edge = CalculationEdge {
                        role: role.to_string(),
                        parent: parent.clone(),
                        child: child.clone(),
                        weight,
                        order,
                    };
                    match by_key.get(&key) {
                        None => {
                            by_key.insert(key, arcs.len());
                            arcs.push((edge, priority, prohibited));
                        }
                        Some(&idx) => {
                            let (_, best_priority, best_prohibited) = &mut arcs[idx];
                            if priority > *best_priority {
                                *best_priority = priority;
                                *best_prohibited = prohibited;
                            } else if priority == *best_priority {
                                *best_prohibited |= prohibited;
                            }
                        }
                    }
                }
            }
        }
    }
    let edges = arcs.into_iter().filter(|(_, _, prohibited)| !prohibited).map(|(edge, _, _)| edge).collect();
    Ok((CalculationLinkbase { edges }, issues))
}

/// The concept a locator href points at: `...xsd#us-gaap_Revenues` -> `us-gaap:Revenues`.
/// An element id without `_` is kept as an unprefixed name.
pub fn concept_from_href(href: &str) -> Option<String> {
    let (_, fragment) = href.rsplit_once('#')?;
    let fragment = fragment.trim();
    if fragment.is_empty() {
        return None;
    }
    Some(match fragment.split_once('_') {
        Some((prefix, local)) if !prefix.is_empty() && !local.is_empty() => format!("{prefix}:{local}"),
        _ => fragment.to_string(),
    })
}

/// xlink:label -> concepts of the link's locators (labels need not be unique).
fn locators<'a>(
    doc: &roxmltree::Document<'a>,
    link: roxmltree::Node<'a, 'a>,
    issues: &mut Vec<Issue>,
) -> HashMap<&'a str, Vec<String>> {
    let mut map: HashMap<&'a str, Vec<String>> = HashMap::new();
    for loc in link.children().filter(|n| is_link_element(n, "loc")) {
        let label = loc.attribute((XLINK_NS, "label"));
        let href = loc.attribute((XLINK_NS, "href")).unwrap_or("");
        match (label, concept_from_href(href)) {
            (Some(label), Some(concept)) => map.entry(label).or_default().push(concept),
            _ => issues.push(issue_at(doc, loc, format!("locator with href {href:?} names no concept"))),
        }
    }
    map
}

fn is_link_element(node: &roxmltree::Node<'_, '_>, local: &str) -> bool {
    node.is_element() && node.tag_name().name() == local && node.tag_name().namespace() == Some(LINKBASE_NS)
}

fn parse_linkbase_xml<'a>(source_name: &str, xml: &'a str) -> Result<roxmltree::Document<'a>> {
    let doc = roxmltree::Document::parse(xml).map_err(|err| {
        let pos = err.pos();
        Error::Xml {
            source_name: source_name.to_string(),
            line: pos.row,
            position: byte_offset(xml, pos.row, pos.col) as u64,
            message: err.to_string(),
        }
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "linkbase" || root.tag_name().namespace() != Some(LINKBASE_NS) {
        return Err(Error::WrongDocument {
            source_name: source_name.to_string(),
            expected: "an XBRL linkbase",
            message: format!("root element is {:?}", root.tag_name().name()),
        });
    }
    Ok(doc)
}

/// Byte offset of a 1-based (row, column in characters) position.
fn byte_offset(text: &str, row: u32, col: u32) -> usize {
    let line_start: usize =
        text.split_inclusive('\n').take(row.saturating_sub(1) as usize).map(str::len).sum();
    let column_bytes: usize =
        text[line_start..].chars().take(col.saturating_sub(1) as usize).map(char::len_utf8).sum();
    line_start + column_bytes
}

fn issue_at(doc: &roxmltree::Document<'_>, node: roxmltree::Node<'_, '_>, message: String) -> Issue {
    Issue { line: doc.text_pos_at(node.range().start).row, message }
}
