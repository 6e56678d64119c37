"""The whole thing on a fresh 3-node lab, the way `make lab` runs it: check mode first (nothing
changes), then plain `ansible-playbook playbooks/site.yml` (no driver), then `opsbook site --json`
again as a no-op; the nodes end with SSH on 2222 only."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsbook.kube import TestCluster
from opsbook.kube.cli import directory as kube_directory
from opsbook.lab import lab as labmod

pytestmark = [pytest.mark.lab, pytest.mark.kube]
NAME = f"it-site-{os.getpid() % 100000}"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab() -> Iterator[labmod.Lab]:
    specs = [
        labmod.NodeSpec("node1", "debian12", ("k3s_servers",)),
        labmod.NodeSpec("node2", "debian13", ("k3s_servers",)),
        labmod.NodeSpec("node3", "debian12", ("k3s_servers",)),
    ]
    # The lab's group_vars point the apps at the k3s test server named like the lab.
    plane = TestCluster(kube_directory(NAME), name=NAME, die_with_parent=True)
    try:
        lab = labmod.up(NAME, specs, log=lambda _m: None)
        plane.start()
        yield lab
    finally:
        plane.remove()
        labmod.down(NAME, log=lambda _m: None)


def opsbook(*args: str) -> tuple[int, list[dict[str, object]]]:
    proc = subprocess.run(
        ["opsbook", *args, "--json"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=900,
        check=False,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def node_has(lab: labmod.Lab, node: str, package: str) -> bool:
    cmd = labmod.ssh_command(lab, node, ["dpkg-query", "-W", "-f='${Status}'", package])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    return "install ok installed" in out.stdout


def test_check_mode_on_fresh_nodes_changes_nothing(lab: labmod.Lab) -> None:
    code, events = opsbook("harden", "-i", str(lab.inventory), "--check")
    summary = events[-1]
    assert code == 0, summary
    assert summary["event"] == "summary"
    assert all(counts["changed"] > 0 for counts in summary["hosts"].values())
    assert not any(node_has(lab, n.name, "ufw") for n in lab.nodes)
    assert labmod.answering_ssh_port(lab.node("node1").ip, (2222,)) is None


def test_site_converges_with_plain_ansible_playbook(lab: labmod.Lab) -> None:
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(lab.inventory), str(ROOT / "playbooks" / "site.yml")],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads(proc.stdout)["stats"]
    assert set(stats) == {"node1", "node2", "node3", "localhost"}
    assert all(s["failures"] == 0 and s["unreachable"] == 0 for s in stats.values())
    assert all(stats[n]["changed"] > 0 for n in ("node1", "node2", "node3"))


def test_second_run_through_the_driver_is_a_no_op(lab: labmod.Lab) -> None:
    code, events = opsbook("site", "-i", str(lab.inventory))
    summary = events[-1]
    assert code == 0, summary
    assert {h: c["changed"] for h, c in summary["hosts"].items()} == {
        "node1": 0,
        "node2": 0,
        "node3": 0,
        "localhost": 0,
    }
    for node in lab.nodes:
        assert labmod.answering_ssh_port(node.ip, (2222,)) == 2222
        assert labmod.answering_ssh_port(node.ip, (22,)) is None
