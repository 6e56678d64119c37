"""Enabling the firewall over a live SSH session keeps that session working, and the firewall
follows the ssh role's port move without re-adding port 22 (the shared contract)."""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import threading
import time

import pytest
from firewall_helpers import FIREWALL, node_state

from opsbook.lab import lab as labmod
from opsbook.lab import sshkeys
from playbook_run import ansible_playbook

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab():
    name = f"fw-ssh-{os.getpid() % 100000}"
    try:
        yield labmod.up(name, [labmod.NodeSpec("node1", "debian13", ("k3s_servers",))],
                        log=lambda _m: None)  # fmt: skip
    finally:
        labmod.down(name, log=lambda _m: None)


def ssh(lab, *command: str, port: int = 22) -> subprocess.CompletedProcess[str]:
    node = lab.node("node1")
    return subprocess.run(
        ["ssh", *sshkeys.ssh_base_args(port), f"opsbook@{node.ip}", *command],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_check_mode_on_a_fresh_node_shows_the_plan_and_installs_nothing(lab):
    # Runs first, while the node is fresh: ufw is not installed yet.
    proc = ansible_playbook(
        FIREWALL, {"ssh_port": 22}, "--check", "--diff", inventory=lab.inventory
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.host("node1")["changed"] > 0
    assert "443  # opsbook:firewall:cloudflare" in proc.stdout  # the planned rules, as a diff
    installed = ssh(lab, "dpkg-query", "-W", "-f=${Status}", "ufw")
    assert "install ok installed" not in installed.stdout


def test_enabling_ufw_keeps_the_live_session(lab):
    assert ssh(lab, "command -v ufw || echo none").stdout.strip() == "none"  # fresh node
    node = lab.node("node1")
    session = subprocess.Popen(
        ["ssh", *sshkeys.ssh_base_args(22), "-o", "ServerAliveInterval=1",
         f"opsbook@{node.ip}", "while true; do echo tick; sleep 0.2; done"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    ticks: list[float] = []

    def read() -> None:
        assert session.stdout is not None
        for line in session.stdout:
            if line.strip() == "tick":
                ticks.append(time.monotonic())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(2)
        assert ticks, "the session never started"
        proc = ansible_playbook(
            FIREWALL, inventory=lab.inventory
        )  # ssh_port 2222 from the lab settings
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert proc.host("node1")["changed"] >= 1
        enabled_at = time.monotonic()
        time.sleep(3)
        # the same session kept printing through and after the enable, without a gap
        assert session.poll() is None, "the SSH session died"
        after = [t for t in ticks if t > enabled_at]
        assert len(after) >= 8, f"only {len(after)} ticks in 3s after ufw came on"
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert max(gaps) < 2.5, f"the session stalled for {max(gaps):.1f}s"
    finally:
        session.kill()
        session.wait()
    state = node_state(lab, "node1")
    assert state.status.startswith("Status: active")
    assert "22/tcp ALLOW Anywhere # opsbook:firewall:ssh" in " ".join(state.status.split())
    # a new connection works too
    assert ssh(lab, "echo", "again").stdout.strip() == "again"


def test_after_the_ssh_role_moves_to_2222_port_22_stays_closed(lab):
    """Do what the ssh role did before the firewall role owned every SSH rule (its own 2222
    rule tagged opsbook:ssh, sshd on 2222 only, the 22 rules deleted), then re-run the
    firewall: it must connect on 2222, take the rule over (retag it, no duplicate) and not
    re-add 22."""
    move = (
        "set -e; ufw allow 2222/tcp comment opsbook:ssh; "
        "printf 'Port 2222\\n' > /etc/ssh/sshd_config.d/port.conf; "
        "sed -i 's/^#\\?Port 22$//' /etc/ssh/sshd_config; "
        "systemctl restart ssh; "
        "ufw delete allow 22/tcp"
    )
    done = ssh(lab, "sudo", "sh", "-c", shlex.quote(move))
    assert done.returncode == 0, done.stderr
    assert ssh(lab, "true", port=2222).returncode == 0
    proc = ansible_playbook(FIREWALL, inventory=lab.inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = [" ".join(line.split()) for line in node_state(lab, "node1").status.splitlines()]
    ssh_lines = [line for line in lines if line.startswith(("22/", "2222/"))]
    assert sorted(ssh_lines) == [
        "2222/tcp (v6) ALLOW Anywhere (v6) # opsbook:firewall:ssh",
        "2222/tcp ALLOW Anywhere # opsbook:firewall:ssh",
    ]
    again = ansible_playbook(FIREWALL, inventory=lab.inventory)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.host("node1")["changed"] == 0
