"""The exit codes of every `opsbook` command, one set with one meaning each.

=====  ==========================================================================
code   meaning
=====  ==========================================================================
0      done: the playbook ran and no host failed or was unreachable; the lab, the
       k3s test server or the schedule did what was asked
1      any other error: ansible or ansible-runner crashed mid-run, the run timed
       out, podman or an image build failed, the k3s test server did not start or
       answer, a unit could not be installed
2      at least one host failed a task (and no host was unreachable)
3      at least one host was unreachable (takes precedence over failed hosts)
4      invalid input or configuration: missing inventory, unknown playbook,
       unparsable extra vars, YAML/syntax error in a playbook, ansible refused
       the options or stopped before running any task (no host matched, missing
       vault password, ansible-playbook not installed), a bad name or argument
130    cancelled (SIGINT/Ctrl-C or SIGTERM); ansible was stopped, nothing orphaned
=====  ==========================================================================

How a playbook run maps to these: opsbook.driver.result.exit_code_for.
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
