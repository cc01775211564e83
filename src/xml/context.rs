//! Conversion context: positions, findings, and the checks every element goes through
//! (known attributes, known children, once-only children, typed attribute values).

use super::path::Path;
use super::tree::{Attr, Element, Source};
use super::XmlError;
use crate::finding::{Finding, Severity};
use std::fmt::Display;

/// Findings kept per document; the rest are counted (see [`Cx::finish_findings`]). A document
/// with a finding per element can have hundreds of thousands, and nobody reads past the first
/// screenful of the same complaint.
pub(crate) const MAX_FINDINGS: usize = 100;

/// Shared state while converting one document.
pub(crate) struct Cx<'s> {
    pub src: &'s Source<'s>,
    pub findings: Vec<Finding>,
    /// Findings past [`MAX_FINDINGS`]: how many, and the most severe of them.
    dropped: Option<(usize, Severity)>,
    /// Every port element seen, in document order, for pointing errors at the right one.
    pub ports_seen: Vec<(crate::model::IfName, usize)>,
}

pub(crate) type Res<T> = Result<T, XmlError>;

impl<'s> Cx<'s> {
    pub fn new(src: &'s Source<'s>) -> Self {
        Self { src, findings: Vec::new(), dropped: None, ports_seen: Vec::new() }
    }

    /// An error at `offset` about `path`.
    pub fn err(&self, offset: usize, path: impl Display, message: impl Into<String>) -> XmlError {
        XmlError {
            source_name: self.src.name.to_string(),
            location: self.src.location(offset),
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// Records a finding at `offset` about `path`; past [`MAX_FINDINGS`], only counts it.
    pub fn note(&mut self, severity: Severity, offset: usize, path: impl Display, message: impl Into<String>) {
        if self.findings.len() >= MAX_FINDINGS {
            let (n, worst) = self.dropped.get_or_insert((0, severity));
            *n += 1;
            *worst = (*worst).max(severity);
            return;
        }
        let location = Some(self.src.location(offset));
        self.findings.push(Finding::at(severity, path.to_string(), location, message));
    }

    /// The findings, with one more saying how many were left out, as severe as the worst of
    /// them (so that the exit status still tells whether meaning was lost).
    pub fn finish_findings(mut self, path: &str) -> Vec<Finding> {
        if let Some((n, worst)) = self.dropped {
            let s = if n == 1 { "" } else { "s" };
            self.findings.push(Finding::at(
                worst,
                path,
                None,
                format!("{n} more finding{s} not listed: only the first {MAX_FINDINGS} of a document are kept"),
            ));
        }
        self.findings
    }

    /// Refuses attributes other than `allowed`.
    pub fn allow_attrs(&self, el: &Element, path: &Path<'_>, allowed: &[&str]) -> Res<()> {
        if let Some(a) = el.attrs.iter().find(|a| !allowed.contains(&a.name)) {
            return Err(self.err(
                a.offset,
                path.attr(a.name),
                format!("unknown attribute '{}' on <{}> (allowed: {})", a.name, el.name, list(allowed)),
            ));
        }
        Ok(())
    }

    /// Refuses child elements other than `allowed`, and text content.
    pub fn allow_children(&self, el: &Element, path: &Path<'_>, allowed: &[&str]) -> Res<()> {
        self.no_children_but(el, path, allowed)?;
        if let Some(off) = el.text_offset {
            return Err(self.err(off, path, format!("unexpected text '{}' in <{}>", el.text, el.name)));
        }
        Ok(())
    }

    /// Refuses child elements other than `allowed`; text is the caller's business.
    pub fn no_children_but(&self, el: &Element, path: &Path<'_>, allowed: &[&str]) -> Res<()> {
        // Extension elements are allowed by their local name with an `nmi:` marker in `allowed`,
        // whatever prefix the document binds to nmiface's namespace.
        let known = |c: &Element<'_>| {
            if c.ext {
                allowed.iter().any(|a| a.strip_prefix("nmi:") == Some(c.local))
            } else {
                allowed.contains(&c.name)
            }
        };
        if let Some(c) = el.children.iter().find(|c| !known(c)) {
            return Err(self.err(
                c.start,
                path.child(c.name),
                format!("unknown element <{}> in <{}> (allowed: {})", c.name, el.name, list(allowed)),
            ));
        }
        Ok(())
    }

    /// The extension child `local` (in nmiface's namespace), refusing a second one.
    pub fn ext<'e>(&self, el: &'e Element<'e>, path: &Path<'_>, local: &str) -> Res<Option<&'e Element<'e>>> {
        let mut found = el.children.iter().filter(|c| c.ext && c.local == local);
        let first = found.next();
        if let Some(dup) = found.next() {
            return Err(self.err(
                dup.start,
                path.child(dup.name),
                format!("<{}> may appear only once in <{}>", dup.name, el.name),
            ));
        }
        Ok(first)
    }

    /// The child called `name`, refusing a second one.
    pub fn one<'e>(&self, el: &'e Element<'e>, path: &Path<'_>, name: &str) -> Res<Option<&'e Element<'e>>> {
        let mut found = el.children.iter().filter(|c| c.name == name);
        let first = found.next();
        if let Some(dup) = found.next() {
            return Err(self.err(
                dup.start,
                path.child(name),
                format!("<{name}> may appear only once in <{}>", el.name),
            ));
        }
        Ok(first)
    }

    /// The attribute `name`, or an error naming the element.
    pub fn required<'e>(&self, el: &'e Element<'e>, path: &Path<'_>, name: &str) -> Res<&'e Attr<'e>> {
        el.attr(name)
            .ok_or_else(|| self.err(el.start, path, format!("missing required attribute '{name}' on <{}>", el.name)))
    }

    /// Converts an attribute's value with `f`; an `Err(msg)` from `f` becomes a positioned error.
    pub fn value<T>(&self, a: &Attr, path: &Path<'_>, f: impl FnOnce(&str) -> Result<T, String>) -> Res<T> {
        f(&a.value).map_err(|m| self.err(a.offset, path.attr(a.name), m))
    }

    /// An optional attribute whose value must be one of `allowed`.
    pub fn choice<'e>(&self, el: &'e Element, path: &Path<'_>, name: &str, allowed: &[&str]) -> Res<Option<&'e str>> {
        let Some(a) = el.attr(name) else {
            return Ok(None);
        };
        if allowed.contains(&a.value.as_ref()) {
            return Ok(Some(a.value.as_ref()));
        }
        Err(self.err(
            a.offset,
            path.attr(name),
            format!("invalid value '{}' for '{name}' (allowed: {})", a.value, list(allowed)),
        ))
    }

    /// An optional yes/no attribute (the draft's `onboot`, libvirt's `peerdns`).
    pub fn yes_no(&self, el: &Element, path: &Path<'_>, name: &str) -> Res<Option<bool>> {
        Ok(self.choice(el, path, name, &["yes", "no"])?.map(|v| v == "yes"))
    }

    /// An optional unsigned 32-bit attribute.
    pub fn uint(&self, el: &Element, path: &Path<'_>, name: &str) -> Res<Option<u32>> {
        let Some(a) = el.attr(name) else {
            return Ok(None);
        };
        self.value(a, path, |v| parse_uint(name, v)).map(Some)
    }
}

/// Parses an unsigned decimal, with a message naming the attribute.
pub(crate) fn parse_uint(name: &str, v: &str) -> Result<u32, String> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid value '{v}' for '{name}': expected an unsigned integer"));
    }
    v.parse::<u32>().map_err(|_| format!("invalid value '{v}' for '{name}': larger than 4294967295"))
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
