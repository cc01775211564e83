//! NetworkManager setting values with their exact D-Bus types.
//!
//! NetworkManager checks the D-Bus type of every property strictly (a `u` where it expects `q`
//! is an error, or worse, silently dropped), so each value carries its signature. The D-Bus
//! layer turns these into zvariant values one to one; the core stays free of zvariant.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::collections::BTreeMap;

/// One property value, tagged with its D-Bus type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `b`
    Bool(bool),
    /// `i` (NM's enum-like integers)
    I32(i32),
    /// `u`
    U32(u32),
    /// `x` (route-metric)
    I64(i64),
    /// `t`
    U64(u64),
    /// `s`
    Str(String),
    /// `ay` (MAC addresses)
    Bytes(Vec<u8>),
    /// `as`
    StrList(Vec<String>),
    /// `a{ss}` (bond.options, user.data)
    StrDict(BTreeMap<String, String>),
    /// `aa{sv}` (address-data, route-data)
    DictList(Vec<BTreeMap<String, Value>>),
    /// Any other type, kept exactly as NetworkManager sent it: the value's D-Bus wire encoding
    /// as a variant (its signature, then its data; little-endian, offset 0). nmiface never
    /// reads these (`ipv4.dns` as `au`, `ipv6.dns` as `aay`, legacy `addresses`, …); it keeps
    /// them so a journalled profile is restored exactly. The D-Bus layer encodes and decodes.
    Encoded(Vec<u8>),
}

impl Value {
    /// The D-Bus type signature.
    pub fn signature(&self) -> &'static str {
        match self {
            Value::Bool(_) => "b",
            Value::I32(_) => "i",
            Value::U32(_) => "u",
            Value::I64(_) => "x",
            Value::U64(_) => "t",
            Value::Str(_) => "s",
            Value::Bytes(_) => "ay",
            Value::StrList(_) => "as",
            Value::StrDict(_) => "a{ss}",
            Value::DictList(_) => "aa{sv}",
            Value::Encoded(_) => "v",
        }
    }

    /// The boolean, if this is a `b`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number as u64, for any non-negative integer type.
    pub fn as_uint(&self) -> Option<u64> {
        match *self {
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The number as i64, for any integer type that fits.
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The string, if this is an `s`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is an `ay`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The map, if this is an `a{ss}`.
    pub fn as_str_dict(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            Value::StrDict(d) => Some(d),
            _ => None,
        }
    }

    /// The list, if this is an `as`.
    pub fn as_str_list(&self) -> Option<&[String]> {
        match self {
            Value::StrList(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionaries, if this is an `aa{sv}`.
    pub fn as_dict_list(&self) -> Option<&[BTreeMap<String, Value>]> {
        match self {
            Value::DictList(l) => Some(l),
            _ => None,
        }
    }

    /// The value as a person reads it, without its D-Bus type: `yes`/`no`, numbers, a MAC as
    /// `52:54:00:…`, lists comma-separated, an address as `192.0.2.1/24` (what `apply --check`
    /// prints; `--json` keeps the typed form).
    pub fn plain(&self) -> String {
        match self {
            Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
            Value::I32(v) => v.to_string(),
            Value::U32(v) => v.to_string(),
            Value::I64(v) => v.to_string(),
            Value::U64(v) => v.to_string(),
            Value::Str(s) => s.clone(),
            Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":"),
            Value::StrList(l) => l.join(", "),
            Value::StrDict(d) => d.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
            Value::DictList(l) => l.iter().map(plain_entry).collect::<Vec<_>>().join(", "),
            Value::Encoded(b) => format!("(a value nmiface does not read, {} bytes)", b.len()),
        }
    }
}

/// One `aa{sv}` entry: `address/prefix` (address-data, route-data's `dest/prefix`) followed by
/// its other keys as `key=value`.
fn plain_entry(d: &BTreeMap<String, Value>) -> String {
    let head = match (d.get("address").or_else(|| d.get("dest")), d.get("prefix")) {
        (Some(a), Some(p)) => Some(format!("{}/{}", a.plain(), p.plain())),
        (Some(a), None) => Some(a.plain()),
        _ => None,
    };
    let rest = d
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "address" | "dest" | "prefix"))
        .map(|(k, v)| format!("{k}={}", v.plain()));
    let parts: Vec<String> = head.into_iter().chain(rest).collect();
    match parts.len() {
        1 => parts.join(""),
        _ => format!("{{{}}}", parts.join(" ")),
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::U32(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::I32(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl Value {
    /// Reads the JSON form written by `Serialize` back (for files nmiface keeps, such as the
    /// transaction journal). `None` for anything that is not that form.
    pub fn from_tagged_json(v: &serde_json::Value) -> Option<Value> {
        let (sig, inner) = v.as_object()?.iter().next()?;
        let u = || inner.as_u64();
        let i = || inner.as_i64();
        Some(match sig.as_str() {
            "b" => Value::Bool(inner.as_bool()?),
            "i" => Value::I32(i32::try_from(i()?).ok()?),
            "u" => Value::U32(u32::try_from(u()?).ok()?),
            "x" => Value::I64(i()?),
            "t" => Value::U64(u()?),
            "s" => Value::Str(inner.as_str()?.to_string()),
            "ay" => {
                Value::Bytes(inner.as_array()?.iter().map(|b| u8::try_from(b.as_u64()?).ok()).collect::<Option<_>>()?)
            }
            "as" => {
                Value::StrList(inner.as_array()?.iter().map(|s| s.as_str().map(str::to_string)).collect::<Option<_>>()?)
            }
            "a{ss}" => Value::StrDict(
                inner
                    .as_object()?
                    .iter()
                    .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect::<Option<_>>()?,
            ),
            "v" => Value::Encoded(hex_decode(inner.as_str()?)?),
            "aa{sv}" => Value::DictList(
                inner
                    .as_array()?
                    .iter()
                    .map(|d| {
                        d.as_object()?.iter().map(|(k, v)| Some((k.clone(), Value::from_tagged_json(v)?))).collect()
                    })
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }
}

/// JSON form: a one-entry object keyed by the signature, e.g. `{"u": 24}` or
/// `{"aa{sv}": [{"address": {"s": "192.0.2.1"}, "prefix": {"u": 24}}]}`, so scripts and golden
/// files see the exact D-Bus type.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        let k = self.signature();
        match self {
            Value::Bool(v) => m.serialize_entry(k, v)?,
            Value::I32(v) => m.serialize_entry(k, v)?,
            Value::U32(v) => m.serialize_entry(k, v)?,
            Value::I64(v) => m.serialize_entry(k, v)?,
            Value::U64(v) => m.serialize_entry(k, v)?,
            Value::Str(v) => m.serialize_entry(k, v)?,
            Value::Bytes(v) => m.serialize_entry(k, v)?,
            Value::StrList(v) => m.serialize_entry(k, v)?,
            Value::StrDict(v) => m.serialize_entry(k, v)?,
            Value::DictList(v) => m.serialize_entry(k, v)?,
            Value::Encoded(v) => m.serialize_entry(k, &hex_encode(v))?,
        }
        m.end()
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 24, item 9. `apply --check` prints values, not their D-Bus encoding.
    #[test]
    fn plain_values_read_as_words() {
        assert_eq!(Value::Bool(false).plain(), "no");
        assert_eq!(Value::Bytes(vec![0x52, 0x54, 0, 0x12, 0x34, 0x56]).plain(), "52:54:00:12:34:56");
        let a = BTreeMap::from([
            ("address".to_string(), Value::Str("192.0.2.1".into())),
            ("prefix".to_string(), Value::U32(24)),
        ]);
        assert_eq!(Value::DictList(vec![a]).plain(), "192.0.2.1/24");
        let r = BTreeMap::from([
            ("dest".to_string(), Value::Str("198.51.100.0".into())),
            ("prefix".to_string(), Value::U32(24)),
            ("metric".to_string(), Value::U32(100)),
        ]);
        assert_eq!(Value::DictList(vec![r]).plain(), "{198.51.100.0/24 metric=100}");
    }

    #[test]
    fn tagged_json_round_trips() {
        let vals = [
            Value::Bool(true),
            Value::I32(-1),
            Value::U32(7),
            Value::I64(-5),
            Value::U64(9),
            Value::Str("x".into()),
            Value::Bytes(vec![1, 2]),
            Value::StrList(vec!["a".into()]),
            Value::StrDict(BTreeMap::from([("k".into(), "v".into())])),
            Value::DictList(vec![BTreeMap::from([("prefix".into(), Value::U32(24))])]),
            Value::Encoded(vec![2, 0x61, 0x75, 0, 0, 0, 0, 0]),
        ];
        for v in vals {
            let j = serde_json::to_value(&v).unwrap();
            assert_eq!(Value::from_tagged_json(&j), Some(v));
        }
    }
}
