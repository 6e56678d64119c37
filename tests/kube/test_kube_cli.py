"""`opsbook lab kube up|status|down`: detached processes that later commands find and stop."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from opsbook.kube import binaries, processes

pytestmark = pytest.mark.kube


def test_up_status_down_from_separate_commands(opsbook_cli, state_dir: Path):
    up = opsbook_cli("lab", "kube", "up", "--name", "clitest", "--nodes", "1", "--json")
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    directory = state_dir / "kube" / "clitest"
    assert info["directory"] == str(directory)
    kubeconfig = Path(info["kubeconfig"])
    assert kubeconfig == directory / "kubeconfig"
    recorded = processes.load(directory)
    try:
        # The `up` command has exited; its processes keep running.
        assert sorted(p.name for p in recorded) == sorted(info["processes"])
        assert all(processes.alive(p) for p in recorded)
        nodes = subprocess.run(
            [str(binaries.binary("k3s")), "kubectl", f"--kubeconfig={kubeconfig}", "get", "nodes"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert "clitest-server" in nodes
        assert " Ready " in nodes

        status = opsbook_cli("lab", "--name", "clitest", "kube", "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["ready_nodes"] == ["clitest-server"]
        again = opsbook_cli("lab", "kube", "up", "--name", "clitest", "--json")  # idempotent
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["api"] == info["api"]
    finally:
        down = opsbook_cli("lab", "kube", "down", "--name", "clitest")
    assert down.returncode == 0, down.stderr
    assert not any(processes.alive(p) for p in recorded), "down left processes running"
    assert not directory.exists()
    gone = opsbook_cli("lab", "kube", "status", "--name", "clitest")
    assert gone.returncode == 1
    assert "no k3s test server" in gone.stdout
