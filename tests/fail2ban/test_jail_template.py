"""The fail2ban role's jail file, rendered without a lab: the parts the lab cannot show.

The lab (molecule verify) proves the journald case on Debian 12 and 13 by banning for real.
These check what the lab nodes never meet: the file backend where a syslog daemon writes
auth.log (Ubuntu), a jail covering two SSH ports while the ssh role moves sshd, and the
ignore list of a three-node cluster.
"""

from __future__ import annotations

import configparser

import pytest
import yaml

from opsbook.paths import project_root
from role_templates import render_template, render_text

ROLE = project_root() / "roles" / "fail2ban"


def _render(**overrides: object) -> configparser.ConfigParser:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    os_vars = yaml.safe_load((ROLE / "vars" / "Debian.yml").read_text())
    values = {
        **defaults,
        **os_vars,
        "ansible_managed": "Ansible managed",
        "fail2ban_sshd_ports": [22],
        "fail2ban_sshd_backend_effective": "systemd",
        "fail2ban_ignoreip_effective": ["127.0.0.1/8", "::1"],
        **overrides,
    }
    text = render_template("fail2ban", "jail.local.j2", values)
    # fail2ban reads its files with Python's configparser (with interpolation of its own).
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_journald_hosts_get_backend_systemd_on_the_jail_and_no_logpath() -> None:
    jail = _render()["sshd"]
    assert jail["backend"] == "systemd"
    assert "logpath" not in jail
    assert jail["enabled"] == "true"


@pytest.mark.parametrize("backend", ["auto", "pyinotify", "polling"])
def test_syslog_hosts_read_auth_log(backend: str) -> None:
    jail = _render(fail2ban_sshd_backend_effective=backend)["sshd"]
    assert jail["backend"] == backend
    assert jail["logpath"] == "/var/log/auth.log"


def test_a_port_move_covers_both_ports() -> None:
    jail = _render(fail2ban_sshd_ports=[22, 2222])["sshd"]
    assert jail["port"] == "22,2222"


def test_ban_policy_bans_through_ufw_and_grows_for_repeat_offenders() -> None:
    default = _render(
        fail2ban_ignoreip_effective=["127.0.0.1/8", "::1", "203.0.113.11", "203.0.113.12"]
    )["DEFAULT"]
    assert default["banaction"] == "ufw"
    assert default["banaction_allports"] == "ufw"
    assert default["bantime.increment"] == "true"
    assert default["maxretry"] == "5"
    assert default["ignoreip"].split() == ["127.0.0.1/8", "::1", "203.0.113.11", "203.0.113.12"]


def test_the_ports_default_follows_the_shared_ssh_port() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    (template,) = defaults["fail2ban_sshd_ports"]
    assert render_text(template, {"ssh_port": 2222}) == "2222"
    assert render_text(template, {}) == "22"


def test_a_string_no_is_false_as_ansible_reads_it() -> None:
    """Rendered by Ansible's templar: `"no" | bool` is false (Python's bool("no") is True)."""
    jail = _render(fail2ban_bantime_increment="no", fail2ban_bantime_overalljails="yes")
    assert jail["DEFAULT"]["bantime.increment"] == "false"
    assert jail["DEFAULT"]["bantime.overalljails"] == "true"
