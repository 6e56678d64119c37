"""The ssh role's preflight: from what ssh_node_state read, the move's ports, the host keys to
replace, the algorithms to offer and the settings that would lock the login user out."""

from __future__ import annotations

import re
from typing import Any

OPENSSH_RE = re.compile(r"OpenSSH_[^ ,]+")
SOCKET_PORT_RE = re.compile(r":([0-9]+) \(Stream\)")
KEYS_ALTERNATIVE_RE = re.compile(
    r"^(authorizedkeyscommand|trustedusercakeys|authorizedprincipalscommand) (?!none$)"
)
DEFAULT_AUTHORIZED_KEYS = "authorizedkeysfile .ssh/authorized_keys"


def _login_user(login_output: list[str]) -> str:
    """The last line `id -un` printed through raw (a login shell may print more; a pty ends
    lines with \\r)."""
    lines = [line.strip() for line in login_output if line.strip()]
    return lines[-1] if lines else ""


def _offered(wanted: list[str], known: str) -> list[str]:
    """The wanted algorithms this OpenSSH knows (`ssh -Q`, comma-separated), in wanted order."""
    have = known.split(",")
    return [name for name in wanted if name in have]


def _ss_port(line: str) -> int:
    """The local port of an `ss -Htlnp` line (0.0.0.0:22, [::]:22, *:22)."""
    return int(line.split()[3].rsplit(":", 1)[-1])


def _unique(values: list[int]) -> list[int]:
    return list(dict.fromkeys(values))


def _allow_users_match(user: str, patterns: list[str]) -> bool:
    """AllowUsers patterns are USER or USER@HOST with * and ? wildcards (sshd's match.c; no
    character classes); only USER matters here."""
    for pattern in patterns:
        regex = re.escape(pattern.split("@", 1)[0]).replace(r"\*", ".*").replace(r"\?", ".")
        if re.fullmatch(regex, user):
            return True
    return False


def _socket_mode(unit: dict[str, str]) -> bool:
    """sshd is socket-activated: the socket unit is loaded, and enabled or running."""
    return unit.get("LoadState", "") == "loaded" and (
        unit.get("UnitFileState", "") in ("enabled", "enabled-runtime")
        or unit.get("ActiveState", "") == "active"
    )


def _keys(state: dict[str, Any], types: list[str]) -> dict[str, Any]:
    """Host keys: state's [PATH, BITS, TYPE, VERDICT] per key file; weak is DSA, or RSA below
    the minimum. To create: the configured keys and every weak RSA key wherever sshd loads it
    from, unless an ok key is there already (ssh-keygen's `creates` would skip those)."""
    lines = state["host_keys"]
    configured = [f"/etc/ssh/ssh_host_{t}_key" for t in types]
    weak_rsa = [k[0] for k in lines if k[3] == "weak" and k[2] == "RSA"]
    ok = {k[0] for k in lines if k[3] == "ok"}
    candidates = [[path, t] for path, t in zip(configured, types, strict=True)]
    candidates += [[path, "rsa"] for path in weak_rsa]
    return {
        "weak_keys": [k[0] for k in lines if k[3] == "weak"],
        "dsa_keys": [k[0] for k in lines if k[2] == "DSA"],
        "wanted_keys": configured,
        "keys_to_create": [c for c in candidates if c[0] not in ok],
    }


def _ports(state: dict[str, Any], socket_mode: bool, s: dict[str, Any]) -> dict[str, Any]:
    """The ports sshd uses now (socket-activated: the socket's, sshd's own Port is ignored;
    plus whatever a running sshd listens on) and the move's old and transition ports."""
    ss_lines = state["ss_lines"]
    socket_ports = [int(p) for p in SOCKET_PORT_RE.findall(state["socket"].get("Listen", ""))]
    config_ports = [
        int(line.split()[-1]) for line in state["sshd_effective"] if line.startswith("port ")
    ]
    live = _unique([_ss_port(line) for line in ss_lines if '"sshd"' in line])
    current = sorted(set((socket_ports if socket_mode else config_ports) + live))
    port, move = s["port"], s["move"]
    # Programs other than sshd (and, socket-activated, systemd for it) on the wanted port.
    users = [
        line
        for line in ss_lines
        if f":{port} " in line
        and '"sshd"' not in line
        and not (socket_mode and '"systemd",pid=1,' in line)
    ]
    return {
        "new_port_users": users,
        "old_ports": sorted(set(current) - {port}) if move else [],
        "transition_ports": sorted(set(current) | {port}) if move else [],
    }


def _refusals(plan: dict[str, Any], state: dict[str, Any], s: dict[str, Any]) -> list[str]:
    """Why the run must stop before it changes anything (the first one is reported)."""
    out = []
    user = plan["login_user"]
    if not plan["include_present"]:
        out.append(
            f"{s['config_file']} does not include {s['config_dir']}/*.conf, where this role"
            f' writes its settings; add "Include {s["config_dir"]}/*.conf" at its top.'
        )
    if plan["listen_port_files"] and s["move"]:
        out.append(
            f"ListenAddress lines with an explicit port in {', '.join(plan['listen_port_files'])}"
            " would keep sshd on that port; remove the port from them (the role sets the ports"
            " with Port lines)."
        )
    if plan["new_port_users"] and s["move"]:
        out.append(
            f"ssh_port {s['port']} is already taken by another program:"
            f" {'; '.join(plan['new_port_users'])}."
        )
    if plan["permit_root_login"] == "no" and user == "root":
        out.append(
            'ssh_permit_root_login is "no" but the controller logs in as root: that would lock'
            " it out."
        )
    algorithms = ("kex", "ciphers", "macs", "host_key_algorithms")
    if not all(plan[name] for name in algorithms):
        out.append(
            f"none of the configured algorithms is known to {plan['openssh_version']} (kex"
            f" {plan['kex']}, ciphers {plan['ciphers']}, macs {plan['macs']}, host key"
            f" algorithms {plan['host_key_algorithms']})."
        )
    no_key = not state["authorized_key_files"] and not plan["keys_alternative"]
    if s["hardening"] and not s["password_authentication"] and no_key:
        out.append(
            f"ssh_password_authentication is false, but {user} has no public key in"
            f" {' or '.join(plan['authorized_keys_files'])} (home {plan['login_home']}) and"
            " sshd has no AuthorizedKeysCommand or TrustedUserCAKeys. Disabling passwords"
            f" now would lock {user} out: install a key first (ssh-copy-id) or set"
            " ssh_password_authentication: true."
        )
    users, groups = s["allow_users"], s["allow_groups"]
    if s["hardening"] and (users or groups):
        users_ok = not users or _allow_users_match(user, users)
        groups_ok = not groups or bool(set(groups) & set(plan["login_groups"]))
        if not (users_ok and groups_ok):
            out.append(
                f"the login user {user} (groups {', '.join(plan['login_groups'])}) would be"
                f" refused by AllowUsers {users} / AllowGroups {groups}; add it, or the next"
                " connection is locked out."
            )
    return out


def ssh_preflight(
    state: dict[str, Any], login_output: list[str], settings: dict[str, Any]
) -> dict[str, Any]:
    """The preflight's plan from ssh_node_state's answer, `id -un`'s output and the role's
    settings (port, move, hardening, password_authentication, fail2ban, check_mode,
    connection_port, permit_root_login, kex, ciphers, macs, host_key_algorithms,
    host_key_types, allow_users, allow_groups, config_file, config_dir)."""
    s = settings
    user = _login_user(login_output)
    info = state["openssh"]
    effective = state["sshd_effective"]
    exists = state["exists"]
    socket_mode = _socket_mode(state["socket"])
    keys_file = next((x for x in effective if x.startswith("authorizedkeysfile ")), None)
    version = OPENSSH_RE.search(info["version"])
    plan: dict[str, Any] = {
        "login_user": user,
        "login_home": state["login_home"],
        "login_groups": state["login_groups"],
        "openssh_version": version.group(0) if version else info["version"],
        "kex": _offered(s["kex"], info["kex"]),
        "ciphers": _offered(s["ciphers"], info["cipher"]),
        "macs": _offered(s["macs"], info["mac"]),
        "host_key_algorithms": _offered(s["host_key_algorithms"], info["key-sig"]),
        "socket_mode": socket_mode,
        "foreign_port_files": state["foreign_port_files"],
        "listen_port_files": state["listen_port_files"],
        "include_present": state["include_present"],
        "authorized_keys_files": (keys_file or DEFAULT_AUTHORIZED_KEYS).split()[1:],
        "keys_alternative": [x for x in effective if KEYS_ALTERNATIVE_RE.match(x)],
        "ufw_active": state["ufw"]["rc"] == 0 and "Status: active" in state["ufw"]["stdout"],
        "fail2ban_installed": bool(exists["fail2ban_client"]),
        # First hardening: the host key algorithms offered may change (no more ECDSA).
        "first_hardening": s["hardening"] and not exists["hardening_file"],
        "conn_port": int(s["connection_port"]),
        "permit_root_login": s["permit_root_login"]
        if s["permit_root_login"] != "auto"
        else ("prohibit-password" if user == "root" else "no"),
        # The drop-in this role wrote before the fail2ban role owned the jail's ports is still
        # there: move.yml has the fail2ban role write the jail for ssh_port (which removes it).
        "fail2ban_pending": bool(
            s["fail2ban"]
            and not s["check_mode"]
            and exists["fail2ban_client"]
            and exists["fail2ban_legacy_dropin"]
        ),
    }
    plan.update(_ports(state, socket_mode, s))
    plan.update(_keys(state, s["host_key_types"]))
    plan["refusals"] = _refusals(plan, state, s)
    return plan


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"ssh_preflight": ssh_preflight, "ssh_login_user": _login_user}
