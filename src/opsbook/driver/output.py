"""What the CLI shows while and after a run: human (rich live or plain lines) or JSON lines.

Human output: a live progress line on a terminal (plain lines otherwise), then the recap.

`--json`: one compact event per line (schema: events.py), then one summary object.
Summary: {"event": "summary", "status", "rc", "exit_code", "hosts": {host: counts},
"failures": [{host, play, task, msg, unreachable, task_path}], "duration", "artifacts",
"run_dir", "error"}. Input errors found before ansible starts give the same object with
status "invalid", exit_code 4 and the message in "error". Nothing else is printed on stdout.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from opsbook.driver.events import Event
from opsbook.driver.result import RECAP_FIELDS, Failure, RunResult
from opsbook.exitcodes import ExitCode

if TYPE_CHECKING:
    from rich.live import Live


class Output(Protocol):
    def __enter__(self) -> Output: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def event(self, event: Event) -> None: ...

    def result(self, result: RunResult) -> None: ...

    def invalid(self, message: str) -> None: ...


def make_output(*, json_lines: bool, verbosity: int = 0, stream: TextIO | None = None) -> Output:
    if json_lines:
        return JsonLinesOutput(stream)
    return HumanOutput(stream, verbosity=verbosity)


# -- progress line -------------------------------------------------------------------------

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


# -- human ---------------------------------------------------------------------------------

WARNING_PREFIXES = ("[WARNING]", "[DEPRECATION WARNING]")
PLAIN_RESULTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipping",
    "runner_on_unreachable": "unreachable",
}


class HumanOutput:
    """rich is imported in the methods that use it, so that `--json` runs never load it."""

    def __init__(
        self, stream: TextIO | None = None, *, verbosity: int = 0, live: bool | None = None
    ) -> None:
        from rich.console import Console

        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.live = self.console.is_terminal if live is None else live
        self.verbosity = verbosity
        self.progress = Progress()
        self._live: Live | None = None

    def __enter__(self) -> HumanOutput:
        from rich.live import Live
        from rich.text import Text

        if self.live:
            self._live = Live(
                Text(self.progress.line()),
                console=self.console,
                transient=True,
                refresh_per_second=8,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- during the run -------------------------------------------------------------------
    def event(self, event: Event) -> None:
        from rich.text import Text

        self.progress.update(event)
        line = self._line_for(event)
        if self._live is not None:
            if line is not None and self._wanted_live(event):
                self.console.print(Text(line, style=_style(event)))
            self._live.update(Text(self.progress.line(), style="bold"))
        elif line is not None:
            self._plain(line)

    def _line_for(self, event: Event) -> str | None:
        name = event["event"]
        if name == "playbook_on_play_start":
            return f"PLAY [{event.get('play', '')}]"
        if name in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            return f"TASK [{event.get('task', '')}]"
        if name in PLAIN_RESULTS:
            return self._result_line(name, event)
        if name == "verbose":
            msg = str(event.get("msg") or "")
            if msg and (self.verbosity or msg.lstrip().startswith(WARNING_PREFIXES)):
                return msg
        return None

    def _result_line(self, name: str, event: Event) -> str:
        label = PLAIN_RESULTS[name]
        if name == "runner_on_ok" and event.get("changed"):
            label = "changed"
        if event.get("ignored"):
            label += " (ignored)"
        line = f"  {label}: {event.get('host', '?')}"
        if event.get("msg") and (event.get("failed") or self.verbosity):
            line += f": {event['msg']}"
        return line

    def _wanted_live(self, event: Event) -> bool:
        """On a terminal the live line says the rest; print failures, warnings, -v output."""
        name = event["event"]
        return bool(
            self.verbosity
            or name == "verbose"
            or (event.get("failed") and not event.get("ignored") and name in PLAIN_RESULTS)
        )

    def _plain(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    # -- at the end -----------------------------------------------------------------------
    def result(self, result: RunResult) -> None:
        if result.hosts:
            self._recap(result)
        if result.failures:
            self._failures(result.failures)
        if result.error:
            self._print(f"ansible error:\n{result.error}", "red")
        self._print(_summary_line(result), _code_style(result.exit_code))

    def _recap(self, result: RunResult) -> None:
        from rich.table import Table
        from rich.text import Text

        hosts = sorted(result.hosts.values(), key=lambda h: h.host)
        if self.live:
            table = Table(title="PLAY RECAP", title_justify="left")
            table.add_column("host")
            for name in RECAP_FIELDS:
                table.add_column(name, justify="right")
            for h in hosts:
                style = "red" if h.failed or h.unreachable else ("yellow" if h.changed else "green")
                table.add_row(Text(h.host, style=style), *(str(v) for v in h.counts().values()))
            self.console.print(table)
            return
        width = max(len(h.host) for h in hosts)
        self._plain("PLAY RECAP")
        for h in hosts:
            counts = " ".join(f"{k}={v}" for k, v in h.counts().items())
            self._plain(f"  {h.host.ljust(width)}  {counts}")

    def _failures(self, failures: list[Failure]) -> None:
        self._print("FAILURES", "bold red")
        for f in failures:
            kind = "UNREACHABLE" if f.unreachable else "FAILED"
            self._print(f"  {kind} {f.host} | {f.task} | {f.message}", "red")

    def _print(self, text: str, style: str) -> None:
        from rich.text import Text

        if self.live:
            self.console.print(Text(text, style=style))
        else:
            self._plain(text)

    def invalid(self, message: str) -> None:
        print(f"opsbook: error: {message}", file=sys.stderr)


def _summary_line(result: RunResult) -> str:
    code = result.exit_code
    parts = [f"{result.status} (exit {int(code)}) in {result.duration:.1f}s"]
    if code == ExitCode.UNREACHABLE:
        parts.append(f"unreachable: {', '.join(result.unreachable_hosts)}")
    if result.failed_hosts:
        parts.append(f"failed: {', '.join(result.failed_hosts)}")
    parts.append(f"artifacts: {result.artifacts}")
    return "opsbook: " + "; ".join(parts)


def _code_style(code: ExitCode) -> str:
    return "bold green" if code == ExitCode.OK else "bold red"


def _style(event: Event) -> str:
    if event.get("failed") and not event.get("ignored"):
        return "red"
    if event["event"] == "verbose":
        return "yellow"
    return ""


# -- JSON lines ----------------------------------------------------------------------------


class JsonLinesOutput:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __enter__(self) -> JsonLinesOutput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def _emit(self, obj: dict[str, Any]) -> None:
        self.stream.write(json.dumps(obj, default=str, separators=(",", ":")) + "\n")
        self.stream.flush()

    def event(self, event: Event) -> None:
        self._emit(event)

    def result(self, result: RunResult) -> None:
        self._emit(result.summary())

    def invalid(self, message: str) -> None:
        print(f"opsbook: error: {message}", file=sys.stderr)
        self._emit(
            {
                "event": "summary",
                "status": "invalid",
                "rc": None,
                "exit_code": int(ExitCode.INVALID),
                "hosts": {},
                "failures": [],
                "duration": 0.0,
                "artifacts": None,
                "run_dir": None,
                "error": message,
            }
        )
