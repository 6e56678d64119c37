"""The driver over real SSH: a 1-node lab (podman systemd container) and a tiny playbook."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from opsbook.driver import ExitCode, HostRecap, RunSpec, run_playbook

pytestmark = pytest.mark.lab


@pytest.fixture(scope="session")
def driver_lab(lab_factory) -> Path:
    """`opsbook lab --name pytest-driver up --nodes 1`; removed at the end of the session."""
    return lab_factory("pytest-driver", 1)


def test_playbook_over_real_ssh(driver_lab, state_dir, fixture_playbooks):
    events = []
    result = run_playbook(
        RunSpec(
            playbook=fixture_playbooks / "lab.yml",
            inventory=[str(driver_lab)],
            extra_vars=[{"lab_token": secrets.token_hex(6)}],
        ),
        on_event=events.append,
    )
    assert result.exit_code == ExitCode.OK, (result.failures, result.error)
    assert result.hosts == {"node1": HostRecap("node1", ok=3, changed=1)}
    assert {e["host"] for e in events if e["event"] == "runner_on_ok"} == {"node1"}
