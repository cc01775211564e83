//! A call's arguments: flags and `a{sv}` options (unknown keys refused, so a typo is not
//! silently ignored), XML parsed with the method's name as its source, findings on the wire.

use super::object::ACTIVATION_TIMEOUT;
use super::{flags, ErrorKind, ServiceError};
use crate::finding::{Finding, Severity};
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
    let bad = |k: &str, want: &str| ServiceError::new(ErrorKind::InvalidArgs, format!("option '{k}' must be {want}"));
    for (k, v) in o {
        let flag = |bit: u32, out: &mut Opts| -> Result<(), ServiceError> {
            if bool::try_from(v).map_err(|_| bad(k, "a boolean (b)"))? {
                out.flags |= bit;
            }
            Ok(())
        };
        match k.as_str() {
            "adopt" => flag(flags::ADOPT, &mut out)?,
            "force" => flag(flags::FORCE, &mut out)?,
            "system" => flag(flags::SYSTEM, &mut out)?,
            "timeout" => out.timeout = Duration::from_secs(u32::try_from(v).map_err(|_| bad(k, "seconds (u)"))?.into()),
            "checkpoint" => out.checkpoint = bool::try_from(v).map_err(|_| bad(k, "a boolean (b)"))?,
            _ => {
                return Err(ServiceError::new(
                    ErrorKind::InvalidArgs,
                    format!("unknown option '{k}' (known: adopt, force, system, timeout, checkpoint)"),
                ))
            }
        }
    }
    Ok(out)
}

/// The options of `ShareNat`: `bridge` (s), `subnet` (s), `persist` (b).
pub(super) fn share_options(options: &HashMap<String, OwnedValue>) -> Result<crate::verbs::ShareRequest, ServiceError> {
    let mut r = crate::verbs::ShareRequest {
        bridge: "virbr1".into(),
        subnet: None,
        persist: false,
        start: true,
        timeout: ACTIVATION_TIMEOUT,
        rollback_timeout: 20,
        force: false,
    };
    for (k, v) in options {
        let bad = |want: &str| ServiceError::new(ErrorKind::InvalidArgs, format!("option '{k}' must be {want}"));
        let text = || -> Result<String, ServiceError> {
            String::try_from(v.try_clone().map_err(zbus::Error::from)?).map_err(|_| bad("a string (s)"))
        };
        match k.as_str() {
            "bridge" => r.bridge = text()?,
            "subnet" => {
                r.subnet = Some(
                    crate::agent::subnet_address(&text()?).map_err(|e| ServiceError::new(ErrorKind::InvalidArgs, e))?,
                )
            }
            "persist" => r.persist = bool::try_from(v).map_err(|_| bad("a boolean (b)"))?,
            _ => {
                return Err(ServiceError::new(
                    ErrorKind::InvalidArgs,
                    format!("unknown option '{k}' (known: bridge, subnet, persist)"),
                ))
            }
        }
    }
    Ok(r)
}
