//! `apply --check` as a person reads it: values in words (`bridge.stp: no → yes`), the stored
//! XML as a line diff, and what each interface would go through. `--json` keeps the typed form
//! (the Ansible module reads it).

use super::{say, say_json, Outcome};
use nmiface::agent::ProfileDiff;
use nmiface::nm::compare::{reapplicable, Change};
use nmiface::nm::{user_key, Value};

/// Prints the plan; `Outcome::Pending` when anything would change.
pub fn print_diff(diffs: &[ProfileDiff], json: bool) -> anyhow::Result<Outcome> {
    let changed = diffs.iter().any(|d| d.action != "unchanged");
    let outcome = if changed { Outcome::Pending } else { Outcome::Clean };
    if json {
        say_json(&serde_json::json!({"changed": changed, "profiles": diffs}));
        return Ok(outcome);
    }
    if !changed {
        say("Nothing to do: every profile already holds these settings");
        return Ok(outcome);
    }
    let mut interfaces: Vec<&str> = diffs.iter().map(|d| d.interface.as_str()).collect();
    interfaces.dedup();
    for iface in interfaces {
        let mine: Vec<&ProfileDiff> = diffs.iter().filter(|d| d.interface == iface).collect();
        for d in mine.iter().filter(|d| d.action != "unchanged") {
            say(&format!("{} profile '{}' (interface {})", d.action, d.profile, d.interface));
            for c in &d.changes {
                for line in change_lines(c, d.action) {
                    say(&format!("  {line}"));
                }
            }
        }
        if let Some(what) = what_happens(iface, &mine) {
            say(&format!("=> {what}"));
        }
    }
    Ok(outcome)
}

/// What `apply` would do to the interface's device, by the same rule `apply` follows: one
/// update of its own profile in settings NetworkManager re-applies in place keeps the link up;
/// anything else re-activates it.
fn what_happens(iface: &str, diffs: &[&ProfileDiff]) -> Option<String> {
    let changed: Vec<&&ProfileDiff> = diffs.iter().filter(|d| d.action != "unchanged").collect();
    if changed.is_empty() {
        return None;
    }
    if changed.iter().all(|d| d.action == "delete") && diffs.iter().all(|d| d.action == "delete") {
        return Some(format!("{iface} would be deleted"));
    }
    if changed.iter().any(|d| d.action == "add" && !d.port) {
        return Some(format!("{iface} would be defined and started"));
    }
    Some(match changed.as_slice() {
        [d] if d.action == "update" && !d.port && reapplicable(&d.changes) => {
            format!("{iface} would be updated in place, its link kept up (started if it is not running)")
        }
        _ => format!("{iface} would be re-activated: its link goes down briefly (started if it is not running)"),
    })
}

/// One property's change as lines: `setting.property: before → after`; `user.data` key by
/// key, nmiface's stored XML as a line diff.
fn change_lines(c: &Change, action: &str) -> Vec<String> {
    let show = |v: Option<&Value>, absent: &str| v.map(Value::plain).unwrap_or_else(|| absent.to_string());
    if c.property == "user.data" {
        return user_data_lines(c.before.as_ref(), c.after.as_ref());
    }
    match (action, &c.before, &c.after) {
        ("add", _, Some(a)) => vec![format!("{}: {}", c.property, a.plain())],
        (_, b, a) => vec![format!(
            "{}: {} → {}",
            c.property,
            show(b.as_ref(), "(not set)"),
            show(a.as_ref(), "(NetworkManager's default)")
        )],
    }
}

fn user_data_lines(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let empty = Default::default();
    let b = before.and_then(Value::as_str_dict).unwrap_or(&empty);
    let a = after.and_then(Value::as_str_dict).unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        let (old, new) = (b.get(k), a.get(k));
        if old == new {
            continue;
        }
        if k == user_key::XML {
            out.push(format!("user.data {k} (the XML nmiface keeps):"));
            out.extend(line_diff(old.map_or("", String::as_str), new.map_or("", String::as_str)));
            continue;
        }
        let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(not set)".into());
        out.push(format!("user.data {k}: {} → {}", show(old), show(new)));
    }
    out
}

/// A line diff of two small texts (longest common subsequence): `- old`, `+ new`, and the
/// lines both have, indented, so the change is seen in its place.
fn line_diff(old: &str, new: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("    {}", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            out.push(format!("  + {}", b[j]));
            j += 1;
        } else {
            out.push(format!("  - {}", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 24, item 9.
    #[test]
    fn changes_read_as_words_and_the_xml_as_a_diff() {
        let c =
            Change { property: "bridge.stp".into(), before: Some(Value::Bool(false)), after: Some(Value::Bool(true)) };
        assert_eq!(change_lines(&c, "update"), ["bridge.stp: no → yes"]);
        let xml = |stp: &str| {
            let x = format!("<interface type='bridge' name='br0'>\n  <bridge stp='{stp}'/>\n</interface>");
            Value::StrDict([(user_key::XML.to_string(), x)].into())
        };
        let c = Change { property: "user.data".into(), before: Some(xml("off")), after: Some(xml("on")) };
        assert_eq!(
            change_lines(&c, "update"),
            [
                "user.data nmiface.xml (the XML nmiface keeps):",
                "    <interface type='bridge' name='br0'>",
                "  -   <bridge stp='off'/>",
                "  +   <bridge stp='on'/>",
                "    </interface>",
            ]
        );
        let d = ProfileDiff {
            profile: "br0".into(),
            interface: "br0".into(),
            action: "update",
            changes: vec![Change { property: "bridge.stp".into(), before: None, after: Some(Value::Bool(false)) }],
            port: false,
        };
        assert!(what_happens("br0", &[&d]).unwrap().contains("re-activated"));
    }
}
