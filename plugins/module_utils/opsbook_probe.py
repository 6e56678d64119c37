"""The one read-only probe of opsbook's modules: file states, package and unit states, and
read-only commands run side by side. Used by node_probe (every role's probe) and by the ssh
role's ssh_node_state; never changes anything."""

# Module code shipped by AnsiballZ (not type-annotated; covered by
# tests/test_probed_template.py and every role's molecule scenario).
# ruff: noqa: ANN001, ANN201, ANN202
from __future__ import annotations

import grp
import hashlib
import os
import pwd
import stat
import subprocess

TIMEOUT = 60


def start(argv):
    """Start a read-only command (LC_ALL=C); the Popen, or None when it cannot start."""
    env = dict(os.environ, LC_ALL="C")
    try:
        return subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError:
        return None


def finish(proc):
    """(rc, stdout, stderr) of a started command; rc 127 when it could not start, 124 when it
    ran longer than TIMEOUT seconds."""
    if proc is None:
        return 127, "", "not found"
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return 124, out.decode(errors="replace"), "timed out"
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def run_commands(commands, which):
    """Per name, {rc, stdout, stderr} of each argv, all started at once. `which` finds a
    program named without a slash (AnsibleModule.get_bin_path: PATH and the sbin dirs); one
    that is not installed gives rc 127 and a msg."""
    procs, results = {}, {}
    for name, argv in commands.items():
        argv = [str(a) for a in argv]
        binary = which(argv[0]) if "/" not in argv[0] else argv[0]
        if not binary or not os.path.exists(binary):
            results[name] = {"rc": 127, "stdout": "", "stderr": "", "msg": f"{argv[0]}: not found"}
            continue
        procs[name] = start([binary, *argv[1:]])
    for name, proc in procs.items():
        rc, out, err = finish(proc)
        results[name] = {"rc": rc, "stdout": out, "stderr": err}
    return {name: results[name] for name in commands}


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def file_state(path):
    """What the file and template modules compare, without following links: exists, and for
    an existing path owner, group, mode (0644), isreg, isdir, islnk, and for a regular file
    its SHA-1 checksum (Ansible's)."""
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
        "islnk": stat.S_ISLNK(info.st_mode),
    }
    if result["isreg"]:
        digest = hashlib.sha1()
        try:
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(65536), b""):
                    digest.update(chunk)
        except OSError:
            return dict(result, isreg=False, unreadable=True)
        result["checksum"] = digest.hexdigest()
    return result


def package_states(names, which):
    """Per Debian package, whether dpkg says "install ok installed"."""
    states = dict.fromkeys(names, False)
    dpkg = which("dpkg-query")
    if not names or not dpkg:
        return states
    # rc 1 when some package is unknown to dpkg; the known ones are still printed.
    _rc, out, _err = finish(start([dpkg, "-W", "-f", "${Package}\t${Status}\n", *names]))
    for line in out.splitlines():
        name, _, status = line.partition("\t")
        name = name.split(":")[0]
        if name in states:
            states[name] = status.strip() == "install ok installed"
    return states


def unit_states(units, which):
    """Per systemd unit, enabled and masked (unit file state) and active; one query per unit
    keeps each answer tied to its unit."""
    systemctl = which("systemctl")
    procs = {
        unit: start([systemctl, "show", "--property=UnitFileState,ActiveState", "--", unit])
        if systemctl
        else None
        for unit in units
    }
    states = {}
    for unit, proc in procs.items():
        rc, out, _err = finish(proc)
        props = dict(line.partition("=")[::2] for line in out.splitlines()) if rc == 0 else {}
        states[unit] = {
            "enabled": props.get("UnitFileState") == "enabled",
            "masked": props.get("UnitFileState") == "masked",
            "active": props.get("ActiveState") == "active",
        }
    return states


# The clock check of every role (os_baseline's time sync, k3s's preflight): systemd's
# NTPSynchronized, which timesyncd, chrony and ntpd all set (the kernel's sync state), and
# whether this is a container, whose clock is the host's.
CLOCK_COMMANDS = {
    "container": ["systemd-detect-virt", "--container"],
    "synchronized": ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
}


def clock_state(which):
    """{container, synchronized, detail}: synchronized is True or False, or None when
    timedatectl could not answer (detail says why)."""
    out = run_commands(CLOCK_COMMANDS, which)
    virt, sync = out["container"], out["synchronized"]
    container = virt["rc"] == 0 and virt["stdout"].strip() not in ("", "none")
    value = sync["stdout"].strip()
    synchronized = {"yes": True, "no": False}.get(value) if sync["rc"] == 0 else None
    detail = "" if synchronized is not None else (sync.get("msg") or sync["stderr"].strip())
    return {"container": container, "synchronized": synchronized, "detail": detail}


def probe(which, packages=(), paths=(), files=(), units=(), commands=None, clock=False):
    """The answer of node_probe: packages, missing_packages, paths, files, units, commands,
    and with `clock` the clock state. `which` finds programs (AnsibleModule.get_bin_path)."""
    states = package_states(list(packages), which)
    return {
        "clock": clock_state(which) if clock else {},
        "packages": states,
        "missing_packages": [name for name in packages if not states.get(name)],
        "paths": {path: os.path.lexists(path) for path in paths},
        "files": {path: file_state(path) for path in files},
        "units": unit_states(list(units), which),
        "commands": run_commands(dict(commands or {}), which),
    }
