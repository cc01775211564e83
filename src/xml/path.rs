//! Element paths such as `/interface/bridge/@stp`, built as a chain on the stack while reading
//! and rendered only when an error or finding needs one. Formatting a path per element was a
//! quarter of the parse time.

use std::fmt;

/// One step of a path, linked to its parent.
#[derive(Clone, Copy)]
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: &'a str,
    attr: bool,
}

impl<'a> Path<'a> {
    /// A path that starts with `prefix` (e.g. `/interfaces/interface[2]`).
    pub fn root(prefix: &'a str) -> Self {
        Self { parent: None, seg: prefix, attr: false }
    }

    /// This path followed by child element `name`.
    pub fn child(&'a self, name: &'a str) -> Path<'a> {
        Path { parent: Some(self), seg: name, attr: false }
    }

    /// This path followed by attribute `name`.
    pub fn attr(&'a self, name: &'a str) -> Path<'a> {
        Path { parent: Some(self), seg: name, attr: true }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parent {
            Some(p) => write!(f, "{p}/{}{}", if self.attr { "@" } else { "" }, self.seg),
            None => f.write_str(self.seg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let root = Path::root("/interface");
        let b = root.child("bridge");
        assert_eq!(b.attr("stp").to_string(), "/interface/bridge/@stp");
    }
}
