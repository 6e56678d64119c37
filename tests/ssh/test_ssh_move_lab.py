"""The ssh role against real lab nodes over real SSH: the move, its failure modes, its refusals.

Node sshf (Debian 12, UFW and fail2ban active) gets the port move with the new port blocked
between the controller and the node, then unblocked, then a second run, then the move back.
That sequence runs in a background thread from the start of the module (MOVE below) and each
step records what it observed; the sshf tests assert on those records. Meanwhile node sshb
(Debian 13, no UFW) gets check mode, a bad sshd option, a setting that breaks login, a
post-quantum profile the client cannot speak and settings that would lock the login user out,
one test at a time in file order.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ssh_helpers import Chain, Run, playbook, root, ssh, sshd_ports, tcp_open

from opsbook.lab import lab as labmod
from opsbook.lab import sshkeys
from opsbook.lab.image import LAB_USER

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1200)]

NODES = ["sshf:debian12", "sshb:debian13"]
NEW = 2222
OPSBOOK_FILES = "ls /etc/ssh/sshd_config.d/ | grep opsbook || true"


def _main_pid(lab: labmod.Lab, node: str, port: int) -> str:
    return root(lab, node, port, "systemctl show ssh.service -p MainPID --value").strip()


# --- sshb: nothing changes ----------------------------------------------------------------


def test_check_mode_reports_the_move_and_changes_nothing(lab: labmod.Lab) -> None:
    # With an AllowUsers pattern that matches the login user: the refusal below is no blanket one.
    allow = {"ssh_allow_users": ["ops*", "alice"]}
    run = playbook(lab, "sshb", "--check", "--diff", "-e", json.dumps(allow))
    assert run.rc == 0, run.out[-4000:]
    assert "check mode: would open a fresh SSH connection from the controller on port 2222" in (
        run.out
    )
    assert "stop listening on port(s) 22" in run.out
    assert "UFW is not installed on sshb: skipping the UFW steps" in run.out
    # The diff shows the drop-ins that would be written.
    assert "+Port 2222" in run.out
    assert "+AllowUsers ops* alice" in run.out
    assert sshd_ports(lab, "sshb", 22) == {22}
    assert not tcp_open(lab.node("sshb").ip, NEW)
    assert root(lab, "sshb", 22, OPSBOOK_FILES).strip() == ""


def test_bad_sshd_option_is_rejected_before_any_restart(lab: labmod.Lab) -> None:
    pid = _main_pid(lab, "sshb", 22)
    bad = {"ssh_sshd_extra_options": {"NoSuchOption": "yes"}}
    run = playbook(lab, "sshb", "-e", json.dumps(bad))
    assert run.rc != 0
    assert "Bad configuration option: NoSuchOption" in run.out
    assert "could not listen on 22 and 2222" in run.out
    assert "sshd was not restarted and keeps serving as before" in run.out
    # The running sshd was never restarted, its configuration is unchanged, it keeps serving.
    assert _main_pid(lab, "sshb", 22) == pid
    assert root(lab, "sshb", 22, OPSBOOK_FILES).strip() == ""
    assert root(lab, "sshb", 22, "sshd -t && echo valid").strip() == "valid"
    assert sshd_ports(lab, "sshb", 22) == {22}
    assert ssh(lab, "sshb", 22, "echo still-serving").stdout.strip() == "still-serving"


def test_a_setting_that_breaks_login_is_rolled_back(lab: labmod.Lab) -> None:
    """sshd -t accepts DenyUsers opsbook; the fresh login after the restart does not."""
    run = playbook(
        lab, "sshb", "-e", json.dumps({"ssh_sshd_extra_options": {"DenyUsers": "opsbook"}})
    )
    assert run.rc != 0
    assert "could not listen on 22 and 2222" in run.out, run.out[-4000:]
    assert "Permission denied" in run.out
    assert (
        "The previous sshd configuration is back in place and sshd was restarted on it" in run.out
    )
    assert root(lab, "sshb", 22, OPSBOOK_FILES).strip() == ""
    assert sshd_ports(lab, "sshb", 22) == {22}
    assert ssh(lab, "sshb", 22, "echo back").stdout.strip() == "back"


def test_a_post_quantum_profile_the_client_cannot_speak_is_rolled_back(lab: labmod.Lab) -> None:
    """An operator client too old for the post-quantum key exchanges (here: limited to
    curve25519): sshd -t accepts the profile, the fresh login after the restart cannot
    negotiate, and the previous configuration comes back."""
    extra = {
        "ssh_crypto_profile": "post-quantum",
        "ansible_ssh_extra_args": "-o KexAlgorithms=curve25519-sha256",
    }
    run = playbook(lab, "sshb", "-e", json.dumps(extra))
    assert run.rc != 0
    assert "no matching key exchange method found" in run.out, run.out[-4000:]
    assert (
        "The previous sshd configuration is back in place and sshd was restarted on it" in run.out
    )
    assert root(lab, "sshb", 22, OPSBOOK_FILES).strip() == ""
    assert sshd_ports(lab, "sshb", 22) == {22}
    assert ssh(lab, "sshb", 22, "echo back").stdout.strip() == "back"


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        pytest.param(
            "",
            {"ssh_allow_users": ["alice", "bob@10.0.0.*"]},
            "would be refused by AllowUsers",
            id="allow-users-without-login-user",
        ),
        pytest.param(
            "",
            {"ssh_allow_groups": ["wheel"]},
            "would be refused by AllowUsers",
            id="allow-groups-without-login-user",
        ),
        pytest.param(
            # sshd reads this on its next start only; the role reads the configuration on disk.
            "echo 'AuthorizedKeysFile .ssh/no_such_keys' > /etc/ssh/sshd_config.d/00-aaa-test.conf",
            {},
            "has no public key in .ssh/no_such_keys",
            id="password-off-without-authorized-key",
        ),
    ],
)
def test_refuses_settings_that_lock_the_login_user_out(
    lab: labmod.Lab, setup: str, extra: dict[str, object], message: str
) -> None:
    pid = _main_pid(lab, "sshb", 22)
    if setup:
        root(lab, "sshb", 22, setup)
    try:
        run = playbook(lab, "sshb", "-e", json.dumps(extra))
    finally:
        root(lab, "sshb", 22, "rm -f /etc/ssh/sshd_config.d/00-aaa-test.conf")
    assert run.rc != 0
    assert message in run.out, run.out[-4000:]
    assert _main_pid(lab, "sshb", 22) == pid
    assert root(lab, "sshb", 22, OPSBOOK_FILES).strip() == ""


def test_hardening_alone_leaves_the_port_alone(lab: labmod.Lab) -> None:
    """ssh_port_move_enabled false: hardened, restarted, checked, and still on 22 only."""
    pid = _main_pid(lab, "sshb", 22)
    run = playbook(lab, "sshb", "-e", json.dumps({"ssh_port_move_enabled": False}))
    assert run.rc == 0, run.out[-4000:]
    assert _main_pid(lab, "sshb", 22) != pid
    assert root(lab, "sshb", 22, OPSBOOK_FILES).split() == ["01-opsbook-hardening.conf"]
    effective = root(lab, "sshb", 22, "sshd -T").splitlines()
    assert "passwordauthentication no" in effective
    assert "permitrootlogin no" in effective
    assert [line for line in effective if line.startswith("port ")] == ["port 22"]
    assert sshd_ports(lab, "sshb", 22) == {22}
    assert not tcp_open(lab.node("sshb").ip, NEW)


def test_strict_host_key_checking_survives_new_host_keys_and_the_move(
    lab: labmod.Lab, tmp_path: Path
) -> None:
    """Production-like: Ansible and the fresh checks verify host keys against a known_hosts file
    that knows the node's RSA key on 22 only, and that key is weak, so the role replaces it.
    The role writes the new keys (ssh_controller_known_hosts_file) before sshd serves them."""
    ip = lab.node("sshb").ip
    known = tmp_path / "known_hosts"
    scan = subprocess.run(
        ["ssh-keyscan", "-p", "22", "-t", "rsa", ip], capture_output=True, text=True, check=True
    )
    assert scan.stdout.startswith(f"{ip} ssh-rsa ")
    known.write_text(scan.stdout)
    before = tmp_path / "known_hosts.before"
    before.write_text(scan.stdout)
    # A weak key on disk; sshd keeps serving the key it loaded at start until it restarts.
    root(
        lab,
        "sshb",
        22,
        "cd /etc/ssh && rm ssh_host_rsa_key*"
        " && ssh-keygen -q -t rsa -b 1024 -N '' -f ssh_host_rsa_key",
    )
    strict = f"-o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={known}"
    extra = {"ansible_ssh_common_args": strict, "ssh_controller_known_hosts_file": str(known)}

    run = playbook(lab, "sshb", "-e", json.dumps(extra))

    assert run.rc == 0, run.out[-4000:]
    assert sshd_ports(lab, "sshb", NEW) == {NEW}
    served = subprocess.run(
        ["ssh-keyscan", "-p", str(NEW), "-t", "rsa", ip], capture_output=True, text=True, check=True
    ).stdout.split()[2]
    assert f"[{ip}]:2222 ssh-rsa {served}" in known.read_text()
    assert f"{ip} ssh-rsa {served}" in known.read_text()
    assert served not in before.read_text()

    def strict_login(file: Path) -> subprocess.CompletedProcess[str]:
        options = [
            "IdentitiesOnly=yes",
            "BatchMode=yes",
            "ConnectTimeout=5",
            "ControlPath=none",
            "StrictHostKeyChecking=yes",
            f"UserKnownHostsFile={file}",
        ]
        return subprocess.run(
            ["ssh", "-i", str(sshkeys.ensure_key()), "-p", str(NEW)]
            + [arg for option in options for arg in ("-o", option)]
            + [f"{LAB_USER}@{ip}", "true"],
            capture_output=True,
            text=True,
            check=False,
        )

    assert strict_login(known).returncode == 0
    # Negative control: with the known_hosts of before the run, strict checking refuses the node.
    refused = strict_login(before)
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr


def test_discovery_names_the_host_and_the_ports_when_none_answers(lab: labmod.Lab) -> None:
    """sshb listens on 2222 now; with ssh_port 2299 the candidates are 2299 and 22: neither."""
    run = playbook(lab, "sshb", "-e", json.dumps({"ssh_port": 2299}))
    assert run.rc != 0
    ip = lab.node("sshb").ip
    assert f"sshb ({ip}): no SSH server answered from the controller on port(s) 2299, 22" in (
        " ".join(run.out.split())
    )
    counts = run.recap("sshb")
    wanted = {"ok": 2, "changed": 0, "unreachable": 0, "failed": 1}
    assert {k: counts[k] for k in wanted} == wanted


# --- sshf: the move, blocked then unblocked -------------------------------------------------

PREPARE = " && ".join(
    [
        "export DEBIAN_FRONTEND=noninteractive",
        "apt-get install -y -q ufw fail2ban python3-systemd >/dev/null",
        "ufw allow 22/tcp >/dev/null",
        "ufw --force enable >/dev/null",
        "cd /etc/fail2ban/jail.d",
        "printf '[sshd]\\nenabled = true\\nbackend = systemd\\n' > local-sshd.conf",
        "printf '[sshd]\\nport = 2222\\n' > opsbook.local",
        # The drop-in the ssh role wrote before the fail2ban role owned the jail's ports.
        "printf '[sshd]\\nport = 22\\n' > zz-opsbook-ssh.local",
        "systemctl restart fail2ban",
    ]
)
BLOCK = "iptables -t raw {op} PREROUTING -p tcp --dport 2222 -s {src} -j DROP"


F2B_JAIL = "/etc/fail2ban/jail.d/opsbook.local"
JAIL_PORT = "fail2ban-client -d | grep \"'sshd', 'action'\""


def _observe(lab: labmod.Lab, port: int) -> dict[str, object]:
    """What the sshf tests check, read right after a run (over a fresh login on `port`)."""
    ip = lab.node("sshf").ip
    return {
        "login": ssh(lab, "sshf", port, "sudo -n true && echo ok").stdout.strip(),
        "sshd_ports": sshd_ports(lab, "sshf", port),
        "open": {p: tcp_open(ip, p) for p in (22, NEW)},
        "ufw": root(lab, "sshf", port, "ufw show added"),
        "jail_d": root(lab, "sshf", port, "ls /etc/fail2ban/jail.d/").split(),
        "jail": root(lab, "sshf", port, f"cat {F2B_JAIL}"),
        "jail_port": root(lab, "sshf", port, JAIL_PORT),
    }


@pytest.fixture(scope="module", autouse=True)
def move(lab: labmod.Lab) -> Iterator[Chain]:
    """sshf's sequence, started with the module; joined before the lab goes down."""

    def blocked() -> tuple[Run, dict[str, object]]:
        # UFW and fail2ban as the firewall and fail2ban roles leave them (those roles are tested
        # elsewhere): SSH allowed on 22, the sshd jail on the journal, the fail2ban role's jail
        # file saying port = ssh_port.
        root(lab, "sshf", 22, PREPARE)
        # A firewall rule the role does not manage (the raw table, before UFW) drops the new
        # port from the controller only, as a provider firewall would.
        root(lab, "sshf", 22, BLOCK.format(op="-I", src=lab.gateway))
        run = playbook(lab, "sshf")
        return run, _observe(lab, 22)

    def unblocked() -> tuple[Run, dict[str, object]]:
        root(lab, "sshf", 22, BLOCK.format(op="-D", src=lab.gateway))
        run = playbook(lab, "sshf")
        return run, _observe(lab, NEW)

    def again() -> tuple[Run, dict[str, object]]:
        return playbook(lab, "sshf"), {}

    def back() -> tuple[Run, dict[str, object]]:
        run = playbook(
            lab, "sshf", "-e", json.dumps({"ssh_port": 22, "ssh_discovery_ports": [NEW]})
        )
        return run, _observe(lab, 22)

    chain = Chain([blocked, unblocked, again, back])
    yield chain
    chain.join()


def test_blocked_new_port_fails_clearly_and_port_22_keeps_working(move: Chain) -> None:
    run, seen = move.step(0)
    assert run.rc != 0
    assert "SSH on the new port 2222 does not work from the controller" in run.out, run.out[-4000:]
    assert "port(s) 22 and their firewall rules are left in place" in run.out
    assert "provider" in run.out
    assert run.recap("sshf")["failed"] == 1
    # The old port keeps working: a fresh login, sshd still listening on it, its UFW rule kept.
    assert seen["login"] == "ok"
    assert seen["sshd_ports"] == {22, NEW}
    assert seen["open"] == {22: True, NEW: False}
    assert "ufw allow 22/tcp\n" in seen["ufw"]
    assert f"ufw allow {NEW}/tcp comment 'opsbook:firewall:ssh'" in seen["ufw"]
    # fail2ban's sshd jail covers both ports while the move is under way: the fail2ban role's
    # jail file says so, and the ssh role's former drop-in is gone.
    assert re.search(r"(?m)^port = 22,2222$", seen["jail"]), seen["jail"]
    assert "zz-opsbook-ssh.local" not in seen["jail_d"]
    assert "'port', '22,2222'" in seen["jail_port"]


def test_unblocked_the_same_inventory_completes_the_move(move: Chain) -> None:
    run, seen = move.step(1)
    assert run.rc == 0, run.out[-4000:]
    assert run.recap("sshf")["changed"] > 0
    assert seen["login"] == "ok"
    assert seen["sshd_ports"] == {NEW}
    assert seen["open"] == {22: False, NEW: True}
    assert f"ufw allow {NEW}/tcp comment 'opsbook:firewall:ssh'" in seen["ufw"]
    assert not re.search(r"(?m)^ufw allow 22\b", seen["ufw"])
    # The fail2ban role's jail (port = ssh_port) owns the final state.
    assert seen["jail_d"] == ["defaults-debian.conf", "local-sshd.conf", "opsbook.local"]
    assert re.search(r"(?m)^port = 2222$", seen["jail"]), seen["jail"]
    assert "'port', '2222'" in seen["jail_port"]


def test_a_second_run_with_the_same_inventory_changes_nothing(move: Chain) -> None:
    run, _ = move.step(2)
    assert run.rc == 0, run.out[-4000:]
    assert run.recap("sshf")["changed"] == 0, run.out[-4000:]
    # The discovery went straight to the new port.
    assert "not (yet) on the desired" not in run.out


def test_moving_back_to_22_with_the_old_port_as_a_discovery_candidate(move: Chain) -> None:
    """README, Recovery: ssh_port 22 plus ssh_discovery_ports [2222] runs the same transaction."""
    run, seen = move.step(3)
    assert run.rc == 0, run.out[-4000:]
    assert seen["login"] == "ok"
    assert seen["sshd_ports"] == {22}
    assert seen["open"] == {22: True, NEW: False}
    assert "ufw allow 22/tcp comment 'opsbook:firewall:ssh'" in seen["ufw"]
    assert str(NEW) not in seen["ufw"]
