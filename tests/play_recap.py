"""The PLAY RECAP counters of a plain `ansible-playbook` run.

Some tests run the playbooks the way an operator does, with `ansible-playbook` and its default
output, and read the per-host counters from it. (The driver never does this: it reads
ansible-runner's events.)
"""

from __future__ import annotations

import re

_HOST_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counters>(?:\w+=\d+[ \t]*)+)$", re.MULTILINE)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """`{host: {"ok": n, "changed": n, "unreachable": n, "failed": n, ...}}` of the last recap."""
    _, found, section = stdout.rpartition("PLAY RECAP")
    assert found, f"no PLAY RECAP in the output:\n{stdout[-3000:]}"
    return {
        m["host"]: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m["counters"])}
        for m in _HOST_LINE.finditer(section)
    }
