"""The play recap every test and benchmark reads: tests/playbook_run.py's `recap_file`
callback against real runs on localhost, exact counters for every host, a failing and an
unreachable one included."""

from __future__ import annotations

import json
import re

import pytest

from playbook_run import PlaybookResult, ansible_playbook

REACHABLE = {
    # ok counts the change, the ignored failure and the rescue; the skip and the rescued
    # failure are counted apart
    "local-a": {
        "ok": 4, "changed": 1, "unreachable": 0, "failed": 0, "skipped": 2, "rescued": 1,
        "ignored": 1,
    },
    "local-b": {
        "ok": 4, "changed": 1, "unreachable": 0, "failed": 1, "skipped": 0, "rescued": 1,
        "ignored": 1,
    },
}  # fmt: skip
DEAD = {
    "ok": 0, "changed": 0, "unreachable": 1, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 0
}  # fmt: skip


@pytest.fixture(scope="module")
def mixed(fixture_playbooks, local_inventory, unreachable_inventory) -> PlaybookResult:
    """tests/playbooks/recap.yml on local-a, local-b (fails at "Fail on b") and dead."""
    return ansible_playbook(
        fixture_playbooks / "recap.yml", inventory=(local_inventory, unreachable_inventory)
    )


def test_the_recap_has_every_counter_of_every_host(mixed: PlaybookResult) -> None:
    assert mixed.returncode == 4, mixed.stdout[-3000:]  # ansible's rc for unreachable hosts
    assert mixed.recap == {**REACHABLE, "dead": DEAD}
    assert mixed.host("local-b")["failed"] == 1
    assert mixed.seconds > 0


def test_the_recap_is_what_ansible_prints_and_the_text_output_stays(mixed: PlaybookResult) -> None:
    """The default output is untouched (tests assert on its messages), and its PLAY RECAP
    lines say what the structured recap says."""
    assert "boom on local-b" in mixed.stdout
    _, found, section = mixed.stdout.rpartition("PLAY RECAP")
    assert found, mixed.stdout[-3000:]
    printed = {
        m[1]: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[2])}
        for m in re.finditer(r"^(\S+)\s+:\s+(.*)$", section, re.MULTILINE)
    }
    assert printed == mixed.recap


def test_a_failing_host_without_unreachable_ones(fixture_playbooks, local_inventory) -> None:
    run = ansible_playbook(fixture_playbooks / "recap.yml", inventory=local_inventory)
    assert run.returncode == 2, run.stdout[-3000:]  # ansible's rc for failed hosts
    assert run.recap == REACHABLE


def test_the_recap_comes_with_another_stdout_callback_and_other_callbacks(
    fixture_playbooks, local_inventory
) -> None:
    """The JSON stdout callback (the k3s lab tests) and callbacks a caller enables keep the
    recap; the JSON's own stats agree with it."""
    run = ansible_playbook(
        fixture_playbooks / "recap.yml",
        inventory=local_inventory,
        env={
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.timer",
        },
    )
    assert run.recap == REACHABLE
    output, _ = json.JSONDecoder().raw_decode(run.stdout)
    assert "Playbook run took" in run.stdout  # the timer ran
    renamed = {"failures": "failed"}
    stats = {h: {renamed.get(k, k): v for k, v in s.items()} for h, s in output["stats"].items()}
    assert stats == REACHABLE


def test_a_run_without_a_recap_fails_loudly(tmp_path, local_inventory) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("- name: Broken\n  hosts: all\n  tasks: [{ansible.builtin.nosuch: {}}]\n")
    run = ansible_playbook(broken, inventory=local_inventory)
    assert run.returncode != 0
    assert run.stats is None
    with pytest.raises(AssertionError, match="no play recap"):
        run.recap  # noqa: B018


def test_a_host_missing_from_the_recap_fails_loudly(mixed: PlaybookResult) -> None:
    with pytest.raises(AssertionError, match=r"no recap for node1 \(only \['dead', 'local-a'"):
        mixed.host("node1")
