"""Run opsbook's playbooks through ansible-runner: typed results, events, exit codes.

from opsbook.driver import RunSpec, run_playbook

result = run_playbook(RunSpec(playbook=path, inventory=["hosts.yml"], check=True))
result.status, result.rc, result.hosts["node1"].changed, result.failures, result.exit_code

Modules: run (RunSpec, input checks, the run dir, run_playbook, orphan cleanup), events
(compact events and redaction), result (RunResult, exit codes, InvalidInput), output (human
and JSON lines), cancel (the cancel flag and signals), extravars (-e values, ansible's YAML
loader).
"""

from __future__ import annotations

from opsbook.driver.events import Event, compact_event
from opsbook.driver.extravars import ExtraVars
from opsbook.driver.result import Failure, HostRecap, InvalidInput, RunResult, exit_code_for
from opsbook.driver.run import RunSpec, resolve_playbook, run_playbook
from opsbook.exitcodes import ExitCode

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
