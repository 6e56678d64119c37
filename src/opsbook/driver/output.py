"""What the CLI shows while and after a run: human (rich live or plain lines) or JSON lines."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, TextIO

from opsbook.driver.events import Event
from opsbook.driver.result import RunResult


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
        from opsbook.driver.jsonlines import JsonLinesOutput

        return JsonLinesOutput(stream)
    from opsbook.driver.human import HumanOutput

    return HumanOutput(stream, verbosity=verbosity)
