"""A real lab: systemd containers of both Debian releases, reached over SSH, then removed."""

from __future__ import annotations

import json
import subprocess

import pytest

from opsbook.lab import lab as labmod
from opsbook.lab.podman import podman

pytestmark = pytest.mark.lab
NAME = "pytest-lab"


@pytest.fixture(scope="module")
def lab() -> labmod.Lab:
    specs = [labmod.NodeSpec.parse("n12:debian12"), labmod.NodeSpec.parse("n13:debian13")]
    try:
        yield labmod.up(NAME, specs, log=lambda _m: None)
    finally:
        labmod.down(NAME, log=lambda _m: None)


def _ssh(lab: labmod.Lab, node: str, *cmd: str) -> str:
    # The words are shell text on the node, joined as ssh joins them.
    return labmod.run(lab, node, " ".join(cmd)).stdout.strip()


def test_nodes_run_systemd_and_answer_ssh(lab: labmod.Lab) -> None:
    rows = {row["node"]: row for row in labmod.status(NAME)}
    assert rows["n12"]["container"] == rows["n13"]["container"] == "running"
    assert rows["n12"]["ssh"] == rows["n13"]["ssh"] == "22"
    assert _ssh(lab, "n12", ". /etc/os-release; echo $VERSION_CODENAME") == "bookworm"
    assert _ssh(lab, "n13", ". /etc/os-release; echo $VERSION_CODENAME") == "trixie"
    state = _ssh(lab, "n12", "systemctl", "is-system-running", "--wait")
    assert state in {"running", "degraded"}
    assert _ssh(lab, "n12", "sudo", "-n", "id", "-u") == "0"


def test_ansible_reaches_every_node_over_ssh(lab: labmod.Lab) -> None:
    out = subprocess.run(
        [
            "ansible",
            "-i",
            str(lab.inventory),
            "all",
            "-o",
            "-m",
            "ansible.builtin.setup",
            "-a",
            "gather_subset=!all,!min,distribution",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "n12 | SUCCESS" in out
    assert "n13 | SUCCESS" in out
    assert '"ansible_distribution_release": "trixie"' in out


def test_up_again_reuses_the_running_nodes(lab: labmod.Lab) -> None:
    before = podman("inspect", "--format", "{{.Id}}", lab.node("n12").container).stdout
    again = labmod.up(
        NAME,
        [labmod.NodeSpec.parse("n12:debian12"), labmod.NodeSpec.parse("n13:debian13")],
        log=lambda _m: None,
    )
    after = podman("inspect", "--format", "{{.Id}}", lab.node("n12").container).stdout
    assert before == after
    assert json.loads(again.to_json())["nodes"][0]["ip"] == lab.node("n12").ip


def test_down_removes_containers_and_network() -> None:
    labmod.up("pytest-lab-down", [labmod.NodeSpec.parse("x:debian12")], log=lambda _m: None)
    labmod.down("pytest-lab-down", log=lambda _m: None)
    assert podman("container", "exists", "opsbook-pytest-lab-down-x", check=False).returncode == 1
    assert podman("network", "exists", "opsbook-pytest-lab-down", check=False).returncode == 1
    with pytest.raises(labmod.LabError, match="no lab named"):
        labmod.load("pytest-lab-down")
