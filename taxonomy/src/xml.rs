//! Readers for the two XML parts of a taxonomy: label linkbases and element schemas.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use roxmltree::{Document, Node};

use crate::concept::{Balance, Concept, PeriodType};
use crate::error::{Error, Result};

const XLINK: &str = "http://www.w3.org/1999/xlink";
const XML: &str = "http://www.w3.org/XML/1998/namespace";
const XBRLI: &str = "http://www.xbrl.org/2003/instance";
const XSD: &str = "http://www.w3.org/2001/XMLSchema";
const ROLE_LABEL: &str = "http://www.xbrl.org/2003/role/label";
const ROLE_DOCUMENTATION: &str = "http://www.xbrl.org/2003/role/documentation";
const ARCROLE_CONCEPT_LABEL: &str = "http://www.xbrl.org/2003/arcrole/concept-label";

/// Standard labels and documentation of every concept a label linkbase points at. Locators whose
/// href fragment is not `prefix_Name` (the element id convention of every SEC taxonomy) are
/// skipped; of several English labels of one role the first wins.
pub(crate) fn read_label_linkbase(path: &Path, text: &str) -> Result<Vec<Concept>> {
    let document = parse(path, text)?;
    let mut concepts: BTreeMap<(String, String), Concept> = BTreeMap::new();
    let extended_links =
        document.descendants().filter(|node| node.attribute((XLINK, "type")) == Some("extended"));
    for link in extended_links {
        let mut locators: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        let mut resources: HashMap<&str, Vec<Node>> = HashMap::new();
        let mut arcs = Vec::new();
        for child in link.children().filter(Node::is_element) {
            let Some(label) = child.attribute((XLINK, "label")) else {
                if child.attribute((XLINK, "type")) == Some("arc") {
                    arcs.push(child);
                }
                continue;
            };
            match child.attribute((XLINK, "type")) {
                Some("locator") => {
                    if let Some(name) = child.attribute((XLINK, "href")).and_then(concept_of_href) {
                        locators.entry(label).or_default().push(name);
                    }
                }
                Some("resource") => resources.entry(label).or_default().push(child),
                _ => {}
            }
        }
        for arc in arcs {
            if arc.attribute((XLINK, "arcrole")) != Some(ARCROLE_CONCEPT_LABEL) {
                continue;
            }
            let (Some(from), Some(to)) = (arc.attribute((XLINK, "from")), arc.attribute((XLINK, "to")))
            else {
                continue;
            };
            let targets = resources.get(to).map(Vec::as_slice).unwrap_or_default();
            for (prefix, name) in locators.get(from).map(Vec::as_slice).unwrap_or_default() {
                let concept = concepts
                    .entry((prefix.clone(), name.clone()))
                    .or_insert_with(|| Concept::new(prefix.clone(), name.clone()));
                for resource in targets.iter().filter(|resource| is_english(resource)) {
                    let slot = match resource.attribute((XLINK, "role")) {
                        Some(ROLE_LABEL) => &mut concept.standard_label,
                        Some(ROLE_DOCUMENTATION) => &mut concept.documentation,
                        _ => continue,
                    };
                    if slot.is_none() {
                        *slot = text_of(resource);
                    }
                }
            }
        }
    }
    Ok(concepts.into_values().collect())
}

/// Period type, balance, type and abstract of every top-level `xs:element` of a schema. The
/// prefix comes from the element id (`us-gaap_Revenues`), else from the prefix the schema declares
/// for its target namespace; elements with neither are skipped.
pub(crate) fn read_schema(path: &Path, text: &str) -> Result<Vec<Concept>> {
    let document = parse(path, text)?;
    let root = document.root_element();
    let target_prefix = root
        .attribute("targetNamespace")
        .and_then(|namespace| root.lookup_prefix(namespace))
        .map(str::to_string);
    let elements = root.children().filter(|node| node.has_tag_name((XSD, "element")));
    let mut concepts = Vec::new();
    for element in elements {
        let Some(name) = element.attribute("name") else { continue };
        let id_prefix = element
            .attribute("id")
            .and_then(|id| id.strip_suffix(name))
            .and_then(|head| head.strip_suffix('_'))
            .filter(|prefix| !prefix.is_empty())
            .map(str::to_string);
        let Some(prefix) = id_prefix.or_else(|| target_prefix.clone()) else { continue };
        let mut concept = Concept::new(prefix, name);
        concept.period_type = element.attribute((XBRLI, "periodType")).and_then(PeriodType::parse);
        concept.balance = element.attribute((XBRLI, "balance")).and_then(Balance::parse);
        concept.data_type = element.attribute("type").map(str::to_string);
        concept.is_abstract = element.attribute("abstract").map(|value| value.trim() == "true");
        concepts.push(concept);
    }
    Ok(concepts)
}

fn parse<'a>(path: &Path, text: &'a str) -> Result<Document<'a>> {
    Document::parse(text).map_err(|err| Error::Xml { path: path.to_path_buf(), message: err.to_string() })
}

/// `https://xbrl.fasb.org/us-gaap/2022/elts/us-gaap-2022.xsd#us-gaap_Revenues` -> (`us-gaap`, `Revenues`).
fn concept_of_href(href: &str) -> Option<(String, String)> {
    let (_, fragment) = href.rsplit_once('#')?;
    let (prefix, name) = fragment.split_once('_')?;
    (!prefix.is_empty() && !name.is_empty()).then(|| (prefix.to_string(), name.to_string()))
}

fn is_english(node: &Node) -> bool {
    node.attribute((XML, "lang")).is_none_or(|lang| lang.to_ascii_lowercase().starts_with("en"))
}

fn text_of(node: &Node) -> Option<String> {
    let text: String = node.descendants().filter(Node::is_text).filter_map(|n| n.text()).collect();
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!collapsed.is_empty()).then_some(collapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINKBASE: &str = r#"<link:linkbase xmlns:link="http://www.xbrl.org/2003/linkbase" xmlns:xlink="http://www.w3.org/1999/xlink">
  <link:labelLink xlink:type="extended" xlink:role="http://www.xbrl.org/2003/role/link">
    <link:loc xlink:type="locator" xlink:label="loc_rev" xlink:href="https://xbrl.fasb.org/us-gaap/2022/elts/us-gaap-2022.xsd#us-gaap_Revenues"/>
    <link:label xlink:type="resource" xlink:label="lab_rev" xlink:role="http://www.xbrl.org/2003/role/terseLabel" xml:lang="en-US">Net sales</link:label>
    <link:label xlink:type="resource" xlink:label="lab_rev" xlink:role="http://www.xbrl.org/2003/role/label" xml:lang="de">Umsatz</link:label>
    <link:label xlink:type="resource" xlink:label="lab_rev" xlink:role="http://www.xbrl.org/2003/role/label" xml:lang="en-US">Revenues</link:label>
    <link:label xlink:type="resource" xlink:label="lab_rev" xlink:role="http://www.xbrl.org/2003/role/documentation" xml:lang="en-US">Amount of
      revenue recognized.</link:label>
    <link:labelArc xlink:type="arc" xlink:arcrole="http://www.xbrl.org/2003/arcrole/concept-label" xlink:from="loc_rev" xlink:to="lab_rev"/>
    <link:loc xlink:type="locator" xlink:label="loc_bad" xlink:href="elsewhere.xsd#NoPrefix"/>
    <link:labelArc xlink:type="arc" xlink:arcrole="http://www.xbrl.org/2003/arcrole/concept-label" xlink:from="loc_bad" xlink:to="lab_rev"/>
  </link:labelLink>
</link:linkbase>"#;

    #[test]
    fn reads_standard_label_and_documentation() {
        let concepts = read_label_linkbase(Path::new("lab.xml"), LINKBASE).unwrap();
        assert_eq!(concepts.len(), 1);
        let revenues = &concepts[0];
        assert_eq!((revenues.prefix.as_str(), revenues.name.as_str()), ("us-gaap", "Revenues"));
        assert_eq!(revenues.standard_label.as_deref(), Some("Revenues"));
        assert_eq!(revenues.documentation.as_deref(), Some("Amount of revenue recognized."));
    }

    #[test]
    fn reads_schema_attributes() {
        let schema = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xbrli="http://www.xbrl.org/2003/instance"
            xmlns:acme="http://acme.example/2022" targetNamespace="http://acme.example/2022">
          <xs:element id="acme_Widgets" name="Widgets" abstract="false" xbrli:periodType="instant" xbrli:balance="debit" type="xbrli:monetaryItemType"/>
          <xs:element name="NoId" abstract="true" xbrli:periodType="duration" type="xbrli:stringItemType"/>
        </xs:schema>"#;
        let concepts = read_schema(Path::new("acme.xsd"), schema).unwrap();
        assert_eq!(concepts.len(), 2);
        assert_eq!(concepts[0].prefixed(), "acme:Widgets");
        assert_eq!(concepts[0].period_type, Some(PeriodType::Instant));
        assert_eq!(concepts[0].balance, Some(Balance::Debit));
        assert_eq!(concepts[0].data_type.as_deref(), Some("xbrli:monetaryItemType"));
        assert_eq!(concepts[0].is_abstract, Some(false));
        assert_eq!(concepts[1].prefixed(), "acme:NoId");
        assert_eq!(concepts[1].is_abstract, Some(true));
        assert_eq!(concepts[1].balance, None);
    }

    #[test]
    fn malformed_xml_names_the_file() {
        let err = read_label_linkbase(Path::new("broken_lab.xml"), "<link:linkbase>").unwrap_err();
        assert!(err.to_string().contains("broken_lab.xml"), "{err}");
    }

    #[test]
    fn href_fragments() {
        assert_eq!(concept_of_href("a.xsd#us-gaap_Assets"), Some(("us-gaap".into(), "Assets".into())));
        assert_eq!(
            concept_of_href("a.xsd#aapl_A1.000NotesDue2022Member").unwrap().1,
            "A1.000NotesDue2022Member"
        );
        assert_eq!(concept_of_href("a.xsd#Assets"), None);
        assert_eq!(concept_of_href("a.xsd"), None);
    }
}
