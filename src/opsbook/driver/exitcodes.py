"""Exit codes of `opsbook` playbook commands (site, harden, k3s, deploy, cf-refresh, run).

=====  ==========================================================================
code   meaning
=====  ==========================================================================
0      the playbook ran and no host failed or was unreachable
1      any other error: ansible or ansible-runner crashed mid-run, the run timed out
2      at least one host failed a task (and no host was unreachable)
3      at least one host was unreachable (takes precedence over failed hosts)
4      invalid input or configuration: missing inventory, unknown playbook,
       unparsable extra vars, YAML/syntax error in a playbook, ansible refused
       the options or stopped before running any task (no host matched, missing
       vault password, ansible-playbook not installed)
130    cancelled (SIGINT/Ctrl-C or SIGTERM); ansible was stopped, nothing orphaned
=====  ==========================================================================

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

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    FAILED = 2
    UNREACHABLE = 3
    INVALID = 4
    CANCELLED = 130


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
