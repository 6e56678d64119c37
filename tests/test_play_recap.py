"""The shared PLAY RECAP reader the lab tests rely on."""

from __future__ import annotations

import pytest

from play_recap import recap

OUTPUT = """TASK [x] ***
ok: [node1]

PLAY RECAP *********************************************************************
node1                      : ok=12   changed=0    unreachable=0    failed=0    skipped=5    rescued=0    ignored=0
node-2.lab                 : ok=3    changed=2    unreachable=1    failed=1    skipped=0    rescued=0    ignored=0
"""  # noqa: E501


def test_reads_every_host_line() -> None:
    counters = recap(OUTPUT)
    assert counters["node1"]["changed"] == 0
    assert counters["node1"]["skipped"] == 5
    assert counters["node-2.lab"] == {
        "ok": 3, "changed": 2, "unreachable": 1, "failed": 1, "skipped": 0, "rescued": 0,
        "ignored": 0,
    }  # fmt: skip


def test_reads_the_last_recap_of_several_playbook_runs() -> None:
    first = OUTPUT.replace("changed=2", "changed=9")
    assert recap(first + OUTPUT)["node-2.lab"]["changed"] == 2


def test_output_without_a_recap_fails_loudly() -> None:
    with pytest.raises(AssertionError, match="no PLAY RECAP"):
        recap("ERROR! the playbook could not be parsed")
