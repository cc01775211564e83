//! A small positioned element tree built from quick-xml events.
//!
//! Why not serde straight into `*Element` structs: errors must name file, line and column, and
//! unknown elements and attributes must be refused rather than skipped. quick-xml's
//! deserializer keeps neither positions nor leftovers, so we read events into this tree (byte
//! offsets kept) and convert it by hand, marking what each element is allowed to hold.

use crate::finding::Location;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::borrow::Cow;

/// Deepest nesting accepted; real documents use at most 5 levels, hostile ones use millions.
const MAX_DEPTH: usize = 32;
/// Largest document accepted, in bytes.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// An attribute with its value unescaped and the offset of its name.
#[derive(Debug)]
pub(crate) struct Attr<'a> {
    pub name: &'a str,
    /// Borrowed from the input unless it held an entity or character reference.
    pub value: Cow<'a, str>,
    pub offset: usize,
}

/// An element with its attributes, children, text and the byte range it spans.
#[derive(Debug)]
pub(crate) struct Element<'a> {
    pub name: &'a str,
    pub attrs: Vec<Attr<'a>>,
    pub children: Vec<Element<'a>>,
    /// Non-whitespace text content, unescaped and trimmed.
    pub text: String,
    /// Offset of the first non-whitespace text, if any.
    pub text_offset: Option<usize>,
    /// Offset of the `<` that opens the element.
    pub start: usize,
    /// Offset just past the element's end.
    pub end: usize,
}

impl<'a> Element<'a> {
    /// The attribute called `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&Attr<'a>> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// The text of a document with a line index, for turning offsets into line and column.
pub(crate) struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(name: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { name, text, line_starts }
    }

    /// 1-based line and character column of a byte offset.
    pub fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        Location { line: line as u32, column: column as u32 }
    }
}

/// A syntax-level failure: where, and what.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

fn syntax(offset: usize, message: impl Into<String>) -> SyntaxError {
    SyntaxError { offset, message: message.into() }
}

/// Parses `text` into its single root element.
pub(crate) fn parse(text: &str) -> Result<Element<'_>, SyntaxError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(syntax(0, format!("document is {} bytes; the limit is {MAX_DOCUMENT_BYTES}", text.len())));
    }
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            let at = (reader.error_position() as usize).min(text.len());
            syntax(at, format!("XML syntax error: {e}"))
        })?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(e) | Event::Empty(e) if root.is_some() && stack.is_empty() => {
                let _ = e;
                return Err(syntax(before, "more than one root element"));
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax(before, format!("elements nested deeper than {MAX_DEPTH} levels")));
                }
                stack.push(element(text, &e, before, after)?);
            }
            Event::Empty(e) => {
                let el = element(text, &e, before, after)?;
                attach(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let mut el = stack.pop().ok_or_else(|| syntax(before, "unexpected closing tag"))?;
                el.end = after;
                attach(&mut stack, &mut root, el);
            }
            // Indentation between elements is most of the events; skip it before unescaping.
            Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| syntax(before, format!("XML syntax error: {e}")))?;
                add_text(&mut stack, &s, before + leading_ws(&s))?;
            }
            Event::CData(c) => {
                let s = String::from_utf8_lossy(&c).into_owned();
                add_text(&mut stack, &s, before)?;
            }
            Event::DocType(_) => {
                // A DTD can define entities; no interface document needs one, so refuse it.
                return Err(syntax(before, "DOCTYPE declarations are not allowed"));
            }
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(syntax(open.start, format!("element <{}> is not closed", open.name)));
    }
    root.ok_or_else(|| syntax(0, "document is empty: expected an <interface> or <interfaces> element"))
}

fn leading_ws(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

fn add_text(stack: &mut [Element<'_>], s: &str, offset: usize) -> Result<(), SyntaxError> {
    if s.trim().is_empty() {
        return Ok(());
    }
    let Some(el) = stack.last_mut() else {
        return Err(syntax(offset, "text outside the root element"));
    };
    if el.text_offset.is_none() {
        el.text_offset = Some(offset);
    }
    el.text.push_str(s.trim());
    Ok(())
}

fn attach<'a>(stack: &mut [Element<'a>], root: &mut Option<Element<'a>>, el: Element<'a>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn element<'a>(text: &'a str, e: &BytesStart<'_>, start: usize, end: usize) -> Result<Element<'a>, SyntaxError> {
    let tag: &'a str = text.get(start..end).unwrap_or("");
    // Names and values are sliced from the input rather than copied: most documents have no
    // escapes, and a copy per attribute dominated parsing time.
    let name =
        tag.get(1..).unwrap_or("").split(|c: char| c.is_whitespace() || c == '/' || c == '>').next().unwrap_or("");
    let mut attrs = Vec::new();
    // quick-xml's iterator checks the syntax (quotes, duplicates); the slices come from `tag`.
    // Duplicate names are checked below on the slices; quick-xml's own check allocates per tag.
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|err| syntax(start, format!("XML syntax error in <{name}>: {err}")))?;
        let key = std::str::from_utf8(a.key.as_ref()).map_err(|_| syntax(start, "attribute name is not UTF-8"))?;
        // Namespace declarations are not attributes of the interface; prefixed names that use
        // them are refused by the converters as unknown.
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let at = find_attr(tag, key).ok_or_else(|| syntax(start, format!("cannot locate attribute '{key}'")))?;
        let (key, raw) = (&tag[at..at + key.len()], raw_value(&tag[at + key.len()..]));
        let value = quick_xml::escape::unescape(raw)
            .map_err(|err| syntax(start + at, format!("XML syntax error in attribute '{key}': {err}")))?;
        if attrs.iter().any(|a: &Attr<'_>| a.name == key) {
            return Err(syntax(start + at, format!("XML syntax error: attribute '{key}' repeated in <{name}>")));
        }
        attrs.push(Attr { name: key, value, offset: start + at });
    }
    Ok(Element { name, attrs, children: Vec::new(), text: String::new(), text_offset: None, start, end })
}

/// The raw value after an attribute name: skips `\s*=\s*` and the opening quote, up to the
/// matching quote (quick-xml has already checked that the quotes match).
fn raw_value(rest: &str) -> &str {
    let rest = rest.trim_start().strip_prefix('=').unwrap_or(rest).trim_start();
    let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else { return "" };
    let body = &rest[1..];
    body.find(q).map_or(body, |i| &body[..i])
}

/// Offset of attribute `key` inside the raw start tag: the name preceded by whitespace and
/// followed by optional whitespace and `=`.
fn find_attr(tag: &str, key: &str) -> Option<usize> {
    let bytes = tag.as_bytes();
    let mut from = 0;
    while let Some(i) = tag[from..].find(key).map(|i| i + from) {
        let before_ok = i > 0 && bytes[i - 1].is_ascii_whitespace();
        let rest = tag[i + key.len()..].trim_start();
        if before_ok && rest.starts_with('=') {
            return Some(i);
        }
        from = i + key.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let text = "<a x='1'>\n  <b  y=\"2\"/>\n  <c>hi</c>\n</a>\n";
        let src = Source::new("t", text);
        let root = parse(text).unwrap();
        assert_eq!(root.name, "a");
        let b = &root.children[0];
        assert_eq!(src.location(b.start), Location { line: 2, column: 3 });
        assert_eq!(src.location(b.attrs[0].offset), Location { line: 2, column: 7 });
        assert_eq!(root.children[1].text, "hi");
        assert_eq!(&text[root.start..root.end], text.trim_end());
    }

    #[test]
    fn refusals() {
        for bad in ["", "<a>", "<a></b>", "<a/><b/>", "x<a/>", "<!DOCTYPE a><a/>", "<a x='1' x='2'/>", "<a>&bogus;</a>"]
        {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(&deep).is_err());
    }
}
