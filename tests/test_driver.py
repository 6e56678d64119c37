"""The driver library against real ansible-playbook runs on localhost (connection local)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from opsbook.driver import (
    ExitCode,
    ExtraVars,
    Failure,
    HostRecap,
    InvalidInput,
    RunResult,
    RunSpec,
    run_playbook,
)
from opsbook.driver.run import StartLock, start_lock_path

BROKEN_TASKS = "---\n- name: X\n  ansible.builtin.debug: {msg: [unclosed\n"
IMPORTS_BROKEN = """---
- name: Import error
  hosts: locals
  gather_facts: false
  tasks:
    - name: Broken tasks
      ansible.builtin.import_tasks: broken.yml
"""


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


def _basic(fixture_playbooks: Path, inventory: Path, out_dir: Path, **kw: object) -> RunSpec:
    extra = [{"opsbook_test_dir": str(out_dir)}, *kw.pop("extra_vars", [])]  # type: ignore[misc]
    return RunSpec(
        playbook=fixture_playbooks / "basic.yml",
        inventory=[str(inventory)],
        extra_vars=extra,
        **kw,  # type: ignore[arg-type]
    )


def _said_hello(events: list[dict]) -> set[str]:
    """The messages of basic.yml's "Say hello" task in a run's events."""
    return {e["msg"] for e in events if e["event"] == "runner_on_ok" and e["task"] == "Say hello"}


def test_inline_yaml_extra_vars_reach_ansible_with_their_tags(
    state_dir, fixture_playbooks, local_inventory, out_dir
):
    """`-e "{greeting: !unsafe '{{ x }}'}"` stays untemplated, as with ansible-playbook: the
    text goes to ansible as given, not re-serialized without its tag."""
    events = []
    spec = _basic(
        fixture_playbooks,
        local_inventory,
        out_dir,
        extra_vars=[ExtraVars.parse("{greeting: !unsafe '{{ not_a_variable }}'}")],
        tags=["hello"],
    )
    result = run_playbook(spec, on_event=events.append)
    assert result.exit_code == ExitCode.OK, result.failures
    assert _said_hello(events) == {"hello {{ not_a_variable }}"}


def test_the_library_installs_no_signal_handler_and_cancels_through_its_callback(
    state_dir, fixture_playbooks, local_inventory, out_dir
):
    """Signals belong to the CLI; a library caller cancels with `cancel`, and the whole run
    stops with the cancelled exit code."""
    import signal

    handlers: set[object] = set()
    stop = threading.Event()

    def on_event(event: dict) -> None:
        handlers.add(signal.getsignal(signal.SIGINT))
        if event["event"] == "playbook_on_task_start" and event.get("task") == "Sleep":
            stop.set()

    spec = RunSpec(playbook=fixture_playbooks / "slow.yml", inventory=[str(local_inventory)])
    before = signal.getsignal(signal.SIGINT)
    started = time.monotonic()
    result = run_playbook(spec, on_event=on_event, cancel=stop.is_set)
    assert handlers == {before}
    assert result.exit_code == ExitCode.CANCELLED
    assert time.monotonic() - started < 60  # not the task's 300 s


def test_counts_ok_changed_and_passes_extra_vars(
    state_dir, fixture_playbooks, local_inventory, out_dir
):
    events = []
    spec = _basic(
        fixture_playbooks,
        local_inventory,
        out_dir,
        extra_vars=[ExtraVars.parse("greeting=opsbook")],
    )
    result = run_playbook(spec, on_event=events.append)

    assert (result.status, result.rc, result.exit_code) == ("successful", 0, ExitCode.OK)
    assert result.hosts == {
        "local-a": HostRecap("local-a", ok=3, changed=1),
        "local-b": HostRecap("local-b", ok=3, changed=1),
    }
    assert result.failures == []
    assert (out_dir / "local-a.txt").read_text() == "written by local-a\n"
    assert _said_hello(events) == {"hello opsbook"}
    assert events[-1]["event"] == "playbook_on_stats"
    # a fresh private data dir under the state dir, with runner's artifacts in it
    assert result.run_dir.parent == state_dir / "runs"
    assert result.artifacts.is_relative_to(result.run_dir)
    assert (result.artifacts / "status").read_text() == "successful"
    assert list((result.artifacts / "job_events").glob("*.json"))
    assert result.duration > 0

    # second run: nothing left to change
    again = run_playbook(spec)
    assert again.hosts["local-a"] == HostRecap("local-a", ok=3, changed=0)
    assert again.run_dir != result.run_dir


def test_check_mode_and_diff(state_dir, fixture_playbooks, local_inventory, out_dir):
    result = run_playbook(
        _basic(fixture_playbooks, local_inventory, out_dir, check=True, diff=True)
    )
    assert result.exit_code == ExitCode.OK
    assert result.hosts["local-a"].changed == 1  # would change...
    assert not (out_dir / "local-a.txt").exists()  # ...but did not
    stdout = (result.artifacts / "stdout").read_text()
    assert "+written by local-a" in stdout  # the diff
    assert "--check" in result.command
    assert "--diff" in result.command


def test_tags_and_limit(state_dir, fixture_playbooks, local_inventory, out_dir):
    result = run_playbook(
        _basic(fixture_playbooks, local_inventory, out_dir, tags=["hello"], limit="local-a")
    )
    assert result.hosts == {"local-a": HostRecap("local-a", ok=1)}
    assert not (out_dir / "local-a.txt").exists()


def test_failures_skip_ignored_and_rescued(state_dir, fixture_playbooks, local_inventory):
    events = []
    result = run_playbook(
        RunSpec(playbook=fixture_playbooks / "failures.yml", inventory=[str(local_inventory)]),
        on_event=events.append,
    )
    assert result.status == "failed"
    assert result.exit_code == ExitCode.FAILED
    assert result.hosts["local-a"] == HostRecap("local-a", ok=3, skipped=1, rescued=1, ignored=1)
    assert result.hosts["local-b"].failed == 1
    assert result.failures == [
        Failure(
            host="local-b",
            task="Fail on b",
            message="boom on local-b",
            play="Failures",
            task_path=f"{fixture_playbooks / 'failures.yml'}:23",
        )
    ]
    ignored = [e for e in events if e.get("ignored")]
    assert {e["host"] for e in ignored} == {"local-a", "local-b"}


def test_unreachable_host(state_dir, fixture_playbooks, unreachable_inventory):
    result = run_playbook(
        RunSpec(playbook=fixture_playbooks / "ping.yml", inventory=[str(unreachable_inventory)])
    )
    assert result.exit_code == ExitCode.UNREACHABLE
    assert result.unreachable_hosts == ["dead"]
    assert [(f.host, f.unreachable) for f in result.failures] == [("dead", True)]
    assert "port 1" in result.failures[0].message


def test_yaml_error_found_by_ansible_is_invalid_input(state_dir, tmp_path, local_inventory):
    (tmp_path / "broken.yml").write_text(BROKEN_TASKS)
    playbook = tmp_path / "imports_broken.yml"
    playbook.write_text(IMPORTS_BROKEN)
    result = run_playbook(RunSpec(playbook=playbook, inventory=[str(local_inventory)]))
    assert (result.status, result.rc) == ("failed", 4)
    assert result.exit_code == ExitCode.INVALID
    assert result.error is not None
    assert "broken.yml" in result.error


def test_vault_password_file_and_prompt(state_dir, tmp_path, fixture_playbooks, local_inventory):
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = "vault-pass-for-tests"
    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password.encode()))])
    vars_file = tmp_path / "vault.yml"
    vars_file.write_bytes(vault.encrypt("greeting: from-the-vault\n"))
    password_file = tmp_path / "vault-pass"
    password_file.write_text(password + "\n")
    extra = [ExtraVars.parse(f"@{vars_file}"), {"opsbook_test_dir": str(tmp_path)}]
    base = {"playbook": fixture_playbooks / "basic.yml", "inventory": [str(local_inventory)]}

    for spec in (
        RunSpec(**base, extra_vars=extra, tags=["hello"], vault_password_file=password_file),
        RunSpec(**base, extra_vars=extra, tags=["hello"], vault_password=password),
    ):
        events = []
        result = run_playbook(spec, on_event=events.append)
        assert result.exit_code == ExitCode.OK, result.error
        assert {e.get("msg") for e in events if e["event"] == "runner_on_ok"} == {
            "hello from-the-vault"
        }
        for path in result.run_dir.rglob("*"):
            assert not path.is_file() or password not in path.read_text(errors="replace")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            RunSpec(playbook=Path("/nonexistent/play.yml"), inventory=["localhost,"]),
            "does not exist",
        ),
        (
            RunSpec(playbook=Path(__file__).parent / "playbooks" / "ping.yml", inventory=["/no"]),
            "inventory /no does not exist",
        ),
    ],
)
def test_invalid_input_raises_before_running(state_dir, spec, message):
    with pytest.raises(InvalidInput, match=message):
        run_playbook(spec)
    assert not (state_dir / "runs").exists()


def test_playbook_syntax_error_is_caught_in_python(state_dir, tmp_path, local_inventory):
    playbook = tmp_path / "broken.yml"
    playbook.write_text("- name: Broken\n  hosts: all\n  tasks: [unclosed\n")
    with pytest.raises(
        InvalidInput, match=r"YAML syntax error: YAML parsing failed: .*broken.yml:4:1\)$"
    ):
        run_playbook(RunSpec(playbook=playbook, inventory=[str(local_inventory)]))


def test_broken_inventory_yaml_is_invalid(state_dir, tmp_path, fixture_playbooks):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    a: {ansible_host: [oops\n")
    with pytest.raises(InvalidInput, match=r"inventory .* is not valid YAML"):
        run_playbook(RunSpec(playbook=fixture_playbooks / "ping.yml", inventory=[str(inventory)]))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1 b='two words'", {"a": "1", "b": "two words"}),
        ('{"a": 1, "b": [1, 2]}', {"a": 1, "b": [1, 2]}),
        ("{a: 1, b: yes}", {"a": 1, "b": True}),
        ("key=", {"key": ""}),
        # ansible's parse_kv keeps a Jinja expression whole, where shlex would split it.
        ("msg={{ a ~ b }} n=2", {"msg": "{{ a ~ b }}", "n": "2"}),
        ('a="b c" d=e=f', {"a": "b c", "d": "e=f"}),
        ("{a: !unsafe '{{ x }}'}", {"a": "{{ x }}"}),
    ],
)
def test_extra_vars_parse_like_ansible(text, expected):
    assert dict(ExtraVars.parse(text).data) == expected


@pytest.mark.parametrize(
    "text", ["novalue", "", "{unclosed: [", "[1, 2]", "@/nonexistent.yml", "a='unterminated"]
)
def test_bad_extra_vars_are_invalid(text):
    with pytest.raises(InvalidInput):
        ExtraVars.parse(text)


def test_extra_vars_file(tmp_path):
    path = tmp_path / "vars.yml"
    path.write_text("db_password: s3cret-value\nport: 5432\n")
    parsed = ExtraVars.parse(f"@{path}")
    assert parsed.file == path
    assert parsed.variables() == {"db_password": "s3cret-value", "port": 5432}
    (tmp_path / "list.yml").write_text("- 1\n")
    with pytest.raises(InvalidInput, match="must be a mapping"):
        ExtraVars.parse(f"@{tmp_path / 'list.yml'}")


def test_run_dirs_rotate_keeping_the_last_20(state_dir, fixture_playbooks, local_inventory):
    """ansible-runner's rotate_artifacts removes all but the newest 20 entries of runs/ (by
    mtime), the new run's dir included."""
    runs = state_dir / "runs"
    runs.mkdir()
    old = [runs / f"20200101T0000{i:02d}.000000Z-abcdef" for i in range(25)]
    for index, path in enumerate(old):
        (path / "env").mkdir(parents=True)
        os.utime(path, (1_600_000_000 + index, 1_600_000_000 + index))
    result = run_playbook(
        RunSpec(playbook=fixture_playbooks / "ping.yml", inventory=[str(local_inventory)])
    )
    assert result.exit_code == ExitCode.OK, result.error
    kept = sorted(p.name for p in runs.iterdir())
    assert len(kept) == 20
    assert kept[-1] == result.run_dir.name
    assert kept[0] == old[6].name  # the 6 oldest went (25 + 1 new - 20)


WAIT_PLAYBOOK = """---
- name: Wait
  hosts: local-a
  gather_facts: false
  tasks:
    - name: Sleep a little
      ansible.builtin.command: sleep 4
      changed_when: false
"""


def test_runs_start_one_at_a_time_so_their_rotations_never_race(
    state_dir, tmp_path, local_inventory
):
    """While another run holds the start lock (it has not reached runner's rotation yet), a
    run waits before ansible_runner starts (no `command` artifact); once the lock is free it
    runs, and it frees the lock when ansible is running, not at its end."""
    holder = StartLock(start_lock_path()).__enter__()
    results: list[RunResult] = []
    (tmp_path / "wait.yml").write_text(WAIT_PLAYBOOK)
    spec = RunSpec(playbook=tmp_path / "wait.yml", inventory=[str(local_inventory)])
    thread = threading.Thread(target=lambda: results.append(run_playbook(spec)))
    thread.start()
    try:
        time.sleep(1.5)
        runs = list((state_dir / "runs").iterdir())
        assert len(runs) == 1
        assert not (runs[0] / "command").exists()  # waiting for the lock, runner not started
    finally:
        holder.release()
    # The run takes the lock, and gives it back as soon as ansible runs.
    deadline = time.monotonic() + 30
    while not (runs[0] / "command").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = StartLock(start_lock_path())
    got_it = threading.Event()
    threading.Thread(target=lambda: (second.__enter__(), got_it.set()), daemon=True).start()
    assert got_it.wait(20), "the lock was not released once ansible was running"
    assert thread.is_alive(), "wait.yml should still be running"
    second.release()
    thread.join(120)
    assert results[0].exit_code == ExitCode.OK, results[0].error


def test_summary_is_json_serialisable(state_dir, fixture_playbooks, local_inventory):
    result = run_playbook(
        RunSpec(playbook=fixture_playbooks / "failures.yml", inventory=[str(local_inventory)])
    )
    summary = json.loads(json.dumps(result.summary()))
    assert summary["event"] == "summary"
    assert summary["exit_code"] == 2
    assert summary["failures"][0]["host"] == "local-b"
    assert summary["hosts"]["local-a"]["rescued"] == 1


@pytest.mark.parametrize(
    ("status", "rc", "recap", "failed", "unreachable", "started", "expected"),
    [
        ("successful", 0, True, 0, 0, True, ExitCode.OK),
        ("failed", 2, True, 1, 0, True, ExitCode.FAILED),
        ("failed", 4, True, 1, 1, True, ExitCode.UNREACHABLE),  # unreachable wins
        ("failed", 4, True, 0, 1, True, ExitCode.UNREACHABLE),  # rc 4 with a recap
        ("failed", 4, False, 0, 0, False, ExitCode.INVALID),  # rc 4 without: parser error
        ("failed", 5, False, 0, 0, False, ExitCode.INVALID),
        ("failed", 1, False, 0, 0, False, ExitCode.INVALID),  # stopped before any task
        ("failed", 250, False, 0, 0, True, ExitCode.ERROR),  # crashed mid-run
        ("timeout", 254, False, 0, 0, True, ExitCode.ERROR),
        ("canceled", 254, True, 1, 1, True, ExitCode.CANCELLED),
    ],
)
def test_exit_code_rules(status, rc, recap, failed, unreachable, started, expected):
    from opsbook.driver import exit_code_for

    assert (
        exit_code_for(
            status=status,
            rc=rc,
            have_recap=recap,
            failed_hosts=failed,
            unreachable_hosts=unreachable,
            tasks_started=started,
        )
        == expected
    )


def test_redactor_masks_known_secrets(tmp_path):
    from opsbook.driver.events import MASK, Redactor, redact_env, secrets_in_vars

    found = secrets_in_vars({"db": {"password": "hunter2-long"}, "user": "bob", "api_token": 12})
    assert found == {"hunter2-long", "12"}  # 12 is found, but too short to be masked
    redactor = Redactor([*found, "short", 'quo"te-secret'])
    event = {"event_data": {"res": {"msg": "pw is hunter2-long"}}, "stdout": ["x hunter2-long"]}
    redactor.scrub(event)
    assert event == {"event_data": {"res": {"msg": f"pw is {MASK}"}}, "stdout": [f"x {MASK}"]}
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"a": 'quo"te-secret', "b": "short"}))
    assert redactor.scrub_file(path)
    assert "te-secret" not in path.read_text()
    assert "short" in path.read_text()  # below MIN_SECRET_LENGTH: never masked
    assert redact_env({"PATH": "/bin", "AWS_SECRET": "x"}) == {"PATH": "/bin", "AWS_SECRET": MASK}
