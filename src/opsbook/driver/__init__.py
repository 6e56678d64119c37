"""Run opsbook's playbooks through ansible-runner: typed results, events, exit codes.

from opsbook.driver import RunSpec, run_playbook

result = run_playbook(RunSpec(playbook=path, inventory=["hosts.yml"], check=True))
result.status, result.rc, result.hosts["node1"].changed, result.failures, result.exit_code
"""

from __future__ import annotations

from opsbook.driver.errors import InvalidInput
from opsbook.driver.events import Event, compact_event
from opsbook.driver.exitcodes import ExitCode, exit_code_for
from opsbook.driver.extravars import ExtraVars
from opsbook.driver.result import Failure, HostRecap, RunResult
from opsbook.driver.runner import run_playbook
from opsbook.driver.spec import RunSpec
from opsbook.driver.validate import resolve_playbook

__all__ = [
    "Event",
    "ExitCode",
    "ExtraVars",
    "Failure",
    "HostRecap",
    "InvalidInput",
    "RunResult",
    "RunSpec",
    "compact_event",
    "exit_code_for",
    "resolve_playbook",
    "run_playbook",
]
