//! Linux interface names, validated once so the rest of the code can trust them.

use std::fmt;

/// A Linux network interface name.
///
/// The kernel's rules (`dev_valid_name`): 1 to 15 bytes (`IFNAMSIZ` is 16 with the NUL),
/// not `.` or `..`, and no `/`, `:` or whitespace. libvirt's schema allows `/`, `:` and `\`,
/// but no kernel accepts the first two, so we refuse them up front rather than let
/// NetworkManager fail later.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct IfName(String);

/// Longest interface name the kernel accepts, in bytes.
pub const IFNAME_MAX: usize = 15;

impl IfName {
    /// Validates `name` against the kernel's rules; the error says which rule failed.
    pub fn new(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("interface name is empty".into());
        }
        if name.len() > IFNAME_MAX {
            return Err(format!(
                "invalid interface name '{name}': {} bytes, Linux allows at most {IFNAME_MAX}",
                name.len()
            ));
        }
        if name == "." || name == ".." {
            return Err(format!("invalid interface name '{name}': '.' and '..' are reserved"));
        }
        if let Some(c) = name.chars().find(|c| *c == '/' || *c == ':' || c.is_whitespace()) {
            return Err(format!(
                "invalid interface name '{name}': contains {c:?} (Linux forbids '/', ':' and whitespace)"
            ));
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(format!("invalid interface name '{name}': contains control character {c:?}"));
        }
        Ok(Self(name.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_rules() {
        assert!(IfName::new("eth0").is_ok());
        assert!(IfName::new("bond0.100").is_ok());
        assert!(IfName::new("abcdefghijklmno").is_ok()); // 15 bytes
        assert!(IfName::new("abcdefghijklmnop").is_err()); // 16 bytes
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "a\tb"] {
            assert!(IfName::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
