//! Issue 16: the Ansible module `nmiface_apply` (integration/ansible/) on nmiface's contract,
//! run by ansible-core's `ansible-playbook` against localhost with the sandbox's bus.

use super::{ensure, text, R};
use crate::sandbox::Sandbox;
use crate::transactions::{diff, snapshot};
use std::path::PathBuf;
use std::process::Command;

/// The play around the tasks (localhost, the interpreter running ansible).
const HEADER: &str = r#"
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
"#;

/// The tasks whose results are checked together.
const PLAYBOOK: &str = r#"
    - name: first
      nmiface_apply: { src: "{{ doc }}", nmiface: "{{ nmiface }}" }
      register: first
    - name: second
      nmiface_apply: { src: "{{ doc }}", nmiface: "{{ nmiface }}" }
      register: second
    - name: check
      nmiface_apply: { content: "{{ changed_doc }}", nmiface: "{{ nmiface }}" }
      check_mode: true
      diff: true
      register: check
    - name: bad
      nmiface_apply: { src: "{{ bad }}", nmiface: "{{ nmiface }}" }
      ignore_errors: true
      register: r_bad
    - name: results
      copy:
        dest: "{{ results }}"
        content: "{{ {'first': first, 'second': second, 'check': check, 'bad': r_bad} | to_json }}"
"#;

/// Run on its own, so the host can be compared before and after.
const GAP: &str = r#"
    - name: gap
      nmiface_apply: { src: "{{ bond }}", nmiface: "{{ nmiface }}" }
      ignore_errors: true
      register: gap
    - name: results
      copy:
        dest: "{{ results }}"
        content: "{{ {'gap': gap} | to_json }}"
"#;

const BR: &str = "<interface type='bridge' name='br0'><protocol family='ipv4'><ip address='192.0.2.1' prefix='24'/></protocol><bridge stp='off'><interface type='ethernet' name='eth1'/></bridge></interface>";

pub fn playbook_on_the_apply_contract() -> R {
    let Ok(found) = Command::new("ansible-playbook").arg("--version").output() else {
        return Err("ansible-playbook is not installed (integration/install-deps.sh installs ansible-core)".into());
    };
    ensure(found.status.success(), || "ansible-playbook --version failed".into())?;
    let sb = Sandbox::up(false);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let play = sb.write("play.yml", &format!("{HEADER}{PLAYBOOK}"));
    let doc = sb.write("br0.xml", BR);
    let bad = sb.write("bad.xml", "<interface type='ethernet' name='eth0'>\n  <bogus/>\n</interface>\n");
    let bond = root.join("xml-samples/libvirt-bond-active-backup-miimon-ioctl.xml");
    let vars = serde_json::json!({
        "doc": doc, "bad": bad, "bond": bond, "nmiface": env!("CARGO_BIN_EXE_nmiface"),
        "changed_doc": BR.replace("192.0.2.1", "192.0.2.9"),
    });
    let play_gap = sb.write("gap.yml", &format!("{HEADER}{GAP}"));
    let results = sb.write("results.json", "");
    let ansible = |playbook: &str| -> Result<serde_json::Value, String> {
        let mut vars = vars.clone();
        vars["results"] = results.clone().into();
        let out = Command::new("ansible-playbook")
            .args(["-i", "localhost,", "-e", &vars.to_string(), playbook])
            .env("ANSIBLE_LIBRARY", root.join("integration/ansible/library"))
            .env("ANSIBLE_LOCALHOST_WARNING", "false")
            .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "false")
            .env("DBUS_SYSTEM_BUS_ADDRESS", sb.bus())
            .env("NMIFACE_RUNTIME_DIR", sb.runtime_dir())
            .output()
            .map_err(|e| e.to_string())?;
        let saved = std::fs::read(&results).map_err(|e| e.to_string())?;
        serde_json::from_slice(&saved)
            .map_err(|e| format!("the playbook's results ({e}): {}{}", text(&out.stdout), text(&out.stderr)))
    };
    let run = ansible(&play)?;
    let t = |name: &str| Ok::<_, String>(run[name].clone());
    let first = t("first")?;
    ensure(first["changed"] == true && first["failed"] != true, || format!("first run: {first}"))?;
    let second = t("second")?;
    ensure(second["changed"] == false && second["failed"] != true, || format!("second run: {second}"))?;
    let check = t("check")?;
    ensure(check["changed"] == true && check["diff"].to_string().contains("192.0.2.9"), || {
        format!("check mode with a new address: {check}")
    })?;
    let addrs = text(&sb.exec(&["ip", "-4", "-br", "addr", "show", "br0"]).stdout);
    ensure(addrs.contains("192.0.2.1/24") && !addrs.contains("192.0.2.9"), || {
        format!("check mode changed the host: {addrs}")
    })?;
    let bad = t("bad")?;
    ensure(bad["failed"] == true && bad["msg"].as_str().is_some_and(|m| m.contains("bad.xml:2:3")), || {
        format!("a bad document must fail with its location: {bad}")
    })?;
    let before = snapshot(&sb);
    let gaps = ansible(&play_gap)?;
    let gap = gaps["gap"].clone();
    ensure(gap["failed"] == true && gap["msg"].as_str().is_some_and(|m| m.contains("capability gap")), || {
        format!("a bond on this kernel must fail before anything changes: {gap}")
    })?;
    let after = snapshot(&sb);
    ensure(before == after, || format!("the refused bond changed the host:\n{}", diff(&before, &after)))
}
