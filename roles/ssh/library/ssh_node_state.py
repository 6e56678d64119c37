#!/usr/bin/python3
"""Read everything the ssh role needs to know about a node in one module run (read-only).

The commands and file states come from module_utils/opsbook_probe.py, node_probe's code."""

from __future__ import annotations

# Ansible module layout: DOCUMENTATION/RETURN come before the imports (E402), and the module
# code is not type-annotated (it is shipped as is by AnsiballZ; the behaviour is covered by the
# role's molecule scenarios and tests/ssh/).
# ruff: noqa: E402, ANN001, ANN201

DOCUMENTATION = r"""
---
module: ssh_node_state
short_description: Read-only probe of sshd, its units, host keys, UFW's state and the role's files
description:
  - One module run instead of a dozen read-only tasks. Runs the same commands those tasks ran
    (C(sshd -T), C(ssh -V), C(ssh -Q), C(id -Gn), C(systemctl show), C(ss -Htlnp),
    C(ufw status), C(ssh-keygen -l)), the independent ones in parallel, and
    reads the sshd configuration files, the login user's authorized keys and the state of the
    files the role writes. Changes nothing; always C(changed=false).
  - Fails when C(sshd -T) fails, when the login user does not exist, and (with
    I(check_authorized_keys)) when the login user's home directory cannot be entered.
options:
  login_user:
    description: The user the controller logs in as.
    type: str
    required: true
  sshd_binary:
    description: Path of sshd.
    type: path
    required: true
  config_file:
    description: sshd's main configuration file.
    type: path
    required: true
  config_dir:
    description: The directory sshd_config includes (C(*.conf)).
    type: path
    required: true
  own_config_files:
    description: The role's own sshd drop-ins, left out of the search for Port lines.
    type: list
    elements: path
    default: []
  socket_unit:
    description: The socket unit of a socket-activated sshd.
    type: str
    required: true
  exists:
    description: Paths whose existence (C(lstat)) to report, by name.
    type: dict
    default: {}
  files:
    description:
      - Paths whose state to report as node_probe does (module_utils/opsbook_probe.py
        file_state - C(exists), C(owner), C(group), C(mode), C(isreg), C(isdir), C(islnk),
        C(checksum)), the C(probe) the probed_template action takes.
    type: list
    elements: path
    default: []
  host_key_types:
    description: Host key types sshd should load (C(/etc/ssh/ssh_host_TYPE_key)).
    type: list
    elements: str
    default: []
  host_key_rsa_min_bits:
    description: RSA host keys below this size are reported weak.
    type: int
    default: 3072
  check_authorized_keys:
    description: Look for a public key of the login user in its AuthorizedKeysFile(s).
    type: bool
    default: true
"""

RETURN = r"""
login_home:
  description: Home directory of the login user (passwd database).
  type: str
login_groups:
  description: Groups of the login user (C(id -Gn)).
  type: list
openssh:
  description:
    - C(version) (C(ssh -V)), and C(kex), C(cipher), C(mac), C(key-sig) (C(ssh -Q), each
      comma-separated).
  type: dict
sshd_effective:
  description: Lines of C(sshd -T).
  type: list
socket:
  description: C(LoadState), C(UnitFileState), C(ActiveState), C(Listen) of the socket unit.
  type: dict
ss_lines:
  description: Lines of C(ss -Htlnp).
  type: list
foreign_port_files:
  description: sshd configuration files other than the role's with an uncommented Port line.
  type: list
listen_port_files:
  description: sshd configuration files with a ListenAddress line that names a port.
  type: list
include_present:
  description: Whether sshd_config includes the drop-in directory.
  type: bool
authorized_key_files:
  description: The login user's AuthorizedKeysFile(s) that hold a public key.
  type: list
host_keys:
  description: One C([path, bits, TYPE, verdict]) per host key file (verdict C(ok) or C(weak)).
  type: list
ufw:
  description:
    - C(rc) and C(stdout) of C(ufw status) (rc 127 without ufw).
  type: dict
exists:
  description: For each name of I(exists), whether the path exists.
  type: dict
files:
  description: For each path of I(files), its state (see I(files)).
  type: dict
"""

import glob
import os
import pwd
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.opsbook_probe import file_state, finish, start

# Every command gets this long at most; the probe never hangs a run.
# Same patterns as grep -E with [[:space:]] (bytes: \s is [ \t\n\r\f\v]).
PORT_RE = re.compile(rb"^\s*Port\s", re.M)
LISTEN_PORT_RE = re.compile(rb"^\s*ListenAddress\s+(\[[^]]*\]|[0-9.]+|[A-Za-z0-9.-]+):[0-9]+", re.M)
PUBKEY_RE = re.compile(
    rb"(^|\s)(ssh-(ed25519|rsa|dss)|ecdsa-sha2-[a-z0-9]+|sk-[a-z0-9-]+@openssh\.com)"
    rb"(-cert-v01@openssh\.com)? AAAA",
    re.M,
)
KEY_TYPE_RE = re.compile(r".*\(([A-Z0-9-]*)\)[^(]*$")


def read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def key_line(path, keygen, min_rsa_bits):
    """[PATH, BITS, TYPE, VERDICT] for one host key, from `ssh-keygen -l -f PATH`: the fields
    the role's shell probe printed (BITS 0 and TYPE UNKNOWN when ssh-keygen cannot read it;
    weak: DSA, or RSA below the minimum size)."""
    fields = keygen[1].split()
    bits = fields[0] if fields else ""
    match = KEY_TYPE_RE.match(" ".join([*fields, ""]))
    key_type = match.group(1) if match else ""
    small_rsa = key_type == "RSA" and bits.isdigit() and int(bits) < min_rsa_bits
    verdict = "weak" if key_type == "DSA" or small_rsa else "ok"
    return [path, bits or "0", key_type or "UNKNOWN", verdict]


def main():
    module = AnsibleModule(
        argument_spec={
            "login_user": {"type": "str", "required": True},
            "sshd_binary": {"type": "path", "required": True},
            "config_file": {"type": "path", "required": True},
            "config_dir": {"type": "path", "required": True},
            "own_config_files": {"type": "list", "elements": "path", "default": []},
            "socket_unit": {"type": "str", "required": True},
            "exists": {"type": "dict", "default": {}},
            "files": {"type": "list", "elements": "path", "default": []},
            "host_key_types": {"type": "list", "elements": "str", "default": []},
            "host_key_rsa_min_bits": {"type": "int", "default": 3072},
            "check_authorized_keys": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    user = p["login_user"]
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        module.fail_json(msg=f"the login user {user} is not in the passwd database")

    # The independent commands, all at once (ufw is a Python program and the slowest).
    ufw_bin = module.get_bin_path("ufw")
    procs = {
        "sshd": start([p["sshd_binary"], "-T"]),
        "version": start(["ssh", "-V"]),
        "groups": start(["id", "-Gn", user]),
        "socket": start(
            [
                *["systemctl", "show", p["socket_unit"]],
                *["-p", "LoadState", "-p", "UnitFileState", "-p", "ActiveState", "-p", "Listen"],
            ]
        ),
        "ss": start(["ss", "-Htlnp"]),
        "ufw": start([ufw_bin, "status"]) if ufw_bin else None,
    }
    for query in ("kex", "cipher", "mac", "key-sig"):
        procs[query] = start(["ssh", "-Q", query])
    # Host keys lying in /etc/ssh or configured by type: known before sshd -T answers.
    configured = [f"/etc/ssh/ssh_host_{t}_key" for t in p["host_key_types"]]
    keygen = {}
    for path in sorted(set(configured + glob.glob("/etc/ssh/ssh_host_*_key"))):
        if os.path.isfile(path):
            keygen[path] = start(["ssh-keygen", "-l", "-f", path])
    results = {name: finish(proc) for name, proc in procs.items()}

    rc, out, err = results["sshd"]
    if rc != 0:
        module.fail_json(
            msg=f"{p['sshd_binary']} -T failed: {err.strip() or out.strip()}",
            rc=rc,
            stdout=out,
            stderr=err,
        )
    effective = out.splitlines()
    # Keys named by HostKey that are not under a standard name.
    for path in sorted({line.split()[-1] for line in effective if line.startswith("hostkey ")}):
        if path not in keygen and os.path.isfile(path):
            keygen[path] = start(["ssh-keygen", "-l", "-f", path])
    host_keys = [
        key_line(path, finish(proc), p["host_key_rsa_min_bits"])
        for path, proc in sorted(keygen.items())
    ]

    rc, out, err = results["version"]
    openssh = {"version": (out + err).strip()}
    for query in ("kex", "cipher", "mac", "key-sig"):
        openssh[query] = ",".join(results[query][1].splitlines())

    socket = {}
    for line in results["socket"][1].splitlines():
        if "=" in line:
            name, value = line.split("=", 1)
            socket[name] = value

    # Port and ListenAddress lines in the main file and the drop-ins other than the role's own.
    config_dir = p["config_dir"]
    foreign, listen = [], []
    for path in [p["config_file"], *sorted(glob.glob(os.path.join(config_dir, "*.conf")))]:
        if not os.path.isfile(path) or path in p["own_config_files"]:
            continue
        data = read_bytes(path) or b""
        if PORT_RE.search(data):
            foreign.append(path)
        if LISTEN_PORT_RE.search(data):
            listen.append(path)
    # As grep -E did: the directory is part of the pattern.
    include_re = re.compile(rb"^\s*Include\s+" + config_dir.encode() + rb"/\*\.conf", re.M)
    include_present = bool(include_re.search(read_bytes(p["config_file"]) or b""))

    # The login user's authorized keys, as sshd finds them (AuthorizedKeysFile, %h %u %%).
    authorized = []
    if p["check_authorized_keys"]:
        lines = [line for line in effective if line.startswith("authorizedkeysfile ")]
        names = (lines[0] if lines else "authorizedkeysfile .ssh/authorized_keys").split()[1:]
        if not os.path.isdir(home):
            module.fail_json(
                msg=f"cannot enter {home}, the home directory of the login user {user}",
            )
        for name in names:
            path = name.replace("%h", home).replace("%u", user).replace("%%", "%")
            data = read_bytes(os.path.join(home, path))
            if data is not None and PUBKEY_RE.search(data):
                authorized.append(path)

    ufw_rc, ufw_out, _err = results["ufw"]
    ufw = {"rc": ufw_rc, "stdout": ufw_out.rstrip("\n")}

    module.exit_json(
        changed=False,
        login_home=home,
        login_groups=results["groups"][1].split(),
        openssh=openssh,
        sshd_effective=effective,
        socket=socket,
        ss_lines=[line for line in results["ss"][1].splitlines() if line],
        foreign_port_files=foreign,
        listen_port_files=listen,
        include_present=include_present,
        authorized_key_files=authorized,
        host_keys=host_keys,
        ufw=ufw,
        exists={name: os.path.lexists(path) for name, path in p["exists"].items()},
        files={path: file_state(path) for path in p["files"]},
    )


if __name__ == "__main__":
    main()
