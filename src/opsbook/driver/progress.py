"""Live counters of a run, kept from compact events (for the progress line)."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsbook.driver.events import Event

HOST_RESULTS = frozenset(
    {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}
)
TASK_START = frozenset({"playbook_on_task_start", "playbook_on_handler_task_start"})


@dataclass
class Progress:
    play: str = ""
    task: str = ""
    started: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    def update(self, event: Event) -> None:
        name = event["event"]
        if name == "playbook_on_play_start":
            self.play, self.task = event.get("play", ""), ""
            self.started.clear()
            self.done.clear()
        elif name in TASK_START:
            self.task = event.get("task", "")
            self.started.clear()
            self.done.clear()
        elif name == "runner_on_start":
            self.started.add(event.get("host", "?"))
        elif name in HOST_RESULTS:
            self.done.add(event.get("host", "?"))
            self._count(name, event)

    def _count(self, name: str, event: Event) -> None:
        if name == "runner_on_unreachable":
            self.unreachable += 1
        elif name == "runner_on_failed" and not event.get("ignored"):
            self.failed += 1
        elif name == "runner_on_skipped":
            self.skipped += 1
        elif event.get("changed"):
            self.changed += 1
        else:
            self.ok += 1

    def line(self) -> str:
        hosts = f"{len(self.done)}/{max(len(self.started), len(self.done))}"
        return (
            f"PLAY {self.play or '-'} | TASK {self.task or '-'} | hosts done {hosts} | "
            f"ok {self.ok} changed {self.changed} failed {self.failed} "
            f"unreachable {self.unreachable}"
        )
