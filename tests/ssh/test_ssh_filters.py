"""The ssh role's preflight filter (roles/ssh/filter_plugins/ssh.py) on ssh_node_state answers
shaped like a Debian 12 lab node's (the lab tests run the same filter on real nodes)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from role_filters import load_filters

f = load_filters("ssh")

KEX = "sntrup761x25519-sha512@openssh.com,curve25519-sha256,diffie-hellman-group16-sha512"
SS_SSHD_22 = 'LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=310,fd=3))'
SS_SSHD_22_V6 = 'LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=310,fd=4))'


def state(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "login_home": "/home/opsbook",
        "login_groups": ["opsbook", "sudo"],
        "openssh": {
            "version": "OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024",
            "kex": KEX,
            "cipher": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com",
            "mac": "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com",
            "key-sig": "ssh-ed25519,rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256",
        },
        "sshd_effective": ["port 22", "authorizedkeysfile .ssh/authorized_keys"],
        "socket": {
            "LoadState": "loaded",
            "UnitFileState": "disabled",
            "ActiveState": "inactive",
            "Listen": "",
        },
        "ss_lines": [SS_SSHD_22, SS_SSHD_22_V6],
        "foreign_port_files": [],
        "listen_port_files": [],
        "include_present": True,
        "authorized_key_files": [".ssh/authorized_keys"],
        "host_keys": [
            ["/etc/ssh/ssh_host_ed25519_key", 256, "ED25519", "ok"],
            ["/etc/ssh/ssh_host_rsa_key", 4096, "RSA", "ok"],
        ],
        "ufw": {"rc": 0, "stdout": "Status: active"},
        "exists": {
            "fail2ban_client": True,
            "fail2ban_legacy_dropin": False,
            "hardening_file": True,
        },
        "files": {},
    }
    base.update(changes)
    return base


SETTINGS: dict[str, Any] = {
    "port": 2222,
    "move": True,
    "hardening": True,
    "password_authentication": False,
    "fail2ban": True,
    "check_mode": False,
    "connection_port": 22,
    "permit_root_login": "auto",
    "kex": ["sntrup761x25519-sha512@openssh.com", "curve25519-sha256", "mlkem768x25519-sha256"],
    "ciphers": ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com"],
    "macs": ["hmac-sha2-512-etm@openssh.com"],
    "host_key_algorithms": ["ssh-ed25519", "rsa-sha2-512"],
    "host_key_types": ["ed25519", "rsa"],
    "allow_users": [],
    "allow_groups": [],
    "config_file": "/etc/ssh/sshd_config",
    "config_dir": "/etc/ssh/sshd_config.d",
}


def plan(st: dict[str, Any] | None = None, login: list[str] | None = None,
         **settings: Any) -> dict[str, Any]:  # fmt: skip
    return f.ssh_preflight(st or state(), login or ["opsbook"], dict(SETTINGS, **settings))


def test_a_plain_node_moves_from_22_to_the_new_port():
    p = plan()
    assert p["old_ports"] == [22]
    assert p["transition_ports"] == [22, 2222]
    assert p["socket_mode"] is False
    assert p["refusals"] == []
    assert p["ufw_active"] is True
    assert p["conn_port"] == 22


def test_the_move_switched_off_has_no_ports():
    p = plan(move=False)
    assert (p["old_ports"], p["transition_ports"]) == ([], [])


def test_a_moved_node_has_no_old_port():
    st = state(sshd_effective=["port 2222"], ss_lines=[SS_SSHD_22.replace(":22 ", ":2222 ")])
    p = plan(st)
    assert (p["old_ports"], p["transition_ports"]) == ([], [2222])


def test_an_interrupted_move_keeps_every_port_sshd_listens_on():
    """Config says 2222 only, but a running sshd still listens on 22 too: 22 is an old port."""
    st = state(sshd_effective=["port 2222"],
               ss_lines=[SS_SSHD_22, SS_SSHD_22.replace(":22 ", ":2222 ")])  # fmt: skip
    assert plan(st)["old_ports"] == [22]


def test_socket_activation_counts_the_sockets_ports_not_sshds_port_line():
    socket = {"LoadState": "loaded", "UnitFileState": "enabled", "ActiveState": "active",
              "Listen": "[::]:22 (Stream) 0.0.0.0:2200 (Stream)"}  # fmt: skip
    systemd = 'LISTEN 0 4096 *:2222 *:* users:(("systemd",pid=1,fd=50))'
    st = state(socket=socket, sshd_effective=["port 2299"], ss_lines=[systemd])
    p = plan(st)
    assert p["socket_mode"] is True
    assert p["old_ports"] == [22, 2200]
    # systemd holding the new port for the socket is not "another program" ...
    assert p["new_port_users"] == []
    # ... but it is when sshd is not socket-activated.
    st["socket"] = dict(socket, UnitFileState="disabled", ActiveState="inactive")
    refusals = plan(st)["refusals"]
    assert refusals == [f"ssh_port 2222 is already taken by another program: {systemd}."]
    # Socket only runtime-enabled still counts as socket mode.
    st["socket"] = dict(socket, UnitFileState="enabled-runtime", ActiveState="inactive")
    assert plan(st)["socket_mode"] is True


def test_the_login_user_is_the_last_line_raw_printed():
    p = plan(login=["Welcome to the node\r", "", "opsbook\r", "  "])
    assert p["login_user"] == "opsbook"
    # The same reading gives ssh_node_state its login_user (filter ssh_login_user).
    assert f.FilterModule().filters()["ssh_login_user"](["motd", "opsbook\r"]) == "opsbook"


def test_permit_root_login_auto_depends_on_the_login_user():
    assert plan(permit_root_login="auto")["permit_root_login"] == "no"
    assert plan(login=["root"])["permit_root_login"] == "prohibit-password"
    assert plan(permit_root_login="yes")["permit_root_login"] == "yes"


def test_root_with_permit_root_login_no_is_refused():
    refusals = plan(login=["root"], permit_root_login="no")["refusals"]
    assert refusals == [
        'ssh_permit_root_login is "no" but the controller logs in as root: that would lock it out.'
    ]


def test_only_the_algorithms_this_openssh_knows_are_offered():
    p = plan()
    assert p["kex"] == ["sntrup761x25519-sha512@openssh.com", "curve25519-sha256"]
    assert p["openssh_version"] == "OpenSSH_9.2p1"
    none_known = plan(macs=["umac-128-etm@openssh.com"])["refusals"]
    assert none_known == [
        "none of the configured algorithms is known to OpenSSH_9.2p1 (kex"
        " ['sntrup761x25519-sha512@openssh.com', 'curve25519-sha256'], ciphers"
        " ['chacha20-poly1305@openssh.com', 'aes256-gcm@openssh.com'], macs [], host key"
        " algorithms ['ssh-ed25519', 'rsa-sha2-512'])."
    ]


def test_a_missing_include_is_refused_first():
    st = state(include_present=False, listen_port_files=["/etc/ssh/sshd_config"])
    refusals = plan(st)["refusals"]
    assert refusals[0] == (
        "/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf, where this role"
        ' writes its settings; add "Include /etc/ssh/sshd_config.d/*.conf" at its top.'
    )
    assert "ListenAddress lines with an explicit port in /etc/ssh/sshd_config" in refusals[1]


def test_listen_address_with_a_port_is_refused_only_for_a_move():
    st = state(listen_port_files=["/etc/ssh/sshd_config.d/10-listen.conf"])
    assert len(plan(st)["refusals"]) == 1
    assert plan(st, move=False)["refusals"] == []


def test_no_authorized_key_refuses_password_off():
    keys = "authorizedkeysfile .ssh/no_such_keys %h/.ssh/k2"
    st = state(authorized_key_files=[], sshd_effective=["port 22", keys])
    p = plan(st)
    assert p["authorized_keys_files"] == [".ssh/no_such_keys", "%h/.ssh/k2"]
    assert p["refusals"] == [
        "ssh_password_authentication is false, but opsbook has no public key in"
        " .ssh/no_such_keys or %h/.ssh/k2 (home /home/opsbook) and sshd has no"
        " AuthorizedKeysCommand or TrustedUserCAKeys. Disabling passwords now would lock"
        " opsbook out: install a key first (ssh-copy-id) or set ssh_password_authentication: true."
    ]
    # Passwords stay on, or hardening is off: nothing to refuse.
    assert plan(st, password_authentication=True)["refusals"] == []
    assert plan(st, hardening=False)["refusals"] == []
    # A TrustedUserCAKeys file is another way in; "none" is not.
    with_ca = copy.deepcopy(st)
    with_ca["sshd_effective"].append("trustedusercakeys /etc/ssh/ca.pub")
    assert plan(with_ca)["refusals"] == []
    with_none = copy.deepcopy(st)
    with_none["sshd_effective"].append("authorizedkeyscommand none")
    assert len(plan(with_none)["refusals"]) == 1


@pytest.mark.parametrize(
    ("users", "groups", "refused"),
    [
        (["alice", "bob@10.0.0.*"], [], True),
        (["ops*"], [], False),
        (["opsboo?@10.0.0.*"], [], False),
        (["o.sbook"], [], True),  # a dot is a dot, not a regex wildcard
        (["[o]psbook"], [], True),  # no character classes in sshd's patterns
        ([], ["wheel"], True),
        ([], ["wheel", "sudo"], False),
        (["opsbook"], ["wheel"], True),  # both lists must let the user in
    ],
)
def test_allow_users_and_groups_must_let_the_login_user_in(users, groups, refused):
    refusals = plan(allow_users=users, allow_groups=groups)["refusals"]
    assert bool(refusals) is refused
    if refused:
        assert refusals == [
            f"the login user opsbook (groups opsbook, sudo) would be refused by AllowUsers"
            f" {users} / AllowGroups {groups}; add it, or the next connection is locked out."
        ]
    # Without hardening the role writes no AllowUsers: nothing to check.
    assert plan(allow_users=users, allow_groups=groups, hardening=False)["refusals"] == []


def test_host_keys_weak_dsa_and_missing():
    st = state(host_keys=[
        ["/etc/ssh/ssh_host_dsa_key", 1024, "DSA", "weak"],
        ["/etc/ssh/ssh_host_rsa_key", 2048, "RSA", "weak"],
        ["/etc/ssh/extra_rsa_key", 1024, "RSA", "weak"],
        ["/etc/ssh/ssh_host_ecdsa_key", 256, "ECDSA", "ok"],
    ])  # fmt: skip
    p = plan(st)
    assert p["weak_keys"] == [
        "/etc/ssh/ssh_host_dsa_key", "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/extra_rsa_key"
    ]  # fmt: skip
    assert p["dsa_keys"] == ["/etc/ssh/ssh_host_dsa_key"]
    assert p["wanted_keys"] == ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"]
    # The missing ed25519 key, the weak configured RSA key, and the weak RSA key sshd loads
    # from elsewhere (host_keys.yml de-duplicates by path).
    assert p["keys_to_create"] == [
        ["/etc/ssh/ssh_host_ed25519_key", "ed25519"],
        ["/etc/ssh/ssh_host_rsa_key", "rsa"],
        ["/etc/ssh/ssh_host_rsa_key", "rsa"],
        ["/etc/ssh/extra_rsa_key", "rsa"],
    ]
    assert plan()["keys_to_create"] == []
    assert plan()["weak_keys"] == []


def test_first_hardening_and_fail2ban_pending():
    st = state(exists={"fail2ban_client": True, "fail2ban_legacy_dropin": True,
                       "hardening_file": False})  # fmt: skip
    p = plan(st)
    assert p["first_hardening"] is True
    assert p["fail2ban_pending"] is True
    assert plan(st, check_mode=True)["fail2ban_pending"] is False
    assert plan(st, fail2ban=False)["fail2ban_pending"] is False
    assert plan()["fail2ban_pending"] is False
    assert plan()["first_hardening"] is False


def test_ufw_inactive_or_missing():
    assert plan(state(ufw={"rc": 0, "stdout": "Status: inactive"}))["ufw_active"] is False
    assert plan(state(ufw={"rc": 127, "stdout": ""}))["ufw_active"] is False
