//! A streaming XML cursor shared by the instance and inline readers: quick-xml's `NsReader`
//! plus line numbers, entity resolution (HTML named entities too), attribute lookup and QName
//! resolution of element names and of QName-valued text.

use std::borrow::Cow;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{Namespace, QName as XmlName, ResolveResult};
use quick_xml::NsReader;

use crate::error::{Error, Result};
use crate::model::{Issue, QName};

#[path = "inline_entities.rs"]
mod entities;

pub(crate) const XBRLI: &str = "http://www.xbrl.org/2003/instance";
pub(crate) const XBRLDI: &str = "http://xbrl.org/2006/xbrldi";
pub(crate) const LINK: &str = "http://www.xbrl.org/2003/linkbase";
pub(crate) const XLINK: &str = "http://www.w3.org/1999/xlink";
pub(crate) const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
pub(crate) const XML: &str = "http://www.w3.org/XML/1998/namespace";

/// One attribute with its namespace resolved (empty for unprefixed attributes).
pub(crate) struct Attr {
    pub namespace: String,
    pub local: String,
    pub value: String,
}

/// Finds an attribute by namespace and local name.
pub(crate) fn find_attr<'a>(attrs: &'a [Attr], namespace: &str, local: &str) -> Option<&'a str> {
    attrs.iter().find(|a| a.local == local && a.namespace == namespace).map(|a| a.value.as_str())
}

pub(crate) struct Cursor<'i> {
    reader: NsReader<&'i [u8]>,
    input: &'i str,
    pub source_name: &'i str,
    /// Byte offset where the last event returned by [`Cursor::next`] starts.
    event_start: usize,
    /// Newlines in `input[..counted_to]`, so line numbers cost one pass over the file in total.
    counted_to: usize,
    newlines: u32,
    pub issues: Vec<Issue>,
}

impl<'i> Cursor<'i> {
    /// A cursor over `input`; input that is not UTF-8 is malformed XML.
    pub fn new(source_name: &'i str, input: &'i [u8]) -> Result<Self> {
        let text = match std::str::from_utf8(input) {
            Ok(text) => text,
            Err(err) => {
                let position = err.valid_up_to();
                let line = count_newlines(&input[..position]) + 1;
                return Err(Error::Xml {
                    source_name: source_name.to_string(),
                    line,
                    position: position as u64,
                    message: format!("invalid UTF-8 byte 0x{:02x}", input[position]),
                });
            }
        };
        let mut reader = NsReader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
        Ok(Self {
            reader,
            input: text,
            source_name,
            event_start: 0,
            counted_to: 0,
            newlines: 0,
            issues: Vec::new(),
        })
    }

    /// The next event; malformed XML becomes [`Error::Xml`] naming the line.
    pub fn next(&mut self) -> Result<Event<'i>> {
        self.event_start = usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX);
        match self.reader.read_event() {
            Ok(event) => Ok(event),
            Err(err) => {
                let position = usize::try_from(self.reader.error_position()).unwrap_or(0);
                Err(self.error_at(position, err.to_string()))
            }
        }
    }

    /// An [`Error::Xml`] at byte `position`.
    pub fn error_at(&mut self, position: usize, message: String) -> Error {
        let line = self.line_at(position);
        Error::Xml { source_name: self.source_name.to_string(), line, position: position as u64, message }
    }

    /// The 1-based line where the last event starts.
    pub fn line(&mut self) -> u32 {
        self.line_at(self.event_start)
    }

    fn line_at(&mut self, position: usize) -> u32 {
        let position = position.min(self.input.len());
        let bytes = self.input.as_bytes();
        if position >= self.counted_to {
            self.newlines += count_newlines(&bytes[self.counted_to..position]);
        } else {
            self.newlines -= count_newlines(&bytes[position..self.counted_to]);
        }
        self.counted_to = position;
        self.newlines + 1
    }

    /// Records an [`Issue`] at the line of the last event.
    pub fn issue(&mut self, message: String) {
        let line = self.line();
        self.issues.push(Issue { line, message });
    }

    /// The namespace URI of an element name (empty when unbound) and its local name.
    pub fn element_name<'n>(&self, name: XmlName<'n>) -> (&str, &'n str) {
        let (resolved, local) = self.reader.resolve_element(name);
        let local = std::str::from_utf8(local.into_inner()).unwrap_or("");
        (namespace_str(resolved), local)
    }

    /// All attributes of a start tag, entity references resolved. Namespace declarations are skipped.
    pub fn attributes(&mut self, start: &BytesStart<'i>) -> Result<Vec<Attr>> {
        let mut attrs = Vec::new();
        for attr in start.attributes() {
            let attr = match attr {
                Ok(attr) => attr,
                Err(err) => return Err(self.error_at(self.event_start, err.to_string())),
            };
            if attr.key.as_namespace_binding().is_some() {
                continue;
            }
            let (resolved, local) = self.reader.resolve_attribute(attr.key);
            let namespace = namespace_str(resolved).to_string();
            let local = String::from_utf8_lossy(local.into_inner()).into_owned();
            let value = match attr.unescape_value_with(resolve_entity) {
                Ok(value) => value.into_owned(),
                Err(err) => {
                    self.issue(format!("attribute {local} has an unreadable value: {err}"));
                    String::from_utf8_lossy(&attr.value).into_owned()
                }
            };
            attrs.push(Attr { namespace, local, value });
        }
        Ok(attrs)
    }

    /// Namespace declarations made on a start tag, prefix -> URI (`""` for the default namespace).
    pub fn namespace_declarations(&self, start: &BytesStart<'i>) -> Vec<(String, String)> {
        start
            .attributes()
            .flatten()
            .filter_map(|attr| {
                let key = attr.key.as_ref();
                let prefix = if key == b"xmlns" {
                    ""
                } else {
                    std::str::from_utf8(key.strip_prefix(b"xmlns:")?).ok()?
                };
                Some((prefix.to_string(), String::from_utf8_lossy(&attr.value).into_owned()))
            })
            .collect()
    }

    /// Resolves QName-valued text (`us-gaap:Revenues`, an attribute or element content) against
    /// the namespaces in scope, giving the conventional prefix for well-known namespaces.
    pub fn resolve_qname(&self, text: &str) -> QName {
        let text = text.trim();
        let (prefix, local) = text.split_once(':').unwrap_or(("", text));
        let (resolved, _) = self.reader.resolve_element(XmlName(text.as_bytes()));
        let namespace = namespace_str(resolved);
        let prefix = conventional_prefix(namespace).unwrap_or(prefix);
        QName::new(prefix, namespace, local)
    }

    /// A `general reference` event (`&amp;`, `&#160;`, `&nbsp;`) as text; unknown entities are
    /// kept literally and reported.
    pub fn reference_text(&mut self, reference: &BytesRef<'i>) -> Cow<'static, str> {
        if let Ok(Some(ch)) = reference.resolve_char_ref() {
            return Cow::Owned(ch.to_string());
        }
        let name = reference.decode().unwrap_or_default();
        match resolve_entity(&name) {
            Some(text) => Cow::Borrowed(text),
            None => {
                self.issue(format!("unknown entity &{name};"));
                Cow::Owned(format!("&{name};"))
            }
        }
    }

    /// Reads up to the end of the element whose start tag was the last event, returning its text
    /// content (descendants' text included, tags dropped).
    pub fn read_text(&mut self) -> Result<String> {
        let mut text = String::new();
        let mut depth = 0usize;
        loop {
            match self.next()? {
                Event::Start(_) => depth += 1,
                Event::End(_) if depth == 0 => return Ok(text),
                Event::End(_) => depth -= 1,
                Event::Text(chunk) => text.push_str(&chunk.decode().unwrap_or_default()),
                Event::CData(chunk) => text.push_str(&chunk.decode().unwrap_or_default()),
                Event::GeneralRef(reference) => {
                    let resolved = self.reference_text(&reference);
                    text.push_str(&resolved);
                }
                Event::Eof => return Err(self.unexpected_eof()),
                _ => {}
            }
        }
    }

    /// Reads up to the end of the element whose start tag was the last event, returning the raw
    /// XML between its tags (for typed dimension members).
    pub fn read_inner_xml(&mut self) -> Result<&'i str> {
        let inner_start = usize::try_from(self.reader.buffer_position()).unwrap_or(0);
        let mut depth = 0usize;
        loop {
            match self.next()? {
                Event::Start(_) => depth += 1,
                Event::End(_) if depth == 0 => {
                    let inner_end = self.event_start.max(inner_start);
                    return Ok(self.input.get(inner_start..inner_end).unwrap_or("").trim());
                }
                Event::End(_) => depth -= 1,
                Event::Eof => return Err(self.unexpected_eof()),
                _ => {}
            }
        }
    }

    /// Skips to the end of the element whose start tag was the last event.
    pub fn skip_element(&mut self) -> Result<()> {
        self.read_inner_xml().map(|_| ())
    }

    pub fn unexpected_eof(&mut self) -> Error {
        self.error_at(self.input.len(), "unexpected end of file inside an open element".to_string())
    }
}

fn count_newlines(bytes: &[u8]) -> u32 {
    let count = bytes.iter().filter(|&&b| b == b'\n').count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn namespace_str(resolved: ResolveResult<'_>) -> &str {
    match resolved {
        ResolveResult::Bound(Namespace(uri)) => std::str::from_utf8(uri).unwrap_or(""),
        _ => "",
    }
}

/// Resolves the five XML entities and the HTML named entities SEC filings use.
fn resolve_entity(name: &str) -> Option<&'static str> {
    resolve_predefined_entity(name).or_else(|| entities::html_entity(name))
}

/// The prefix SEC filings conventionally bind to a well-known namespace, so facts read from
/// files with other prefixes (`xmlns:gaap=".../us-gaap/2022"`) still say `us-gaap:`.
pub(crate) fn conventional_prefix(namespace: &str) -> Option<&str> {
    match namespace {
        XBRLI => return Some("xbrli"),
        "http://www.xbrl.org/2003/iso4217" => return Some("iso4217"),
        XBRLDI => return Some("xbrldi"),
        _ => {}
    }
    for (root, prefixes) in [
        ("http://fasb.org/", &["us-gaap", "srt"][..]),
        (
            "http://xbrl.sec.gov/",
            &["dei", "country", "currency", "exch", "naics", "sic", "stpr", "ecd", "cyd", "snj"][..],
        ),
    ] {
        if let Some(rest) = namespace.strip_prefix(root) {
            let name = rest.split('/').next().unwrap_or("");
            return prefixes.iter().find(|p| **p == name).copied();
        }
    }
    None
}
