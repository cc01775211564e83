//! Ethernet MAC addresses.

use std::fmt;

/// A 48-bit Ethernet MAC address, printed in lower case as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses the colon-separated form libvirt's schema allows (`[0-9a-fA-F]{2}(:..){5}`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let err = || format!("invalid MAC address '{text}' (expected six hex pairs like 52:54:00:12:34:56)");
        let mut out = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Self(out))
    }

    /// The raw bytes, as NetworkManager's `ay` MAC properties carry them.
    pub fn bytes(&self) -> &[u8; 6] {
        &self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_lower_case() {
        let m = Mac::parse("52:54:00:AB:cd:0F").unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        for bad in ["", "52:54:00:ab:cd", "52:54:00:ab:cd:0f:00", "zz:54:00:ab:cd:0f", "5:54:00:ab:cd:0f"] {
            assert!(Mac::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
