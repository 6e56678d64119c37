"""`opsbook schedule`: the timer and service install into a unit directory, `systemd-analyze
verify` accepts them, --list shows them and --remove deletes them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from opsbook import schedule

# `make deps` installs systemd (systemd-analyze); without it these tests fail, never skip.


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="opsbook")
    sub = parser.add_subparsers(dest="command", required=True)
    schedule.add_parser(sub)
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


def test_install_verify_list_remove(tmp_path, capsys):
    units = tmp_path / "units"
    inv = tmp_path / "hosts.yml"
    inv.write_text("all: {}\n")
    rc = cli(
        "schedule", "cf-refresh", "--every", "weekly", "--unit-dir", str(units),
        "-i", str(inv), "-e", "firewall_cloudflare_timeout=20 note=100%",
    )  # fmt: skip
    assert rc == 0
    service = (units / "opsbook-cf-refresh.service").read_text()
    timer = (units / "opsbook-cf-refresh.timer").read_text()
    assert "OnCalendar=weekly" in timer
    assert "Persistent=true" in timer
    assert "RandomizedDelaySec=4h" in timer
    assert "Unit=opsbook-cf-refresh.service" in timer
    assert "Type=oneshot" in service
    exec_line = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    binary = exec_line.split("=", 1)[1].split()[0]
    assert Path(binary).is_absolute()
    assert Path(binary).exists()
    assert " cf-refresh -i " in exec_line
    assert str(inv) in exec_line
    assert "100%%" in exec_line  # systemd specifier escaped
    # the same check the command ran, done here independently
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(units / "opsbook-cf-refresh.timer"),
         str(units / "opsbook-cf-refresh.service")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    capsys.readouterr()
    assert cli("schedule", "--list", "--unit-dir", str(units)) == 0
    listed = capsys.readouterr().out
    assert "cf-refresh  every=weekly" in listed
    assert cli("schedule", "cf-refresh", "--remove", "--unit-dir", str(units)) == 0
    assert list(units.iterdir()) == []
    capsys.readouterr()
    cli("schedule", "--list", "--unit-dir", str(units))
    assert "no opsbook jobs scheduled" in capsys.readouterr().out


@pytest.mark.parametrize(("every", "delay"), [("monthly", "6h"), ("daily", "1h")])
def test_every_cadence_verifies(tmp_path, every, delay):
    assert cli("schedule", "cf-refresh", "--every", every, "--unit-dir", str(tmp_path)) == 0
    timer = (tmp_path / "opsbook-cf-refresh.timer").read_text()
    assert f"OnCalendar={every}" in timer
    assert f"RandomizedDelaySec={delay}" in timer


def test_a_unit_verify_refuses_is_not_installed(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(schedule.EVERY, "weekly", ("not-a-calendar-spec", "4h"))
    assert cli("schedule", "cf-refresh", "--every", "weekly", "--unit-dir", str(tmp_path)) == 1
    assert "systemd-analyze verify refused" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_missing_binary_is_refused_by_verify(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(schedule, "opsbook_executable", lambda: tmp_path / "nope" / "opsbook")
    assert cli("schedule", "cf-refresh", "--every", "daily", "--unit-dir", str(tmp_path)) == 1
    assert "not executable" in capsys.readouterr().err


def test_usage_errors(tmp_path, capsys):
    assert cli("schedule", "cf-refresh", "--unit-dir", str(tmp_path)) == 4
    assert cli("schedule", "--unit-dir", str(tmp_path)) == 4
    with pytest.raises(SystemExit):
        cli("schedule", "cf-refresh", "--every", "hourly")
    assert cli("schedule", "cf-refresh", "--remove", "--unit-dir", str(tmp_path)) == 0
    assert "not scheduled" in capsys.readouterr().out


def test_the_scheduled_command_exists():
    # ExecStart runs `opsbook cf-refresh`: the binary the units point at is this venv's.
    assert schedule.opsbook_executable().exists()
    assert Path(sys.executable).parent.joinpath("opsbook").exists()
