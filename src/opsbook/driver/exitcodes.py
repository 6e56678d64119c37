"""How a finished playbook run maps to an exit code (the codes: opsbook.exitcodes).

How a finished run is mapped (`exit_code_for`), in order:

1. runner status ``canceled`` -> 130.
2. the run produced a recap (the ``playbook_on_stats`` event): any unreachable host -> 3,
   else any failed host -> 2, else rc 0 -> 0, else 1.
3. no recap: rc 0 -> 0; rc 4 or 5 (ansible's parser and option errors), rc 127 (no
   ansible-playbook), or any non-zero rc before a task started -> 4; else -> 1.

ansible-playbook itself uses rc 4 both for "parser error" and "unreachable hosts", which
is why the recap, not rc, decides between 3 and 4.
"""

from __future__ import annotations

from opsbook.exitcodes import ExitCode

__all__ = ["ExitCode", "exit_code_for"]


_ANSIBLE_INPUT_ERRORS = frozenset({4, 5, 127})


def exit_code_for(
    *,
    status: str,
    rc: int | None,
    have_recap: bool,
    failed_hosts: int,
    unreachable_hosts: int,
    tasks_started: bool,
) -> ExitCode:
    """The exit code of a finished run (see the module docstring for the rules)."""
    if status == "canceled":
        return ExitCode.CANCELLED
    if have_recap:
        if unreachable_hosts:
            return ExitCode.UNREACHABLE
        if failed_hosts:
            return ExitCode.FAILED
        return ExitCode.OK if rc == 0 else ExitCode.ERROR
    if rc == 0 and status == "successful":
        return ExitCode.OK
    if rc in _ANSIBLE_INPUT_ERRORS or (status == "failed" and not tasks_started):
        return ExitCode.INVALID
    return ExitCode.ERROR
