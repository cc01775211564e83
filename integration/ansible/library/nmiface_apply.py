#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module nmiface_apply: host interfaces from libvirt interface XML, through nmiface.

It runs the nmiface binary on the managed host; nmiface compares what it would write with what
NetworkManager holds, so `changed` is nmiface's own verdict (`"changed"` in its JSON), check
mode is `nmiface apply --check`, and diff mode shows the NetworkManager settings that change.
"""

DOCUMENTATION = r"""
module: nmiface_apply
short_description: Apply libvirt interface XML to a host's NetworkManager with nmiface
description:
  - Defines and starts the interfaces of an interface XML document (libvirt's format, the 2009
    draft, or an <interfaces> host file) as one step for the host, with nmiface.
  - Idempotent: nothing is written or re-activated when NetworkManager already holds the settings.
  - Capability gaps and findings come back as warnings; refusals (bad input, a gap that would make
    the result wrong, a NetworkManager refusal) fail with nmiface's message, and nothing changes.
options:
  src:
    description: Path of the XML document on the managed host. One of src or content.
    type: path
  content:
    description: The XML document itself. One of src or content.
    type: str
  state:
    description: present applies the document; absent undefines its interfaces (only nmiface's).
    type: str
    choices: [present, absent]
    default: present
  adopt:
    description: Take over conflicting profiles nmiface did not create (updated in place).
    type: bool
    default: false
  nmiface:
    description: The nmiface binary.
    type: path
    default: nmiface
supports_check_mode: true
"""

EXAMPLES = r"""
- name: Bridge for the VMs
  nmiface_apply:
    src: /etc/nmiface/br0.xml
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule


def run(module, args, data=None):
    rc, out, err = module.run_command([module.params["nmiface"]] + args, data=data, binary_data=True)
    return rc, out, err


def findings_warnings(module, report):
    for f in report.get("findings", []):
        if f.get("severity") != "info":
            module.warn("%s: %s: %s" % (f.get("severity"), f.get("path"), f.get("message")))


def diff_text(profiles):
    before, after = [], []
    for p in profiles:
        if p["action"] == "unchanged":
            continue
        head = "[%s] %s" % (p["profile"], p["action"])
        before.append(head)
        after.append(head)
        for c in p.get("changes", []):
            if c.get("before") is not None:
                before.append("%s = %s" % (c["property"], json.dumps(c["before"])))
            after.append("%s = %s" % (c["property"], json.dumps(c["after"])))
    return {"before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n"}


def interface_names(module, path):
    rc, out, err = run(module, ["translate", path])
    if rc == 2:
        module.fail_json(msg=err.strip(), rc=rc)
    doc = json.loads(out)
    return [i["interface"] for d in doc["documents"] for i in d["interfaces"]]


def absent(module, path):
    names = interface_names(module, path)
    rc, out, err = run(module, ["list", "--all", "--json"])
    if rc != 0:
        module.fail_json(msg=err.strip(), rc=rc)
    defined = {l["name"] for l in json.loads(out) if l.get("nmiface")}
    gone = [n for n in names if n in defined]
    if gone and not module.check_mode:
        for name in gone:
            rc, out, err = run(module, ["undefine", name, "--json"])
            if rc != 0:
                module.fail_json(msg=err.strip(), rc=rc, undefined=gone)
    module.exit_json(changed=bool(gone), undefined=gone)


def error_kind(out):
    """The kind of a failed command (`NotFound`, `ActivationFailed`, ...) from its --json output."""
    try:
        return json.loads(out)["error"]["kind"]
    except (ValueError, KeyError, TypeError):
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path"),
            content=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            adopt=dict(type="bool", default=False),
            nmiface=dict(type="path", default="nmiface"),
        ),
        mutually_exclusive=[["src", "content"]],
        required_one_of=[["src", "content"]],
        supports_check_mode=True,
    )
    path = module.params["src"]
    scratch = None
    if module.params["content"] is not None:
        fd, scratch = tempfile.mkstemp(suffix=".xml")
        with os.fdopen(fd, "w") as f:
            f.write(module.params["content"])
        path = scratch
    try:
        if module.params["state"] == "absent":
            absent(module, path)
        adopt = ["--adopt"] if module.params["adopt"] else []
        if module.check_mode:
            rc, out, err = run(module, ["apply", "--check", "--json"] + adopt + [path])
            if rc == 2:
                module.fail_json(msg=err.strip(), rc=rc)
            plan = json.loads(out)
            result = dict(changed=plan["changed"], profiles=plan["profiles"])
            if module._diff:
                result["diff"] = diff_text(plan["profiles"])
            module.exit_json(**result)
        if module._diff:
            rc, out, err = run(module, ["apply", "--check", "--json"] + adopt + [path])
            diff = diff_text(json.loads(out)["profiles"]) if rc != 2 else None
        rc, out, err = run(module, ["apply", "--json"] + adopt + [path])
        if rc == 2:
            # The verb's verdict and its kind (the session service's error name), as nmiface
            # printed them: nothing is decided here.
            module.fail_json(msg=err.strip(), rc=rc, kind=error_kind(out))
        report = json.loads(out)
        findings_warnings(module, report)
        result = dict(changed=report["changed"], started=report["started"], defined=report["defined"])
        if module._diff and diff is not None:
            result["diff"] = diff
        module.exit_json(**result)
    finally:
        if scratch:
            os.unlink(scratch)


if __name__ == "__main__":
    main()
