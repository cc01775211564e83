//! Between the core's typed [`Value`]s and zvariant, one to one.

use super::proxies::{DbusSettings, OwnedSettings};
use crate::nm::{Key, Profile, Setting, Settings, Value};
use std::collections::{BTreeMap, HashMap};
use zbus::zvariant::{self, OwnedValue};

/// The core value as a zvariant value with the same signature.
pub fn to_zvariant(v: &Value) -> zvariant::Value<'_> {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::I32(n) => (*n).into(),
        Value::U32(n) => (*n).into(),
        Value::I64(n) => (*n).into(),
        Value::U64(n) => (*n).into(),
        Value::Str(s) => s.as_str().into(),
        Value::Bytes(b) => b.clone().into(),
        Value::StrList(l) => l.clone().into(),
        Value::StrDict(d) => d.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<String, String>>().into(),
        Value::DictList(list) => list
            .iter()
            .map(|d| {
                d.iter().map(|(k, v)| (k.clone(), to_zvariant(v))).collect::<HashMap<String, zvariant::Value<'_>>>()
            })
            .collect::<Vec<_>>()
            .into(),
        // Decoding what `encode` made cannot fail for bytes nmiface wrote itself; a journal
        // edited by hand that no longer decodes becomes an empty string, which NM refuses.
        Value::Encoded(bytes) => decode(bytes).unwrap_or_else(|| zvariant::Value::from("")),
    }
}

fn wire() -> zvariant::serialized::Context {
    zvariant::serialized::Context::new_dbus(zvariant::LE, 0)
}

/// A received value of any type, as its wire encoding (see [`Value::Encoded`]).
fn encode(v: &OwnedValue) -> Option<Vec<u8>> {
    let value: &zvariant::Value<'_> = v;
    zvariant::to_bytes(wire(), value).ok().map(|d| d.to_vec())
}

fn decode(bytes: &[u8]) -> Option<zvariant::Value<'static>> {
    let data = zvariant::serialized::Data::new(bytes.to_vec(), wire());
    let (v, _): (zvariant::Value<'_>, usize) = data.deserialize().ok()?;
    v.try_into_owned().ok().map(zvariant::Value::from)
}

/// Settings as an `a{sa{sv}}` argument.
pub fn to_dbus(s: &Settings) -> DbusSettings<'_> {
    s.iter()
        .map(|(name, props)| (name.as_ref(), props.iter().map(|(k, v)| (k.as_ref(), to_zvariant(v))).collect()))
        .collect()
}

/// A received value: typed when it is a type nmiface reads, else kept exactly as
/// [`Value::Encoded`] (legacy forms such as `aau` addresses, `au` DNS, `aay` IPv6 DNS).
pub fn from_owned(v: &OwnedValue) -> Option<Value> {
    typed(v).or_else(|| encode(v).map(Value::Encoded))
}

/// A received value when it is a type nmiface reads (`None` for the others): for reading
/// profiles, where encoding what nmiface never reads would only cost time.
pub fn from_owned_typed(v: &OwnedValue) -> Option<Value> {
    typed(v)
}

fn typed(v: &OwnedValue) -> Option<Value> {
    let sig = v.value_signature().to_string();
    let cloned = || v.try_clone().ok();
    Some(match sig.as_str() {
        "b" => Value::Bool(bool::try_from(v).ok()?),
        "i" => Value::I32(i32::try_from(v).ok()?),
        "u" => Value::U32(u32::try_from(v).ok()?),
        "q" => Value::U32(u16::try_from(v).ok()?.into()),
        "x" => Value::I64(i64::try_from(v).ok()?),
        "t" => Value::U64(u64::try_from(v).ok()?),
        "s" => Value::Str(String::try_from(cloned()?).ok()?),
        "ay" => Value::Bytes(Vec::<u8>::try_from(cloned()?).ok()?),
        "as" => Value::StrList(Vec::<String>::try_from(cloned()?).ok()?),
        "a{ss}" => Value::StrDict(HashMap::<String, String>::try_from(cloned()?).ok()?.into_iter().collect()),
        "aa{sv}" => {
            let list = Vec::<HashMap<String, OwnedValue>>::try_from(cloned()?).ok()?;
            Value::DictList(
                list.iter()
                    .map(|d| {
                        d.iter().filter_map(|(k, v)| Some((k.clone(), from_owned(v)?))).collect::<BTreeMap<_, _>>()
                    })
                    .collect(),
            )
        }
        _ => return None,
    })
}

/// A `GetSettings` reply as a profile, with the values nmiface reads (see
/// [`profile_from_dbus_exact`] for all of them). Errors when `connection.uuid` is missing or
/// malformed.
pub fn profile_from_dbus(s: &OwnedSettings) -> Result<Profile, String> {
    profile_with(s, from_owned_typed)
}

/// A `GetSettings` reply as a profile with every value exactly as received: what a journal
/// keeps to restore the profile.
pub fn profile_from_dbus_exact(s: &OwnedSettings) -> Result<Profile, String> {
    profile_with(s, from_owned)
}

fn profile_with(s: &OwnedSettings, convert: fn(&OwnedValue) -> Option<Value>) -> Result<Profile, String> {
    let mut settings = Settings::new();
    for (name, props) in s {
        let setting: Setting = props.iter().filter_map(|(k, v)| Some((Key::Owned(k.clone()), convert(v)?))).collect();
        settings.insert(Key::Owned(name.clone()), setting);
    }
    let get = |k: &str| settings.get("connection").and_then(|c| c.get(k)).and_then(Value::as_str);
    let id = get("id").unwrap_or_default().to_string();
    let uuid = get("uuid").ok_or("profile without connection.uuid")?;
    let uuid = uuid::Uuid::parse_str(uuid).map_err(|_| format!("profile '{id}': bad uuid '{uuid}'"))?;
    Ok(Profile { id, uuid, settings })
}
