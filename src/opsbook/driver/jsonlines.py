"""`--json`: one compact event per line (schema: events.py), then one summary object.

Summary: {"event": "summary", "status", "rc", "exit_code", "hosts": {host: counts},
"failures": [{host, play, task, msg, unreachable, task_path}], "duration", "artifacts",
"run_dir", "error"}. Input errors found before ansible starts give the same object with
status "invalid", exit_code 4 and the message in "error". Nothing else is printed on stdout.
"""

from __future__ import annotations

import json
import sys
from types import TracebackType
from typing import Any, TextIO

from opsbook.driver.events import Event
from opsbook.driver.exitcodes import ExitCode
from opsbook.driver.result import RunResult


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
