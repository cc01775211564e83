//! NetworkManager versions and the translation target.

use std::fmt;

/// A NetworkManager version, `major.minor.micro`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct NmVersion {
    /// Major (1 for every release so far).
    pub major: u16,
    /// Minor; even numbers are stable series.
    pub minor: u16,
    /// Micro.
    pub micro: u16,
}

impl NmVersion {
    /// A version from its parts.
    pub const fn new(major: u16, minor: u16, micro: u16) -> Self {
        Self { major, minor, micro }
    }

    /// Parses `1.42`, `1.42.4`, and daemon strings such as `1.58.0-rc1` or `1.47.90`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let core = text.split(['-', '+', '~']).next().unwrap_or("");
        let mut parts = core.split('.').map(|p| p.parse::<u16>());
        let err = || format!("invalid NetworkManager version '{text}' (expected e.g. 1.42 or 1.42.4)");
        let major = parts.next().and_then(Result::ok).ok_or_else(err)?;
        let minor = parts.next().and_then(Result::ok).ok_or_else(err)?;
        let micro = match parts.next() {
            Some(m) => m.map_err(|_| err())?,
            None => 0,
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Self { major, minor, micro })
    }

    /// True when this version is at least `major.minor.micro`.
    pub fn at_least(self, major: u16, minor: u16, micro: u16) -> bool {
        self >= Self::new(major, minor, micro)
    }
}

impl fmt::Display for NmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// What a translation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The NetworkManager version whose D-Bus API the settings must fit.
    pub nm: NmVersion,
}

/// Debian 12's NetworkManager, the baseline nmiface targets when no daemon is asked.
pub const BASELINE: NmVersion = NmVersion::new(1, 42, 4);

impl Default for Target {
    fn default() -> Self {
        Self { nm: BASELINE }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(NmVersion::parse("1.42.4"), Ok(NmVersion::new(1, 42, 4)));
        assert_eq!(NmVersion::parse("1.30"), Ok(NmVersion::new(1, 30, 0)));
        assert_eq!(NmVersion::parse("1.58.0-rc1"), Ok(NmVersion::new(1, 58, 0)));
        assert!(NmVersion::parse("one").is_err());
        assert!(NmVersion::parse("1").is_err());
        assert!(NmVersion::new(1, 42, 8).at_least(1, 42, 8));
        assert!(!NmVersion::new(1, 42, 4).at_least(1, 42, 8));
    }
}
