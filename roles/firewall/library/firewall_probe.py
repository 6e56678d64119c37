#!/usr/bin/python3
"""Read, in one module run, what the firewall role needs from a node (changes nothing)."""

from __future__ import annotations

# Ansible module layout: DOCUMENTATION/RETURN come before the imports (E402), and the module
# code is not type-annotated (it is shipped as is by AnsiballZ).
# ruff: noqa: E402, ANN001, ANN201

DOCUMENTATION = r"""
---
module: firewall_probe
short_description: Read-only probe of the firewall role - packages and read-only commands
description:
  - One module run instead of a task per question, so a run with nothing to do costs one
    round trip. Nothing on the host is changed; check mode runs it the same way.
  - The role uses the answers to skip C(apt) when every package is installed, and reads the
    commands' output (the ports sshd listens on, C(ss -tlnp)).
options:
  run_id:
    description:
      - Returned as is. The role passes its C(role_uuid), so its tasks use only the answers of
        their own role run, never a previous play's.
    type: str
    default: ""
  packages:
    description: Debian packages whose install state to read (C(dpkg-query)).
    type: list
    elements: str
    default: []
  commands:
    description:
      - Read-only commands to run, C(name) to argv. A command that is not installed gives
        C(rc) 127 and a C(msg).
    type: dict
    default: {}
"""

RETURN = r"""
run_id:
  description: I(run_id), as given.
  type: str
  returned: always
packages:
  description: Per package, whether it is installed (C(install ok installed)).
  type: dict
  returned: always
missing_packages:
  description: The packages of I(packages) that are not installed.
  type: list
  returned: always
commands:
  description: Per command, C(rc), C(stdout), C(stderr) and, when it could not run, C(msg).
  type: dict
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule


def package_states(module, names):
    if not names:
        return {}
    states = dict.fromkeys(names, False)
    dpkg = module.get_bin_path("dpkg-query")
    if not dpkg:
        return states
    # rc 1 when some package is unknown to dpkg; the known ones are still printed.
    _, out, _ = module.run_command([dpkg, "-W", "-f", "${Package}\t${Status}\n", *names])
    for line in out.splitlines():
        name, _, status = line.partition("\t")
        name = name.split(":")[0]
        if name in states:
            states[name] = status.strip() == "install ok installed"
    return states


def run_commands(module, commands):
    results = {}
    for name, argv in commands.items():
        argv = [str(a) for a in argv]
        binary = module.get_bin_path(argv[0]) if "/" not in argv[0] else argv[0]
        if not binary or not os.path.exists(binary):
            results[name] = {"rc": 127, "stdout": "", "stderr": "", "msg": f"{argv[0]}: not found"}
            continue
        rc, out, err = module.run_command([binary, *argv[1:]])
        results[name] = {"rc": rc, "stdout": out, "stderr": err}
    return results


def main():  # pragma: no cover - exercised through ansible (molecule and the lab)
    module = AnsibleModule(
        argument_spec={
            "run_id": {"type": "str", "default": ""},
            "packages": {"type": "list", "elements": "str", "default": []},
            "commands": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    p = module.params
    packages = package_states(module, p["packages"])
    module.exit_json(
        changed=False,
        run_id=p["run_id"],
        packages=packages,
        missing_packages=[name for name in p["packages"] if not packages.get(name)],
        commands=run_commands(module, p["commands"]),
    )


if __name__ == "__main__":
    main()
