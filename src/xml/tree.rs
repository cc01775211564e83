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

/// The XML namespace of nmiface's extensions to libvirt's format (bond options, VLAN
/// protocol and flags, port priority). libvirt ignores elements it does not know, so a document
/// that uses them still defines on libvirt, minus the extensions.
pub const NMIFACE_NS: &str = "urn:nmiface:interface:1";

/// Deepest nesting accepted; real documents use at most 5 levels, hostile ones use millions.
const MAX_DEPTH: usize = 32;
/// Most elements accepted in one document. Each costs about 150 bytes in the tree, so 4 MiB of
/// `<x/>` (a million of them) took 150 MB before being refused; 2^18 keeps the tree under
/// 40 MB and is far beyond any host (a real one has tens of elements per interface).
const MAX_ELEMENTS: usize = 1 << 18;
/// Largest document accepted, in bytes (4 MiB: the largest real host file is a few KiB).
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

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
    /// The name as written, prefix included.
    pub name: &'a str,
    /// The name without its prefix.
    pub local: &'a str,
    /// In nmiface's extension namespace ([`NMIFACE_NS`]).
    pub ext: bool,
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
///
/// Columns count characters. Counting them from the line's start for every position was
/// quadratic on one long line (a 4 MiB single-line document with a finding per element spent
/// most of its time there), so character counts are kept per block of [`BLOCK`] bytes, built
/// on first use: a position then costs a binary search and at most two blocks' worth of bytes.
pub(crate) struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
    line_starts: Vec<usize>,
    /// `chars_before[k]`: characters that start in `text[..k * BLOCK]`.
    chars_before: std::cell::OnceCell<Vec<u32>>,
}

/// Bytes per entry of the character-count index: small enough that counting inside one block
/// is cheap, large enough that the index stays under 1% of the text.
const BLOCK: usize = 512;

/// Characters starting in `bytes`: every byte that is not a UTF-8 continuation byte. For a
/// range that does not start or end inside a character this is `chars().count()`.
fn char_starts(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count()
}

impl<'a> Source<'a> {
    pub fn new(name: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { name, text, line_starts, chars_before: std::cell::OnceCell::new() }
    }

    /// Characters that start before byte `offset` (`offset <= text.len()`).
    fn chars_to(&self, offset: usize) -> usize {
        let bytes = self.text.as_bytes();
        let index = self.chars_before.get_or_init(|| {
            let mut total = 0u32;
            let mut out = Vec::with_capacity(bytes.len() / BLOCK + 1);
            out.push(0);
            for block in bytes.chunks(BLOCK) {
                // At most MAX_DOCUMENT_BYTES characters, so u32 holds the count.
                total += char_starts(block) as u32;
                out.push(total);
            }
            out
        });
        let k = offset / BLOCK;
        let before = index.get(k).map_or(0, |&n| n as usize);
        before + bytes.get(k * BLOCK..offset).map_or(0, char_starts)
    }

    /// 1-based line and character column of a byte offset.
    pub fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        // Short distances are counted directly, so small documents never build the index.
        let column = if offset - start <= 2 * BLOCK {
            self.text.as_bytes().get(start..offset).map_or(0, char_starts)
        } else {
            self.chars_to(offset) - self.chars_to(start)
        } + 1;
        Location { line: u32::try_from(line).unwrap_or(u32::MAX), column: u32::try_from(column).unwrap_or(u32::MAX) }
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
    // Namespace declarations in scope, one list per open element: (prefix, URI).
    let mut scopes: Vec<Decls<'_>> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            let at = (reader.error_position() as usize).min(text.len());
            syntax(at, format!("XML syntax error: {e}"))
        })?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() && stack.is_empty() => {
                return Err(syntax(before, "more than one root element"));
            }
            Event::Start(_) | Event::Empty(_) if elements >= MAX_ELEMENTS => {
                return Err(syntax(before, format!("more than {MAX_ELEMENTS} elements in one document")));
            }
            Event::Start(e) => {
                elements += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax(before, format!("elements nested deeper than {MAX_DEPTH} levels")));
                }
                let (el, decls) = element(text, &e, before, after, &scopes)?;
                stack.push(el);
                scopes.push(decls);
            }
            Event::Empty(e) => {
                elements += 1;
                let (el, _) = element(text, &e, before, after, &scopes)?;
                attach(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                scopes.pop();
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

/// Namespace prefixes an element declares: (prefix, URI).
type Decls<'a> = Vec<(&'a str, Cow<'a, str>)>;

fn element<'a>(
    text: &'a str,
    e: &BytesStart<'_>,
    start: usize,
    end: usize,
    scopes: &[Decls<'a>],
) -> Result<(Element<'a>, Decls<'a>), SyntaxError> {
    let tag: &'a str = text.get(start..end).unwrap_or("");
    // Names and values are sliced from the input rather than copied: most documents have no
    // escapes, and a copy per attribute dominated parsing time.
    let name =
        tag.get(1..).unwrap_or("").split(|c: char| c.is_whitespace() || c == '/' || c == '>').next().unwrap_or("");
    // quick-xml checks the syntax (quotes, `=`); the names, values and offsets come from our own
    // scan of the tag, which respects quotes, so text inside one value is never taken for another
    // attribute.
    for a in e.attributes().with_checks(false) {
        a.map_err(|err| syntax(start, format!("XML syntax error in <{name}>: {err}")))?;
    }
    let scanned = scan_attrs(tag);
    let mut attrs = Vec::with_capacity(scanned.len());
    let mut seen = std::collections::HashSet::new();
    let mut decls = Decls::new();
    for (key, at, raw) in scanned {
        if !seen.insert(key) {
            return Err(syntax(start + at, format!("XML syntax error: attribute '{key}' repeated in <{name}>")));
        }
        let value = quick_xml::escape::unescape(raw)
            .map_err(|err| syntax(start + at, format!("XML syntax error in attribute '{key}': {err}")))?;
        // Namespace declarations are not attributes of the interface: they resolve prefixes.
        // libvirt's elements are in no namespace, so a default namespace would move every
        // unprefixed element out of the format; only `xmlns=''` (none) is accepted. This keeps
        // one invariant the converters rely on: an element is an extension exactly when its
        // name has a prefix, so matching a child by its plain name never finds an extension.
        if key == "xmlns" {
            if !value.is_empty() {
                return Err(syntax(
                    start + at,
                    format!(
                        "<{name}> declares the default namespace '{value}'; libvirt's elements are in no namespace \
                         (declare nmiface's extensions with a prefix: xmlns:nmi='{NMIFACE_NS}')"
                    ),
                ));
            }
            continue;
        }
        if let Some(prefix) = key.strip_prefix("xmlns:") {
            decls.push((prefix, value));
            continue;
        }
        attrs.push(Attr { name: key, value, offset: start + at });
    }
    // Prefixed elements must resolve, by URI: the prefix text means nothing. Only nmiface's
    // namespace is understood; an element in any other is refused here, once for all
    // converters, as libvirt's schema refuses it.
    let (local, ext) = match name.split_once(':') {
        Some((prefix, local)) => {
            let uri = decls
                .iter()
                .rev()
                .chain(scopes.iter().rev().flat_map(|d| d.iter().rev()))
                .find(|(p, _)| *p == prefix)
                .map(|(_, u)| u.as_ref())
                .ok_or_else(|| syntax(start, format!("namespace prefix '{prefix}' of <{name}> is not declared")))?;
            if uri != NMIFACE_NS {
                return Err(syntax(
                    start,
                    format!(
                        "unknown element <{name}>: namespace '{uri}' is not nmiface's ('{NMIFACE_NS}'), and libvirt's format has no other"
                    ),
                ));
            }
            (local, true)
        }
        None => (name, false),
    };
    let el =
        Element { name, local, ext, attrs, children: Vec::new(), text: String::new(), text_offset: None, start, end };
    Ok((el, decls))
}

/// The attributes of a raw start tag (`<name a='1' b="2">` or `…/>`), as (name, offset of the
/// name in the tag, raw value). Expects a tag quick-xml has already accepted.
fn scan_attrs(tag: &str) -> Vec<(&str, usize, &str)> {
    let b = tag.as_bytes();
    let mut i = 1;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'/' && b[i] != b'>' {
        i += 1;
    }
    let mut out = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] == b'/' || b[i] == b'>' {
            return out;
        }
        let k = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let key = &tag[k..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return out;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let Some(&q) = b.get(i).filter(|q| **q == b'\'' || **q == b'"') else { return out };
        let v = i + 1;
        let Some(len) = tag[v..].find(q as char) else { return out };
        out.push((key, k, &tag[v..v + len]));
        i = v + len + 1;
    }
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

    /// Columns from the block index agree with counting characters from the line start, on
    /// long lines of mixed-width characters, at every character boundary.
    #[test]
    fn columns_count_characters_on_long_lines() {
        let line: String = (0..3000).map(|i| ['a', 'é', '€', '😀'][i % 4]).collect();
        let text = format!("<a>\n{line}\n{line}</a>");
        let src = Source::new("t", &text);
        for (offset, _) in text.char_indices().chain([(text.len(), ' ')]) {
            let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
            let expected = text[start..offset].chars().count() as u32 + 1;
            let line = text[..offset].matches('\n').count() as u32 + 1;
            assert_eq!(src.location(offset), Location { line, column: expected }, "offset {offset}");
        }
    }

    /// See: issue 11. Each position used to count characters from its line's start: quadratic
    /// on one long line. Counting the bytes the index looks at bounds the work per position.
    #[test]
    fn a_position_costs_at_most_a_few_blocks() {
        let text = "x".repeat(MAX_DOCUMENT_BYTES);
        let src = Source::new("t", &text);
        for offset in (0..text.len()).step_by(4099) {
            assert_eq!(src.location(offset).column as usize, offset + 1);
        }
        // The index is one entry per block, built once.
        assert_eq!(src.chars_before.get().map(Vec::len), Some(MAX_DOCUMENT_BYTES / BLOCK + 1));
    }

    #[test]
    fn attributes_are_scanned_with_quotes_respected() {
        let tag = "<interface xmlns:x=\"a name='eth1' \" type = 'ethernet' name=\"eth0\"/>";
        let names: Vec<_> = scan_attrs(tag).into_iter().map(|(k, _, v)| (k, v)).collect();
        assert_eq!(names, [("xmlns:x", "a name='eth1' "), ("type", "ethernet"), ("name", "eth0")]);
        let root = parse(tag).unwrap();
        assert_eq!(root.attr("name").unwrap().value, "eth0");
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

    /// See: issue 11. 4 MiB of `<x/>` built a million-element tree (150 MB) before the
    /// converters refused it.
    #[test]
    fn element_count_is_bounded() {
        let at_limit = format!("<a>{}</a>", "<x/>".repeat(MAX_ELEMENTS - 1));
        assert!(parse(&at_limit).is_ok());
        let over = format!("<a>{}</a>", "<x/>".repeat(MAX_ELEMENTS));
        let e = parse(&over).unwrap_err();
        assert_eq!(e.offset, 3 + 4 * (MAX_ELEMENTS - 1));
        assert_eq!(e.message, format!("more than {MAX_ELEMENTS} elements in one document"));
    }
}
