#!/usr/bin/python3
"""Read, in one module run, what a role decides on: packages, paths, files, units, commands.

Shared by the firewall, fail2ban and unattended_upgrades roles (meta dependency on node_probe).
It never changes anything."""

from __future__ import annotations

# Ansible module layout: DOCUMENTATION/RETURN come before the imports (E402), and the module
# code is not type-annotated (it is shipped as is by AnsiballZ).
# ruff: noqa: E402, ANN001, ANN201, ANN202

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
paths:
  description: Per path, whether it exists.
  type: dict
  returned: always
files:
  description:
    - Per file, C(exists), and for an existing one C(owner), C(group), C(mode) (C(0644)), and for
      a regular file C(checksum) (SHA-1, as the copy and template modules compare).
  type: dict
  returned: always
units:
  description: Per unit, C(enabled) (unit file state C(enabled)) and C(active) (C(active)).
  type: dict
  returned: always
commands:
  description: Per command, C(rc), C(stdout), C(stderr) and, when it could not run, C(msg).
  type: dict
  returned: always
"""

import grp
import hashlib
import os
import pwd
import stat

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


def file_state(path):
    try:
        info = os.lstat(path)
    except OSError:
        return {"exists": False}
    result = {
        "exists": True,
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "owner": _name(pwd.getpwuid, info.st_uid),
        "group": _name(grp.getgrgid, info.st_gid),
        "isreg": stat.S_ISREG(info.st_mode),
        "isdir": stat.S_ISDIR(info.st_mode),
    }
    if result["isreg"]:
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(65536), b""):
                digest.update(chunk)
        result["checksum"] = digest.hexdigest()
    return result


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def unit_states(module, units):
    states = {u: {"enabled": False, "active": False} for u in units}
    systemctl = module.get_bin_path("systemctl")
    if not units or not systemctl:
        return states
    for unit in units:
        # One query per unit keeps the answer tied to its unit (a few ms each).
        rc, out, _ = module.run_command(
            [systemctl, "show", "--property=UnitFileState,ActiveState", "--", unit]
        )
        if rc != 0:
            continue
        props = dict(line.partition("=")[::2] for line in out.splitlines())
        states[unit] = {
            "enabled": props.get("UnitFileState") == "enabled",
            "active": props.get("ActiveState") == "active",
        }
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
            "paths": {"type": "list", "elements": "path", "default": []},
            "files": {"type": "list", "elements": "path", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
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
        paths={path: os.path.lexists(path) for path in p["paths"]},
        files={path: file_state(path) for path in p["files"]},
        units=unit_states(module, p["units"]),
        commands=run_commands(module, p["commands"]),
    )


if __name__ == "__main__":
    main()
