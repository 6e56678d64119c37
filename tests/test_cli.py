"""The `opsbook` CLI end to end: output formats, exit codes, Ctrl-C, secrets."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from opsbook.cli import build_parser, main, spec_from_args
from opsbook.commands import COMMANDS, PlaybookCommand
from opsbook.exitcodes import ExitCode

ALLOWED_EVENT_KEYS = {
    "event",
    "uuid",
    "counter",
    "created",
    "play",
    "task",
    "task_path",
    "host",
    "changed",
    "failed",
    "unreachable",
    "ignored",
    "msg",
    "duration",
    "hosts",
}


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_json_output_is_one_object_per_line(opsbook_cli, state_dir, fixture_playbooks, tmp_path):
    inventory = fixture_playbooks / "inventory" / "local.yml"
    proc = opsbook_cli(
        "run", str(fixture_playbooks / "basic.yml"), "-i", str(inventory), "--json",
        "-e", f"opsbook_test_dir={tmp_path}", "-e", '{"greeting": "json"}', "-v",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = _json_lines(proc.stdout)  # every line parses
    *events, summary = lines
    assert all(set(e) <= ALLOWED_EVENT_KEYS for e in events)
    names = [e["event"] for e in events]
    assert next(n for n in names if n != "verbose") == "playbook_on_start"
    assert "Using " in events[0]["msg"]  # -v: ansible's verbose lines are events too
    assert "playbook_on_stats" in names
    assert {e["msg"] for e in events if e.get("task") == "Say hello" and "msg" in e} == {
        "hello json"
    }
    assert summary["event"] == "summary"
    assert (summary["status"], summary["rc"], summary["exit_code"]) == ("successful", 0, 0)
    assert summary["hosts"]["local-b"] == {
        "ok": 3, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 0, "rescued": 0,
        "ignored": 0,
    }  # fmt: skip
    assert summary["failures"] == []
    assert Path(summary["artifacts"]).is_relative_to(state_dir / "runs")
    assert summary["duration"] > 0


def test_human_output_is_plain_lines_without_a_tty(
    opsbook_cli, state_dir, fixture_playbooks, local_inventory
):
    proc = opsbook_cli("run", str(fixture_playbooks / "failures.yml"), "-i", str(local_inventory))
    assert proc.returncode == 2
    out = proc.stdout
    assert "\x1b[" not in out  # no live display, no colours
    assert "PLAY [Failures]" in out
    assert "TASK [Fail on b]" in out
    assert "PLAY RECAP" in out
    assert "local-a  ok=3 changed=0 failed=0 unreachable=0 skipped=1 rescued=1 ignored=1" in out
    assert "FAILED local-b | Fail on b | boom on local-b" in out
    assert "exit 2" in out.splitlines()[-1]


def test_unreachable_host_exits_3_and_names_it(
    opsbook_cli, state_dir, fixture_playbooks, unreachable_inventory
):
    proc = opsbook_cli("run", str(fixture_playbooks / "ping.yml"), "-i", str(unreachable_inventory))
    assert proc.returncode == 3
    assert "UNREACHABLE dead | Ping |" in proc.stdout
    assert "unreachable: dead" in proc.stdout


BAD_INPUT = {
    "missing inventory": (["run", "{pb}/ping.yml", "-i", "/nonexistent/hosts.yml"], "inventory"),
    "unknown playbook": (["run", "no-such-playbook", "-i", "{inv}"], "unknown playbook"),
    "bad extra vars": (["run", "{pb}/ping.yml", "-i", "{inv}", "-e", "novalue"], "key=value"),
    "bad json extra vars": (["run", "{pb}/ping.yml", "-i", "{inv}", "-e", "{a: [1"], "JSON"),
    "missing vars file": (["run", "{pb}/ping.yml", "-i", "{inv}", "-e", "@/nope.yml"], "nope"),
    "yaml syntax error": (["run", "{tmp}/broken.yml", "-i", "{inv}"], "YAML syntax error"),
    "yaml error found by ansible": (["run", "{tmp}/imports.yml", "-i", "{inv}"], "tasks.yml"),
    "unknown option": (["run", "{pb}/ping.yml", "--no-such-option"], "unrecognized"),
    "missing vault file": (
        ["run", "{pb}/ping.yml", "-i", "{inv}", "--vault-password-file", "/nope"],
        "vault password file",
    ),
}


def _main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code or 0)


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_exits_4_with_one_clear_message(
    case, capsys, state_dir, tmp_path, fixture_playbooks, local_inventory
):
    (tmp_path / "broken.yml").write_text("- name: X\n  hosts: all\n  tasks: [oops\n")
    (tmp_path / "tasks.yml").write_text("- name: X\n  ansible.builtin.debug: {msg: [oops\n")
    (tmp_path / "imports.yml").write_text(
        "- hosts: locals\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.import_tasks: tasks.yml\n"
    )
    args, expected = BAD_INPUT[case]
    fill = {"{pb}": fixture_playbooks, "{inv}": local_inventory, "{tmp}": tmp_path}
    argv = []
    for arg in args:
        for key, value in fill.items():
            arg = arg.replace(key, str(value))
        argv.append(arg)
    for json_mode in (False, True):
        code = _main([*argv, *(["--json"] if json_mode else [])])
        out, err = capsys.readouterr()
        assert code == 4, (out, err)
        assert expected in out + err
        if json_mode and case != "unknown option":
            summary = _json_lines(out)[-1]
            assert (summary["event"], summary["exit_code"]) == ("summary", 4)
            assert expected in summary["error"]


def test_bad_input_in_a_real_process_has_no_traceback(opsbook_cli, state_dir, fixture_playbooks):
    proc = opsbook_cli("run", str(fixture_playbooks / "ping.yml"), "-i", "/nonexistent/hosts.yml")
    assert proc.returncode == 4
    assert proc.stdout == ""
    assert proc.stderr == "opsbook: error: inventory /nonexistent/hosts.yml does not exist\n"


def test_named_command_with_missing_playbook_exits_4(opsbook_cli, state_dir, tmp_path):
    root = tmp_path / "checkout"
    (root / "playbooks").mkdir(parents=True)
    (root / "hosts.yml").write_text("all:\n  hosts:\n    localhost: {}\n")
    proc = opsbook_cli("site", "-i", str(root / "hosts.yml"), env={"OPSBOOK_ROOT": str(root)})
    assert proc.returncode == 4
    assert f"playbook {root / 'playbooks' / 'site.yml'} does not exist" in proc.stderr


def _run_processes(marker: str) -> list[str]:
    """Live (non-zombie) processes whose environment has `marker`, as 'pid cmdline'."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if marker.encode() in environ and state != "Z":
            found.append(f"{entry.name} {cmdline}")
    return found


def test_ctrl_c_exits_130_quickly_without_orphans(
    state_dir, fixture_playbooks, local_inventory, opsbook_argv
):
    marker = f"OPSBOOK_STATE_DIR={state_dir}"
    argv = ["run", str(fixture_playbooks / "slow.yml"), "-i", str(local_inventory), "--json"]
    proc = subprocess.Popen(
        opsbook_argv(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until the long task runs
            event = json.loads(line)
            if event["event"] == "runner_on_start" and event.get("task") == "Sleep":
                break
        time.sleep(0.5)
        assert any("ansible-playbook" in p for p in _run_processes(marker))
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=5)
        elapsed = time.monotonic() - sent
        rest = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130
    assert elapsed < 5
    summary = _json_lines(rest)[-1]
    assert (summary["status"], summary["exit_code"]) == ("canceled", 130)
    assert _run_processes(marker) == []


def test_secrets_stay_out_of_output_and_artifacts(
    opsbook_cli, state_dir, fixture_playbooks, local_inventory
):
    xvar_secret = f"xvar-{secrets.token_hex(8)}"
    env_secret = f"env-{secrets.token_hex(8)}"
    env = {"OPSBOOK_TEST_SECRET": env_secret}
    base = ["run", str(fixture_playbooks / "secret.yml"), "-i", str(local_inventory)]
    outputs = []
    vars_file = state_dir.parent / "secret-vars.json"
    vars_file.write_text(json.dumps({"test_password": xvar_secret}))
    for extra in (
        ["-e", f"test_password={xvar_secret}"],
        ["-e", f"@{vars_file}", "--json", "-vvv"],
    ):
        proc = opsbook_cli(*base, *extra, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    human, as_json = outputs
    assert "TASK [Use the extra-vars secret]" in human
    events = _json_lines(_stdout_only(as_json))
    censored = [
        e
        for e in events
        if e["event"] == "runner_on_ok" and e["task"] == "Use the extra-vars secret"
    ]
    assert censored
    assert all("no_log" in e["msg"] for e in censored)

    for text in outputs:
        assert xvar_secret not in text
        assert env_secret not in text
    files = [p for p in state_dir.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        data = path.read_bytes()
        assert xvar_secret.encode() not in data, path
        assert env_secret.encode() not in data, path
    for run in (state_dir / "runs").iterdir():
        assert [p.name for p in (run / "env").iterdir()] == ["settings"]
        (command,) = run.glob("command")
        recorded = json.loads(command.read_text())
        assert recorded["env"]["OPSBOOK_TEST_SECRET"] == "<redacted>"
        assert recorded["env"]["ANSIBLE_CONFIG"].endswith("ansible.cfg")
    assert not [p for p in Path("/dev/shm").glob("opsbook-ev-*") if p.stat().st_uid == os.getuid()]


def _stdout_only(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.startswith("{"))


def test_registry_maps_commands_to_playbooks():
    assert {name: c.playbook for name, c in COMMANDS.items()} == {
        "site": "site.yml",
        "harden": "harden.yml",
        "k3s": "k3s.yml",
        "deploy": "apps.yml",
        "cf-refresh": "ufw-cf-refresh.yml",
        "run": None,
    }


def test_deploy_release_becomes_app_release_and_wins():
    args = build_parser().parse_args(["deploy", "--release", "v1.2.3", "-e", "app_release=old"])
    spec = spec_from_args(COMMANDS["deploy"], args)
    assert spec.playbook.name == "apps.yml"
    assert [dict(e.data) for e in spec.extra_vars] == [
        {"app_release": "old"},
        {"app_release": "v1.2.3"},
    ]


def test_options_reach_the_spec(fixture_playbooks):
    args = build_parser().parse_args(
        ["run", str(fixture_playbooks / "ping.yml"), "-i", "a.yml", "-i", "b.yml", "--limit",
         "web", "-t", "x,y", "-t", "z", "--check", "--diff", "-vv"]
    )  # fmt: skip
    spec = spec_from_args(COMMANDS["run"], args)
    assert spec.inventory == ["a.yml", "b.yml"]
    assert (spec.limit, list(spec.tags), spec.check, spec.diff, spec.verbosity) == (
        "web", ["x,y", "z"], True, True, 2,
    )  # fmt: skip


def test_registered_commands_get_their_own_options(monkeypatch):
    def add(parser):
        parser.add_argument("--plan", action="store_true")

    command = PlaybookCommand(
        "pytest-cmd", "site.yml", "test", add_arguments=add, before_run=lambda args, spec, cancel: 7
    )
    monkeypatch.setitem(COMMANDS, command.name, command)
    args = build_parser().parse_args(["pytest-cmd", "--plan"])
    assert args.plan is True
    assert args.handler(args) == 7


def test_lab_commands_are_still_mounted():
    args = build_parser().parse_args(["lab", "--name", "x", "status"])
    assert (args.command, args.lab_command, args.name) == ("lab", "status", "x")


def test_a_lab_failure_is_an_error_not_invalid_input(opsbook_cli, state_dir):
    """`opsbook lab` failures (podman, images, a lab that is not there) exit 1, like every
    other failure of a command; 4 is kept for input the user got wrong."""
    proc = opsbook_cli("lab", "--name", "no-such-lab", "ssh", "node1", "true")
    assert proc.returncode == ExitCode.ERROR, proc.stderr
    assert proc.stderr.startswith("opsbook lab: "), proc.stderr
    bad = opsbook_cli("lab", "kube", "--name", "Bad Name!", "status")
    assert bad.returncode == ExitCode.INVALID, bad.stderr


def test_every_command_uses_the_one_exit_code_set():
    """No command defines exit codes of its own (opsbook.exitcodes.ExitCode is the one set)."""
    src = Path(__file__).resolve().parents[1] / "src" / "opsbook"
    own = [
        f"{path.relative_to(src)}:{n}"
        for path in sorted(src.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*(EXIT_[A-Z]+\s*=|class \w+\((?:enum\.)?IntEnum\))", line)
        and path.name != "exitcodes.py"
    ]
    assert own == []
