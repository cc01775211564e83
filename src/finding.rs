//! Findings: what a translation approximated, dropped or could not do, returned as data.
//!
//! Nothing nmiface reads is dropped silently. Every normalisation the XML readers make, every
//! property the target NetworkManager cannot take and every part of the model the libvirt
//! format cannot express becomes a [`Finding`] that travels with the result.

use serde::Serialize;
use std::fmt;

/// A position in an input document, 1-based like compilers print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Location {
    /// Line, starting at 1.
    pub line: u32,
    /// Column in characters, starting at 1.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How much a finding matters. Ordered: a larger value loses more meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Nothing is lost (e.g. live-state `<link>` ignored, a default made explicit).
    Info,
    /// The result is close to, but not exactly, what was asked (e.g. a fractional delay rounded).
    Approximated,
    /// Something asked for is not done at all.
    Unsupported,
}

impl Severity {
    /// True when the finding changes what the host will do; the CLI exits 1 for these.
    pub fn loses_meaning(self) -> bool {
        self >= Severity::Approximated
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Approximated => "approximated",
            Severity::Unsupported => "unsupported",
        })
    }
}

/// Where a finding comes from, for capability reports (not serialised: the JSON output of
/// `translate` is unchanged by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Category {
    /// libvirt's format and NetworkManager's model do not map one to one.
    #[default]
    Mapping,
    /// A gap the capability report derives from the model itself (a NetworkManager version
    /// that lacks a feature, a VLAN tag NetworkManager refuses), so it does not list it again.
    Assessed,
}

/// One thing a translation did not carry over exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// Where in the input: an element path such as `/interface/bridge/@delay`, or a profile
    /// property such as `br0: bridge.forward-delay` for findings about the output.
    pub path: String,
    /// Position in the input document, when the finding comes from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// What happened and why, in one sentence.
    pub message: String,
    /// Where it comes from.
    #[serde(skip)]
    pub category: Category,
}

impl Finding {
    /// A finding about an input position.
    pub fn at(
        severity: Severity,
        path: impl Into<String>,
        location: Option<Location>,
        message: impl Into<String>,
    ) -> Self {
        Self { severity, path: path.into(), location, message: message.into(), category: Category::Mapping }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = self.location {
            write!(f, "{loc}: ")?;
        }
        write!(f, "{}: {}: {}", self.severity, self.path, self.message)
    }
}

/// True when any finding loses meaning (see [`Severity::loses_meaning`]).
pub fn any_loses_meaning(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity.loses_meaning())
}
