"""The typed outcome of one playbook run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opsbook.driver.exitcodes import ExitCode, exit_code_for

RECAP_FIELDS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")


@dataclass(frozen=True)
class HostRecap:
    """One host's line of the play recap (counts as ansible reports them; ok includes changed)."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RECAP_FIELDS}


@dataclass(frozen=True)
class Failure:
    """A task that failed on a host (not ignored), or a host that could not be reached."""

    host: str
    task: str
    message: str
    play: str = ""
    unreachable: bool = False
    task_path: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "play": self.play,
            "task": self.task,
            "msg": self.message,
            "unreachable": self.unreachable,
            "task_path": self.task_path,
        }


@dataclass(frozen=True)
class RunResult:
    """What `run_playbook` returns.

    status: ansible-runner's final status: successful, failed, canceled or timeout.
    rc: ansible-playbook's return code (254 when runner killed it, None if it never ran).
    hosts: the recap from the playbook_on_stats event, by host name (empty without a recap).
    failures: failed tasks (ignore_errors excluded) and unreachable hosts, in event order.
    error: ansible's own error text when it stopped before or outside any task.
    """

    status: str
    rc: int | None
    hosts: dict[str, HostRecap]
    failures: list[Failure]
    duration: float
    run_dir: Path
    artifacts: Path
    have_recap: bool = False
    tasks_started: bool = False
    error: str | None = None
    command: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return exit_code_for(
            status=self.status,
            rc=self.rc,
            have_recap=self.have_recap,
            failed_hosts=sum(1 for h in self.hosts.values() if h.failed),
            unreachable_hosts=sum(1 for h in self.hosts.values() if h.unreachable),
            tasks_started=self.tasks_started,
        )

    @property
    def unreachable_hosts(self) -> list[str]:
        return sorted(name for name, h in self.hosts.items() if h.unreachable)

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(name for name, h in self.hosts.items() if h.failed)

    def summary(self) -> dict[str, Any]:
        """The final `{"event": "summary", ...}` object of `opsbook --json`."""
        return {
            "event": "summary",
            "status": self.status,
            "rc": self.rc,
            "exit_code": int(self.exit_code),
            "hosts": {name: recap.counts() for name, recap in sorted(self.hosts.items())},
            "failures": [f.to_json() for f in self.failures],
            "duration": round(self.duration, 3),
            "artifacts": str(self.artifacts),
            "run_dir": str(self.run_dir),
            "error": self.error,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        data["artifacts"] = str(self.artifacts)
        data["exit_code"] = int(self.exit_code)
        return data
