"""Filters for the os_baseline role: what the node's probe read (sysctl values, login.defs,
password aging) turned into what the role has to do."""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError


def _text(value: Any) -> str:
    """A sysctl value as the kernel prints it: words separated by one space (tabs in ranges)."""
    return " ".join(str(value).split())


def sysctl_values(stdout: str) -> dict[str, str]:
    """`sysctl -e KEY...` output (`key = value` lines) as {key: value}."""
    out = {}
    for line in (stdout or "").splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            out[key.strip()] = _text(value)
    return out


def sysctl_plan(
    wanted: dict[str, Any], current: dict[str, str], in_container: bool, namespaced: list[str]
) -> dict[str, Any]:
    """What to do with the wanted settings on this node.

    `live`: the keys that take effect now (all of them on a real node; in a container only
    the keys of its own network namespace, `namespaced` prefixes); `boot`: the others (written
    to the file, in force from the next boot of a real node); `differ`: the live keys whose
    running value is not the wanted one (missing keys included) as {key: [running, wanted]};
    `set`: the `key=value` arguments of `sysctl -w` for those.
    """
    for key in wanted or {}:
        if not re.fullmatch(r"[a-z0-9_]+(\.[A-Za-z0-9_-]+)+", str(key)):
            raise AnsibleFilterError(f"os_baseline: {key!r} is not a sysctl key")
    live = sorted(
        k for k in wanted or {} if not in_container or any(k.startswith(p) for p in namespaced)
    )
    differ = {
        k: [current.get(k), _text(wanted[k])] for k in live if current.get(k) != _text(wanted[k])
    }
    return {
        "live": live,
        "boot": sorted(set(wanted or {}) - set(live)),
        "differ": differ,
        "set": [f"{k}={v[1]}" for k, v in differ.items()],
    }


def login_defs(stdout: str) -> dict[str, str]:
    """`KEY value` lines of login.defs (comments and blank lines already left out)."""
    out = {}
    for line in (stdout or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            out[parts[0]] = parts[1]
    return out


def aging_to_fix(stdout: str, min_days: int, max_days: int, warn: int) -> list[str]:
    """The accounts (`user:min:max:warn` lines of the ones with a password hash in
    /etc/shadow) whose password aging is not the wanted one."""
    users = []
    for line in (stdout or "").splitlines():
        fields = line.split(":")
        if len(fields) != 4:
            continue
        if fields[1:] != [str(int(min_days)), str(int(max_days)), str(int(warn))]:
            users.append(fields[0])
    return sorted(users)


def time_daemon_conflicts(packages: dict[str, bool], chosen: str, daemons: list[str]) -> list[str]:
    """The installed time daemons that installing `chosen` would remove (Debian's conflict with
    each other). systemd-timesyncd, the distribution's default, may give way; none when
    `chosen` is already installed."""
    installed = sorted(name for name, present in (packages or {}).items() if present)
    if chosen in installed:
        return []
    return [n for n in installed if n in daemons and n not in (chosen, "systemd-timesyncd")]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "os_baseline_sysctl_values": sysctl_values,
            "os_baseline_sysctl_plan": sysctl_plan,
            "os_baseline_login_defs": login_defs,
            "os_baseline_aging_to_fix": aging_to_fix,
            "os_baseline_time_daemon_conflicts": time_daemon_conflicts,
        }
