//! A call's arguments: flags and `a{sv}` options (unknown keys refused, so a typo is not
//! silently ignored), XML parsed with the method's name as its source, findings on the wire.

use super::{flags, ErrorKind, ServiceError};
use crate::finding::{Finding, Severity};
use crate::verbs::defaults::ACTIVATION_TIMEOUT;
use crate::xml::Document;
use std::collections::HashMap;
use std::time::Duration;
use zbus::zvariant::OwnedValue;

/// A finding on the wire: severity, element path, line, column (0: none), message.
pub type WireFinding = (String, String, u32, u32, String);

pub(super) fn wire(findings: &[Finding]) -> Vec<WireFinding> {
    findings
        .iter()
        .map(|f| {
            let severity = match f.severity {
                Severity::Info => "info",
                Severity::Approximated => "approximated",
                Severity::Unsupported => "unsupported",
            };
            let (line, column) = f.location.map_or((0, 0), |l| (l.line, l.column));
            (severity.to_string(), f.path.clone(), line, column, f.message.clone())
        })
        .collect()
}

pub(super) fn parse(method: &str, xml: &str) -> Result<Document, ServiceError> {
    Ok(crate::xml::parse_document(method, xml)?)
}

/// The options of `Apply` and `Check`: `adopt` (b), `force` (b), `system` (b), `timeout`
/// (u, seconds), `checkpoint` (b). Unknown keys are refused, so a typo is not silently ignored.
pub(super) struct Opts {
    pub flags: u32,
    pub timeout: Duration,
    pub checkpoint: bool,
}

pub(super) fn options(o: &HashMap<String, OwnedValue>) -> Result<Opts, ServiceError> {
    let mut out = Opts { flags: 0, timeout: ACTIVATION_TIMEOUT, checkpoint: true };
    for (k, v) in o {
        let bit = match k.as_str() {
            "adopt" => flags::ADOPT,
            "force" => flags::FORCE,
            "system" => flags::SYSTEM,
            "timeout" => {
                out.timeout = Duration::from_secs(u32::try_from(v).map_err(|_| bad(k, "seconds (u)"))?.into());
                continue;
            }
            "checkpoint" => {
                out.checkpoint = boolean(k, v)?;
                continue;
            }
            _ => return Err(unknown(k, "adopt, force, system, timeout, checkpoint")),
        };
        if boolean(k, v)? {
            out.flags |= bit;
        }
    }
    Ok(out)
}

/// The options of `ShareNat`: `bridge` (s), `subnet` (s), `persist` (b).
pub(super) fn share_options(options: &HashMap<String, OwnedValue>) -> Result<crate::verbs::ShareRequest, ServiceError> {
    let mut r = crate::verbs::ShareRequest::nat("virbr1");
    for (k, v) in options {
        match k.as_str() {
            "bridge" => r.bridge = string(k, v)?,
            "subnet" => {
                let s = string(k, v)?;
                r.subnet =
                    Some(crate::agent::subnet_address(&s).map_err(|e| ServiceError::new(ErrorKind::InvalidArgs, e))?)
            }
            "persist" => r.persist = boolean(k, v)?,
            _ => return Err(unknown(k, "bridge, subnet, persist")),
        }
    }
    Ok(r)
}

/// The options of a Share's `AddTap`: `name` (s), `multi_queue` (b).
pub(super) fn tap_options(
    bridge: &str,
    options: &HashMap<String, OwnedValue>,
) -> Result<crate::verbs::TapRequest, ServiceError> {
    let mut r = crate::verbs::TapRequest::new(bridge);
    for (k, v) in options {
        match k.as_str() {
            "name" => r.name = Some(string(k, v)?),
            "multi_queue" => r.multi_queue = boolean(k, v)?,
            _ => return Err(unknown(k, "name, multi_queue")),
        }
    }
    Ok(r)
}

/// The options of `OpenTap`: `vnet_hdr` (b, default true).
pub(super) fn open_tap_options(
    bridge: &str,
    options: &HashMap<String, OwnedValue>,
) -> Result<(crate::verbs::TapRequest, bool), ServiceError> {
    let mut vnet_hdr = true;
    for (k, v) in options {
        match k.as_str() {
            "vnet_hdr" => vnet_hdr = boolean(k, v)?,
            _ => return Err(unknown(k, "vnet_hdr")),
        }
    }
    Ok((crate::verbs::TapRequest::new(bridge), vnet_hdr))
}

/// The options of `InterfaceBridge`: `stp` (b), `delay` (u seconds), `start` (b), `timeout` (u
/// seconds); `flags`: FORCE.
pub(super) fn bridge_options(
    nic: &str,
    bridge: &str,
    options: &HashMap<String, OwnedValue>,
    flags: u32,
) -> Result<crate::verbs::BridgeRequest, ServiceError> {
    let mut r = crate::verbs::BridgeRequest {
        nic: nic.to_string(),
        bridge: bridge.to_string(),
        options: crate::agent::BridgeOptions { stp: true, delay: None },
        start: true,
        timeout: ACTIVATION_TIMEOUT,
        rollback_timeout: crate::verbs::defaults::ROLLBACK_TIMEOUT,
        force: flags & flags::FORCE != 0,
    };
    let seconds = |k: &str, v: &OwnedValue| u32::try_from(v).map_err(|_| bad(k, "seconds (u)"));
    for (k, v) in options {
        match k.as_str() {
            "stp" => r.options.stp = boolean(k, v)?,
            "delay" => {
                let d = seconds(k, v)?;
                r.options.delay = Some(u16::try_from(d).map_err(|_| bad(k, "seconds (u) below 65536"))?);
            }
            "start" => r.start = boolean(k, v)?,
            "timeout" => r.timeout = Duration::from_secs(seconds(k, v)?.into()),
            _ => return Err(unknown(k, "stp, delay, start, timeout")),
        }
    }
    Ok(r)
}

fn bad(k: &str, want: &str) -> ServiceError {
    ServiceError::new(ErrorKind::InvalidArgs, format!("option '{k}' must be {want}"))
}

fn unknown(k: &str, known: &str) -> ServiceError {
    ServiceError::new(ErrorKind::InvalidArgs, format!("unknown option '{k}' (known: {known})"))
}

fn boolean(k: &str, v: &OwnedValue) -> Result<bool, ServiceError> {
    bool::try_from(v).map_err(|_| bad(k, "a boolean (b)"))
}

fn string(k: &str, v: &OwnedValue) -> Result<String, ServiceError> {
    String::try_from(v.try_clone().map_err(zbus::Error::from)?).map_err(|_| bad(k, "a string (s)"))
}
