"""The slowest tasks of a run, from ansible-runner's per-host task events (durations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.runs import BenchError
from opsbook.driver import Event, RunSpec, run_playbook
from opsbook.paths import playbooks_dir

TASK_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}


def slowest_tasks(playbook: str, inventory: Path, top: int = 5) -> list[dict[str, Any]]:
    """Run `playbook` through the driver; the `top` tasks by their slowest host's duration."""
    longest: dict[str, float] = {}

    def on_event(event: Event) -> None:
        if event.get("event") in TASK_EVENTS and "duration" in event:
            task = f"{event.get('play', '')} / {event.get('task', '')}"
            longest[task] = max(longest.get(task, 0.0), float(event["duration"]))

    result = run_playbook(
        RunSpec(playbook=playbooks_dir() / playbook, inventory=[str(inventory)]),
        on_event=on_event,
    )
    if result.exit_code != 0:
        raise BenchError(f"profiling run of {playbook} failed: {result.failures}")
    ranked = sorted(longest.items(), key=lambda item: item[1], reverse=True)[:top]
    return [{"task": task, "seconds": round(seconds, 3)} for task, seconds in ranked]
