"""The whole thing on a fresh 3-node lab, the way `make lab` runs it: check mode first (nothing
changes), then plain `ansible-playbook playbooks/site.yml` (no driver): the nodes hardened, one
k3s cluster on them (the opsbook k3s test server, from the air-gap directory), the apps deployed
onto it; then `opsbook site --json` again as a no-op; the nodes end with SSH on 2222 only."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsbook.kube import binaries
from opsbook.lab import lab as labmod
from playbook_run import ansible_playbook

pytestmark = [pytest.mark.lab, pytest.mark.kube]
# The lab inventory's opsbook_kubeconfig is .opsbook/kube/<lab>/kubeconfig: the k3s play
# writes the cluster's admin kubeconfig there and the apps play reads it.
NAME = f"it-site-{os.getpid() % 100000}"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab() -> Iterator[labmod.Lab]:
    specs = [
        labmod.NodeSpec("node1", "debian12", ("k3s_servers",)),
        labmod.NodeSpec("node2", "debian13", ("k3s_servers",)),
        labmod.NodeSpec("node3", "debian12", ("k3s_servers",)),
    ]
    try:
        yield labmod.up(NAME, specs, log=lambda _m: None)
    finally:
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
    out = labmod.run(lab, node, f"dpkg-query -W -f='${{Status}}' {package}", check=False)
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
    proc = ansible_playbook(
        ROOT / "playbooks" / "site.yml",
        inventory=lab.inventory,
        timeout=1200,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    stats = proc.recap
    assert set(stats) == {"node1", "node2", "node3", "localhost"}
    assert all(s["failed"] == 0 and s["unreachable"] == 0 for s in stats.values())
    assert all(stats[n]["changed"] > 0 for n in ("node1", "node2", "node3"))
    # One k3s cluster on the three nodes, and the apps running on it.
    kubeconfig = ROOT / ".opsbook" / "kube" / NAME / "kubeconfig"
    kubectl = [str(binaries.binary("k3s")), "kubectl", f"--kubeconfig={kubeconfig}"]

    def get(*args: str) -> list[dict]:
        out = subprocess.run(
            [*kubectl, "get", *args, "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return json.loads(out.stdout)["items"]

    items = get("nodes")
    assert sorted(n["metadata"]["name"] for n in items) == ["node1", "node2", "node3"]
    for node in items:
        conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert conditions["Ready"] == conditions["EtcdIsVoter"] == "True", node["metadata"]["name"]
    available = {
        d["metadata"]["name"]: d["status"].get("availableReplicas") == d["spec"]["replicas"]
        for d in get("deployments", "-n", "honeydue")
    }
    assert {"api", "worker", "web", "admin"} <= set(available)
    assert all(available.values()), available


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
