#!/usr/bin/python3
"""Read, in one module run, what a role decides on: packages, paths, files, units, commands.

Every role's probe (firewall, fail2ban, unattended_upgrades, k3s); found through ansible.cfg's
`library` (molecule/base.yml sets the same paths). The probing itself is
module_utils/opsbook_probe.py, shared with the ssh role's ssh_node_state. It never changes
anything."""

from __future__ import annotations

# Ansible module layout: DOCUMENTATION/RETURN come before the imports (E402), and the module
# code is not type-annotated (it is shipped as is by AnsiballZ).
# ruff: noqa: E402, ANN201

DOCUMENTATION = r"""
---
module: node_probe
short_description: Read-only probe of a node - packages, paths, files, units, commands
description:
  - One module run instead of a task per question, so a run with nothing to do costs one
    round trip. Nothing on the host is changed; check mode runs it the same way.
  - The role acts on the answers only to skip work that is already done (a package that is
    installed, a file whose content, owner and mode are already the wanted ones, a unit that is
    enabled and active); anything else runs the usual task.
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
  paths:
    description: Paths whose existence to read.
    type: list
    elements: path
    default: []
  files:
    description: Files whose SHA-1 checksum, owner, group and mode to read.
    type: list
    elements: path
    default: []
  units:
    description: systemd units whose unit file state and active state to read.
    type: list
    elements: str
    default: []
  commands:
    description:
      - Read-only commands to run, C(name) to argv, all started at once. A command that is not
        installed gives C(rc) 127 and a C(msg).
    type: dict
    default: {}
  clock:
    description:
      - Read the clock's state too (systemd's NTPSynchronized, and whether this is a
        container, whose clock is the host's). The one time-sync check of the roles.
    type: bool
    default: false
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
paths:
  description: Per path, whether it exists.
  type: dict
  returned: always
files:
  description:
    - Per file, C(exists), and for an existing one C(owner), C(group), C(mode) (C(0644)),
      C(isreg), C(isdir), C(islnk) (links are not followed), and for a regular file C(checksum)
      (SHA-1, as the copy and template modules compare). The probed_template action takes
      such an answer as its C(probe).
  type: dict
  returned: always
units:
  description:
    - Per unit, C(enabled) and C(masked) (unit file state C(enabled), C(masked)) and C(active)
      (C(active)).
  type: dict
  returned: always
commands:
  description: Per command, C(rc), C(stdout), C(stderr) and, when it could not run, C(msg).
  type: dict
  returned: always
clock:
  description:
    - With I(clock), C(container) (bool), C(synchronized) (true, false, or null when
      timedatectl could not answer) and C(detail) (why not); else empty.
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.opsbook_probe import probe


def main():  # pragma: no cover - exercised through ansible (molecule and the lab)
    module = AnsibleModule(
        argument_spec={
            "run_id": {"type": "str", "default": ""},
            "packages": {"type": "list", "elements": "str", "default": []},
            "paths": {"type": "list", "elements": "path", "default": []},
            "files": {"type": "list", "elements": "path", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
            "commands": {"type": "dict", "default": {}},
            "clock": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    answer = probe(
        module.get_bin_path,
        packages=p["packages"],
        paths=p["paths"],
        files=p["files"],
        units=p["units"],
        commands=p["commands"],
        clock=p["clock"],
    )
    module.exit_json(changed=False, run_id=p["run_id"], **answer)


if __name__ == "__main__":
    main()
