"""The os_baseline role's audit rule keys, evaluated without a lab: on a real node the role
loads the rules when the probe's `auditctl -l` lacks one of their keys, and fails when the
kernel still lacks one after loading. Lab containers never run auditd, so this is where the
key reading is shown to work, on both forms auditctl prints and on the rendered rules file."""

from __future__ import annotations

import re

import yaml
from ansible.template import trust_as_template

from role_filters import ROOT
from role_templates import render_template, render_text

ROLE = ROOT / "roles" / "os_baseline"
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
# the role's vars are templates of each other, as a play has them (trusted)
VARS = {
    name: trust_as_template(value) if isinstance(value, str) else value
    for name, value in yaml.safe_load((ROLE / "vars/main.yml").read_text()).items()
}
ALL_KEYS = ["identity", "scope", "sshd", "k3s", "modules", "user_emulation"]

# `auditctl -l` (audit 3.x): a path rule may be printed as a watch (-k) or a rule (key=)
LOADED_SOME = """-w /etc/passwd -p wa -k identity
-a always,exit -F arch=b64 -F path=/etc/sudoers -F perm=wa -F key=scope
-a always,exit -F arch=b64 -S init_module,finit_module,delete_module -F key=modules
"""


def evaluate(expression: str, audit_rules_stdout: str | None = None) -> object:
    variables = {**DEFAULTS, **VARS}
    if audit_rules_stdout is not None:
        variables["__os_baseline_commands"] = {"audit_rules": {"stdout": audit_rules_stdout}}
    else:
        variables["__os_baseline_commands"] = {}
    return yaml.safe_load(render_text("{{ " + expression + " | to_json }}", variables))


def test_the_keys_of_every_rule_are_read():
    assert evaluate("__os_baseline_auditd_keys") == ALL_KEYS


def test_keys_the_kernel_lacks_are_found_in_both_printed_forms():
    missing = evaluate("__os_baseline_auditd_keys_missing", LOADED_SOME)
    assert sorted(missing) == ["k3s", "sshd", "user_emulation"]


def test_before_auditd_is_installed_every_key_is_missing():
    assert sorted(evaluate("__os_baseline_auditd_keys_missing")) == sorted(ALL_KEYS)


def test_the_rendered_rules_carry_exactly_those_keys():
    rules = render_template(
        "os_baseline",
        "audit.rules.j2",
        {**DEFAULTS, **VARS, "ansible_managed": "Ansible managed"},
    )
    lines = [line for line in rules.splitlines() if not line.startswith("#")]
    found = re.findall(evaluate("__os_baseline_auditd_key_re"), "\n".join(lines))
    assert sorted(set(found)) == sorted(ALL_KEYS)
